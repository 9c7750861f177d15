//! A server's live client state, kept as one packed row per server.
//!
//! Every poll changes the counters of almost every client: lifetime totals,
//! the current month, raw counters, last handshake, last sign of life. Kept
//! as one row per client that is one B-tree update per client per poll,
//! which on a 10,000-peer server costs more than everything else together.
//! Kept as one packed value per server, a poll reads one row and writes one
//! row whatever the number of peers. What changes rarely (names, allowed IPs,
//! endpoints, the monthly ledger of past months, sessions) stays in ordinary
//! rows; readers overlay this state onto them.
//!
//! The state holds the *current* month's bytes; when a poll falls in a new
//! month the previous month's bytes move to `usage_monthly`. A month's usage
//! is therefore its `usage_monthly` row plus the state's bytes when the state
//! is in that month.
//!
//! Format: a version byte, then per client LEB128 varints (zigzag for
//! instants; optional values are a `0` or a `1` followed by the value) and
//! length-prefixed UTF-8 strings. Decoding checks every length and value;
//! a damaged value is an error, never a panic.

use super::LiveFigure;
use crate::domain::accounting::{Counters, Delta};
use crate::domain::ClientId;
use std::collections::HashMap;

const FORMAT: u8 = 1;

/// One client's live figures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ClientState {
    pub client_id: i64,
    /// Public key or common name: how the host names the client.
    pub identity: String,
    /// WireGuard: the peer's counters at the last poll that saw it.
    pub counters: Counters,
    /// Lifetime, as accounted.
    pub total: Counters,
    /// The month `month_bytes` belong to (`YYYY-MM`); empty: none yet.
    pub month: String,
    pub month_bytes: Counters,
    pub latest_handshake: Option<i64>,
    pub last_seen: Option<i64>,
    pub last_sync_at: i64,
    /// WireGuard: in the last poll. OpenVPN: connected in the last poll.
    pub on_host: bool,
    /// WireGuard: the open session.
    pub open_session: Option<i64>,
    /// WireGuard: fingerprints of the endpoint and of the other attributes
    /// (allowed IPs, preshared key, keepalive) last written to the client's
    /// row; a poll rewrites the row only when one changes. 0: unknown.
    pub endpoint: u64,
    pub attributes: u64,
}

impl ClientState {
    /// A client first seen by the poll at `at` (Unix seconds), in `month`.
    pub fn new(client_id: i64, identity: String, month: &str, at: i64) -> Self {
        Self {
            client_id,
            identity,
            counters: Counters::ZERO,
            total: Counters::ZERO,
            month: month.to_owned(),
            month_bytes: Counters::ZERO,
            latest_handshake: None,
            last_seen: None,
            last_sync_at: at,
            on_host: true,
            open_session: None,
            endpoint: 0,
            attributes: 0,
        }
    }

    /// Counts one poll's bytes: new traffic into the lifetime total and the
    /// month, carried-in counters into the lifetime total only.
    pub fn count(&mut self, delta: Delta) {
        self.total = self.total.saturating_add(delta.new).saturating_add(delta.carried);
        self.month_bytes = self.month_bytes.saturating_add(delta.new);
    }

    /// The bytes of `month`, given its `usage_monthly` row.
    pub fn month_usage(&self, month: &str, ledger: Counters) -> Counters {
        if self.month == month {
            ledger.saturating_add(self.month_bytes)
        } else {
            ledger
        }
    }
}

/// Every client of one server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct ServerState {
    pub clients: Vec<ClientState>,
    /// The stamp of the row it was last written as (0: not written here;
    /// see `state_cache`). Not part of the encoding.
    pub stamp: i64,
}

impl ServerState {
    /// Each client's lifetime total and presence, for the enforcer.
    pub fn figures(&self) -> Vec<LiveFigure> {
        self.clients
            .iter()
            .map(|c| LiveFigure { client: ClientId::new(c.client_id), total: c.total.total(), on_host: c.on_host })
            .collect()
    }

    /// The clients by id.
    pub fn into_by_id(self) -> HashMap<i64, ClientState> {
        self.clients.into_iter().map(|c| (c.client_id, c)).collect()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum StateError {
    #[error("unknown state format {0}")]
    Format(u8),
    #[error("state ends early")]
    Truncated,
    #[error("state has an invalid value")]
    Invalid,
}

/// FNV-1a over the parts, each followed by a separator: a stable
/// fingerprint (unlike `std`'s hasher, the same in every build).
pub(super) fn fingerprint(parts: &[&[u8]]) -> u64 {
    let mut hash = Fingerprint::default();
    for part in parts {
        hash.write(part);
        hash.end_part();
    }
    hash.0
}

/// [`fingerprint`] fed piece by piece (nothing to gather first): bytes
/// written up to [`Fingerprint::end_part`] are one part.
pub(super) struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fingerprint {
    pub fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub fn end_part(&mut self) {
        self.write(&[0xff]);
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    put_u64(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_opt_i64(out: &mut Vec<u8>, v: Option<i64>) {
    match v {
        None => put_u64(out, 0),
        Some(v) => {
            put_u64(out, 1);
            put_i64(out, v);
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

pub(super) fn encode(state: &ServerState) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + state.clients.len() * 128);
    out.push(FORMAT);
    put_u64(&mut out, state.clients.len() as u64);
    for c in &state.clients {
        put_i64(&mut out, c.client_id);
        put_str(&mut out, &c.identity);
        for v in [c.counters.rx, c.counters.tx, c.total.rx, c.total.tx] {
            put_u64(&mut out, v);
        }
        put_str(&mut out, &c.month);
        put_u64(&mut out, c.month_bytes.rx);
        put_u64(&mut out, c.month_bytes.tx);
        put_opt_i64(&mut out, c.latest_handshake);
        put_opt_i64(&mut out, c.last_seen);
        put_i64(&mut out, c.last_sync_at);
        out.push(u8::from(c.on_host));
        put_opt_i64(&mut out, c.open_session);
        out.extend_from_slice(&c.endpoint.to_le_bytes());
        out.extend_from_slice(&c.attributes.to_le_bytes());
    }
    out
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, StateError> {
        let b = *self.data.get(self.at).ok_or(StateError::Truncated)?;
        self.at += 1;
        Ok(b)
    }

    fn u64(&mut self) -> Result<u64, StateError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(StateError::Invalid);
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(StateError::Invalid)
    }

    fn i64(&mut self) -> Result<i64, StateError> {
        let z = self.u64()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    fn opt_i64(&mut self) -> Result<Option<i64>, StateError> {
        match self.byte()? {
            0 => Ok(None),
            1 => self.i64().map(Some),
            _ => Err(StateError::Invalid),
        }
    }

    fn bytes(&mut self, len: u64) -> Result<&'a [u8], StateError> {
        let len = usize::try_from(len).map_err(|_| StateError::Invalid)?;
        let end = self.at.checked_add(len).ok_or(StateError::Invalid)?;
        let slice = self.data.get(self.at..end).ok_or(StateError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn fixed_u64(&mut self) -> Result<u64, StateError> {
        let mut v = [0u8; 8];
        v.copy_from_slice(self.bytes(8)?);
        Ok(u64::from_le_bytes(v))
    }

    fn string(&mut self) -> Result<String, StateError> {
        let len = self.u64()?;
        let bytes = self.bytes(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| StateError::Invalid)
    }
}

pub(super) fn decode(data: &[u8]) -> Result<ServerState, StateError> {
    let mut r = Reader { data, at: 0 };
    let format = r.byte()?;
    if format != FORMAT {
        return Err(StateError::Format(format));
    }
    let count = r.u64()?;
    // Each client takes at least 20 bytes: a count beyond that is damage,
    // not a reason to reserve memory.
    if count > (data.len() as u64) / 20 + 1 {
        return Err(StateError::Invalid);
    }
    let mut clients = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let client_id = r.i64()?;
        let identity = r.string()?;
        let counters = Counters::new(r.u64()?, r.u64()?);
        let total = Counters::new(r.u64()?, r.u64()?);
        let month = r.string()?;
        let month_bytes = Counters::new(r.u64()?, r.u64()?);
        let latest_handshake = r.opt_i64()?;
        let last_seen = r.opt_i64()?;
        let last_sync_at = r.i64()?;
        let on_host = match r.byte()? {
            0 => false,
            1 => true,
            _ => return Err(StateError::Invalid),
        };
        let open_session = r.opt_i64()?;
        let endpoint = r.fixed_u64()?;
        let attributes = r.fixed_u64()?;
        clients.push(ClientState {
            client_id,
            identity,
            counters,
            total,
            month,
            month_bytes,
            latest_handshake,
            last_seen,
            last_sync_at,
            on_host,
            open_session,
            endpoint,
            attributes,
        });
    }
    if r.at != data.len() {
        return Err(StateError::Invalid);
    }
    Ok(ServerState { clients, stamp: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(i: i64) -> ClientState {
        ClientState {
            client_id: i,
            identity: format!("key{i}+/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            counters: Counters::new(u64::MAX, 0),
            total: Counters::new(1 << 40, 12_345),
            month: "2026-11".into(),
            month_bytes: Counters::new(7, 8),
            latest_handshake: Some(if i == 3 { i64::MIN } else { 1_790_000_000 }),
            last_seen: if i % 2 == 0 { None } else { Some(-5) },
            last_sync_at: i64::MIN,
            on_host: i % 3 == 0,
            open_session: if i % 2 == 0 { Some(i64::MAX) } else { None },
            endpoint: if i % 2 == 0 { u64::MAX } else { 0 },
            attributes: fingerprint(&[b"10.0.0.2/32", b""]),
        }
    }

    #[test]
    fn a_state_comes_back_exactly_as_it_was_stored() {
        let state = ServerState { clients: (0..50).map(client).collect(), stamp: 0 };
        assert_eq!(decode(&encode(&state)), Ok(state));
        let empty = ServerState::default();
        assert_eq!(decode(&encode(&empty)), Ok(empty));
    }

    #[test]
    fn a_damaged_state_is_an_error_not_a_panic() {
        let data = encode(&ServerState { clients: (0..3).map(client).collect(), stamp: 0 });
        for len in 0..data.len() {
            assert!(decode(&data[..len]).is_err(), "truncated to {len}");
        }
        let mut extra = data.clone();
        extra.push(0);
        assert_eq!(decode(&extra), Err(StateError::Invalid));
        let mut wrong = data.clone();
        wrong[0] = 9;
        assert_eq!(decode(&wrong), Err(StateError::Format(9)));
        // A huge client count is refused before anything is reserved.
        assert_eq!(decode(&[FORMAT, 0xff, 0xff, 0xff, 0xff, 0x0f]), Err(StateError::Invalid));
        // Every single-byte corruption decodes to something or fails cleanly.
        for i in 1..data.len() {
            let mut bad = data.clone();
            bad[i] ^= 0xa5;
            let _ = decode(&bad);
        }
    }

    #[test]
    fn a_months_usage_adds_the_live_bytes_only_in_the_states_month() {
        let c = client(1);
        assert_eq!(c.month_usage("2026-11", Counters::new(1, 1)), Counters::new(8, 9));
        assert_eq!(c.month_usage("2026-10", Counters::new(1, 1)), Counters::new(1, 1));
    }

    #[test]
    fn fingerprints_separate_their_parts() {
        assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
        assert_eq!(fingerprint(&[b"x"]), fingerprint(&[b"x"]));
        let mut fed = Fingerprint::default();
        fed.write(b"a");
        fed.write(b"b");
        fed.end_part();
        fed.write(b"c");
        fed.end_part();
        assert_eq!(fed.finish(), fingerprint(&[b"ab", b"c"]), "fed in pieces, the same value as stored before");
    }
}
