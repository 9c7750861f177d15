//! One server and its clients; the table refreshes itself every 5 s.

use super::components::{Ago, ConnectionBadge, ErrorNote, HealthBadge, TableFrame, TD, TH};
use super::{live_resource, Page};
use crate::api::fns::server_detail;
use crate::api::{ClientView, ServerView};
use crate::domain::ByteCount;
use crate::error::AppError;
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

#[component]
pub fn ServerPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").and_then(|v| crate::domain::ServerId::parse(&v));
    let detail = live_resource(id, |id| async move {
        match id {
            Some(id) => server_detail(id.get()).await,
            None => Err(AppError::not_found("Server")),
        }
    });
    view! {
        <Transition fallback=|| view! { <Page title="Server"><p>"Loading…"</p></Page> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Err(e) => view! { <Page title="Server"><ErrorNote error=e /></Page> }.into_any(),
                    Ok((server, clients)) => view! {
                        <Page title=server.name.clone()>
                            <ServerFacts server=server />
                            <ClientTable clients=clients />
                        </Page>
                    }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn ServerFacts(server: ServerView) -> impl IntoView {
    let prefix = (!server.command_prefix.is_empty()).then(|| server.command_prefix.join(" "));
    view! {
        <dl class="mb-6 grid grid-cols-1 gap-x-6 gap-y-2 text-sm sm:grid-cols-2 lg:grid-cols-4">
            <div><dt class="text-slate-500">"Status"</dt><dd><HealthBadge health=server.health /></dd></div>
            <div><dt class="text-slate-500">"Host"</dt><dd class="font-mono text-xs">{format!("{}@{}:{}", server.user, server.host, server.port)}</dd></div>
            <div><dt class="text-slate-500">"Interface"</dt><dd class="font-mono text-xs">{server.interface}{prefix.map(|p| format!(" via {p}"))}</dd></div>
            <div><dt class="text-slate-500">"Last poll"</dt><dd><Ago at=server.last_poll_at /></dd></div>
            <div class="sm:col-span-2 lg:col-span-4">
                <dt class="text-slate-500">"Pinned host key"</dt>
                <dd class="break-all font-mono text-xs" data-testid="host-key">{server.host_key_fingerprint.unwrap_or_else(|| "not pinned yet".into())}</dd>
            </div>
            {server.last_error.map(|e| view! {
                <div class="sm:col-span-2 lg:col-span-4">
                    <dt class="text-slate-500">"Last error"</dt>
                    <dd class="text-red-700 dark:text-red-300" data-testid="server-error">{e}</dd>
                </div>
            })}
        </dl>
    }
}

#[component]
fn ClientTable(clients: Vec<ClientView>) -> impl IntoView {
    if clients.is_empty() {
        return view! { <p class="text-slate-500">"This interface has no peers."</p> }.into_any();
    }
    let online = clients.iter().filter(|c| c.stats.is_online).count();
    let total = clients.len();
    view! {
        <p class="mb-2 text-sm text-slate-500" data-testid="online-count">{format!("{online} of {total} online")}</p>
        <TableFrame testid="clients">

                <thead><tr>
                    <th class=TH>"Client"</th>
                    <th class=TH>"IP"</th>
                    <th class=format!("{TH} hidden lg:table-cell")>"Endpoint"</th>
                    <th class=format!("{TH} text-right")>"Upload"</th>
                    <th class=format!("{TH} text-right")>"Download"</th>
                    <th class=format!("{TH} hidden sm:table-cell")>"Last seen"</th>
                    <th class=TH>"Status"</th>
                </tr></thead>
                <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                    {clients.into_iter().map(|c| {
                        let key = c.public_key.to_string();
                        view! {
                            <tr data-testid="client-row" data-public-key=key.clone()>
                                <td class=TD title=key.clone()>
                                    <span class="font-medium">{c.display_name()}</span>
                                </td>
                                <td class=format!("{TD} font-mono text-xs")>{c.client_ip.clone().unwrap_or_default()}</td>
                                <td class=format!("{TD} hidden lg:table-cell font-mono text-xs")>{c.endpoint.clone().unwrap_or_default()}</td>
                                <td class=format!("{TD} text-right tabular-nums") data-testid="upload" data-bytes=c.bytes_sent.to_string()>
                                    {ByteCount::new(c.bytes_sent).human()}
                                </td>
                                <td class=format!("{TD} text-right tabular-nums") data-testid="download" data-bytes=c.bytes_received.to_string()>
                                    {ByteCount::new(c.bytes_received).human()}
                                </td>
                                <td class=format!("{TD} hidden sm:table-cell")><Ago at=c.last_handshake never="never" /></td>
                                <td class=TD><ConnectionBadge status=c.connection /></td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </TableFrame>
    }.into_any()
}
