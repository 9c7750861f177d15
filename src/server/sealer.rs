//! Secrets at rest: client private and preshared keys, SSH private keys
//! given inline, OpenVPN management passwords. Each is stored as
//! `v1:<key id>:<base64(nonce ‖ ciphertext ‖ tag)>`, sealed with
//! XChaCha20-Poly1305 under a 32-byte key kept in a file outside the
//! database (0600, created by `tollgate setup`), with the table, column and
//! row as associated data so a value copied to another row does not open.
//! Without the key file nothing is stored or read in plaintext instead: the
//! panel refuses to start and says which file is missing.

use crate::domain::Secret;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

const VERSION: &str = "v1";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the secrets key file {0} does not exist; run `tollgate setup` to create it")]
    MissingKey(PathBuf),
    #[error("the secrets key file {path}: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("a stored secret was sealed with key {0}, not with this panel's key file")]
    OtherKey(String),
    #[error("secrets cannot be stored or read without the secrets key file (see `secrets_key_file`)")]
    NoKey,
    #[error("a stored secret is damaged or belongs to another row")]
    Damaged,
    #[error("writing the secrets key file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// The panel's secrets key.
pub struct Sealer {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealer({})", self.id)
    }
}

/// Whether a stored value is sealed (else it predates sealing).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with("v1:")
}

impl Sealer {
    fn from_key(key: &[u8; 32]) -> Self {
        let digest = Sha256::digest(key);
        let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        Self { id, cipher: XChaCha20Poly1305::new(key.into()) }
    }

    /// Reads the key file (base64 of 32 bytes).
    pub fn load(path: &Path) -> Result<Self, SealError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(SealError::MissingKey(path.into())),
            Err(e) => return Err(SealError::BadKey { path: path.into(), reason: e.to_string() }),
        };
        let bad = |reason: &str| SealError::BadKey { path: path.into(), reason: reason.to_owned() };
        let bytes = STANDARD.decode(text.trim()).map_err(|_| bad("not base64"))?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| bad("not a 32-byte key"))?;
        Ok(Self::from_key(&key))
    }

    /// Creates the key file with a new random key, readable by its owner
    /// only. Returns false (and changes nothing) when it already exists.
    pub fn create(path: &Path) -> Result<bool, SealError> {
        if path.exists() {
            return Ok(false);
        }
        let write = |source| SealError::Write { path: path.into(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(write)?;
        }
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(write)?;
        file.write_all(format!("{}\n", STANDARD.encode(key)).as_bytes()).map_err(write)?;
        file.sync_all().map_err(write)?;
        Ok(true)
    }

    /// Seals `plain` for the place named by `aad` (`table.column:row`).
    pub fn seal(&self, aad: &str, plain: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain.as_bytes(), aad: aad.as_bytes() })
            .map_err(|_| SealError::Damaged)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{VERSION}:{}:{}", self.id, STANDARD.encode(out)))
    }

    /// Opens a value sealed by [`Sealer::seal`] for the same `aad`.
    pub fn open(&self, aad: &str, stored: &str) -> Result<Secret, SealError> {
        let mut parts = stored.splitn(3, ':');
        let (Some(VERSION), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SealError::Damaged);
        };
        if id != self.id {
            return Err(SealError::OtherKey(id.to_owned()));
        }
        let bytes = STANDARD.decode(body).map_err(|_| SealError::Damaged)?;
        if bytes.len() < 24 {
            return Err(SealError::Damaged);
        }
        let (nonce, sealed) = bytes.split_at(24);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: aad.as_bytes() })
            .map_err(|_| SealError::Damaged)?;
        String::from_utf8(plain).map(Secret::new).map_err(|_| SealError::Damaged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> (tempfile::TempDir, Sealer) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tollgate.key");
        assert!(Sealer::create(&path).unwrap());
        (dir, Sealer::load(&path).unwrap())
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_own_row_and_never_shows_its_text() {
        let (_dir, s) = sealer();
        let sealed = s.seal("clients.private_key:7", "cGxhaW4ga2V5").unwrap();
        assert!(is_sealed(&sealed) && !sealed.contains("cGxhaW4ga2V5"), "{sealed}");
        assert_eq!(s.open("clients.private_key:7", &sealed).unwrap().expose(), "cGxhaW4ga2V5");
        assert!(matches!(s.open("clients.private_key:8", &sealed), Err(SealError::Damaged)));
        // Two seals of the same text differ (random nonces).
        assert_ne!(sealed, s.seal("clients.private_key:7", "cGxhaW4ga2V5").unwrap());
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(s.open("clients.private_key:7", &tampered).is_err());
    }

    #[test]
    fn the_key_file_is_created_once_owner_only_and_a_missing_one_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("tollgate.key");
        let missing = Sealer::load(&path).unwrap_err();
        assert!(missing.to_string().contains("run `tollgate setup`"), "{missing}");
        assert!(Sealer::create(&path).unwrap());
        let first = std::fs::read_to_string(&path).unwrap();
        assert!(!Sealer::create(&path).unwrap(), "an existing key is never replaced");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // A value sealed under another key says so.
        let other_path = dir.path().join("other.key");
        Sealer::create(&other_path).unwrap();
        let other = Sealer::load(&other_path).unwrap();
        let sealed = other.seal("a", "b").unwrap();
        assert!(matches!(Sealer::load(&path).unwrap().open("a", &sealed), Err(SealError::OtherKey(_))));
    }
}
