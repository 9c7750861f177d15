//! The dashboard: the fleet at a glance, or one server of it (`?server=ID`,
//! a GET form, so it is a link and works without JavaScript), refreshed on
//! the live events that concern it.

use super::chart::BarChart;
use super::components::{loaded, Ago, Card, HealthBadge, SessionTable, TableFrame, BUTTON, TD, TH};
use super::post_form::provide_page_action;
use super::{live_resource, Page};
use crate::api::fns::{dashboard, DisconnectSession};
use crate::api::{DashboardView, ServerCount};
use crate::domain::time::duration;
use crate::domain::{ByteCount, ServerId};
use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;

#[component]
pub fn DashboardPage() -> impl IntoView {
    let query = use_query_map();
    let server = move || query.read().get("server").unwrap_or_default();
    provide_page_action::<DisconnectSession, _>(server);
    let chosen = move || query.with_untracked(|q| q.get("server").and_then(|s| ServerId::parse(&s)));
    let data = live_resource(server, dashboard, move |e| chosen().is_none_or(|c| e.server().is_none_or(|s| s == c)));
    view! {
        <Page title="Dashboard">
            {loaded(data, |d| view! { <Dashboard d=d /> }.into_any())}
        </Page>
    }
}

#[component]
fn Dashboard(d: DashboardView) -> impl IntoView {
    let servers = if d.servers_failing > 0 {
        format!("{} of {} ({} failing)", d.servers_active, d.server_count, d.servers_failing)
    } else {
        format!("{} of {}", d.servers_active, d.server_count)
    };
    let average = d.average_connection_secs.map_or_else(|| "—".to_owned(), duration);
    let more = (d.active_connections > u64::from(DashboardView::SESSIONS_SHOWN))
        .then(|| format!("The {} newest of {}.", DashboardView::SESSIONS_SHOWN, d.active_connections));
    view! {
        <ServerFilter chosen=d.server names=d.server_names.clone() />
        <div class="grid grid-cols-2 gap-4 lg:grid-cols-3">
            <Card label="Online users" value=format!("{} of {}", d.online_users, d.users) testid="online-users" />
            <Card label="Active connections" value=d.active_connections.to_string() testid="active-connections" />
            <Card label="Clients online" value=d.online.to_string() testid="total-online" />
            <Card label="Active servers" value=servers testid="total-servers" />
            <Card label="Average connection" value=average testid="average-connection" />
            <Card label="Traffic this month" value=ByteCount::new(d.month.total()).human() testid="month-traffic" />
        </div>
        <p class="mt-2 text-sm text-slate-600 dark:text-slate-400" data-testid="total-clients" data-count=d.clients.to_string()>
            {format!("{} clients in all.", d.clients)}
        </p>
        <h2 class="mb-2 mt-8 text-lg font-semibold">"Active connections"</h2>
        {more.map(|m| view! { <p class="mb-2 text-sm text-slate-600 dark:text-slate-400">{m}</p> })}
        <SessionTable sessions=d.active_sessions open=true can_disconnect=true testid="open-sessions" />
        <h2 class="mb-2 mt-8 text-lg font-semibold">"Recently disconnected"</h2>
        <SessionTable sessions=d.recently_disconnected open=false can_disconnect=false testid="recent-sessions" />
        <div class="mt-8"><BarChart title="Traffic per day, last 30 days (added every 10 min)" bars=d.daily testid="chart-fleet" every=5 /></div>
        <h2 class="mb-2 mt-8 text-lg font-semibold">"Servers"</h2>
        <ServerCounts servers=d.servers total=d.server_count filtered=d.server.is_some() />
    }
}

/// All servers or one, as a GET form.
#[component]
fn ServerFilter(chosen: Option<ServerId>, names: Vec<crate::api::ServerRef>) -> impl IntoView {
    view! {
        <Form method="GET" action="/" attr:class="mb-4 flex flex-wrap items-end gap-3">
            <label class="block text-sm font-medium">"Server"
                <select name="server" data-testid="server-filter"
                    class="mt-1 block rounded-md border border-slate-300 bg-white px-3 py-2 text-sm dark:border-slate-700 dark:bg-slate-900">
                    <option value="" selected=chosen.is_none()>"All servers"</option>
                    {names.into_iter().map(|s| view! {
                        <option value=s.id.to_string() selected=chosen == Some(s.id)>{s.name}</option>
                    }).collect_view()}
                </select>
            </label>
            <button type="submit" class=BUTTON data-testid="server-filter-apply">"Show"</button>
        </Form>
    }
}

/// Clients online per server: the busiest and the failing ones first.
#[component]
fn ServerCounts(servers: Vec<ServerCount>, total: u32, filtered: bool) -> impl IntoView {
    let note = (!filtered && total as usize > servers.len()).then(|| {
        view! {
            <p class="mt-2 text-sm text-slate-600 dark:text-slate-400">
                {format!("The {} busiest and failing of {total}; ", servers.len())}
                <a class="underline" href="/servers">"every server"</a>
            </p>
        }
    });
    view! {
        <TableFrame testid="server-summary">
            <thead><tr>
                <th class=TH>"Server"</th>
                <th class=TH>"Status"</th>
                <th class=format!("{TH} text-right")>"Online"</th>
                <th class=format!("{TH} hidden sm:table-cell")>"Last poll"</th>
            </tr></thead>
            <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                {servers.into_iter().map(|s| view! {
                    <tr data-testid="server-count" data-server-id=s.id.to_string()>
                        <td class=TD>
                            <a class="font-medium underline-offset-2 hover:underline" href=format!("/servers/{}", s.id)>{s.name}</a>
                            " "
                            <a class="text-xs text-slate-600 dark:text-slate-400 underline" href=format!("/?server={}", s.id)>"only this"</a>
                        </td>
                        <td class=TD><HealthBadge health=s.health /></td>
                        <td class=format!("{TD} text-right tabular-nums") data-testid="server-online">{format!("{} / {}", s.online, s.clients)}</td>
                        <td class=format!("{TD} hidden sm:table-cell")><Ago at=s.last_poll_at /></td>
                    </tr>
                }).collect_view()}
            </tbody>
        </TableFrame>
        {note}
    }
}
