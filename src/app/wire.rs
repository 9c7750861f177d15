//! How a page's data crosses from the server's render to the browser.
//!
//! A resource's value is serialized into the page and decoded at
//! hydration; its refetches come back from a server function, which
//! decodes JSON from bytes. Leptos' default resource codec decodes the
//! page's copy from a `&str`, and serde_json builds a separate decoder
//! for every type per input kind: two copies of every page type's
//! deserializer in the WebAssembly. [`Json`] decodes from bytes too, so
//! one copy serves both.

use leptos::server::codee::{Decoder, Encoder};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// JSON, decoded as bytes (see the module's notes).
pub struct Json;

impl<T: Serialize> Encoder<T> for Json {
    type Error = serde_json::Error;
    type Encoded = String;

    fn encode(value: &T) -> Result<String, Self::Error> {
        serde_json::to_string(value)
    }
}

impl<T: DeserializeOwned> Decoder<T> for Json {
    type Error = serde_json::Error;
    type Encoded = str;

    fn decode(text: &str) -> Result<T, Self::Error> {
        serde_json::from_slice(text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::live::LiveEvent;

    #[test]
    fn a_value_encoded_for_the_page_decodes_to_itself() {
        use crate::domain::ServerId;
        let event =
            LiveEvent::ServerPolled { server: ServerId::new(7), ok: true, sessions_opened: 2, sessions_closed: 0 };
        let text = <Json as Encoder<LiveEvent>>::encode(&event).expect("encodes");
        let back: LiveEvent = <Json as Decoder<LiveEvent>>::decode(&text).expect("decodes");
        assert_eq!(back, event);
        let bad = <Json as Decoder<LiveEvent>>::decode("{\"type\":");
        assert!(bad.is_err());
    }
}
