//! A client's access and policy as the pages show them: the status badge,
//! the usage bar against the limit, the expiry countdown, and the Revoke /
//! Restore / Delete buttons (plain forms: they work without JavaScript; the
//! delete asks again inside a `<details>`).

use super::components::ErrorNote;
use super::post_form::{page_action, provide_page_action, PostForm};
use crate::api::fns::{ClientAccess, DeleteClient};
use crate::api::ClientView;
use crate::domain::ByteCount;
use chrono::{DateTime, Utc};
use leptos::prelude::*;

const BADGE: &str = "inline-flex whitespace-nowrap rounded-full px-2 py-0.5 text-xs font-medium";

/// Active, Disabled (with its reason), and Pending while the host has not
/// confirmed a change.
#[component]
pub fn AccessBadge(client: ClientView) -> impl IntoView {
    let reason = client.disabled_reason.clone().map(|r| r.replace('_', " "));
    let (text, class) = match reason {
        None => ("Active".to_owned(), "bg-emerald-100 text-emerald-800 dark:bg-emerald-900/50 dark:text-emerald-300"),
        Some(r) => (format!("Disabled · {r}"), "bg-red-100 text-red-800 dark:bg-red-900/50 dark:text-red-300"),
    };
    view! {
        <span data-testid="access" class=format!("{BADGE} {class}")>{text}</span>
        {client.pending.then(|| view! {
            " "
            <span data-testid="pending" class=format!("{BADGE} bg-amber-100 text-amber-800 dark:bg-amber-900/50 dark:text-amber-300")
                title="The host has not confirmed this yet; it is applied when it answers.">"Pending"</span>
        })}
    }
}

/// "7.9 GB of 10 GB (79 %)" with a bar that turns amber at the warning
/// threshold and red at the limit; nothing without a limit.
#[component]
pub fn UsageBar(client: ClientView) -> impl IntoView {
    let Some(limit) = client.traffic_limit else {
        return view! { <span class="text-sm text-slate-600 dark:text-slate-400" data-testid="usage">"No traffic limit"</span> }.into_any();
    };
    let used = client.limit_used;
    let percent = if limit == 0 { 100 } else { (u128::from(used) * 100 / u128::from(limit)).min(999) as u64 };
    let colour = if percent >= 100 {
        "bg-red-600"
    } else if percent >= u64::from(client.traffic_warn_threshold) {
        "bg-amber-500"
    } else {
        "bg-emerald-600"
    };
    let period = match client.reset_day {
        Some(day) if client.limit_period == "monthly" => format!(" this period (resets on day {day})"),
        _ => String::new(),
    };
    let text = format!("{} of {} ({percent} %){period}", ByteCount::new(used).human(), ByteCount::new(limit).human());
    view! {
        <div data-testid="usage" data-percent=percent.to_string() data-colour=colour>
            <div class="h-2 w-full max-w-md overflow-hidden rounded-full bg-slate-200 dark:bg-slate-800">
                <div class=format!("h-2 {colour}") style=format!("width: {}%", percent.min(100))></div>
            </div>
            <p class="mt-1 text-sm tabular-nums">{text}</p>
        </div>
    }
    .into_any()
}

/// "expires 2026-12-01 00:00 UTC · 6 days left" (or "expired …").
pub fn expiry_text(expiry: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(at) = expiry else { return "Never expires".to_owned() };
    let when = crate::domain::time::absolute(at);
    if at <= now {
        return format!("Expired {when}");
    }
    let hours = (at - now).num_hours();
    let left = match hours {
        h if h >= 48 => format!("{} days left", h / 24),
        h if h >= 1 => format!("{h} hours left"),
        _ => "less than an hour left".to_owned(),
    };
    format!("Expires {when} · {left}")
}

/// The client the page's Revoke, Restore or Delete last acted on. A list
/// shares one action among its rows (so the answer outlives the refresh it
/// causes), and only that client's row shows it.
#[derive(Clone, Copy)]
pub struct ActedOn(RwSignal<Option<i64>>);

/// Makes the page's access actions and [`ActedOn`], for the
/// [`AccessButtons`] inside its refreshed part; `page` as for
/// [`provide_page_action`].
pub fn provide_access_actions<K: PartialEq + 'static>(page: impl Fn() -> K + Copy + 'static) {
    provide_page_action::<ClientAccess, K>(page);
    provide_page_action::<DeleteClient, K>(page);
    provide_context(ActedOn(RwSignal::new(None)));
}

/// Revoke or Restore, and Delete (asks again).
#[component]
pub fn AccessButtons(client: ClientView) -> impl IntoView {
    let access = page_action::<ClientAccess>();
    let delete = page_action::<DeleteClient>();
    let (client_id, server_id) = (client.id.get(), client.server_id.get());
    let acted = use_context::<ActedOn>();
    // A new click forgets the last answer, so none moves to this row
    // while its own is on the way.
    let act = move || {
        access.value().set(None);
        delete.value().set(None);
        if let Some(ActedOn(on)) = acted {
            on.set(Some(client_id));
        }
    };
    // Nobody clicked: an answer came with the page itself (a form posted
    // without JavaScript and sent back with its error).
    let mine = move || acted.is_none_or(|ActedOn(on)| on.get().is_none_or(|c| c == client_id));
    let note = move || {
        access
            .value()
            .get()
            .and_then(Result::err)
            .or_else(|| delete.value().get().and_then(Result::err))
            .filter(|_| mine())
    };
    let done = move || access.value().get().and_then(Result::ok).filter(|_| mine());
    let (action, label) = if client.disabled_reason.is_some() { ("restore", "Restore") } else { ("revoke", "Revoke") };
    let (id, server) = (client_id.to_string(), server_id.to_string());
    let delete_id = id.clone();
    let name = client.display_name();
    view! {
        <div class="flex flex-wrap items-center gap-2">
            <PostForm action=access class="inline"
                args=move |_| { act(); ClientAccess { id: client_id, action: action.to_owned() } }>
                <input type="hidden" name="id" value=id />
                <input type="hidden" name="action" value=action />
                <button type="submit" data-testid=action
                    class="rounded border border-slate-300 px-2 py-0.5 text-xs hover:bg-slate-100 dark:border-slate-700 dark:hover:bg-slate-800">
                    {label}
                </button>
            </PostForm>
            <details class="inline-block text-xs">
                <summary class="cursor-pointer text-red-700 underline dark:text-red-300" data-testid="delete">"Delete…"</summary>
                <PostForm action=delete class="mt-1"
                    args=move |_| { act(); DeleteClient { id: client_id, server: server_id } }>
                    <input type="hidden" name="id" value=delete_id />
                    <input type="hidden" name="server" value=server />
                    <span>{format!("Delete {name} for good? Its usage history stays. ")}</span>
                    <button type="submit" data-testid="confirm-delete" class="rounded bg-red-700 px-2 py-0.5 text-white">"Delete"</button>
                </PostForm>
            </details>
        </div>
        {move || note().map(|e| view! { <ErrorNote error=e /> })}
        {move || done().map(|m| view! {
            <p class="text-xs text-slate-600 dark:text-slate-400" data-testid="access-note">{m}</p>
        })}
    }
}
