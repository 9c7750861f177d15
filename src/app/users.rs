//! People and their devices, online first: an online/offline badge, the
//! devices connected now against `max_connections` (red when over), when
//! one was last seen, and each user's clients across servers.

use super::components::{loaded, Ago, ErrorNote, TableFrame, BUTTON, INPUT, TD, TH};
use super::post_form::{Fields, PostForm};
use super::{any_event, live_resource, Page};
use crate::api::fns::{list_users, CreateUser};
use crate::api::UserView;
use leptos::prelude::*;

#[component]
pub fn UsersPage() -> impl IntoView {
    let users = live_resource(|| (), |_| list_users(), any_event);
    let create = ServerAction::<CreateUser>::new();
    view! {
        <Page title="Users">
            {loaded(users, |list| match list {
                list if list.is_empty() => view! { <p class="text-slate-600 dark:text-slate-400">"No users yet."</p> }.into_any(),
                mut list => {
                    // Online first (most devices first), then by name.
                    list.sort_by(|a, b| b.active.cmp(&a.active).then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase())));
                    let online = list.iter().filter(|u| u.active > 0).count();
                    view! {
                        <p class="mb-2 text-sm text-slate-600 dark:text-slate-400" data-testid="users-online">{format!("{online} of {} online", list.len())}</p>
                        <TableFrame testid="users">
                            <thead><tr>
                                <th class=TH>"Name"</th>
                                <th class=TH>"Status"</th>
                                <th class=TH>"Devices now"</th>
                                <th class=format!("{TH} hidden sm:table-cell")>"Last seen"</th>
                                <th class=format!("{TH} hidden md:table-cell")>"Email"</th>
                                <th class=TH>"Clients"</th>
                            </tr></thead>
                            <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                                {list.into_iter().map(user_row).collect_view()}
                            </tbody>
                        </TableFrame>
                    }.into_any()
                }
            })}
            <details class="mt-8 rounded-lg border border-slate-200 bg-white p-4 dark:border-slate-800 dark:bg-slate-900">
                <summary class="cursor-pointer font-semibold">"Add a user"</summary>
                <PostForm action=create class="mt-4 grid grid-cols-1 gap-4 md:grid-cols-3"
                    args=move |f: Fields| { CreateUser {
                        name: f.text("name"), email: f.text("email"), max_connections: f.text("max_connections"),
                    } }>
                    <label class="block text-sm font-medium">"Name"<input name="name" required=true class=INPUT autocomplete="off" /></label>
                    <label class="block text-sm font-medium">"Email (optional)"<input name="email" type="email" class=INPUT autocomplete="off" /></label>
                    <label class="block text-sm font-medium">"Devices at once (0: no limit)"<input name="max_connections" class=INPUT placeholder="0" /></label>
                    <div class="md:col-span-3">
                        {move || create.value().get().and_then(Result::err).map(|e| view! { <ErrorNote error=e /> })}
                        <button type="submit" class=BUTTON>"Add user"</button>
                    </div>
                </PostForm>
            </details>
        </Page>
    }
}

fn user_row(u: UserView) -> AnyView {
    let limit = if u.max_connections == 0 { "no limit".to_owned() } else { u.max_connections.to_string() };
    let over = u.max_connections > 0 && u.active > u.max_connections;
    let online = u.active > 0;
    let (badge, label) = if online {
        ("bg-emerald-100 text-emerald-800 dark:bg-emerald-900/50 dark:text-emerald-300", "Online")
    } else {
        ("bg-slate-200 text-slate-700 dark:bg-slate-800 dark:text-slate-300", "Offline")
    };
    let devices = if over {
        "bg-red-100 text-red-800 dark:bg-red-900/50 dark:text-red-300"
    } else {
        "bg-slate-100 text-slate-800 dark:bg-slate-800 dark:text-slate-200"
    };
    view! {
        <tr data-testid="user-row" data-user-id=u.id.to_string() data-online=online.to_string()>
            <td class=format!("{TD} font-medium")>{u.name.clone()}</td>
            <td class=TD>
                <span data-testid="user-status" class=format!("inline-flex rounded-full px-2 py-0.5 text-xs font-medium {badge}")>{label}</span>
            </td>
            <td class=format!("{TD} tabular-nums") data-testid="devices">
                <span class=format!("inline-flex rounded-full px-2 py-0.5 text-xs font-medium {devices}")
                    title=if over { "over the device limit" } else { "devices connected now, of the limit" }>
                    {format!("{} of {limit}", u.active)}
                </span>
            </td>
            <td class=format!("{TD} hidden sm:table-cell")>
                {if online {
                    view! { <span>"now"</span> }.into_any()
                } else {
                    view! { <Ago at=u.last_seen never="never" /> }.into_any()
                }}
            </td>
            <td class=format!("{TD} hidden md:table-cell")>{u.email.clone().unwrap_or_default()}</td>
            <td class=TD>
                {u.clients.iter().map(|c| view! {
                    <a class="mr-2 underline-offset-2 hover:underline" href=format!("/clients/{c}")>{format!("#{c}")}</a>
                }).collect_view()}
            </td>
        </tr>
    }
    .into_any()
}
