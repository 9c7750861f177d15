//! Users: the people who own clients (devices), with how many devices may
//! be connected at once across every server and protocol.

use super::client_change::{email, opt, refuse, text, whole, FieldError};
use serde_json::{Map, Value};

/// A user's fields as sent to `POST`/`PATCH /api/users`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserChange {
    pub name: Option<String>,
    pub email: Option<Option<String>>,
    /// 0: no limit; 1: a single device; N.
    pub max_connections: Option<u32>,
}

const FIELDS: [&str; 3] = ["name", "email", "max_connections"];

/// Reads a user from a JSON object; `new` requires a name.
pub fn parse_user(body: &Map<String, Value>, new: bool) -> Result<UserChange, FieldError> {
    if let Some(unknown) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(refuse(unknown, format!("unknown field; known are {}", FIELDS.join(", "))));
    }
    let mut change = UserChange::default();
    for (field, value) in body {
        match field.as_str() {
            "name" => change.name = Some(text(field, value)?),
            "email" => change.email = Some(opt(value, |v| email(field, v))?),
            "max_connections" => {
                change.max_connections = Some(u32::try_from(whole(field, value, 0, i64::from(u32::MAX))?).unwrap_or(0))
            }
            _ => {}
        }
    }
    if new && change.name.is_none() {
        return Err(refuse("name", "required"));
    }
    Ok(change)
}

/// Whether a user with `active` sessions may connect one more device.
pub fn can_connect(active: u32, max_connections: u32) -> bool {
    max_connections == 0 || active < max_connections
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value, new: bool) -> Result<UserChange, FieldError> {
        parse_user(v.as_object().unwrap(), new)
    }

    #[test]
    fn a_user_needs_a_name_and_valid_fields() {
        let u = parse(json!({"name": "Alice; $(id)", "email": "a@example.org", "max_connections": 2}), true).unwrap();
        assert_eq!(u.name.as_deref(), Some("Alice; $(id)"));
        assert_eq!((u.email, u.max_connections), (Some(Some("a@example.org".into())), Some(2)));
        assert_eq!(parse(json!({"email": null}), true).unwrap_err().field, "name");
        assert_eq!(parse(json!({"email": null}), false).unwrap().email, Some(None));
        assert_eq!(parse(json!({"name": "x", "max_connections": -1}), true).unwrap_err().field, "max_connections");
        assert_eq!(parse(json!({"name": "x", "devices": 1}), true).unwrap_err().field, "devices");
    }

    #[test]
    fn zero_means_no_device_limit() {
        assert!(can_connect(50, 0));
        assert!(can_connect(0, 1) && !can_connect(1, 1));
        assert!(can_connect(1, 2) && !can_connect(3, 2));
    }
}
