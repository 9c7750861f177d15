//! The servers list and the add-server form.

use super::components::{loaded, Ago, ErrorNote, HealthBadge, TableFrame, BUTTON, INPUT, TD, TH};
use super::post_form::{Fields, PostForm};
use super::{any_event, live_resource, Page};
use crate::api::fns::{list_servers, AddServer};
use leptos::prelude::*;

#[component]
pub fn ServersPage() -> impl IntoView {
    let servers = live_resource(|| (), |_| list_servers(), any_event);
    view! {
        <Page title="Servers">
            {loaded(servers, |list| match list {
                        list if list.is_empty() => view! {
                            <p class="text-slate-600 dark:text-slate-400" data-testid="no-servers">"No servers yet. Add the first one below."</p>
                        }.into_any(),
                        list => view! {
                            <TableFrame testid="servers">

                                    <thead><tr>
                                        <th class=TH>"Name"</th>
                                        <th class=TH>"Status"</th>
                                        <th class=format!("{TH} hidden md:table-cell")>"Host"</th>
                                        <th class=TH>"Online"</th>
                                        <th class=format!("{TH} hidden sm:table-cell")>"Last poll"</th>
                                    </tr></thead>
                                    <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                                        {list.into_iter().map(|s| view! {
                                            <tr data-testid="server-row" data-server-id=s.id.to_string()>
                                                <td class=TD>
                                                    <a class="font-medium underline-offset-2 hover:underline" href=format!("/servers/{}", s.id)>{s.name.clone()}</a>
                                                    <div class="text-xs text-slate-600 dark:text-slate-400">{format!("{} · {}", s.protocol.label(), s.interface.clone().or(s.openvpn_management_port.map(|p| format!("management :{p}"))).or(s.openvpn_status_path.clone()).unwrap_or_default())}</div>
                                                </td>
                                                <td class=TD>
                                                    <HealthBadge health=s.health />
                                                    {s.last_error.clone().map(|e| view! {
                                                        <div class="mt-1 max-w-md break-words text-xs text-red-700 dark:text-red-300" data-testid="server-error">{e}</div>
                                                    })}
                                                </td>
                                                <td class=format!("{TD} hidden md:table-cell font-mono text-xs")>{format!("{}@{}:{}", s.user, s.host, s.port)}</td>
                                                <td class=format!("{TD} tabular-nums")>{format!("{} / {}", s.online, s.clients)}</td>
                                                <td class=format!("{TD} hidden sm:table-cell")><Ago at=s.last_poll_at /></td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </TableFrame>
                        }.into_any(),
            })}
            <AddServerForm />
        </Page>
    }
}

/// Adding a server contacts it at once: the host key is pinned, the login
/// and the interface are checked, and the first poll is stored.
#[component]
fn AddServerForm() -> impl IntoView {
    let add = ServerAction::<AddServer>::new();
    let error = move || add.value().get().and_then(Result::err);
    let field = |label: &'static str, name: &'static str, placeholder: &'static str, required: bool| {
        view! {
            <label class="block text-sm font-medium">
                {label}
                <input name=name placeholder=placeholder required=required autocomplete="off" class=INPUT />
            </label>
        }
    };
    view! {
        <details class="mt-8 rounded-lg border border-slate-200 bg-white p-4 dark:border-slate-800 dark:bg-slate-900" open=true>
            <summary class="cursor-pointer text-lg font-semibold">"Add a server"</summary>
            <PostForm action=add class="mt-4 grid grid-cols-1 gap-4 md:grid-cols-2"
                args=move |f: Fields| { AddServer {
                    name: f.text("name"),
                    host: f.text("host"),
                    port: f.text("port"),
                    user: f.text("user"),
                    private_key_path: f.text("private_key_path"),
                    private_key: f.text("private_key"),
                    protocol: f.text("protocol"),
                    interface: f.text("interface"),
                    command_prefix: f.text("command_prefix"),
                    status_path: f.text("status_path"),
                    management_port: f.text("management_port"),
                    management_password: f.text("management_password"),
                    host_key_fingerprint: f.text("host_key_fingerprint"),
                    config_path: f.text("config_path"),
                    client_config_dir: f.text("client_config_dir"),
                    endpoint: f.text("endpoint"),
                    dns: f.text("dns"),
                } }>
                {field("Name", "name", "Frankfurt 1", true)}
                <label class="block text-sm font-medium">
                    "VPN"
                    <select name="protocol" class=INPUT>
                        <option value="wireguard" selected=true>"WireGuard"</option>
                        <option value="amneziawg">"AmneziaWG"</option>
                        <option value="openvpn">"OpenVPN"</option>
                    </select>
                </label>
                {field("Host", "host", "vpn1.example.org or 203.0.113.7", true)}
                {field("SSH port", "port", "22", false)}
                {field("SSH user", "user", "root", true)}
                {field("Command prefix (optional)", "command_prefix", "docker exec amnezia-awg", false)}
                {field("Private key file on the panel's machine", "private_key_path", "/etc/tollgate/id_ed25519", false)}
                {field("Expected host key fingerprint (optional)", "host_key_fingerprint", "SHA256:…", false)}
                <fieldset class="grid grid-cols-1 gap-4 rounded-md border border-slate-200 p-3 md:col-span-2 md:grid-cols-2 dark:border-slate-700">
                    <legend class="px-1 text-sm text-slate-600 dark:text-slate-400">"WireGuard and AmneziaWG"</legend>
                    {field("Interface", "interface", "wg0 or awg0", false)}
                    {field("Config file (revokes edit it)", "config_path", "/etc/wireguard/wg0.conf", false)}
                    {field("Endpoint for generated configs", "endpoint", "vpn1.example.org:51820", false)}
                    {field("DNS for generated configs", "dns", "1.1.1.1, 9.9.9.9", false)}
                </fieldset>
                <fieldset class="grid grid-cols-1 gap-4 rounded-md border border-slate-200 p-3 md:col-span-2 md:grid-cols-3 dark:border-slate-700">
                    <legend class="px-1 text-sm text-slate-600 dark:text-slate-400">"OpenVPN: a management port, a status file, or both"</legend>
                    {field("Management port", "management_port", "7505", false)}
                    <label class="block text-sm font-medium">
                        "Management password"
                        <input name="management_password" type="password" autocomplete="off" class=INPUT />
                    </label>
                    {field("Status file", "status_path", "/var/log/openvpn/status.log", false)}
                    {field("Client config dir (revokes write disable there)", "client_config_dir", "/etc/openvpn/ccd", false)}
                </fieldset>
                <label class="block text-sm font-medium md:col-span-2">
                    "…or paste the private key (stored by the panel, never shown again)"
                    <textarea name="private_key" rows="3" autocomplete="off" spellcheck="false"
                        class=format!("{INPUT} font-mono") placeholder="-----BEGIN OPENSSH PRIVATE KEY-----"></textarea>
                </label>
                <div class="md:col-span-2">
                    {move || error().map(|e| view! { <ErrorNote error=e /> })}
                </div>
                <div class="md:col-span-2">
                    <button type="submit" class=BUTTON disabled=move || add.pending().get()>
                        {move || if add.pending().get() { "Contacting the host…" } else { "Add server" }}
                    </button>
                </div>
            </PostForm>
        </details>
    }
}
