//! The live updates a page receives over its event stream (`GET
//! /api/live?wire`): small typed notices that something changed, after which a
//! page refetches what it shows of it. Shared by the server, which
//! publishes them, and the pages, which apply them.

use crate::domain::{ClientId, ServerId, UserId};
use serde::{Deserialize, Serialize};

/// A notice that something changed, named by what it concerns.
///
/// Two shapes: in JSON (the API's stream, PostgreSQL's notices) a tagged
/// object, `{"kind": "client_changed", "server": 3, "client": 41}`; in
/// postcard (the page's own stream, [`crate::api::wire`]), which cannot
/// read a tag, the same variants by position (`Compact`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", tag = "kind", rename_all = "snake_case")]
pub enum LiveEvent {
    /// A poll of `server` ended: its figures were stored (`ok`), or it
    /// failed and the server's health changed.
    ServerPolled { server: ServerId, ok: bool, sessions_opened: u32, sessions_closed: u32 },
    /// A server was added, changed or removed.
    ServerChanged { server: ServerId },
    /// A client was generated, changed, revoked, restored, disabled or
    /// deleted (by an admin or by enforcement); an event was logged.
    ClientChanged { server: ServerId, client: ClientId },
    /// Several clients of `server` changed at once (an enforcement pass
    /// disabled or re-enabled them).
    ClientsChanged { server: ServerId },
    /// A session was ended by an admin.
    SessionEnded { server: ServerId },
    /// A user was created, changed or removed.
    UserChanged { user: UserId },
    /// Events may have been missed (the page fell behind, or a replica's
    /// link to the others was down): refetch everything once.
    Resync,
}

/// [`LiveEvent`] for formats that name nothing: variant by position.
/// serde's `remote` checks that it lists the same variants and fields.
#[derive(Serialize, Deserialize)]
#[serde(remote = "LiveEvent")]
enum Compact {
    ServerPolled { server: ServerId, ok: bool, sessions_opened: u32, sessions_closed: u32 },
    ServerChanged { server: ServerId },
    ClientChanged { server: ServerId, client: ClientId },
    ClientsChanged { server: ServerId },
    SessionEnded { server: ServerId },
    UserChanged { user: UserId },
    Resync,
}

impl Serialize for LiveEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            LiveEvent::serialize(self, serializer)
        } else {
            Compact::serialize(self, serializer)
        }
    }
}

impl<'de> Deserialize<'de> for LiveEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            LiveEvent::deserialize(deserializer)
        } else {
            Compact::deserialize(deserializer)
        }
    }
}

impl LiveEvent {
    /// Every event's name in the stream.
    pub const NAMES: [&'static str; 7] = [
        "server_polled",
        "server_changed",
        "client_changed",
        "clients_changed",
        "session_ended",
        "user_changed",
        "resync",
    ];

    /// The name of the event in the stream (`event:` field).
    pub fn name(&self) -> &'static str {
        match self {
            Self::ServerPolled { .. } => "server_polled",
            Self::ServerChanged { .. } => "server_changed",
            Self::ClientChanged { .. } => "client_changed",
            Self::ClientsChanged { .. } => "clients_changed",
            Self::SessionEnded { .. } => "session_ended",
            Self::UserChanged { .. } => "user_changed",
            Self::Resync => "resync",
        }
    }

    /// The server it concerns, if one.
    pub fn server(&self) -> Option<ServerId> {
        match *self {
            Self::ServerPolled { server, .. }
            | Self::ServerChanged { server }
            | Self::ClientChanged { server, .. }
            | Self::ClientsChanged { server }
            | Self::SessionEnded { server } => Some(server),
            Self::UserChanged { .. } | Self::Resync => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_travels_as_a_small_tagged_json_object() {
        let event = LiveEvent::ClientChanged { server: ServerId::new(3), client: ClientId::new(41) };
        let text = serde_json::to_string(&event).unwrap();
        assert_eq!(text, r#"{"kind":"client_changed","server":3,"client":41}"#);
        assert_eq!(serde_json::from_str::<LiveEvent>(&text).unwrap(), event);
        assert_eq!(event.name(), "client_changed");
        assert_eq!(event.server(), Some(ServerId::new(3)));
        assert_eq!(serde_json::to_string(&LiveEvent::Resync).unwrap(), r#"{"kind":"resync"}"#);
        let (server, client) = (ServerId::new(1), ClientId::new(2));
        let every = [
            LiveEvent::ServerPolled { server, ok: true, sessions_opened: 0, sessions_closed: 0 },
            LiveEvent::ServerChanged { server },
            LiveEvent::ClientChanged { server, client },
            LiveEvent::ClientsChanged { server },
            LiveEvent::SessionEnded { server },
            LiveEvent::UserChanged { user: UserId::new(3) },
            LiveEvent::Resync,
        ];
        let names: Vec<&str> = every.iter().map(LiveEvent::name).collect();
        assert_eq!(names, LiveEvent::NAMES, "a page listens for every event by name");
    }

    #[test]
    fn every_event_travels_to_the_page_in_postcard_and_back_unchanged() {
        use crate::api::wire::Wire;
        use leptos::server::codee::{Decoder, Encoder};
        let (server, client) = (ServerId::new(7), ClientId::new(9));
        for event in [
            LiveEvent::ServerPolled { server, ok: false, sessions_opened: 2, sessions_closed: 1 },
            LiveEvent::ServerChanged { server },
            LiveEvent::ClientChanged { server, client },
            LiveEvent::ClientsChanged { server },
            LiveEvent::SessionEnded { server },
            LiveEvent::UserChanged { user: UserId::new(5) },
            LiveEvent::Resync,
        ] {
            let text = <Wire as Encoder<LiveEvent>>::encode(&event).unwrap();
            assert!(!text.starts_with('{'), "not JSON: {text}");
            assert_eq!(<Wire as Decoder<LiveEvent>>::decode(&text).unwrap(), event);
            let json = serde_json::to_value(event).unwrap();
            assert_eq!(json["kind"], event.name(), "JSON keeps its tag");
            assert_eq!(serde_json::from_value::<LiveEvent>(json).unwrap(), event);
        }
        assert!(<Wire as Decoder<LiveEvent>>::decode("CQ==").is_err(), "variant 9: there are seven");
    }
}
