//! One client: traffic, the usage bar against its limit, the expiry
//! countdown, last handshake and online state, Revoke / Restore, the policy
//! form, a generated peer's config and QR code, and its latest events.

use super::access::{expiry_text, provide_access_actions, AccessBadge, AccessButtons, UsageBar};
use super::chart::BarChart;
use super::components::{Ago, ConnectionBadge, ErrorNote, TableFrame, BUTTON, INPUT, TD, TH};
use super::post_form::{page_action, provide_page_action, Fields, PostForm};
use super::{live_resource, Page};
use crate::api::fns::{client_detail, ClientPolicy};
use crate::api::{ClientDetail, ClientView, EventView, SessionView};
use crate::domain::{ByteCount, ClientId};
use crate::error::AppError;
use chrono::Utc;
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

#[component]
pub fn ClientPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").and_then(|v| v.parse::<i64>().ok());
    provide_page_action::<ClientPolicy, _>(id);
    provide_access_actions(id);
    // The client's server, once known: only its events (and the fleet's) concern the page.
    let server = StoredValue::new(None::<crate::domain::ServerId>);
    let detail = live_resource(
        id,
        move |id| async move {
            let d = match id {
                Some(id) => client_detail(id).await,
                None => Err(AppError::not_found("Client")),
            };
            if let Ok(d) = &d {
                server.set_value(Some(d.client.server_id));
            }
            d
        },
        move |e| match (e.server(), server.get_value()) {
            (Some(s), Some(mine)) => s == mine,
            _ => true,
        },
    );
    view! {
        <Transition fallback=|| view! { <Page title="Client"><p>"Loading…"</p></Page> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Err(e) => view! { <Page title="Client"><ErrorNote error=e /></Page> }.into_any(),
                    Ok(d) => view! { <Page title=d.client.display_name()><ClientBody detail=d /></Page> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn ClientBody(detail: ClientDetail) -> impl IntoView {
    let ClientDetail { client: c, server_name, has_config, events, history, sessions } = detail;
    let total = c.bytes_sent + c.bytes_received;
    let last = if c.public_key.is_some() { c.last_handshake } else { c.last_seen };
    let id = c.id;
    view! {
        <p class="mb-4 text-sm">
            <a class="underline-offset-2 hover:underline" href=format!("/servers/{}", c.server_id)>{server_name}</a>
            " · " <span class="break-all font-mono text-xs">{c.identity.clone()}</span>
        </p>
        <dl class="mb-6 grid grid-cols-1 gap-x-6 gap-y-3 text-sm sm:grid-cols-2 lg:grid-cols-4">
            <div><dt class="text-slate-600 dark:text-slate-400">"Access"</dt><dd><AccessBadge client=c.clone() /></dd></div>
            <div><dt class="text-slate-600 dark:text-slate-400">"Online"</dt><dd><ConnectionBadge status=c.connection /></dd></div>
            <div><dt class="text-slate-600 dark:text-slate-400">"Last handshake"</dt><dd><Ago at=last never="never" /></dd></div>
            <div><dt class="text-slate-600 dark:text-slate-400">"Address"</dt><dd class="font-mono text-xs">{c.client_ip.clone().unwrap_or_default()}</dd></div>
            <div><dt class="text-slate-600 dark:text-slate-400">"Uploaded"</dt><dd class="tabular-nums" data-testid="uploaded">{ByteCount::new(c.bytes_sent).human()}</dd></div>
            <div><dt class="text-slate-600 dark:text-slate-400">"Downloaded"</dt><dd class="tabular-nums" data-testid="downloaded">{ByteCount::new(c.bytes_received).human()}</dd></div>
            <div><dt class="text-slate-600 dark:text-slate-400">"Total"</dt><dd class="tabular-nums" data-testid="total">{ByteCount::new(total).human()}</dd></div>
            <div><dt class="text-slate-600 dark:text-slate-400">"Expiry"</dt><dd data-testid="expiry">{expiry_text(c.expiry_date, Utc::now())}</dd></div>
            <div class="sm:col-span-2 lg:col-span-4"><dt class="text-slate-600 dark:text-slate-400">"Traffic limit"</dt><dd><UsageBar client=c.clone() /></dd></div>
            {c.note.clone().map(|note| view! {
                <div class="sm:col-span-2 lg:col-span-4"><dt class="text-slate-600 dark:text-slate-400">"Note"</dt>
                    <dd class="whitespace-pre-line break-words" data-testid="note">{note}</dd></div>
            })}
        </dl>
        <div class="mb-6 flex flex-wrap items-center gap-4">
            <AccessButtons client=c.clone() />
            <a href=format!("/clients/{id}") class="text-xs underline" data-testid="refresh">"Refresh"</a>
        </div>
        {has_config.then(|| view! { <ConfigBox id=id /> })}
        <PolicyForm client=c />
        <h2 class="mb-2 mt-8 text-lg font-semibold">"Traffic"</h2>
        <div class="grid grid-cols-1 gap-4 lg:grid-cols-2">
            <BarChart title="Last 48 hours (UTC)" bars=history.hourly testid="chart-hourly" every=6 />
            <BarChart title="Last 60 days" bars=history.daily testid="chart-daily" every=7 />
            <BarChart title="Last 12 months" bars=history.monthly testid="chart-monthly" every=1 />
        </div>
        <h2 class="mb-2 mt-8 text-lg font-semibold">"Sessions"</h2>
        <SessionHistory sessions=sessions />
        <h2 class="mb-2 mt-8 text-lg font-semibold">"Events"</h2>
        <EventTable events=events />
    }
}

/// The client's latest sessions, open or ended.
#[component]
fn SessionHistory(sessions: Vec<SessionView>) -> impl IntoView {
    if sessions.is_empty() {
        return view! { <p class="text-sm text-slate-600 dark:text-slate-400" data-testid="session-history">"No sessions yet."</p> }
            .into_any();
    }
    view! {
        <TableFrame testid="session-history">
            <thead><tr>
                <th class=TH>"Connected"</th>
                <th class=TH>"Disconnected"</th>
                <th class=format!("{TH} hidden md:table-cell")>"Endpoint"</th>
                <th class=format!("{TH} hidden sm:table-cell")>"Virtual IP"</th>
                <th class=format!("{TH} text-right")>"↑"</th>
                <th class=format!("{TH} text-right")>"↓"</th>
            </tr></thead>
            <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                {sessions.into_iter().map(|s| view! {
                    <tr data-testid="history-row" data-session-id=s.id.to_string() data-open=s.disconnected_at.is_none().to_string()>
                        <td class=TD><Ago at=Some(s.connected_at) /></td>
                        <td class=TD>{match s.disconnected_at {
                            Some(at) => view! { <Ago at=Some(at) /> }.into_any(),
                            None => view! { <span class="text-emerald-700 dark:text-emerald-300">"connected now"</span> }.into_any(),
                        }}</td>
                        <td class=format!("{TD} hidden md:table-cell font-mono text-xs")>{s.endpoint.unwrap_or_default()}</td>
                        <td class=format!("{TD} hidden sm:table-cell font-mono text-xs")>{s.virtual_ip.unwrap_or_default()}</td>
                        <td class=format!("{TD} text-right tabular-nums")>{ByteCount::new(s.bytes_sent).human()}</td>
                        <td class=format!("{TD} text-right tabular-nums")>{ByteCount::new(s.bytes_received).human()}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </TableFrame>
    }
    .into_any()
}

#[component]
fn ConfigBox(id: ClientId) -> impl IntoView {
    view! {
        <details class="mb-6 rounded-lg border border-slate-200 bg-white p-4 dark:border-slate-800 dark:bg-slate-900">
            <summary class="cursor-pointer font-semibold">"Client config and QR code"</summary>
            <p class="mt-2 text-sm"><a class="underline" href=format!("/api/clients/{id}/config") download="">"Download the .conf file"</a></p>
            <img class="mt-2 h-64 w-64 bg-white" src=format!("/api/clients/{id}/qr.svg") alt="QR code of the client config" data-testid="qr" />
        </details>
    }
}

#[component]
fn PolicyForm(client: ClientView) -> impl IntoView {
    let save = page_action::<ClientPolicy>();
    let limit = client.traffic_limit.map(|l| l.to_string()).unwrap_or_default();
    let expiry = client.expiry_date.map(crate::domain::time::iso).unwrap_or_default();
    let monthly = client.limit_period == "monthly";
    let id = client.id.get();
    view! {
        <details class="mb-6 rounded-lg border border-slate-200 bg-white p-4 dark:border-slate-800 dark:bg-slate-900">
            <summary class="cursor-pointer font-semibold">"Limit, expiry and note"</summary>
            <PostForm action=save class="mt-4 grid grid-cols-1 gap-4 md:grid-cols-2"
                args=move |f: Fields| { ClientPolicy {
                    id,
                    traffic_limit: f.text("traffic_limit"),
                    traffic_warn_threshold: f.text("traffic_warn_threshold"),
                    limit_period: f.text("limit_period"),
                    reset_day: f.text("reset_day"),
                    expiry_date: f.text("expiry_date"),
                    note: f.text("note"),
                } }>
                <input type="hidden" name="id" value=client.id.to_string() />
                <label class="block text-sm font-medium">"Traffic limit (blank: none; 10GB, 500M, bytes)"
                    <input name="traffic_limit" value=limit class=INPUT autocomplete="off" /></label>
                <label class="block text-sm font-medium">"Warn at (% of the limit)"
                    <input name="traffic_warn_threshold" value=client.traffic_warn_threshold.to_string() class=INPUT /></label>
                <label class="block text-sm font-medium">"Counts"
                    <select name="limit_period" class=INPUT>
                        <option value="lifetime" selected=!monthly>"All traffic (lifetime)"</option>
                        <option value="monthly" selected=monthly>"Each month"</option>
                    </select></label>
                <label class="block text-sm font-medium">"Monthly reset day (1–31)"
                    <input name="reset_day" value=client.reset_day.map(|d| d.to_string()).unwrap_or_default() class=INPUT /></label>
                <label class="block text-sm font-medium md:col-span-2">"Expiry (ISO 8601 UTC; blank: never)"
                    <input name="expiry_date" value=expiry class=INPUT autocomplete="off" placeholder="2026-12-31T23:59:59Z" /></label>
                <label class="block text-sm font-medium md:col-span-2">"Note (plain text)"
                    // Not a child: Leptos writes a textarea's text unescaped.
                    <textarea name="note" rows="3" maxlength="2000" class=INPUT
                        inner_html=escape_text(client.note.as_deref().unwrap_or_default())></textarea></label>
                <div class="md:col-span-2">
                    {move || save.value().get().and_then(Result::err).map(|e| view! { <ErrorNote error=e /> })}
                    <button type="submit" class=BUTTON>"Save"</button>
                </div>
            </PostForm>
        </details>
    }
}

/// Events, newest first.
#[component]
pub fn EventTable(events: Vec<EventView>) -> impl IntoView {
    if events.is_empty() {
        return view! { <p class="text-sm text-slate-600 dark:text-slate-400">"No events yet."</p> }.into_any();
    }
    view! {
        <TableFrame testid="events">
            <thead><tr>
                <th class=TH>"When"</th>
                <th class=TH>"Who"</th>
                <th class=TH>"Action"</th>
                <th class=TH>"Client"</th>
                <th class=TH>"Details"</th>
            </tr></thead>
            <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                {events.into_iter().map(|e| view! {
                    <tr data-testid="event-row" data-action=e.action.clone()>
                        <td class=TD><Ago at=Some(e.at) /></td>
                        <td class=TD>{e.actor.clone()}</td>
                        <td class=TD>{format!("{} {}", e.action, e.reason.clone().unwrap_or_default())}</td>
                        <td class=TD>{match e.client_id {
                            Some(id) => view! { <a class="underline-offset-2 hover:underline" href=format!("/clients/{id}")>{e.label.clone()}</a> }.into_any(),
                            None => view! { <span>{e.label.clone()}</span> }.into_any(),
                        }}</td>
                        <td class=format!("{TD} text-xs")>{e.figures.clone().unwrap_or_default()}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </TableFrame>
    }
    .into_any()
}

/// `text` as HTML text: `&`, `<`, `>`, and both quotes as references.
fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_text;

    #[test]
    fn a_note_cannot_end_its_textarea() {
        assert_eq!(escape_text("a</textarea><i>\"'&b"), "a&lt;/textarea&gt;&lt;i&gt;&quot;&#39;&amp;b");
        assert_eq!(escape_text("line 1\nline 2"), "line 1\nline 2");
    }
}
