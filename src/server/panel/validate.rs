//! Checking an add-server request before any host is contacted.

use crate::api::AddServerRequest;
use crate::domain::client_config::{ClientDefaults, Endpoint};
use crate::domain::{
    CommandPrefix, HostAddress, InterfaceName, Protocol, RemotePath, Secret, ServerName, SshKeySource, SshUser,
};
use crate::error::AppError;
use crate::server::store::OpenVpnAccess;
use crate::server::transport::ssh::{load_key, HostKeyPolicy};
use std::path::{Path, PathBuf};

fn blank_to_none(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// `SHA256:` followed by 43 characters of unpadded base64.
fn parse_fingerprint(text: &str) -> Result<String, String> {
    let text = text.trim();
    let ok = text
        .strip_prefix("SHA256:")
        .is_some_and(|b| b.len() == 43 && b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/'));
    if ok {
        Ok(text.to_owned())
    } else {
        Err("host_key_fingerprint: expected SHA256:… as printed by ssh-keygen -l".to_owned())
    }
}

/// A validated add-server request, before the host is contacted.
pub(super) struct Draft {
    pub(super) name: ServerName,
    pub(super) protocol: Protocol,
    pub(super) host: HostAddress,
    pub(super) port: u16,
    pub(super) user: SshUser,
    pub(super) key: SshKeySource,
    pub(super) interface: Option<InterfaceName>,
    pub(super) command_prefix: CommandPrefix,
    pub(super) openvpn: Option<OpenVpnAccess>,
    pub(super) host_key: HostKeyPolicy,
    pub(super) config_path: Option<RemotePath>,
    pub(super) client_config_dir: Option<RemotePath>,
    pub(super) client_defaults: ClientDefaults,
}

/// A key file given by path must be an unencrypted private key inside
/// `key_dir` (symbolic links resolved). A path outside it gets one answer,
/// whether or not a file is there, so the form cannot probe the panel's
/// machine.
fn key_file(key_dir: &Path, raw: &str) -> Result<SshKeySource, String> {
    let outside = || format!("must be an absolute path to a private key file in {}", key_dir.display());
    let path = PathBuf::from(raw);
    // `..` could climb out through a linked directory: refused as outside.
    if !path.is_absolute() || path.components().any(|c| c == std::path::Component::ParentDir) {
        return Err(outside());
    }
    let dir = std::fs::canonicalize(key_dir).map_err(|_| outside())?;
    let inside = |p: &Path| p.starts_with(&dir);
    // Judge the path as written before asking the file system about it.
    if !inside(&path) && !path.starts_with(key_dir) {
        return Err(outside());
    }
    let Ok(real) = std::fs::canonicalize(&path) else {
        // Missing: say so only where the directory it would be in is inside.
        let parent = path.parent().and_then(|p| std::fs::canonicalize(p).ok());
        return Err(match parent {
            Some(p) if inside(&p) => format!("there is no file {} in the key directory", path.display()),
            _ => outside(),
        });
    };
    if !inside(&real) {
        return Err(outside());
    }
    let source = SshKeySource::File(real);
    load_key(&source)
        .map_err(|_| format!("{} is not an unencrypted SSH private key (OpenSSH or PEM)", path.display()))?;
    Ok(source)
}

pub(super) fn validate(req: AddServerRequest, key_dir: &Path) -> Result<Draft, AppError> {
    let mut problems: Vec<String> = Vec::new();
    fn check<T, E: ToString>(problems: &mut Vec<String>, field: &str, r: Result<T, E>) -> Option<T> {
        r.map_err(|e| problems.push(format!("{field}: {}", e.to_string()))).ok()
    }
    let name = check(&mut problems, "name", ServerName::parse(&req.name));
    let host = check(&mut problems, "host", HostAddress::parse(&req.host));
    let port = req.port.unwrap_or(22);
    if port == 0 {
        problems.push("port: must be 1 to 65535".into());
    }
    let user = check(&mut problems, "user", SshUser::parse(req.user.trim()));
    let protocol = check(
        &mut problems,
        "protocol",
        match blank_to_none(req.protocol) {
            None => Ok(Protocol::Wireguard),
            Some(p) => Protocol::parse(&p).ok_or_else(|| format!("{p:?} is not one of wireguard, amneziawg, openvpn")),
        },
    );
    let interface = blank_to_none(req.interface);
    let status_path = blank_to_none(req.status_path);
    let config_path = match blank_to_none(req.config_path) {
        Some(_) if protocol == Some(Protocol::Openvpn) => {
            problems.push("config_path: is for WireGuard and AmneziaWG servers".into());
            None
        }
        Some(p) => check(&mut problems, "config_path", RemotePath::parse(&p)),
        None => None,
    };
    let client_config_dir = match blank_to_none(req.client_config_dir) {
        Some(_) if protocol != Some(Protocol::Openvpn) => {
            problems.push("client_config_dir: is for OpenVPN servers".into());
            None
        }
        Some(p) => check(&mut problems, "client_config_dir", RemotePath::parse(&p)),
        None => None,
    };
    let wireguard_only = |field: &str, value: &Option<String>, problems: &mut Vec<String>| {
        let given = value.as_deref().is_some_and(|v| !v.trim().is_empty());
        if given && protocol == Some(Protocol::Openvpn) {
            problems.push(format!("{field}: is for WireGuard and AmneziaWG servers"));
        }
    };
    wireguard_only("endpoint", &req.endpoint, &mut problems);
    wireguard_only("dns", &req.dns, &mut problems);
    let client_defaults = ClientDefaults {
        endpoint: blank_to_none(req.endpoint).and_then(|e| check(&mut problems, "endpoint", Endpoint::parse(&e))),
        dns: ClientDefaults::parse_dns(req.dns.as_deref().unwrap_or(""))
            .map_err(|e| problems.push(format!("dns: {e}")))
            .unwrap_or_default(),
    };
    let (interface, openvpn) = match protocol {
        Some(Protocol::Openvpn) => {
            if interface.is_some() {
                problems.push("interface: OpenVPN servers are read through a status file or management port".into());
            }
            let path = status_path.map(|p| check(&mut problems, "status_path", RemotePath::parse(&p)));
            if path.is_none() && req.management_port.is_none() {
                problems.push("status_path or management_port: an OpenVPN server needs one (or both)".into());
            }
            if req.management_port == Some(0) {
                problems.push("management_port: must be 1 to 65535".into());
            }
            let access = OpenVpnAccess {
                status_path: path.flatten(),
                management_port: req.management_port,
                management_password: req.management_password.filter(|p| !p.is_empty()).map(Secret::new),
            };
            (None, Some(access))
        }
        _ => {
            if status_path.is_some() || req.management_port.is_some() {
                problems.push("status_path and management_port are for OpenVPN servers".into());
            }
            let iface = match interface {
                Some(i) => check(&mut problems, "interface", InterfaceName::parse(&i)),
                None => {
                    problems.push("interface: required, such as wg0 or awg0".into());
                    None
                }
            };
            (iface, None)
        }
    };
    let prefix = check(
        &mut problems,
        "command_prefix",
        match req.command_prefix {
            None | Some(serde_json::Value::Null) => Ok(CommandPrefix::empty()),
            Some(serde_json::Value::String(s)) => CommandPrefix::parse(&s).map_err(|e| e.to_string()),
            Some(serde_json::Value::Array(items)) => match items.iter().map(|v| v.as_str()).collect::<Option<Vec<_>>>()
            {
                Some(words) => CommandPrefix::from_parts(words).map_err(|e| e.to_string()),
                None => Err("must be a string or an array of strings".to_owned()),
            },
            Some(_) => Err("must be a string or an array of strings".to_owned()),
        },
    );
    let key = match (blank_to_none(req.private_key_path), req.private_key.filter(|k| !k.trim().is_empty())) {
        (Some(path), None) => check(&mut problems, "private_key_path", key_file(key_dir, &path)),
        (None, Some(text)) => {
            let inline = SshKeySource::Inline(Secret::new(text));
            let checked = load_key(&inline).map(|_| inline);
            check(
                &mut problems,
                "private_key",
                checked.map_err(|_| "not an unencrypted SSH private key (OpenSSH or PEM)"),
            )
        }
        (Some(_), Some(_)) => {
            check::<(), _>(&mut problems, "private_key", Err("give private_key_path or private_key, not both"))
                .and(None)
        }
        (None, None) => {
            check::<(), _>(&mut problems, "private_key", Err("give private_key_path or private_key")).and(None)
        }
    };
    let host_key = match blank_to_none(req.host_key_fingerprint) {
        None => Some(HostKeyPolicy::TrustOnFirstUse),
        Some(fp) => parse_fingerprint(&fp).map(HostKeyPolicy::Fingerprint).map_err(|e| problems.push(e)).ok(),
    };
    match (name, host, user, protocol, prefix, key, host_key) {
        (Some(name), Some(host), Some(user), Some(protocol), Some(command_prefix), Some(key), Some(host_key))
            if problems.is_empty() =>
        {
            Ok(Draft {
                name,
                protocol,
                host,
                port,
                user,
                key,
                interface,
                command_prefix,
                openvpn,
                host_key,
                config_path,
                client_config_dir,
                client_defaults,
            })
        }
        _ => Err(AppError::bad_request(problems.join("; "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    /// A key directory holding one real key, `id_ed25519`, made by ssh-keygen.
    fn keys() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let made = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(dir.path().join("id_ed25519"))
            .status()
            .unwrap();
        assert!(made.success());
        dir
    }

    thread_local! {
        static KEYS: tempfile::TempDir = keys();
    }

    fn key_dir() -> PathBuf {
        KEYS.with(|d| d.path().to_path_buf())
    }

    fn validate(req: AddServerRequest) -> Result<Draft, AppError> {
        super::validate(req, &key_dir())
    }

    fn request() -> AddServerRequest {
        AddServerRequest {
            name: "Frankfurt 1".into(),
            host: "198.18.1.2".into(),
            port: None,
            user: "root".into(),
            private_key_path: Some(key_dir().join("id_ed25519").display().to_string()),
            interface: Some("wg0".into()),
            ..AddServerRequest::default()
        }
    }

    #[test]
    fn a_key_file_must_be_a_key_inside_the_key_directory() {
        let dir = key_dir();
        std::fs::write(dir.join("notes.txt"), "not a key").unwrap();
        let outside = key_file(&dir, "/etc/shadow").unwrap_err();
        assert_eq!(outside, key_file(&dir, "/nonexistent/key").unwrap_err(), "no hint whether a file exists");
        let escape = format!("{}/../../etc/passwd", dir.display());
        assert_eq!(key_file(&dir, &escape).unwrap_err(), outside);
        assert!(key_file(&dir, &format!("{}/missing", dir.display())).unwrap_err().contains("no file"));
        assert!(key_file(&dir, &format!("{}/notes.txt", dir.display())).unwrap_err().contains("not an unencrypted"));
        assert!(key_file(&dir, "relative/key").unwrap_err().contains("absolute path"));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc", dir.join("etc")).unwrap();
            let through = format!("{}/etc/no-such-file", dir.display());
            assert_eq!(key_file(&dir, &through).unwrap_err(), outside, "no probing through a linked directory");
            std::os::unix::fs::symlink("/etc/hostname", dir.join("link")).unwrap();
            assert_eq!(key_file(&dir, &format!("{}/link", dir.display())).unwrap_err(), outside, "links are followed");
        }
        assert!(matches!(key_file(&dir, &format!("{}/id_ed25519", dir.display())), Ok(SshKeySource::File(_))));
    }

    #[test]
    fn a_complete_request_validates_with_defaults() {
        let d = validate(request()).map_err(|e| e.message).unwrap();
        assert_eq!(d.port, 22);
        assert_eq!(d.protocol, Protocol::Wireguard);
        assert!(d.command_prefix.is_empty());
        assert!(matches!(d.host_key, HostKeyPolicy::TrustOnFirstUse));
    }

    #[test]
    fn every_bad_field_is_named_in_one_message() {
        let bad = AddServerRequest {
            name: " ".into(),
            host: "host; reboot".into(),
            user: "root@x".into(),
            interface: Some("wg0 && id".into()),
            private_key_path: Some("relative/key".into()),
            command_prefix: Some(serde_json::json!("docker exec x;id")),
            host_key_fingerprint: Some("MD5:aa".into()),
            protocol: Some("ipsec".into()),
            ..request()
        };
        let e = validate(bad).err().unwrap();
        assert_eq!(e.kind, ErrorKind::BadRequest);
        for needle in ["name:", "host:", "user:", "private_key", "command_prefix:", "host_key_fingerprint", "protocol:"]
        {
            assert!(e.message.contains(needle), "{needle} missing from {}", e.message);
        }
    }

    #[test]
    fn exactly_one_key_source_is_required() {
        let both = AddServerRequest { private_key: Some("-----BEGIN".into()), ..request() };
        assert!(validate(both).err().unwrap().message.contains("not both"));
        let none = AddServerRequest { private_key_path: None, ..request() };
        assert!(validate(none).is_err());
        let array =
            AddServerRequest { command_prefix: Some(serde_json::json!(["docker", "exec", "awg"])), ..request() };
        assert_eq!(validate(array).map_err(|e| e.message).unwrap().command_prefix.parts().len(), 3);
    }

    #[test]
    fn each_protocol_asks_for_its_own_settings() {
        let wg_without_interface = AddServerRequest { interface: None, ..request() };
        assert!(validate(wg_without_interface).err().unwrap().message.contains("interface: required"));
        let ovpn = AddServerRequest {
            protocol: Some("openvpn".into()),
            interface: None,
            management_port: Some(7505),
            ..request()
        };
        let d = validate(ovpn).map_err(|e| e.message).unwrap();
        assert_eq!(d.openvpn.unwrap().management_port, Some(7505));
        let ovpn_nothing = AddServerRequest { protocol: Some("openvpn".into()), interface: None, ..request() };
        assert!(validate(ovpn_nothing).err().unwrap().message.contains("needs one"));
        let bad_path = AddServerRequest {
            protocol: Some("openvpn".into()),
            interface: None,
            status_path: Some("/var/log/../../etc/shadow".into()),
            ..request()
        };
        assert!(validate(bad_path).err().unwrap().message.contains("status_path"));
        let awg = AddServerRequest { protocol: Some("amneziawg".into()), interface: Some("awg0".into()), ..request() };
        assert_eq!(validate(awg).map_err(|e| e.message).unwrap().protocol, Protocol::Amneziawg);
    }
}
