//! The event log: every action, by an admin, the CLI or the enforcer.

use super::client_page::EventTable;
use super::components::loaded;
use super::{any_event, live_resource, Page};
use crate::api::fns::recent_events;
use leptos::prelude::*;

#[component]
pub fn EventsPage() -> impl IntoView {
    let events = live_resource(|| (), |_| recent_events(), any_event);
    view! {
        <Page title="Events">
            {loaded(events, |list| view! { <EventTable events=list /> }.into_any())}
        </Page>
    }
}
