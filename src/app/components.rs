//! Small pieces shared by the pages.

use super::post_form::{page_action, PostForm};
use super::Now;
use crate::api::fns::DisconnectSession;
use crate::api::{ServerHealth, SessionView};
use crate::domain::status::ConnectionStatus;
use crate::domain::time::{absolute, duration, relative};
use crate::domain::{ByteCount, Protocol};
use crate::error::{AppError, ErrorKind};
use chrono::{DateTime, Utc};
use leptos::prelude::*;

/// An instant: UTC text on the server and before hydration, relative
/// ("3 min ago") after; the exact UTC time stays in the tooltip.
#[component]
pub fn Ago(at: Option<DateTime<Utc>>, #[prop(optional, into)] never: Option<String>) -> impl IntoView {
    let now = use_context::<Now>();
    match at {
        None => view! { <span class="text-slate-600 dark:text-slate-400">{never.unwrap_or_else(|| "never".to_owned())}</span> }.into_any(),
        Some(at) => {
            let exact = absolute(at);
            let shown = exact.clone();
            view! {
                <time datetime=at.to_rfc3339() title=exact>
                    {move || match now.and_then(|n| n.0.get()) {
                        Some(now) => relative(at, now),
                        None => shown.clone(),
                    }}
                </time>
            }
            .into_any()
        }
    }
}

/// How long since `since`: its UTC start on the server and before
/// hydration, then a live length ("2 h 05 min"), refreshed with the clock.
#[component]
pub fn Lasting(since: DateTime<Utc>) -> impl IntoView {
    let now = use_context::<Now>();
    let exact = absolute(since);
    let shown = exact.clone();
    view! {
        <time datetime=since.to_rfc3339() title=format!("since {exact}") data-testid="lasting">
            {move || match now.and_then(|n| n.0.get()) {
                Some(now) => duration(u64::try_from((now - since).num_seconds()).unwrap_or(0)),
                None => shown.clone(),
            }}
        </time>
    }
}

#[component]
pub fn ConnectionBadge(status: ConnectionStatus) -> impl IntoView {
    let class = match status {
        ConnectionStatus::Online => "bg-emerald-100 text-emerald-800 dark:bg-emerald-900/50 dark:text-emerald-300",
        ConnectionStatus::RecentlySeen => "bg-amber-100 text-amber-800 dark:bg-amber-900/50 dark:text-amber-300",
        ConnectionStatus::Offline => "bg-slate-200 text-slate-700 dark:bg-slate-800 dark:text-slate-300",
        ConnectionStatus::NeverConnected => {
            "border border-slate-300 text-slate-600 dark:border-slate-700 dark:text-slate-400"
        }
    };
    view! {
        <span data-testid="connection" data-status=format!("{status:?}")
            class=format!("inline-flex whitespace-nowrap rounded-full px-2 py-0.5 text-xs font-medium {class}")>
            {status.label()}
        </span>
    }
}

#[component]
pub fn HealthBadge(health: ServerHealth) -> impl IntoView {
    let class = match health {
        ServerHealth::Ok => "bg-emerald-100 text-emerald-800 dark:bg-emerald-900/50 dark:text-emerald-300",
        ServerHealth::Error => "bg-red-100 text-red-800 dark:bg-red-900/50 dark:text-red-300",
        ServerHealth::Pending => "bg-slate-200 text-slate-700 dark:bg-slate-800 dark:text-slate-300",
    };
    view! {
        <span data-testid="health" class=format!("inline-flex rounded-full px-2 py-0.5 text-xs font-medium {class}")>
            {health.label()}
        </span>
    }
}

/// The body of a page that waits for `data` (inside a transition, so
/// refreshes keep the old view until the new one is ready): "Loading…"
/// first, the error note on failure, else what `render` makes of it.
pub fn loaded<T>(
    data: Resource<Result<T, AppError>, crate::api::wire::Wire>,
    render: impl Fn(T) -> AnyView + Clone + Send + Sync + 'static,
) -> impl IntoView
where
    T: Clone + serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    view! {
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || {
                let render = render.clone();
                Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <ErrorNote error=e /> }.into_any(),
                        Ok(value) => render(value),
                    }
                })
            }}
        </Transition>
    }
}

/// An error from a server function, with a way back to the login page when
/// the session is gone.
#[component]
pub fn ErrorNote(
    error: AppError,
    /// Offer "Log in again" on Unauthorized (not on the login page itself).
    #[prop(default = true)]
    relogin: bool,
) -> impl IntoView {
    let login = (relogin && error.kind == ErrorKind::Unauthorized)
        .then(|| view! { " " <a href="/login" class="underline">"Log in again"</a> });
    view! {
        <p role="alert" data-testid="error"
            class="rounded-md border border-red-300 bg-red-50 px-3 py-2 text-sm text-red-800 dark:border-red-800 dark:bg-red-950 dark:text-red-200">
            {error.message}
            {login}
        </p>
    }
}

#[component]
pub fn Card(#[prop(into)] label: String, #[prop(into)] value: String, #[prop(into)] testid: String) -> impl IntoView {
    view! {
        <div class="rounded-lg border border-slate-200 bg-white p-4 dark:border-slate-800 dark:bg-slate-900">
            <div class="text-sm text-slate-600 dark:text-slate-400">{label}</div>
            <div class="mt-1 text-3xl font-semibold tabular-nums" data-testid=testid>{value}</div>
        </div>
    }
}

/// A bordered table that scrolls sideways inside its box on narrow screens.
#[component]
pub fn TableFrame(#[prop(into)] testid: String, children: Children) -> impl IntoView {
    let label = testid.replace('-', " ");
    view! {
        // Focusable, so a keyboard can scroll it sideways on a narrow screen.
        <div tabindex="0" role="region" aria-label=label class="overflow-x-auto rounded-lg border border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
            <table class=TABLE data-testid=testid>{children()}</table>
        </div>
    }
}

/// Sessions, open or ended: the device and its user, the server, the real
/// and the virtual address, how long it has lasted (open) or when it ended,
/// and its bytes. Open OpenVPN sessions can be ended from here, after a
/// second click: "Restart" makes the client reconnect, "Disconnect" tells
/// it to exit.
#[component]
pub fn SessionTable(
    sessions: Vec<SessionView>,
    /// Open sessions show their length; ended ones their end.
    open: bool,
    can_disconnect: bool,
    #[prop(into)] testid: String,
) -> impl IntoView {
    // Shared by the page's tables; only the one that can end sessions says
    // how that went, also once it ended the last one.
    let disconnect = page_action::<DisconnectSession>();
    let error = move || disconnect.value().get().and_then(Result::err).filter(|_| can_disconnect);
    let done = move || disconnect.value().get().and_then(Result::ok).filter(|_| can_disconnect);
    let notes = view! {
        {move || error().map(|e| view! { <ErrorNote error=e /> })}
        {move || done().map(|m| view! { <p class="mb-2 text-sm text-slate-600 dark:text-slate-400" role="status" data-testid="disconnect-note">{m}</p> })}
    };
    if sessions.is_empty() {
        let text = if open { "No open sessions." } else { "Nobody disconnected in the last 24 hours." };
        return view! { {notes} <p class="text-sm text-slate-600 dark:text-slate-400" data-testid=testid>{text}</p> }
            .into_any();
    }
    view! {
        {notes}
        <TableFrame testid=testid>
            <thead><tr>
                <th class=TH>"Device"</th>
                <th class=format!("{TH} hidden md:table-cell")>"Server"</th>
                <th class=format!("{TH} hidden lg:table-cell")>"Real IP"</th>
                <th class=format!("{TH} hidden sm:table-cell")>"Virtual IP"</th>
                <th class=TH>{if open { "Connected for" } else { "Disconnected" }}</th>
                <th class=format!("{TH} text-right")>"↑"</th>
                <th class=format!("{TH} text-right")>"↓"</th>
                {can_disconnect.then(|| view! { <th class=TH><span class="sr-only">"Actions"</span></th> })}
            </tr></thead>
            <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                {sessions.into_iter().map(|s| session_row(s, open, can_disconnect, disconnect)).collect_view()}
            </tbody>
        </TableFrame>
    }
    .into_any()
}

fn session_row(
    s: SessionView,
    open: bool,
    can_disconnect: bool,
    disconnect: ServerAction<DisconnectSession>,
) -> AnyView {
    let row_id = s.id.to_string();
    let ends = open && can_disconnect && s.protocol == Protocol::Openvpn;
    let when = match (open, s.disconnected_at) {
        (true, _) => view! { <Lasting since=s.connected_at /> }.into_any(),
        (false, at) => view! { <Ago at=at /> }.into_any(),
    };
    view! {
        <tr data-testid="session-row" data-session-id=row_id data-identity=s.identity.clone()
            data-session-key=s.session_key.clone()>
            <td class=TD title=s.identity.clone()>
                <span class="font-medium">{s.client.clone()}</span>
                {s.user.clone().map(|u| view! { <div class="text-xs text-slate-600 dark:text-slate-400" data-testid="session-user">{u}</div> })}
            </td>
            <td class=format!("{TD} hidden md:table-cell")>
                <a class="underline-offset-2 hover:underline" href=format!("/servers/{}", s.server_id)>{s.server_name.clone()}</a>
            </td>
            <td class=format!("{TD} hidden lg:table-cell font-mono text-xs")>{s.endpoint.clone().unwrap_or_default()}</td>
            <td class=format!("{TD} hidden sm:table-cell font-mono text-xs")>{s.virtual_ip.clone().unwrap_or_default()}</td>
            <td class=format!("{TD} whitespace-nowrap")>{when}</td>
            <td class=format!("{TD} text-right tabular-nums") data-testid="session-upload" data-bytes=s.bytes_sent.to_string()>
                {ByteCount::new(s.bytes_sent).human()}
            </td>
            <td class=format!("{TD} text-right tabular-nums") data-testid="session-download" data-bytes=s.bytes_received.to_string()>
                {ByteCount::new(s.bytes_received).human()}
            </td>
            {can_disconnect.then(move || view! {
                <td class=format!("{TD} whitespace-nowrap")>
                    {ends.then(move || end_session(s.id, s.client, disconnect))}
                </td>
            })}
        </tr>
    }
    .into_any()
}

/// "End…", then Restart (the client reconnects) or Disconnect (it exits).
fn end_session(session: i64, client: String, disconnect: ServerAction<DisconnectSession>) -> AnyView {
    let id = session.to_string();
    let halt_id = id.clone();
    view! {
        <details class="text-xs">
            <summary class="cursor-pointer text-red-700 underline dark:text-red-300" data-testid="end-session">"End…"</summary>
            <div class="mt-1 flex flex-wrap items-center gap-2">
                <span>{format!("End {client}'s session?")}</span>
                <PostForm action=disconnect class="inline"
                    args=move |_| { DisconnectSession { id: session, halt: None } }>
                    <input type="hidden" name="id" value=id />
                    <button type="submit" class="rounded border border-slate-300 px-2 py-0.5 dark:border-slate-700">"Restart"</button>
                </PostForm>
                <PostForm action=disconnect class="inline"
                    args=move |_| { DisconnectSession { id: session, halt: Some("on".to_owned()) } }>
                    <input type="hidden" name="id" value=halt_id />
                    <input type="hidden" name="halt" value="on" />
                    <button type="submit" class="rounded bg-red-700 px-2 py-0.5 text-white">"Disconnect"</button>
                </PostForm>
            </div>
        </details>
    }
    .into_any()
}

pub const TABLE: &str = "min-w-full divide-y divide-slate-200 text-sm dark:divide-slate-800";
pub const TH: &str = "px-3 py-2 text-left font-medium text-slate-600 dark:text-slate-400";
pub const TD: &str = "px-3 py-2 align-top";
pub const INPUT: &str = "mt-1 w-full rounded-md border border-slate-300 bg-white px-3 py-2 text-sm \
    dark:border-slate-700 dark:bg-slate-900";
pub const BUTTON: &str = "rounded-md bg-slate-900 px-4 py-2 text-sm font-medium text-white hover:bg-slate-700 \
    disabled:opacity-50 dark:bg-slate-100 dark:text-slate-900 dark:hover:bg-white";
