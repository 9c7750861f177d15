//! The event log: every action, by an admin, the CLI or the enforcer.

use super::client_page::EventTable;
use super::components::loaded;
use super::{live_resource, Page};
use crate::api::fns::recent_events;
use crate::api::live::LiveEvent;
use leptos::prelude::*;

#[component]
pub fn EventsPage() -> impl IntoView {
    // Polls log no events; everything else may.
    let events = live_resource(|| (), |_| recent_events(), |e| !matches!(e, LiveEvent::ServerPolled { .. }));
    view! {
        <Page title="Events">
            {loaded(events, |list| view! { <EventTable events=list /> }.into_any())}
        </Page>
    }
}
