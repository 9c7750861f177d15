//! WireGuard keys.
//!
//! Only public keys are ever held as values. Private and preshared keys that
//! appear in `wg show dump` output are validated and dropped by the parser, so
//! there is no type here that could carry one into a log line, a row or a
//! response.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A Curve25519 public key: 32 bytes, written as 44 characters of padded base64.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a WireGuard key is 44 characters of base64, got {0} characters")]
    Length(usize),
    #[error("a WireGuard key must be base64")]
    NotBase64,
}

/// Checks that `text` is a well-formed WireGuard key (32 bytes of padded base64)
/// and returns its bytes. Used for public keys and, without keeping the value,
/// for private and preshared keys.
pub(crate) fn decode_key(text: &str) -> Result<[u8; 32], KeyError> {
    if text.len() != 44 {
        return Err(KeyError::Length(text.chars().count()));
    }
    let mut out = [0u8; 32];
    // 44 padded base64 characters decode to exactly 32 bytes when valid.
    let written = STANDARD.decode_slice(text, &mut out).map_err(|_| KeyError::NotBase64)?;
    if written != 32 {
        return Err(KeyError::NotBase64);
    }
    Ok(out)
}

impl PublicKey {
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        decode_key(text.trim()).map(Self)
    }

    /// The key in base64, as `wg` prints it (what `to_string` gives, with
    /// one allocation instead of two).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The key in base64 written into `buffer`, without allocating.
    pub fn write_base64<'b>(&self, buffer: &'b mut [u8; 44]) -> &'b str {
        let written = STANDARD.encode_slice(self.0, buffer).unwrap_or(0);
        std::str::from_utf8(&buffer[..written]).unwrap_or("")
    }

    /// A key computed here (every 32 bytes are a key).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first eight characters, as admins recognise a key in a table.
    pub fn short(&self) -> String {
        let full = self.to_string();
        format!("{}…", &full[..8])
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl std::str::FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for PublicKey {
    type Error = KeyError;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Hashes public keys (32 uniformly random bytes) and their base64 text:
/// eight bytes at a time, mixed with a seed per map, a good hash at a
/// fraction of SipHash's cost. Keys come from hosts the admins run, not from
/// strangers, so flooding one bucket is not a concern.
#[derive(Clone, Copy)]
pub struct KeyHashing(u64);

impl Default for KeyHashing {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyHashing {
    pub fn new() -> Self {
        use std::hash::BuildHasher;
        Self(std::collections::hash_map::RandomState::new().hash_one(0u8))
    }
}

impl std::hash::BuildHasher for KeyHashing {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(self.0)
    }
}

pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(23) ^ u64::from_le_bytes(word)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    /// MurmurHash3's 64-bit finaliser: every input bit reaches every output
    /// bit, so no set of keys shares a bucket by construction.
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "lacRpYsTqY0YYTS6whjEVcQTSfehGdVnLFr4vbysvVc=";

    #[test]
    fn a_real_public_key_round_trips() {
        let key = PublicKey::parse(KEY).unwrap();
        assert_eq!(key.to_string(), KEY);
        assert_eq!(key.short(), "lacRpYsT…");
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(json, format!("\"{KEY}\""));
        assert_eq!(serde_json::from_str::<PublicKey>(&json).unwrap(), key);
    }

    #[test]
    fn keys_of_the_wrong_length_or_alphabet_are_refused() {
        assert_eq!(PublicKey::parse("abc"), Err(KeyError::Length(3)));
        assert_eq!(PublicKey::parse(&KEY[..43]), Err(KeyError::Length(43)));
        let bad = format!("{}!=", &KEY[..42]);
        assert_eq!(PublicKey::parse(&bad), Err(KeyError::NotBase64));
        // 44 characters, but padding in the middle.
        assert!(PublicKey::parse("====RpYsTqY0YYTS6whjEVcQTSfehGdVnLFr4vbysvVc").is_err());
        assert!(serde_json::from_str::<PublicKey>("\"'; rm -rf /\"").is_err());
    }
}
