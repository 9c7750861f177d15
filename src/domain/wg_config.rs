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
