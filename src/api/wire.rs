//! How a page's data crosses from the server to the browser.
//!
//! A resource's value is serialized into the page and decoded at
//! hydration; its refetches come back from a server function. Both carry
//! it in postcard: a compact format read strictly in field order.
//!
//! - **Why not JSON.** serde's decoder for a struct read from JSON must
//!   accept its fields in any order, by name, as a map or as an array; the
//!   browser's copy of that for every page type was about a tenth of its
//!   WebAssembly. Postcard reads a struct as a sequence only, so the map
//!   and field-name code is never linked.
//! - **In the page** the bytes travel as base64 text ([`Wire`]); from a
//!   server function as a binary body ([`Binary`],
//!   `application/x-postcard`): every server function answers this way,
//!   its errors ([`crate::error::AppError`]) included, and the page's live
//!   stream carries its events in it too (`/api/live?wire`), so the
//!   browser links no JSON decoder.
//! - **The JSON API is unchanged**: `/api/...` still answers JSON. Only
//!   the panel's own pages use this.
//! - **What it cannot carry:** postcard does not name fields or variants,
//!   so a type sent this way must not use `#[serde(tag)]`, `untagged`,
//!   `flatten` or `skip_serializing_if`. Tests below round-trip a dashboard
//!   and an error; Playwright loads and refreshes every page through both
//!   paths.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use leptos::server::codee::{Decoder, Encoder};
use leptos::server_fn::codec::Post;
use leptos::server_fn::{Bytes, ContentType, Decodes, Encodes, Format, FormatType};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a value could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("page data is not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("page data does not match its type: {0}")]
    Postcard(#[from] postcard::Error),
}

/// A resource's value in the page: postcard, as base64 text.
pub struct Wire;

impl<T: Serialize> Encoder<T> for Wire {
    type Error = WireError;
    type Encoded = String;

    fn encode(value: &T) -> Result<String, Self::Error> {
        Ok(STANDARD.encode(postcard::to_allocvec(value)?))
    }
}

impl<T: DeserializeOwned> Decoder<T> for Wire {
    type Error = WireError;
    type Encoded = str;

    fn decode(text: &str) -> Result<T, Self::Error> {
        Ok(postcard::from_bytes(&STANDARD.decode(text)?)?)
    }
}

/// A server function's reply in postcard (`output = Binary`).
pub struct PostcardEncoding;

/// The `output` of every server function (`/rpc/...`).
pub type Binary = Post<PostcardEncoding>;

impl ContentType for PostcardEncoding {
    const CONTENT_TYPE: &'static str = "application/x-postcard";
}

impl FormatType for PostcardEncoding {
    const FORMAT_TYPE: Format = Format::Binary;
}

impl<T: Serialize> Encodes<T> for PostcardEncoding {
    type Error = postcard::Error;

    fn encode(value: &T) -> Result<Bytes, Self::Error> {
        postcard::to_allocvec(value).map(Bytes::from)
    }
}

impl<T: DeserializeOwned> Decodes<T> for PostcardEncoding {
    type Error = postcard::Error;

    fn decode(bytes: Bytes) -> Result<T, Self::Error> {
        postcard::from_bytes(&bytes)
    }
}

/// `#[serde(with = "instant")]` for a `DateTime<Utc>` in page data: in
/// JSON chrono's own RFC 3339 text (the API is unchanged); in postcard
/// seconds and nanoseconds, so the browser links no date parser.
pub mod instant {
    use chrono::{DateTime, Utc};
    use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

    fn parts(t: &DateTime<Utc>) -> (i64, u32) {
        (t.timestamp(), t.timestamp_subsec_nanos())
    }

    fn from_parts<E: Error>((secs, nanos): (i64, u32)) -> Result<DateTime<Utc>, E> {
        DateTime::from_timestamp(secs, nanos).ok_or_else(|| E::custom("an instant out of range"))
    }

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            t.serialize(s)
        } else {
            parts(t).serialize(s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        if d.is_human_readable() {
            DateTime::deserialize(d)
        } else {
            from_parts(Deserialize::deserialize(d)?)
        }
    }

    /// The same for an `Option<DateTime<Utc>>`.
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
            if s.is_human_readable() {
                t.serialize(s)
            } else {
                t.as_ref().map(parts).serialize(s)
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
            if d.is_human_readable() {
                Option::deserialize(d)
            } else {
                Option::<(i64, u32)>::deserialize(d)?.map(from_parts).transpose()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DashboardView, ServerCount, ServerHealth, ServerRef, SessionView, Traffic};
    use crate::domain::history::Bar;
    use crate::domain::{ClientId, Protocol, ServerId};
    use chrono::{TimeZone, Utc};

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
        let text = <Wire as Encoder<T>>::encode(value).expect("encodes");
        let back: T = <Wire as Decoder<T>>::decode(&text).expect("decodes");
        assert_eq!(&back, value);
        let bytes = <PostcardEncoding as Encodes<T>>::encode(value).expect("encodes");
        let back: T = <PostcardEncoding as Decodes<T>>::decode(bytes).expect("decodes");
        assert_eq!(&back, value);
    }

    fn session(id: i64, open: bool) -> SessionView {
        let at = Utc.with_ymd_and_hms(2026, 11, 24, 9, 30, 0).single().expect("a time");
        SessionView {
            id,
            server_id: ServerId::new(3),
            server_name: "fra-1".into(),
            client_id: ClientId::new(40 + id),
            client: "laptop".into(),
            user: Some("alice".into()),
            identity: "alice-laptop".into(),
            session_key: format!("10.8.0.{id}:51820"),
            protocol: Protocol::Openvpn,
            connected_at: at,
            disconnected_at: (!open).then_some(at + chrono::Duration::minutes(5)),
            last_seen_at: at,
            endpoint: Some("198.18.0.2:40000".into()),
            virtual_ip: None,
            bytes_sent: u64::MAX,
            bytes_received: 0,
            openvpn_client_id: Some(12),
        }
    }

    #[test]
    fn a_dashboard_sent_to_the_page_arrives_unchanged() {
        let dashboard = DashboardView {
            server: Some(ServerId::new(3)),
            server_names: vec![ServerRef { id: ServerId::new(3), name: "fra-1 <&>".into() }],
            servers: vec![ServerCount {
                id: ServerId::new(3),
                name: "fra-1".into(),
                health: ServerHealth::Error,
                online: 1,
                clients: 2,
                last_poll_at: None,
            }],
            server_count: 1,
            servers_active: 0,
            servers_failing: 1,
            clients: 2,
            online: 1,
            online_users: 1,
            users: 4,
            active_connections: 1,
            average_connection_secs: Some(300),
            month: Traffic::new(5, 7),
            active_sessions: vec![session(1, true)],
            recently_disconnected: vec![session(2, false)],
            daily: vec![Bar { key: "2026-11-01".into(), label: "1".into(), sent: 1, received: 2 }],
        };
        round_trip(&dashboard);
    }

    #[test]
    fn an_instant_is_text_in_json_and_exact_to_the_nanosecond_in_postcard() {
        let mut s = session(1, false);
        s.connected_at = Utc.timestamp_opt(1_795_000_000, 123_456_789).single().expect("a time");
        s.disconnected_at = Some(Utc.timestamp_opt(-86_400, 1).single().expect("before 1970"));
        round_trip(&s);
        let json = serde_json::to_value(&s).expect("JSON");
        assert_eq!(json["connected_at"], "2026-11-18T11:06:40.123456789Z");
        assert_eq!(json["disconnected_at"], "1969-12-31T00:00:00.000000001Z");
        assert_eq!(serde_json::from_value::<SessionView>(json).expect("back"), s);
        // An instant chrono cannot hold is an error, not a panic.
        let out_of_range = postcard::to_allocvec(&(i64::MAX, 0u32)).expect("encodes");
        let mut decoder = postcard::Deserializer::from_bytes(&out_of_range);
        assert!(instant::deserialize(&mut decoder).is_err());
    }

    #[test]
    fn a_page_whose_data_is_an_error_arrives_with_that_error() {
        let error: Result<Vec<SessionView>, crate::error::AppError> = Err(crate::error::AppError::not_found("Server"));
        round_trip(&error);
        round_trip(&Err::<(), _>(crate::error::AppError::too_many_requests(30)));
    }

    #[test]
    fn damaged_page_data_is_an_error_not_a_value() {
        let text = <Wire as Encoder<Vec<SessionView>>>::encode(&vec![session(1, true)]).expect("encodes");
        let cut = &text[..text.len() / 2];
        assert!(<Wire as Decoder<Vec<SessionView>>>::decode(cut).is_err());
        assert!(<Wire as Decoder<Vec<SessionView>>>::decode("not base64!").is_err());
    }
}
