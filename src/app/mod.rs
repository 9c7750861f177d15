//! The browser UI: server-rendered pages that hydrate and then refresh
//! themselves. Every page renders completely on the server (`SsrMode::Async`),
//! so it is usable with JavaScript disabled.

mod access;
mod client_page;
mod components;
mod dashboard;
mod events;
mod login;
mod server_page;
mod servers;
mod users;

use crate::api::fns::Logout;
use chrono::{DateTime, Utc};
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Link, Meta, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::{path, SsrMode};
use std::time::Duration;

pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body class="min-h-screen bg-slate-50 text-slate-900 antialiased dark:bg-slate-950 dark:text-slate-100">
                <App />
            </body>
        </html>
    }
}

/// The current time in the browser, `None` until hydration: pages print UTC
/// instants on the server and switch to "3 min ago" once this is set, so the
/// first client render matches the server's HTML.
#[derive(Clone, Copy)]
pub struct Now(pub ReadSignal<Option<DateTime<Utc>>>);

/// How often pages refetch their data in the browser.
pub const REFRESH: Duration = Duration::from_secs(5);

/// A resource keyed by `key` that also refetches every [`REFRESH`] once the
/// page has hydrated (on the server it loads once).
pub fn live_resource<K, T, Fut>(
    key: impl Fn() -> K + Send + Sync + 'static,
    fetch: impl Fn(K) -> Fut + Send + Sync + 'static,
) -> Resource<Result<T, crate::error::AppError>>
where
    K: PartialEq + Clone + Send + Sync + 'static,
    T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<T, crate::error::AppError>> + Send + 'static,
{
    let tick = use_ticker(REFRESH);
    Resource::new(move || (key(), tick.get()), move |(k, _)| fetch(k))
}

/// A counter that goes up every `period` in the browser (never on the server).
pub fn use_ticker(period: Duration) -> ReadSignal<u64> {
    let (tick, set_tick) = signal(0u64);
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(move || set_tick.update(|t| *t += 1), period) {
            on_cleanup(move || handle.clear());
        }
    });
    tick
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let (now, set_now) = signal(None::<DateTime<Utc>>);
    Effect::new(move |_| {
        set_now.set(Some(Utc::now()));
        if let Ok(handle) = set_interval_with_handle(move || set_now.set(Some(Utc::now())), Duration::from_secs(5)) {
            on_cleanup(move || handle.clear());
        }
    });
    provide_context(Now(now));

    view! {
        <Stylesheet id="leptos" href="/pkg/tollgate.css" />
        <Link rel="icon" type_="image/svg+xml" href="/favicon.svg" />
        <Meta name="color-scheme" content="light dark" />
        <Title formatter=|text: String| if text.is_empty() { "Tollgate".to_owned() } else { format!("{text} · Tollgate") } />
        <Router>
            <Routes fallback=|| view! { <Page title="Not found"><p>"No such page."</p></Page> }>
                <Route path=path!("/login") view=login::LoginPage ssr=SsrMode::Async />
                <Route path=path!("/") view=dashboard::DashboardPage ssr=SsrMode::Async />
                <Route path=path!("/servers") view=servers::ServersPage ssr=SsrMode::Async />
                <Route path=path!("/servers/:id") view=server_page::ServerPage ssr=SsrMode::Async />
                <Route path=path!("/clients/:id") view=client_page::ClientPage ssr=SsrMode::Async />
                <Route path=path!("/events") view=events::EventsPage ssr=SsrMode::Async />
                <Route path=path!("/users") view=users::UsersPage ssr=SsrMode::Async />
            </Routes>
        </Router>
    }
}

/// The frame of every logged-in page: navigation, logout, and the content.
#[component]
pub fn Page(#[prop(into)] title: String, children: Children) -> impl IntoView {
    let logout = ServerAction::<Logout>::new();
    view! {
        <Title text=title.clone() />
        <header class="border-b border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
            <nav class="mx-auto flex max-w-6xl flex-wrap items-center gap-x-6 gap-y-2 px-4 py-3">
                <A href="/" attr:class="text-lg font-semibold tracking-tight">"Tollgate"</A>
                <A href="/" attr:class="text-sm text-slate-600 hover:text-slate-900 dark:text-slate-300 dark:hover:text-white">"Dashboard"</A>
                <A href="/servers" attr:class="text-sm text-slate-600 hover:text-slate-900 dark:text-slate-300 dark:hover:text-white">"Servers"</A>
                <A href="/users" attr:class="text-sm text-slate-600 hover:text-slate-900 dark:text-slate-300 dark:hover:text-white">"Users"</A>
                <A href="/events" attr:class="text-sm text-slate-600 hover:text-slate-900 dark:text-slate-300 dark:hover:text-white">"Events"</A>
                <ActionForm action=logout attr:class="ml-auto">
                    <button type="submit" class="text-sm text-slate-600 hover:text-slate-900 dark:text-slate-300 dark:hover:text-white">
                        "Log out"
                    </button>
                </ActionForm>
            </nav>
        </header>
        <main class="mx-auto max-w-6xl px-4 py-6">
            <h1 class="mb-4 text-2xl font-semibold tracking-tight">{title}</h1>
            {children()}
        </main>
    }
}
