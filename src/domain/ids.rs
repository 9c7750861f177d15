//! Row identifiers. Distinct types so a server id can never be passed where a
//! client id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            pub const fn new(raw: i64) -> Self {
                Self(raw)
            }

            pub const fn get(self) -> i64 {
                self.0
            }

            /// Parses an id from a path segment: a positive decimal number.
            pub fn parse(text: &str) -> Option<Self> {
                if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                text.parse::<i64>().ok().filter(|v| *v > 0).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A VPN host known to the panel.
    ServerId
);
id_type!(
    /// A client (peer or OpenVPN user) on one server.
    ClientId
);
id_type!(
    /// A panel administrator.
    UserId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_from_positive_decimal_path_segments_only() {
        assert_eq!(ServerId::parse("42"), Some(ServerId::new(42)));
        assert_eq!(ServerId::parse("0"), None);
        assert_eq!(ServerId::parse("-3"), None);
        assert_eq!(ServerId::parse("4x"), None);
        assert_eq!(ServerId::parse(""), None);
        assert_eq!(ServerId::parse("9999999999999999999"), None);
    }
}
