//! Traffic history for the charts: a client's hours, days and months, and
//! the fleet's (or one server's) days.

use super::Panel;
use crate::api::{ClientView, HistoryView};
use crate::domain::accounting::{day_key, hour_key};
use crate::domain::history::{daily, first_day, first_month, hourly, monthly, Bar};
use crate::domain::ServerId;
use crate::error::AppError;
use crate::server::store::HistorySince;
use chrono::{DateTime, Utc};

/// Hours, days and months a client's charts show; days the fleet's shows.
pub const HOURS: u32 = 48;
pub const DAYS: u32 = 60;
pub const MONTHS: u32 = 12;
pub const FLEET_DAYS: u32 = 30;

impl Panel {
    /// `client`'s traffic: rolled-up buckets, its samples not rolled up
    /// yet, and the months its ledger and live state hold.
    pub async fn client_history(&self, client: &ClientView) -> Result<HistoryView, AppError> {
        let now = Utc::now();
        let tz = self.config.timezone;
        let today = now.with_timezone(&tz).date_naive();
        let since = HistorySince {
            hour: hour_key(now) - i64::from(HOURS - 1) * 3600,
            day: first_day(today, DAYS),
            month: first_month(today, MONTHS),
        };
        let h = self.store.client_history(client.id, client.server_id, &since).await?;
        let mut hours = h.hourly;
        let mut days = h.daily;
        for (hour, bytes) in &h.pending {
            hours.push((*hour, *bytes));
            if let Some(start) = DateTime::<Utc>::from_timestamp(*hour, 0) {
                days.push((day_key(start, &tz), *bytes));
            }
        }
        Ok(HistoryView {
            hourly: hourly(now, HOURS, &hours),
            daily: daily(today, DAYS, &days),
            monthly: monthly(today, MONTHS, &h.monthly),
        })
    }

    /// The last [`FLEET_DAYS`] days of every client's traffic, or one
    /// server's, as rolled up (the newest minutes join at the next roll-up).
    pub async fn fleet_daily(&self, server: Option<ServerId>) -> Result<Vec<Bar>, AppError> {
        let today = Utc::now().with_timezone(&self.config.timezone).date_naive();
        let days = self.store.fleet_daily(server, &first_day(today, FLEET_DAYS)).await?;
        Ok(daily(today, FLEET_DAYS, &days))
    }
}
