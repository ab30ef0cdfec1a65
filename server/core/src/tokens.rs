//! Random identifiers and secret tokens, and the hashes under which tokens are stored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::secret::SecretKey;

fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A 128-bit random identifier (22 base64url characters): flows, sessions' public ids, rows.
pub fn random_id() -> String {
    random_b64(16)
}

/// A 256-bit random secret token (43 base64url characters): session cookies.
pub fn secret_token() -> String {
    random_b64(32)
}

/// How a bearer token is stored: SHA-256, hex. A leaked table does not yield live tokens.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// A keyed hash (HMAC-SHA-256) over the given parts, hex: one-time codes are stored this way,
/// bound to their flow so a code can only ever match its own flow.
pub fn keyed_hash(key: &SecretKey, parts: &[&str]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable_key(),
    };
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    hex(&mac.finalize().into_bytes())
}

// HMAC accepts keys of any length, so construction cannot fail for a 32-byte key.
fn unreachable_key() -> Hmac<Sha256> {
    #[allow(clippy::expect_used)]
    Hmac::<Sha256>::new_from_slice(&[0u8; 32]).expect("HMAC takes any key length")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tokens_are_long_random_and_unique() {
        let mut seen = HashSet::new();
        for _ in 0..100_000 {
            let t = secret_token();
            assert_eq!(t.len(), 43);
            assert!(seen.insert(t));
        }
        assert_eq!(random_id().len(), 22);
    }

    #[test]
    fn keyed_hash_depends_on_key_and_every_part() {
        let k1 = SecretKey::from_bytes([1; 32]);
        let k2 = SecretKey::from_bytes([2; 32]);
        let a = keyed_hash(&k1, &["sign_in", "flow", "123456"]);
        assert_eq!(a, keyed_hash(&k1, &["sign_in", "flow", "123456"]));
        assert_ne!(a, keyed_hash(&k2, &["sign_in", "flow", "123456"]));
        assert_ne!(a, keyed_hash(&k1, &["sign_in", "flow", "123457"]));
        assert_ne!(keyed_hash(&k1, &["ab", "c"]), keyed_hash(&k1, &["a", "bc"]));
        assert_eq!(token_hash("x").len(), 64);
    }
}
