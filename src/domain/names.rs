//! Validated names. Anything that may end up in a command on a VPN host is
//! checked here against a strict alphabet, and is still quoted when the command
//! line is built (see [`crate::domain::command`]).

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} is too long (at most {max} characters)")]
    TooLong { what: &'static str, max: usize },
    #[error("{what} may contain only {allowed}")]
    BadCharacter { what: &'static str, allowed: &'static str },
    #[error("{what} must not start with '-'")]
    LeadingDash { what: &'static str },
    #[error("a command prefix has at most {max} parts")]
    TooManyParts { max: usize },
}

fn check(
    text: &str,
    what: &'static str,
    max: usize,
    allowed: &'static str,
    ok: impl Fn(char) -> bool,
) -> Result<(), NameError> {
    if text.is_empty() {
        return Err(NameError::Empty { what });
    }
    if text.chars().count() > max {
        return Err(NameError::TooLong { what, max });
    }
    if !text.chars().all(ok) {
        return Err(NameError::BadCharacter { what, allowed });
    }
    if text.starts_with('-') {
        return Err(NameError::LeadingDash { what });
    }
    Ok(())
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = NameError;
            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }
    };
}

/// A network interface name on a VPN host (`wg0`, `awg0`, `tun0`): Linux
/// allows at most 15 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InterfaceName(String);
string_newtype!(InterfaceName);

impl InterfaceName {
    pub fn parse(text: &str) -> Result<Self, NameError> {
        check(text, "an interface name", 15, "letters, digits and _ . = + -", |c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '=' | '+' | '-')
        })?;
        if text == "." || text == ".." {
            return Err(NameError::BadCharacter {
                what: "an interface name",
                allowed: "letters, digits and _ . = + -",
            });
        }
        Ok(Self(text.to_owned()))
    }
}

/// The name an admin gives a server. Shown in the UI, never sent to a host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerName(String);
string_newtype!(ServerName);

impl ServerName {
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(NameError::Empty { what: "a server name" });
        }
        if text.chars().count() > 64 {
            return Err(NameError::TooLong { what: "a server name", max: 64 });
        }
        if text.chars().any(char::is_control) {
            return Err(NameError::BadCharacter { what: "a server name", allowed: "printable characters" });
        }
        Ok(Self(text.to_owned()))
    }
}

/// A panel administrator's login name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);
string_newtype!(Username);

impl Username {
    pub fn parse(text: &str) -> Result<Self, NameError> {
        check(text, "a username", 64, "letters, digits and _ . @ -", |c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-')
        })?;
        Ok(Self(text.to_owned()))
    }
}

/// The account Tollgate logs in as on a VPN host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshUser(String);
string_newtype!(SshUser);

impl SshUser {
    pub fn parse(text: &str) -> Result<Self, NameError> {
        check(text, "an SSH user", 32, "letters, digits and _ . -", |c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
        })?;
        Ok(Self(text.to_owned()))
    }
}

/// An absolute path on a VPN host, such as an OpenVPN status file. Only a
/// conservative alphabet, and no `..` component.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemotePath(String);
string_newtype!(RemotePath);

impl RemotePath {
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let what = "a path on the host";
        check(text, what, 255, "letters, digits and _ . / @ + -", |c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '@' | '+' | '-')
        })?;
        if !text.starts_with('/') || text.split('/').any(|part| part == "..") {
            return Err(NameError::BadCharacter { what, allowed: "an absolute path without .." });
        }
        Ok(Self(text.to_owned()))
    }
}

/// Words run before the VPN tool on the host, such as `docker exec amnezia-awg`
/// or `sudo -n`. Each word is checked on its own; none is ever interpreted by
/// Tollgate as shell syntax.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CommandPrefix(Vec<String>);

const PREFIX_ALLOWED: &str = "letters, digits and _ . / : @ = + , % -";
const PREFIX_MAX_PARTS: usize = 16;

impl CommandPrefix {
    pub fn empty() -> Self {
        Self(Vec::new())
    }

    /// Parses whitespace-separated words.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        Self::from_parts(text.split_whitespace())
    }

    pub fn from_parts<'a>(parts: impl IntoIterator<Item = &'a str>) -> Result<Self, NameError> {
        let mut out = Vec::new();
        for (index, part) in parts.into_iter().enumerate() {
            if index >= PREFIX_MAX_PARTS {
                return Err(NameError::TooManyParts { max: PREFIX_MAX_PARTS });
            }
            let what = "each word of the command prefix";
            if part.is_empty() {
                return Err(NameError::Empty { what });
            }
            if part.chars().count() > 128 {
                return Err(NameError::TooLong { what, max: 128 });
            }
            let ok = part.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | ':' | '@' | '=' | '+' | ',' | '%' | '-')
            });
            if !ok {
                return Err(NameError::BadCharacter { what, allowed: PREFIX_ALLOWED });
            }
            // Options such as `-n` are fine, but the program itself is a name.
            if index == 0 && part.starts_with('-') {
                return Err(NameError::LeadingDash { what: "the command prefix" });
            }
            out.push(part.to_owned());
        }
        Ok(Self(out))
    }

    pub fn parts(&self) -> &[String] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for CommandPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

impl Serialize for CommandPrefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for CommandPrefix {
    /// Accepts either one string of words or an array of words.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Words(String),
            Parts(Vec<String>),
        }
        match Form::deserialize(d)? {
            Form::Words(text) => Self::parse(&text),
            Form::Parts(parts) => Self::from_parts(parts.iter().map(String::as_str)),
        }
        .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_paths_are_absolute_and_tame() {
        assert!(RemotePath::parse("/etc/openvpn/openvpn-status.log").is_ok());
        assert!(RemotePath::parse("/run/openvpn-server/status-server.log").is_ok());
        for bad in ["relative/path", "/etc/../shadow", "/tmp/a b", "/tmp/$(id)", "/tmp/x;id", ""] {
            assert!(RemotePath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn interface_names_follow_linux_rules() {
        assert!(InterfaceName::parse("wg0").is_ok());
        assert!(InterfaceName::parse("awg0").is_ok());
        assert!(InterfaceName::parse("tgs200").is_ok());
        assert!(InterfaceName::parse("abcdefghijklmno").is_ok());
        assert!(matches!(InterfaceName::parse("abcdefghijklmnop"), Err(NameError::TooLong { .. })));
        assert!(InterfaceName::parse("").is_err());
        assert!(InterfaceName::parse("..").is_err());
        assert!(InterfaceName::parse("-wg0").is_err());
        assert!(InterfaceName::parse("wg0;reboot").is_err());
        assert!(InterfaceName::parse("wg 0").is_err());
        assert!(InterfaceName::parse("wg$(id)").is_err());
    }

    #[test]
    fn a_command_prefix_accepts_docker_exec_and_refuses_shell_syntax() {
        let p = CommandPrefix::parse("docker exec amnezia-awg").unwrap();
        assert_eq!(p.parts(), ["docker", "exec", "amnezia-awg"]);
        assert!(CommandPrefix::parse("sudo -n").is_ok());
        assert!(CommandPrefix::parse("").unwrap().is_empty());
        for bad in ["docker exec x; reboot", "a|b", "$(id)", "`id`", "a&&b", "x>y", "'q'", "a\"b"] {
            assert!(CommandPrefix::parse(bad).is_err(), "{bad} should be refused");
        }
        assert!(matches!(CommandPrefix::parse("-rf /"), Err(NameError::LeadingDash { .. })));
        let many = vec!["a"; 17].join(" ");
        assert!(matches!(CommandPrefix::parse(&many), Err(NameError::TooManyParts { .. })));
    }

    #[test]
    fn a_command_prefix_deserializes_from_words_or_an_array() {
        let a: CommandPrefix = serde_json::from_str("\"docker exec awg\"").unwrap();
        let b: CommandPrefix = serde_json::from_str("[\"docker\",\"exec\",\"awg\"]").unwrap();
        assert_eq!(a, b);
        assert!(serde_json::from_str::<CommandPrefix>("[\"docker\",\"exec x\"]").is_err());
    }

    #[test]
    fn server_names_are_trimmed_and_printable() {
        assert_eq!(ServerName::parse("  Frankfurt 1 ").unwrap().as_str(), "Frankfurt 1");
        assert!(ServerName::parse("a\nb").is_err());
        assert!(ServerName::parse("   ").is_err());
    }

    #[test]
    fn ssh_users_and_usernames_have_strict_alphabets() {
        assert!(SshUser::parse("root").is_ok());
        assert!(SshUser::parse("vpn-admin").is_ok());
        assert!(SshUser::parse("root@host").is_err());
        assert!(SshUser::parse("-oProxyCommand=x").is_err());
        assert!(Username::parse("admin@example.org").is_ok());
        assert!(Username::parse("ad min").is_err());
    }
}
