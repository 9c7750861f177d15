//! This tab's live stream (`GET /api/live?wire`), in the browser only. Its
//! events are counted into the [`super::Live`] signal the pages watch.
//!
//! - Every time the stream opens it counts one `resync`: what happened
//!   before (between the page's render and now, or while the stream was
//!   closed) is unknown.
//! - A stream the browser gave up on (an error status, such as 401 after
//!   the session ended or 502 while a replica restarts) is opened again
//!   after a growing, jittered wait; the resync's refetch then shows the
//!   page's own error, such as the login note.
//! - The stream opens with `hello`, the panel's build: a page built from
//!   other sources (the panel was upgraded while it was open) reloads.
//! - A hidden tab closes its stream and opens it again when shown: over
//!   HTTP/1.1 a browser allows six connections per site, and tabs in the
//!   background must not hold them.

use super::LiveEvent;
use crate::api::wire::Wire;
use chrono::Utc;
use leptos::prelude::*;
use leptos::server::codee::Decoder;
use std::cell::RefCell;
use std::time::Duration;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;

type Counter = WriteSignal<(u64, Option<LiveEvent>)>;

thread_local! {
    /// The open stream, if any.
    static OPEN: RefCell<Option<web_sys::EventSource>> = const { RefCell::new(None) };
}

fn document() -> Option<web_sys::Document> {
    web_sys::window().and_then(|w| w.document())
}

fn hidden() -> bool {
    document().is_some_and(|d| d.hidden())
}

/// Opens the stream (unless the tab is hidden) and follows the tab's
/// visibility from now on.
pub fn start(set: Counter) {
    open(set, 0);
    let Some(document) = document() else { return };
    let on_visibility = Closure::<dyn FnMut(web_sys::Event)>::new(move |_: web_sys::Event| {
        if hidden() {
            if let Some(source) = OPEN.with(|o| o.borrow_mut().take()) {
                source.close();
            }
        } else {
            open(set, 0);
        }
    });
    let _ = document.add_event_listener_with_callback("visibilitychange", on_visibility.as_ref().unchecked_ref());
    on_visibility.forget();
}

/// The panel is another build (it was upgraded): this page's code may no
/// longer read what the server sends, so it reloads. The tab remembers the
/// build and when: at most once per build, and not again within
/// [`RELOAD_GAP`], so neither a server whose files are not its own build's
/// nor two replicas of different builds (a rolling upgrade) can make a
/// page reload over and over.
fn upgraded(build: &str) {
    const KEY: &str = "tollgate-reloaded-for";
    const AT: &str = "tollgate-reloaded-at";
    let Some(window) = web_sys::window() else { return };
    let Some(storage) = window.session_storage().ok().flatten() else { return };
    let now = Utc::now().timestamp();
    let last = storage.get_item(AT).ok().flatten().and_then(|t| t.parse::<i64>().ok());
    if storage.get_item(KEY).ok().flatten().as_deref() == Some(build)
        || last.is_some_and(|t| now - t < RELOAD_GAP.as_secs() as i64)
    {
        return;
    }
    if storage.set_item(KEY, build).is_ok() && storage.set_item(AT, &now.to_string()).is_ok() {
        let _ = window.location().reload();
    }
}

/// The least time between two reloads for a new build.
const RELOAD_GAP: Duration = Duration::from_secs(300);

fn open(set: Counter, failures: u32) {
    if hidden() || OPEN.with(|o| o.borrow().is_some()) {
        return;
    }
    // `?wire`: events in postcard, like the page's data.
    let Ok(source) = web_sys::EventSource::new("/api/live?wire") else { return };
    let count = move |event: LiveEvent| set.update(|(n, last)| (*n, *last) = (*n + 1, Some(event)));
    let on_event = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
        let event = e.data().as_string().and_then(|d| <Wire as Decoder<LiveEvent>>::decode(&d).ok());
        count(event.unwrap_or(LiveEvent::Resync));
    });
    for name in LiveEvent::NAMES {
        let _ = source.add_event_listener_with_callback(name, on_event.as_ref().unchecked_ref());
    }
    let on_hello = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
        if let Some(build) = e.data().as_string().filter(|b| b != crate::BUILD) {
            upgraded(&build);
        }
    });
    let _ = source.add_event_listener_with_callback("hello", on_hello.as_ref().unchecked_ref());
    let failed = std::rc::Rc::new(std::cell::Cell::new(failures));
    let opened = failed.clone();
    let on_open = Closure::<dyn FnMut(web_sys::Event)>::new(move |_: web_sys::Event| {
        opened.set(0);
        count(LiveEvent::Resync);
    });
    let this = source.clone();
    let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_: web_sys::Event| {
        // The browser retries a dropped connection itself; an error status
        // closes the stream for good.
        if this.ready_state() != web_sys::EventSource::CLOSED {
            return;
        }
        OPEN.with(|o| {
            let mut open = o.borrow_mut();
            if open.as_ref() == Some(&this) {
                *open = None;
            }
        });
        let failures = failed.get().saturating_add(1);
        let wait = 1000u64.saturating_mul(1 << failures.min(5)).min(30_000);
        let jitter = u64::from(Utc::now().timestamp_subsec_millis()) % 1000;
        set_timeout(move || open(set, failures), Duration::from_millis(wait + jitter));
    });
    source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    // They live as long as their stream.
    on_event.forget();
    on_hello.forget();
    on_open.forget();
    on_error.forget();
    OPEN.with(|o| *o.borrow_mut() = Some(source));
}
