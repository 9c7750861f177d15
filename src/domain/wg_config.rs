//! wg-quick configuration files (`/etc/wireguard/wg0.conf`, AmneziaWG's
//! `awg0.conf`): reading the parts the panel needs, and pure edits that
//! remove or add one `[Peer]` section while keeping every other line —
//! comments, blank lines, unknown keys, AmneziaWG's `Jc`/`S1`/`H1`… — as it
//! was. The panel writes the result back atomically; it never runs `sed`.
//!
//! A peer's section runs from its `[Peer]` line to the next section, and
//! includes the comment lines written right above it (no blank line in
//! between), as panels that name peers in comments do.

use super::keys::PublicKey;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: &'static str },
    #[error("line {line}: PublicKey is not a WireGuard key")]
    BadKey { line: usize },
    #[error("the file has no [Interface] section")]
    NoInterface,
    #[error("a [Peer] with this public key is already in the file")]
    DuplicatePeer,
    #[error("the peer section to add does not hold exactly one [Peer] with a PublicKey")]
    BadPeerBlock,
}

/// One `[Peer]` section as it stands in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSection {
    pub public_key: PublicKey,
    /// The section's lines, comments above it included, without the
    /// trailing blank lines: what [`add_peer`] puts back.
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Interface,
    Peer,
    Other,
}

/// A line's section header, if it is one.
fn header(line: &str) -> Option<Section> {
    let t = line.trim();
    let name = t.strip_prefix('[')?.strip_suffix(']')?.trim();
    Some(if name.eq_ignore_ascii_case("interface") {
        Section::Interface
    } else if name.eq_ignore_ascii_case("peer") {
        Section::Peer
    } else {
        Section::Other
    })
}

fn is_comment(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with('#') || t.starts_with(';')
}

/// `Key = Value` (keys are case-insensitive; a trailing comment is cut).
fn key_value(line: &str) -> Option<(&str, &str)> {
    let (k, v) = line.split_once('=')?;
    let v = v.split('#').next().unwrap_or("").trim();
    Some((k.trim(), v))
}

/// A section found in a file: lines `start..end` (comments above included).
struct Span {
    kind: Section,
    start: usize,
    end: usize,
    public_key: Option<PublicKey>,
}

fn spans(lines: &[&str]) -> Result<Vec<Span>, ConfigError> {
    let mut spans: Vec<Span> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(kind) = header(line) {
            // Comments right above the header belong to it.
            let mut start = i;
            while start > 0 && is_comment(lines[start - 1]) {
                start -= 1;
            }
            if let Some(previous) = spans.last_mut() {
                previous.end = start.max(previous.start + 1);
            }
            spans.push(Span { kind, start, end: lines.len(), public_key: None });
            continue;
        }
        let t = line.trim();
        if t.is_empty() || is_comment(t) {
            continue;
        }
        let Some((key, value)) = key_value(t) else {
            return Err(ConfigError::Syntax { line: i + 1, reason: "expected Key = Value" });
        };
        let Some(current) = spans.last_mut() else {
            return Err(ConfigError::Syntax { line: i + 1, reason: "a setting before any section" });
        };
        if current.kind == Section::Peer && key.eq_ignore_ascii_case("PublicKey") {
            current.public_key = Some(PublicKey::parse(value).map_err(|_| ConfigError::BadKey { line: i + 1 })?);
        }
    }
    if !spans.iter().any(|s| s.kind == Section::Interface) {
        return Err(ConfigError::NoInterface);
    }
    Ok(spans)
}

fn split_lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

fn join(lines: &[&str]) -> String {
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// The public keys of the file's peers, in file order.
pub fn peer_keys(text: &str) -> Result<Vec<PublicKey>, ConfigError> {
    Ok(spans(&split_lines(text))?.into_iter().filter_map(|s| s.public_key).collect())
}

/// Removes the peer with `key`. Returns the new text and the removed
/// section (`None`, and the text unchanged, when the peer is not there).
pub fn remove_peer(text: &str, key: &PublicKey) -> Result<(String, Option<PeerSection>), ConfigError> {
    let lines = split_lines(text);
    let found = spans(&lines)?.into_iter().find(|s| s.kind == Section::Peer && s.public_key.as_ref() == Some(key));
    let Some(span) = found else { return Ok((text.to_owned(), None)) };
    let mut body: Vec<&str> = lines[span.start..span.end].to_vec();
    while body.last().is_some_and(|l| l.trim().is_empty()) {
        body.pop();
    }
    let mut kept: Vec<&str> = lines[..span.start].to_vec();
    // One blank line between what stood before and after, not two.
    let rest = &lines[span.end..];
    if kept.last().is_some_and(|l| l.trim().is_empty()) && rest.first().is_none_or(|l| l.trim().is_empty()) {
        kept.pop();
    }
    kept.extend_from_slice(rest);
    Ok((join(&kept), Some(PeerSection { public_key: *key, text: join(&body) })))
}

/// Adds a peer section (as [`remove_peer`] returned it, or rendered by
/// [`PeerEntry`]) at the end of the file, after one blank line.
pub fn add_peer(text: &str, section: &str) -> Result<String, ConfigError> {
    let added = split_lines(section);
    let peers: Vec<PublicKey> = {
        let mut probe = vec!["[Interface]"];
        probe.extend_from_slice(&added);
        let s = spans(&probe).map_err(|_| ConfigError::BadPeerBlock)?;
        if s.iter().filter(|s| s.kind == Section::Peer).count() != 1 || s.len() != 2 {
            return Err(ConfigError::BadPeerBlock);
        }
        s.into_iter().filter_map(|s| s.public_key).collect()
    };
    let [key] = peers.as_slice() else { return Err(ConfigError::BadPeerBlock) };
    if peer_keys(text)?.contains(key) {
        return Err(ConfigError::DuplicatePeer);
    }
    let mut lines = split_lines(text);
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    lines.push("");
    lines.extend_from_slice(&added);
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    Ok(join(&lines))
}

/// The comment line that marks a revoked peer's section, kept in the file
/// with every line commented out: wg-quick ignores it, so the peer stays out
/// after `wg-quick down/up` or a reboot, and its preshared key never leaves
/// the host.
pub const REVOKED_MARK: &str = "# tollgate: revoked peer ";

/// Revokes the peer with `key` in the file: its section is replaced, at the
/// end of the file, by the same lines commented out under [`REVOKED_MARK`].
/// Returns the new text and the section as it was (`None`: not in the file).
pub fn revoke_peer(text: &str, key: &PublicKey) -> Result<(String, Option<PeerSection>), ConfigError> {
    let (rest, removed) = remove_peer(text, key)?;
    let Some(section) = removed else { return Ok((rest, None)) };
    let mut block = format!("{REVOKED_MARK}{key}\n");
    for line in section.text.lines() {
        block.push_str(&format!("#| {line}\n"));
    }
    let mut out = rest.trim_end_matches('\n').to_owned();
    out.push_str("\n\n");
    out.push_str(&block);
    Ok((out, Some(section)))
}

/// Restores a peer revoked by [`revoke_peer`]: its commented section becomes
/// a live `[Peer]` section again, exactly as it was. Returns the new text and
/// the restored section (`None`: no revoked section for `key`).
pub fn restore_peer(text: &str, key: &PublicKey) -> Result<(String, Option<PeerSection>), ConfigError> {
    let Some((kept, section_text)) = take_revoked(text, key) else {
        return Ok((text.to_owned(), None));
    };
    let restored = add_peer(&kept, &section_text)?;
    Ok((restored, Some(PeerSection { public_key: *key, text: section_text })))
}

/// Takes the revoked section of `key` out of the file: the rest of the
/// file, and the section's lines uncommented.
fn take_revoked(text: &str, key: &PublicKey) -> Option<(String, String)> {
    let mark = format!("{REVOKED_MARK}{key}");
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| l.trim_end() == mark)?;
    let end = lines[start + 1..].iter().position(|l| !l.starts_with("#| ")).map_or(lines.len(), |n| start + 1 + n);
    let section: Vec<&str> = lines[start + 1..end].iter().map(|l| &l[3..]).collect();
    let mut kept: Vec<&str> = lines[..start].to_vec();
    kept.extend_from_slice(&lines[end..]);
    while kept.last().is_some_and(|l| l.trim().is_empty()) {
        kept.pop();
    }
    Some((join(&kept), join(&section)))
}

/// Removes every trace of the peer with `key` from the file: its live
/// section and its revoked one. Returns the new text and whether anything
/// was removed.
pub fn forget_peer(text: &str, key: &PublicKey) -> Result<(String, bool), ConfigError> {
    let (rest, live) = remove_peer(text, key)?;
    match take_revoked(&rest, key) {
        Some((kept, _)) => Ok((kept, true)),
        None => Ok((rest, live.is_some())),
    }
}

/// What `wg set` needs to put a peer back from its section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSettings {
    pub allowed_ips: Vec<String>,
    pub preshared_key: Option<String>,
    pub persistent_keepalive: Option<u16>,
}

/// Reads a peer section's allowed IPs, preshared key and keepalive.
pub fn peer_settings(section: &str) -> PeerSettings {
    let mut s = PeerSettings { allowed_ips: Vec::new(), preshared_key: None, persistent_keepalive: None };
    for line in section.lines().filter(|l| !is_comment(l)) {
        let Some((k, v)) = key_value(line) else { continue };
        if k.eq_ignore_ascii_case("AllowedIPs") {
            s.allowed_ips.extend(v.split(',').map(str::trim).filter(|a| !a.is_empty()).map(str::to_owned));
        } else if k.eq_ignore_ascii_case("PresharedKey") {
            s.preshared_key = Some(v.to_owned());
        } else if k.eq_ignore_ascii_case("PersistentKeepalive") {
            s.persistent_keepalive = v.parse().ok().filter(|k| *k > 0);
        }
    }
    s
}

/// The value of `key` in the `[Interface]` section (case-insensitive).
pub fn interface_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let mut in_interface = false;
    for line in text.lines() {
        if let Some(kind) = header(line) {
            in_interface = kind == Section::Interface;
            continue;
        }
        if in_interface && !is_comment(line) {
            if let Some((k, v)) = key_value(line) {
                if k.eq_ignore_ascii_case(key) {
                    return Some(v);
                }
            }
        }
    }
    None
}

/// AmneziaWG's obfuscation settings, which a client's config must repeat.
pub const AMNEZIA_KEYS: [&str; 9] = ["Jc", "Jmin", "Jmax", "S1", "S2", "H1", "H2", "H3", "H4"];

/// A `[Peer]` section for a server's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEntry {
    /// Written as a comment line above the section.
    pub comment: Option<String>,
    pub public_key: PublicKey,
    /// Base64, when the peer has a preshared key.
    pub preshared_key: Option<String>,
    pub allowed_ips: Vec<String>,
    pub persistent_keepalive: Option<u16>,
}

impl fmt::Display for PeerEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(c) = &self.comment {
            // One line, whatever the name holds.
            let one_line: String = c.chars().map(|ch| if ch.is_control() { ' ' } else { ch }).collect();
            writeln!(f, "# {one_line}")?;
        }
        writeln!(f, "[Peer]")?;
        writeln!(f, "PublicKey = {}", self.public_key)?;
        if let Some(psk) = &self.preshared_key {
            writeln!(f, "PresharedKey = {psk}")?;
        }
        writeln!(f, "AllowedIPs = {}", self.allowed_ips.join(", "))?;
        if let Some(k) = self.persistent_keepalive {
            writeln!(f, "PersistentKeepalive = {k}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
