//! A server's clients, one page at a time: search, status filter, sortable
//! columns and pages, all in the URL's query, so every state is a link and
//! works without JavaScript (a GET form and plain links).

use super::access::{AccessBadge, AccessButtons};
use super::components::{Ago, ConnectionBadge, TableFrame, BUTTON, TD, TH};
use crate::api::{ClientListing, ClientView};
use crate::domain::listing::{ClientQuery, ClientSort, StatusFilter, PER_PAGE};
use crate::domain::ByteCount;
use crate::domain::Protocol;
use leptos::prelude::*;
use leptos_router::components::Form;

const FIELD: &str = "mt-1 rounded-md border border-slate-300 bg-white px-3 py-2 text-sm dark:border-slate-700 \
    dark:bg-slate-900";

#[component]
pub fn ClientList(server: i64, listing: ClientListing, query: ClientQuery) -> impl IntoView {
    let base = format!("/servers/{server}");
    let link = {
        let base = base.clone();
        move |q: &ClientQuery| match q.to_query() {
            s if s.is_empty() => base.clone(),
            s => format!("{base}?{s}"),
        }
    };
    let filtered = query.search.is_some() || query.status != StatusFilter::All;
    let summary = if filtered {
        format!("{} of {} online · {} match", listing.online, listing.total, listing.matched)
    } else {
        format!("{} of {} online", listing.online, listing.total)
    };
    let search = query.search.clone().unwrap_or_default();
    let status = query.status;
    let kept_sort = (query.sort != ClientSort::Name || query.descending)
        .then(|| (query.sort.as_str(), if query.descending { "desc" } else { "asc" }));
    let kept_size = (query.per_page != PER_PAGE).then(|| query.per_page.to_string());
    let clear = base.clone();
    view! {
        <Form method="GET" action=base.clone() attr:class="mb-3 flex flex-wrap items-end gap-3" attr:role="search">
            <label class="block text-sm font-medium">"Search"
                <input type="search" name="q" value=search class=format!("{FIELD} block w-64 max-w-full")
                    placeholder="name, key, IP, email" data-testid="client-search" />
            </label>
            <label class="block text-sm font-medium">"Status"
                <select name="status" class=format!("{FIELD} block") data-testid="client-status-filter">
                    {StatusFilter::ALL.into_iter().map(|s| view! {
                        <option value=s.as_str() selected=s == status>{s.label()}</option>
                    }).collect_view()}
                </select>
            </label>
            {kept_sort.map(|(sort, dir)| view! {
                <input type="hidden" name="sort" value=sort />
                <input type="hidden" name="dir" value=dir />
            })}
            {kept_size.map(|n| view! { <input type="hidden" name="per_page" value=n /> })}
            <button type="submit" class=BUTTON data-testid="client-filter">"Show"</button>
            {filtered.then(move || view! { <a href=clear class="py-2 text-sm underline">"Clear"</a> })}
        </Form>
        <p class="mb-2 text-sm text-slate-600 dark:text-slate-400" data-testid="online-count" aria-live="polite">{summary}</p>
        {if listing.clients.is_empty() {
            let text = if filtered { "No client matches." } else { "No clients yet." };
            view! { <p class="text-slate-600 dark:text-slate-400" data-testid="no-clients">{text}</p> }.into_any()
        } else {
            let header = {
                let (query, link) = (query.clone(), link.clone());
                move |label: &'static str, sort: ClientSort, class: &'static str| {
                    let current = query.sort == sort;
                    let aria = match (current, query.descending) {
                        (false, _) => "none",
                        (true, false) => "ascending",
                        (true, true) => "descending",
                    };
                    let mark = match (current, query.descending) {
                        (false, _) => "",
                        (true, false) => " ▲",
                        (true, true) => " ▼",
                    };
                    view! {
                        <th class=format!("{TH} {class}") aria-sort=aria>
                            <a href=link(&query.sorted_by(sort)) class="hover:underline" data-sort=sort.as_str()>{label}{mark}</a>
                        </th>
                    }
                }
            };
            view! {
                <TableFrame testid="clients">
                    <thead><tr>
                        {header("Client", ClientSort::Name, "")}
                        {header("IP", ClientSort::Ip, "")}
                        <th class=format!("{TH} hidden lg:table-cell")>"Endpoint"</th>
                        {header("Month ↑", ClientSort::MonthUp, "text-right")}
                        {header("Month ↓", ClientSort::MonthDown, "text-right")}
                        {header("Total ↑", ClientSort::TotalUp, "text-right")}
                        {header("Total ↓", ClientSort::TotalDown, "text-right")}
                        {header("Last seen", ClientSort::LastSeen, "hidden sm:table-cell")}
                        {header("Status", ClientSort::Status, "")}
                        <th class=TH>"Access"</th>
                    </tr></thead>
                    <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                        {listing.clients.into_iter().map(client_row).collect_view()}
                    </tbody>
                </TableFrame>
            }
            .into_any()
        }}
        {(listing.pages > 1).then(|| pager(&query, listing.page, listing.pages, link))}
    }
}

fn pager(query: &ClientQuery, page: u32, pages: u32, link: impl Fn(&ClientQuery) -> String) -> impl IntoView {
    let step = |label: &'static str, to: u32, rel: &'static str, enabled: bool| {
        if enabled {
            view! { <a href=link(&query.on_page(to)) rel=rel class="rounded-md border border-slate-300 px-3 py-1 dark:border-slate-700" data-testid=format!("page-{rel}")>{label}</a> }.into_any()
        } else {
            view! { <span class="px-3 py-1 text-slate-600 dark:text-slate-400" aria-disabled="true">{label}</span> }
                .into_any()
        }
    };
    view! {
        <nav class="mt-3 flex flex-wrap items-center gap-2 text-sm" aria-label="Pages of clients">
            {step("« First", 1, "first", page > 1)}
            {step("‹ Previous", page.saturating_sub(1), "prev", page > 1)}
            <span data-testid="page-of" class="px-2 tabular-nums">{format!("Page {page} of {pages}")}</span>
            {step("Next ›", page + 1, "next", page < pages)}
            {step("Last »", pages, "last", page < pages)}
        </nav>
    }
}

fn bytes_cell(testid: &'static str, bytes: u64) -> impl IntoView {
    view! {
        <td class=format!("{TD} text-right tabular-nums") data-testid=testid data-bytes=bytes.to_string()>
            {ByteCount::new(bytes).human()}
        </td>
    }
}

fn access_cell(c: ClientView) -> AnyView {
    view! {
        <td class=format!("{TD} whitespace-nowrap")>
            <AccessBadge client=c.clone() />
            <div class="mt-1"><AccessButtons client=c /></div>
        </td>
    }
    .into_any()
}

fn client_row(c: ClientView) -> AnyView {
    let last_seen = if c.protocol == Protocol::Openvpn { c.last_seen } else { c.last_handshake };
    view! {
        <tr data-testid="client-row" data-identity=c.identity.clone() data-public-key=c.public_key.map(|k| k.to_string())>
            <td class=TD title=c.identity.clone()>
                <a class="font-medium underline-offset-2 hover:underline" href=format!("/clients/{}", c.id)>{c.display_name()}</a>
                {(!c.on_host && c.protocol != Protocol::Openvpn).then(|| view! {
                    <div class="text-xs text-amber-700 dark:text-amber-300">"missing from the host"</div>
                })}
            </td>
            <td class=format!("{TD} font-mono text-xs")>{c.client_ip.clone().unwrap_or_default()}</td>
            <td class=format!("{TD} hidden lg:table-cell font-mono text-xs")>{c.endpoint.clone().unwrap_or_default()}</td>
            {bytes_cell("month-upload", c.month.bytes_sent)}
            {bytes_cell("month-download", c.month.bytes_received)}
            {bytes_cell("upload", c.bytes_sent)}
            {bytes_cell("download", c.bytes_received)}
            <td class=format!("{TD} hidden sm:table-cell")><Ago at=last_seen never="never" /></td>
            <td class=TD><ConnectionBadge status=c.connection /></td>
            {access_cell(c.clone())}
        </tr>
    }
    .into_any()
}
