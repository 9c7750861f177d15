//! Passwords (argon2id), session tokens and the session cookie.
//!
//! A session token is 32 random bytes sent to the browser once, in an
//! HttpOnly, SameSite=Strict cookie; the database keeps only its SHA-256, so
//! a copy of the database does not let anyone in.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::HeaderMap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;
use std::time::Duration;

pub const SESSION_COOKIE: &str = "tollgate_session";
pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("the password must have at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

pub fn check_password_strength(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

/// An argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`). CPU-heavy: call
/// from a blocking thread.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Checks `password` against `stored`; `None` (no such admin) is checked
/// against a fixed hash so both cases take the same time.
pub fn verify_password(stored: Option<&str>, password: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let (stored, real) = match stored {
        Some(s) => (s, true),
        None => match dummy_hash() {
            Some(d) => (d, false),
            None => return false,
        },
    };
    let Ok(parsed) = PasswordHash::new(stored) else {
        tracing::error!("a stored password hash does not parse");
        return false;
    };
    let ok = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
    ok && real
}

fn dummy_hash() -> Option<&'static str> {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    DUMMY
        .get_or_init(|| {
            let mut random = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut random);
            hash_password(&URL_SAFE_NO_PAD.encode(random)).ok()
        })
        .as_deref()
}

/// A new session token: the cookie value and the hash to store.
pub fn new_session_token() -> (String, [u8; 32]) {
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    let token = URL_SAFE_NO_PAD.encode(raw);
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The session token from a request's `Cookie` headers, if well-formed.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| v.len() == 43 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

pub fn session_cookie(token: &str, ttl: Duration, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        ttl.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

pub fn clear_session_cookie(secure: bool) -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}", if secure { "; Secure" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn a_password_verifies_only_against_its_own_hash() {
        let hash = hash_password("correct horse battery staple").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(Some(&hash), "correct horse battery staple"));
        assert!(!verify_password(Some(&hash), "correct horse battery stapler"));
        assert!(!verify_password(None, "correct horse battery staple"));
        assert!(!verify_password(Some("not a hash"), "x"));
    }

    #[test]
    fn weak_passwords_are_refused() {
        assert!(matches!(check_password_strength("short"), Err(PasswordError::TooShort)));
        assert!(check_password_strength("twelve chars").is_ok());
        assert!(matches!(check_password_strength(&"x".repeat(2000)), Err(PasswordError::TooLong)));
    }

    #[test]
    fn the_session_cookie_is_http_only_and_strict() {
        let (token, hash) = new_session_token();
        assert_eq!(token.len(), 43);
        assert_eq!(token_hash(&token), hash);
        let cookie = session_cookie(&token, Duration::from_secs(60), false);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && !cookie.contains("Secure"));
        assert!(session_cookie(&token, Duration::from_secs(60), true).ends_with("; Secure"));

        let mut headers = HeaderMap::new();
        headers.insert("cookie", HeaderValue::from_str(&format!("a=b; {SESSION_COOKIE}={token}")).unwrap());
        assert_eq!(session_token(&headers), Some(token));
        headers.insert("cookie", HeaderValue::from_static("tollgate_session=short"));
        assert_eq!(session_token(&headers), None);
    }
}
