//! `GET /api/live`: one server-sent-events stream per open page, carrying
//! the bus's [`LiveEvent`]s as they happen (`event:` its name, `data:` its
//! JSON; with `?wire`, as the panel's pages ask, base64 postcard, see
//! [`crate::api::wire`]). It opens with `hello`, the panel's build. A page
//! that fell behind gets one `resync`. The session is checked
//! again every minute: the stream ends once it expired or was logged out.
//! Nothing is sent to an idle page but a keep-alive comment.

use crate::api::live::LiveEvent;
use crate::api::wire::Wire;
use crate::error::AppError;
use crate::server::panel::{Admin, Panel};
use crate::server::AppState;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{Stream, StreamExt};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{interval_at, Instant, Interval};
use tokio_util::sync::CancellationToken;

/// How often an open stream checks that its session still holds.
const SESSION_CHECK: Duration = Duration::from_secs(60);

/// Keep-alive comments, so proxies do not close a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

struct Subscription {
    events: broadcast::Receiver<LiveEvent>,
    closing: CancellationToken,
    panel: Arc<Panel>,
    headers: HeaderMap,
    check: Interval,
    encoding: Encoding,
}

/// How a stream's `data:` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Json,
    Wire,
}

/// `?wire` (any value, or none) asks for base64 postcard.
#[derive(Debug, serde::Deserialize)]
pub struct LiveQuery {
    wire: Option<String>,
}

/// The stream's first event, `hello`: the panel's build ([`crate::BUILD`]),
/// by which a page built from other sources knows to reload.
fn hello(encoding: Encoding) -> Event {
    let data = match encoding {
        Encoding::Json => serde_json::json!({ "build": crate::BUILD }).to_string(),
        Encoding::Wire => crate::BUILD.to_owned(),
    };
    Event::default().event("hello").data(data)
}

/// The event for the page: a `LiveEvent`, or `resync` after a lag.
fn sse_event(event: &LiveEvent, encoding: Encoding) -> Event {
    use leptos::server::codee::Encoder;
    let encode = |event: &LiveEvent| match encoding {
        Encoding::Json => serde_json::to_string(event).ok(),
        Encoding::Wire => <Wire as Encoder<LiveEvent>>::encode(event).ok(),
    };
    // Every event encodes; if one ever did not, the page refetches all.
    let data = encode(event).or_else(|| encode(&LiveEvent::Resync)).unwrap_or_default();
    Event::default().event(event.name()).data(data)
}

/// The stream of one page, ending when its session ends or the panel
/// starts `closing`.
fn stream(
    events: broadcast::Receiver<LiveEvent>,
    closing: CancellationToken,
    panel: Arc<Panel>,
    headers: HeaderMap,
    encoding: Encoding,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let check = interval_at(Instant::now() + SESSION_CHECK, SESSION_CHECK);
    let start = Subscription { events, closing, panel, headers, check, encoding };
    futures_util::stream::unfold(start, |mut s| async move {
        loop {
            tokio::select! {
                _ = s.closing.cancelled() => return None,
                received = s.events.recv() => {
                    let event = match received {
                        Ok(event) => event,
                        Err(RecvError::Lagged(missed)) => {
                            tracing::debug!(missed, "a page fell behind the live events; resync");
                            LiveEvent::Resync
                        }
                        Err(RecvError::Closed) => return None,
                    };
                    return Some((Ok(sse_event(&event, s.encoding)), s));
                }
                _ = s.check.tick() => {
                    if s.panel.authenticate(&s.headers).await.is_err() {
                        return None;
                    }
                }
            }
        }
    })
}

pub async fn live(
    State(state): State<AppState>,
    _: Admin,
    Query(query): Query<LiveQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let encoding = if query.wire.is_some() { Encoding::Wire } else { Encoding::Json };
    let events = state.panel.poller.bus().subscribe();
    let first = futures_util::stream::once(async move { Ok(hello(encoding)) });
    let sse = Sse::new(first.chain(stream(events, state.closing.clone(), state.panel.clone(), headers, encoding)))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE));
    let mut response = sse.into_response();
    // Buffering proxies (nginx) would hold the events back.
    response.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
