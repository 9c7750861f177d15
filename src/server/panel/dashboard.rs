//! The dashboard's figures: the fleet, or one server of it.

use super::views::server_view;
use super::{Panel, RECENT};
use crate::api::{DashboardView, ServerCount, ServerHealth, ServerRef, ServerView, Traffic};
use crate::domain::{ServerId, UserId};
use crate::error::AppError;
use crate::server::store::SessionFilter;
use chrono::Utc;
use std::time::Instant;

impl Panel {
    /// The dashboard: the fleet, or one server of it. Every open dashboard
    /// refetches on each event; they share one computation per event
    /// ([`crate::server::shared`]).
    pub async fn dashboard(&self, server: Option<ServerId>) -> Result<DashboardView, AppError> {
        let generation = self.poller.bus().generation();
        self.dashboards.get(server, generation, Instant::now(), || self.dashboard_now(server)).await
    }

    /// The dashboard as the store has it now.
    async fn dashboard_now(&self, server: Option<ServerId>) -> Result<DashboardView, AppError> {
        let now = Utc::now();
        let records = self.store.servers(now, &self.month(now)).await?;
        if let Some(id) = server {
            if !records.iter().any(|r| r.id == id) {
                return Err(AppError::not_found("Server"));
            }
        }
        let all: Vec<ServerView> = records.iter().map(server_view).collect();
        let chosen: Vec<&ServerView> = all.iter().filter(|s| server.is_none_or(|id| s.id == id)).collect();
        let users = self.store.users().await?;
        let ids: Vec<UserId> = users.iter().map(|u| u.id).collect();
        let live = self.store.live_sessions_of(&ids, now).await?;
        // Users with a device online on the chosen server (or anywhere).
        let online_users =
            live.values().filter(|devices| devices.iter().any(|d| server.is_none_or(|s| d.server == s))).count();
        let (active_connections, started) = self.store.open_sessions(server).await?;
        let average_connection_secs = (active_connections > 0).then(|| {
            let mean = started / i64::try_from(active_connections).unwrap_or(i64::MAX);
            u64::try_from(now.timestamp() - mean).unwrap_or(0)
        });
        let filter = |open: bool, limit: u32| SessionFilter {
            server,
            client: None,
            open,
            ended_since: (!open).then(|| now - RECENT),
            limit,
        };
        let active = self.sessions(filter(true, DashboardView::SESSIONS_SHOWN)).await?;
        let recent = self.sessions(filter(false, DashboardView::RECENT_SHOWN)).await?;
        let daily = self.fleet_daily(server).await?;
        let mut shown: Vec<&ServerView> = chosen.clone();
        shown.sort_by(|a, b| {
            let failing = |s: &ServerView| s.health == ServerHealth::Error;
            failing(b).cmp(&failing(a)).then(b.online.cmp(&a.online)).then(a.name.cmp(&b.name))
        });
        shown.truncate(DashboardView::SERVERS_SHOWN);
        Ok(DashboardView {
            server,
            server_names: all.iter().map(|s| ServerRef { id: s.id, name: s.name.clone() }).collect(),
            servers: shown
                .iter()
                .map(|s| ServerCount {
                    id: s.id,
                    name: s.name.clone(),
                    health: s.health,
                    online: s.online,
                    clients: s.clients,
                    last_poll_at: s.last_poll_at,
                })
                .collect(),
            server_count: chosen.len() as u32,
            servers_active: chosen.iter().filter(|s| s.health == ServerHealth::Ok).count() as u32,
            servers_failing: chosen.iter().filter(|s| s.health == ServerHealth::Error).count() as u32,
            clients: chosen.iter().map(|s| s.clients).sum(),
            online: chosen.iter().map(|s| s.online).sum(),
            online_users: online_users as u32,
            users: users.len() as u32,
            active_connections,
            average_connection_secs,
            month: Traffic::new(
                chosen.iter().map(|s| s.month.bytes_sent).sum(),
                chosen.iter().map(|s| s.month.bytes_received).sum(),
            ),
            active_sessions: active,
            recently_disconnected: recent,
            daily,
        })
    }
}
