//! The dashboard: the fleet at a glance, refreshed on every live event.

use super::components::{loaded, Ago, Card, HealthBadge, SessionTable, TableFrame, TD, TH};
use super::{any_event, live_resource, Page};
use crate::api::fns::dashboard;
use crate::domain::ByteCount;
use leptos::prelude::*;

#[component]
pub fn DashboardPage() -> impl IntoView {
    let data = live_resource(|| (), |_| dashboard(), any_event);
    view! {
        <Page title="Dashboard">
            {loaded(data, |d| {
                            let failing = if d.servers_failing > 0 {
                                format!("{} ({} failing)", d.servers.len(), d.servers_failing)
                            } else {
                                d.servers.len().to_string()
                            };
                            view! {
                                <div class="grid grid-cols-1 gap-4 sm:grid-cols-2 lg:grid-cols-4">
                                    <Card label="Online now" value=d.online.to_string() testid="total-online" />
                                    <Card label="Clients" value=d.clients.to_string() testid="total-clients" />
                                    <Card label="Servers" value=failing testid="total-servers" />
                                    <Card label="Traffic this month" value=ByteCount::new(d.month.total()).human() testid="month-traffic" />
                                </div>
                                <div class="mt-6"><TableFrame testid="server-summary">

                                        <thead><tr>
                                            <th class=TH>"Server"</th>
                                            <th class=TH>"Status"</th>
                                            <th class=TH>"Online"</th>
                                            <th class=format!("{TH} hidden sm:table-cell")>"Last poll"</th>
                                        </tr></thead>
                                        <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                                            {d.servers.into_iter().map(|s| view! {
                                                <tr>
                                                    <td class=TD><a class="font-medium underline-offset-2 hover:underline" href=format!("/servers/{}", s.id)>{s.name}</a></td>
                                                    <td class=TD><HealthBadge health=s.health /></td>
                                                    <td class=format!("{TD} tabular-nums")>{format!("{} / {}", s.online, s.clients)}</td>
                                                    <td class=format!("{TD} hidden sm:table-cell")><Ago at=s.last_poll_at /></td>
                                                </tr>
                                            }).collect_view()}
                                        </tbody>
                                    </TableFrame>
                                </div>
                                <h2 class="mb-2 mt-8 text-lg font-semibold">"Recently disconnected"</h2>
                                <SessionTable sessions=d.recently_disconnected open=false can_disconnect=false testid="recent-sessions" />
                                <h2 class="mb-2 mt-8 text-lg font-semibold">"Open sessions"</h2>
                                <SessionTable sessions=d.active_sessions open=true can_disconnect=false testid="open-sessions" />
                            }.into_any()
            })}
        </Page>
    }
}
