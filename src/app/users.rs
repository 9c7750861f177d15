//! People and their devices: each user's clients across servers, and the
//! devices connected now against `max_connections`.

use super::components::{loaded, ErrorNote, TableFrame, BUTTON, INPUT, TD, TH};
use super::{any_event, live_resource, Page};
use crate::api::fns::{list_users, CreateUser};
use leptos::prelude::*;

#[component]
pub fn UsersPage() -> impl IntoView {
    let users = live_resource(|| (), |_| list_users(), any_event);
    let create = ServerAction::<CreateUser>::new();
    view! {
        <Page title="Users">
            {loaded(users, |list| match list {
                list if list.is_empty() => view! { <p class="text-slate-600 dark:text-slate-400">"No users yet."</p> }.into_any(),
                list => view! {
                    <TableFrame testid="users">
                        <thead><tr>
                            <th class=TH>"Name"</th>
                            <th class=TH>"Email"</th>
                            <th class=TH>"Devices now"</th>
                            <th class=TH>"Clients"</th>
                        </tr></thead>
                        <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                            {list.into_iter().map(|u| {
                                let limit = if u.max_connections == 0 { "no limit".to_owned() } else { u.max_connections.to_string() };
                                let over = u.max_connections > 0 && u.active > u.max_connections;
                                view! {
                                    <tr data-testid="user-row" data-user-id=u.id.to_string()>
                                        <td class=format!("{TD} font-medium")>{u.name.clone()}</td>
                                        <td class=TD>{u.email.clone().unwrap_or_default()}</td>
                                        <td class=format!("{TD} tabular-nums") data-testid="devices">
                                            <span class:text-red-700=over>{format!("{} of {limit}", u.active)}</span>
                                        </td>
                                        <td class=TD>
                                            {u.clients.iter().map(|c| view! {
                                                <a class="mr-2 underline-offset-2 hover:underline" href=format!("/clients/{c}")>{format!("#{c}")}</a>
                                            }).collect_view()}
                                        </td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </TableFrame>
                }.into_any(),
            })}
            <details class="mt-8 rounded-lg border border-slate-200 bg-white p-4 dark:border-slate-800 dark:bg-slate-900">
                <summary class="cursor-pointer font-semibold">"Add a user"</summary>
                <ActionForm action=create attr:class="mt-4 grid grid-cols-1 gap-4 md:grid-cols-3">
                    <label class="block text-sm font-medium">"Name"<input name="name" required=true class=INPUT autocomplete="off" /></label>
                    <label class="block text-sm font-medium">"Email (optional)"<input name="email" type="email" class=INPUT autocomplete="off" /></label>
                    <label class="block text-sm font-medium">"Devices at once (0: no limit)"<input name="max_connections" class=INPUT placeholder="0" /></label>
                    <div class="md:col-span-3">
                        {move || create.value().get().and_then(Result::err).map(|e| view! { <ErrorNote error=e /> })}
                        <button type="submit" class=BUTTON>"Add user"</button>
                    </div>
                </ActionForm>
            </details>
        </Page>
    }
}
