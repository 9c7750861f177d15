//! The browser UI: server-rendered pages that hydrate and then refresh
//! themselves when the server says something changed. Every page renders
//! completely on the server (`SsrMode::Async`), so it is usable with
//! JavaScript disabled.

mod access;
mod chart;
mod client_list;
mod client_page;
mod components;
mod dashboard;
mod events;
mod login;
mod post_form;
mod server_page;
mod servers;
#[cfg(feature = "hydrate")]
mod stream;
mod users;

use crate::api::fns::Logout;
use crate::api::live::LiveEvent;
use chrono::{DateTime, Utc};

use leptos::prelude::*;
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::{path, SsrMode};
use post_form::PostForm;
use std::time::Duration;

/// The document around [`App`], on the server only.
#[cfg(feature = "ssr")]
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link id="leptos" rel="stylesheet" href="/pkg/tollgate.css" />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <leptos_meta::MetaTags />
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

/// The live events of this tab (`GET /api/live?wire`): how many arrived so far
/// and the latest. Set only in the browser, after hydration.
#[derive(Clone, Copy)]
pub struct Live(pub ReadSignal<(u64, Option<LiveEvent>)>);

/// How long a page waits after an event before it refetches, so that a
/// burst of events (a fleet's polls) costs one refetch, not one each.
pub const COALESCE: Duration = Duration::from_millis(400);

/// The least time between two refetches of one page's data, however busy
/// the fleet.
pub const MIN_GAP: Duration = Duration::from_secs(1);

/// A resource keyed by `key` that, once the page has hydrated, refetches
/// when a live event that `concerns` it arrives, after a `resync`, and
/// when events may have been missed: [`COALESCE`] after the event, and at
/// least [`MIN_GAP`] after its last refetch.
/// On the server it loads once; an idle page costs the server nothing.
pub fn live_resource<K, T, Fut>(
    key: impl Fn() -> K + Send + Sync + 'static,
    fetch: impl Fn(K) -> Fut + Send + Sync + 'static,
    concerns: impl Fn(&LiveEvent) -> bool + Send + Sync + 'static,
) -> Resource<Result<T, crate::error::AppError>, crate::api::wire::Wire>
where
    K: PartialEq + Clone + Send + Sync + 'static,
    T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<T, crate::error::AppError>> + Send + 'static,
{
    let (tick, set_tick) = signal(0u64);
    let pending = StoredValue::new(false);
    let fetched = StoredValue::new(None::<DateTime<Utc>>);
    if let Some(Live(live)) = use_context::<Live>() {
        Effect::new(move |seen: Option<u64>| {
            let (count, last) = live.get();
            let missed = seen.is_some_and(|s| count > s + 1);
            let wanted = last.as_ref().is_some_and(|e| *e == LiveEvent::Resync || concerns(e));
            if seen.is_some_and(|s| count > s) && (missed || wanted) && !pending.get_value() {
                pending.set_value(true);
                let since = fetched.get_value().map(|l| (Utc::now() - l).to_std().unwrap_or_default());
                let wait = since.map_or(COALESCE, |since| COALESCE.max(MIN_GAP.saturating_sub(since)));
                set_timeout(
                    move || {
                        pending.set_value(false);
                        fetched.set_value(Some(Utc::now()));
                        set_tick.update(|t| *t += 1);
                    },
                    wait,
                );
            }
            count
        });
    }
    Resource::new_with_options(move || (key(), tick.get()), move |(k, _)| fetch(k), false)
}

/// Every event concerns it (fleet-wide pages).
pub fn any_event(_: &LiveEvent) -> bool {
    true
}

#[component]
pub fn App() -> impl IntoView {
    #[cfg(feature = "ssr")]
    leptos_meta::provide_meta_context();
    let (now, set_now) = signal(None::<DateTime<Utc>>);
    Effect::new(move |_| {
        set_now.set(Some(Utc::now()));
        if let Ok(handle) = set_interval_with_handle(move || set_now.set(Some(Utc::now())), Duration::from_secs(5)) {
            on_cleanup(move || handle.clear());
        }
    });
    provide_context(Now(now));
    let (live, set_live) = signal((0u64, None::<LiveEvent>));
    provide_context(Live(live));
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        stream::start(set_live);
        #[cfg(not(feature = "hydrate"))]
        let _ = set_live;
    });

    view! {
        <Router>
            <Routes fallback=|| view! { <Page title="Not found"><p>"No such page."</p></Page> }>
                <Route path=path!("/login") view=|| login::LoginPage().into_any() ssr=SsrMode::Async />
                <Route path=path!("/") view=|| dashboard::DashboardPage().into_any() ssr=SsrMode::Async />
                <Route path=path!("/servers") view=|| servers::ServersPage().into_any() ssr=SsrMode::Async />
                <Route path=path!("/servers/:id") view=|| server_page::ServerPage().into_any() ssr=SsrMode::Async />
                <Route path=path!("/clients/:id") view=|| client_page::ClientPage().into_any() ssr=SsrMode::Async />
                <Route path=path!("/events") view=|| events::EventsPage().into_any() ssr=SsrMode::Async />
                <Route path=path!("/users") view=|| users::UsersPage().into_any() ssr=SsrMode::Async />
            </Routes>
        </Router>
    }
}

/// The document's title, "`text` · Tollgate". The server writes it into
/// the page's head (leptos_meta); the browser sets it on each client-side
/// navigation, without leptos_meta's code in the WebAssembly.
#[component]
pub fn PageTitle(#[prop(into)] text: String) -> impl IntoView {
    let full = format!("{text} · Tollgate");
    // Both sides render nothing here, so hydration finds what it expects:
    // leptos_meta takes the title when its component is made, and its
    // view (which, unlike `()`, leaves no marker) is dropped.
    #[cfg(feature = "ssr")]
    drop(leptos_meta::Title(leptos_meta::TitleProps::builder().text(full).build()));
    #[cfg(not(feature = "ssr"))]
    Effect::new(move |_| document().set_title(&full));
}

/// The frame of every logged-in page: navigation, logout, and the content.
#[component]
pub fn Page(#[prop(into)] title: String, children: Children) -> impl IntoView {
    let logout = ServerAction::<Logout>::new();
    view! {
        <PageTitle text=title.clone() />
        <header class="border-b border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
            <nav class="mx-auto flex max-w-6xl flex-wrap items-center gap-x-6 gap-y-2 px-4 py-3">
                <A href="/" attr:class="text-lg font-semibold tracking-tight">"Tollgate"</A>
                <A href="/" attr:class="text-sm text-slate-600 hover:text-slate-900 dark:text-slate-300 dark:hover:text-white">"Dashboard"</A>
                <A href="/servers" attr:class="text-sm text-slate-600 hover:text-slate-900 dark:text-slate-300 dark:hover:text-white">"Servers"</A>
                <A href="/users" attr:class="text-sm text-slate-600 hover:text-slate-900 dark:text-slate-300 dark:hover:text-white">"Users"</A>
                <A href="/events" attr:class="text-sm text-slate-600 hover:text-slate-900 dark:text-slate-300 dark:hover:text-white">"Events"</A>
                <PostForm action=logout class="ml-auto"
                    args=move |_| { Logout {} }>
                    <button type="submit" class="text-sm text-slate-600 hover:text-slate-900 dark:text-slate-300 dark:hover:text-white">
                        "Log out"
                    </button>
                </PostForm>
            </nav>
        </header>
        <main class="mx-auto max-w-6xl px-4 py-6">
            <h1 class="mb-4 text-2xl font-semibold tracking-tight">{title}</h1>
            {children()}
        </main>
    }
}
