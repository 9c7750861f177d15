//! One server: its clients (refreshed on its live events), its open sessions and who
//! just disconnected.

use super::access::provide_access_actions;
use super::client_list::ClientList;
use super::components::{Ago, ErrorNote, HealthBadge, SessionTable, BUTTON, INPUT};
use super::post_form::{page_action, provide_page_action, Fields, PostForm};
use super::{live_resource, Page};
use crate::api::fns::{server_detail, DisconnectSession, GeneratePeer, SyncServer, SESSIONS_SHOWN};
use crate::api::ServerView;
use crate::domain::ByteCount;
use crate::domain::Protocol;
use crate::error::AppError;
use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub fn ServerPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = move || params.read().get("id").and_then(|v| crate::domain::ServerId::parse(&v));
    provide_page_action::<SyncServer, _>(id);
    provide_page_action::<GeneratePeer, _>(id);
    provide_page_action::<DisconnectSession, _>(id);
    provide_access_actions(id);
    let listing = move || {
        let q = query.read();
        ["q", "status", "sort", "dir", "page", "per_page"].map(|k| q.get(k).unwrap_or_default())
    };
    let detail = live_resource(
        move || (id(), listing()),
        |(id, [q, status, sort, dir, page, per_page])| async move {
            match id {
                Some(id) => server_detail(id.get(), q, status, sort, dir, page, per_page).await,
                None => Err(AppError::not_found("Server")),
            }
        },
        move |e| e.server().is_none_or(|s| Some(s) == id()),
    );
    view! {
        <Transition fallback=|| view! { <Page title="Server"><p>"Loading…"</p></Page> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Err(e) => view! { <Page title="Server"><ErrorNote error=e /></Page> }.into_any(),
                    Ok(d) => {
                        let openvpn = d.server.protocol == Protocol::Openvpn;
                        view! {
                            <Page title=d.server.name.clone()>
                                {(!openvpn).then(|| view! { <GeneratePeerForm server=d.server.id.get() /> })}
                                <SyncButton server=d.server.id.get() />
                                <ServerFacts server=d.server.clone() />
                                <ClientList server=d.server.id.get() listing=d.clients query=d.query />
                                <h2 class="mb-2 mt-8 text-lg font-semibold">"Open sessions"</h2>
                                {(d.open_sessions.len() > SESSIONS_SHOWN as usize).then(|| view! {
                                    <p class="mb-2 text-sm text-slate-600 dark:text-slate-400">{format!("The {SESSIONS_SHOWN} newest.")}</p>
                                })}
                                <SessionTable sessions=d.open_sessions.into_iter().take(SESSIONS_SHOWN as usize).collect() open=true can_disconnect=openvpn testid="open-sessions" />
                                <h2 class="mb-2 mt-8 text-lg font-semibold">"Recently disconnected"</h2>
                                <SessionTable sessions=d.recently_disconnected open=false can_disconnect=false testid="recent-sessions" />
                            </Page>
                        }
                        .into_any()
                    }
                }
            })}
        </Transition>
    }
}

#[component]
fn ServerFacts(server: ServerView) -> impl IntoView {
    let source = match server.protocol {
        Protocol::Openvpn => {
            let mut parts = Vec::new();
            if let Some(port) = server.openvpn_management_port {
                parts.push(format!("management 127.0.0.1:{port}"));
            }
            if let Some(path) = &server.openvpn_status_path {
                parts.push(path.clone());
            }
            parts.join(" · ")
        }
        _ => server.interface.clone().unwrap_or_default(),
    };
    let prefix = (!server.command_prefix.is_empty()).then(|| format!(" via {}", server.command_prefix.join(" ")));
    let month = format!(
        "↑ {} · ↓ {}",
        ByteCount::new(server.month.bytes_sent).human(),
        ByteCount::new(server.month.bytes_received).human()
    );
    let total = format!(
        "↑ {} · ↓ {}",
        ByteCount::new(server.bytes_sent).human(),
        ByteCount::new(server.bytes_received).human()
    );
    view! {
        <dl class="mb-6 grid grid-cols-1 gap-x-6 gap-y-2 text-sm sm:grid-cols-2 lg:grid-cols-4">
            <div><dt class="text-slate-600 dark:text-slate-400">"Status"</dt><dd><HealthBadge health=server.health /></dd></div>
            <div><dt class="text-slate-600 dark:text-slate-400">"Host"</dt><dd class="font-mono text-xs">{format!("{}@{}:{}", server.user, server.host, server.port)}</dd></div>
            <div><dt class="text-slate-600 dark:text-slate-400">{server.protocol.label()}</dt><dd class="font-mono text-xs">{source}{prefix}</dd></div>
            <div><dt class="text-slate-600 dark:text-slate-400">"Last poll"</dt><dd><Ago at=server.last_poll_at /></dd></div>
            <div><dt class="text-slate-600 dark:text-slate-400">"This month"</dt><dd class="tabular-nums" data-testid="server-month">{month}</dd></div>
            <div><dt class="text-slate-600 dark:text-slate-400">"In total"</dt><dd class="tabular-nums" data-testid="server-total">{total}</dd></div>
            <div class="sm:col-span-2">
                <dt class="text-slate-600 dark:text-slate-400">"Pinned host key"</dt>
                <dd class="break-all font-mono text-xs" data-testid="host-key">{server.host_key_fingerprint.unwrap_or_else(|| "not pinned yet".into())}</dd>
            </div>
            {server.last_error.map(|e| view! {
                <div class="sm:col-span-2 lg:col-span-4">
                    <dt class="text-slate-600 dark:text-slate-400">"Last error"</dt>
                    <dd class="text-red-700 dark:text-red-300" data-testid="server-error">{e}</dd>
                </div>
            })}
        </dl>
    }
}

/// Polls the server now, and says what that found: "Syncing…" while it
/// runs (a poll can take seconds on a slow host).
#[component]
fn SyncButton(server: i64) -> impl IntoView {
    let sync = page_action::<SyncServer>();
    let pending = sync.pending();
    view! {
        <PostForm action=sync class="mb-4 flex flex-wrap items-center gap-3"
            args=move |_| { SyncServer { id: server } }>
            <input type="hidden" name="id" value=server.to_string() />
            <button type="submit" class=BUTTON disabled=move || pending.get() data-testid="sync">
                {move || if pending.get() { "Syncing…" } else { "Sync stats" }}
            </button>
            <span role="status" class="text-sm" data-testid="sync-result">
                {move || match sync.value().get() {
                    Some(Ok(m)) => view! { <span>{m}</span> }.into_any(),
                    Some(Err(e)) => view! { <span class="text-red-700 dark:text-red-300">{e.message}</span> }.into_any(),
                    None => ().into_any(),
                }}
            </span>
        </PostForm>
    }
}

/// Generates a peer on this WireGuard/AmneziaWG server, then opens its page
/// with the config and QR code.
#[component]
fn GeneratePeerForm(server: i64) -> impl IntoView {
    let make = page_action::<GeneratePeer>();
    view! {
        <details class="mb-6 rounded-lg border border-slate-200 bg-white p-4 dark:border-slate-800 dark:bg-slate-900">
            <summary class="cursor-pointer font-semibold" data-testid="generate">"Generate a peer"</summary>
            <PostForm action=make class="mt-4 grid grid-cols-1 gap-4 md:grid-cols-3"
                args=move |f: Fields| { GeneratePeer { server, name: f.text("name"), email: f.text("email") } }>
                <input type="hidden" name="server" value=server.to_string() />
                <label class="block text-sm font-medium">"Name"<input name="name" required=true class=INPUT autocomplete="off" /></label>
                <label class="block text-sm font-medium">"Email (optional)"<input name="email" type="email" class=INPUT autocomplete="off" /></label>
                <div class="self-end">
                    <button type="submit" class=BUTTON disabled=move || make.pending().get()>"Generate"</button>
                </div>
                <div class="md:col-span-3">{move || make.value().get().and_then(Result::err).map(|e| view! { <ErrorNote error=e /> })}</div>
            </PostForm>
        </details>
    }
}
