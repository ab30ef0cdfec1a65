//! Secrets at rest that must be read back (TOTP seeds, later provider client secrets): sealed
//! with XChaCha20-Poly1305 under a key derived from the server's secret key, with a random
//! nonce per value and the value's purpose as associated data, so a sealed value cannot be
//! moved to another column or row kind and still open.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::SecretKey;

/// Versioned so the format can change later.
const VERSION: &str = "v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealing failed")]
    Seal,
    #[error("the sealed value is damaged, of another kind, or sealed under another key")]
    Open,
}

fn cipher(key: &SecretKey) -> Result<XChaCha20Poly1305, SealError> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()).map_err(|_| SealError::Seal)?;
    mac.update(b"gatehouse seal key v1");
    let derived = mac.finalize().into_bytes();
    XChaCha20Poly1305::new_from_slice(&derived).map_err(|_| SealError::Seal)
}

/// Seals `plaintext` for `purpose`: `v1.<base64 nonce and ciphertext>`.
pub fn seal(key: &SecretKey, purpose: &str, plaintext: &[u8]) -> Result<String, SealError> {
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let ciphertext = cipher(key)?
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: purpose.as_bytes(),
            },
        )
        .map_err(|_| SealError::Seal)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ciphertext);
    Ok(format!("{VERSION}.{}", STANDARD.encode(out)))
}

/// Opens a value sealed for `purpose` under this key.
pub fn open(key: &SecretKey, purpose: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
    let body = sealed.strip_prefix("v1.").ok_or(SealError::Open)?;
    let raw = STANDARD.decode(body).map_err(|_| SealError::Open)?;
    if raw.len() < 24 + 16 {
        return Err(SealError::Open);
    }
    let (nonce, ciphertext) = raw.split_at(24);
    cipher(key)?
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: purpose.as_bytes(),
            },
        )
        .map_err(|_| SealError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_purpose() {
        let key = SecretKey::from_bytes([3; 32]);
        let sealed = seal(&key, "totp", b"seed bytes").unwrap();
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("seed"));
        assert_eq!(open(&key, "totp", &sealed).unwrap(), b"seed bytes");
        assert_ne!(
            seal(&key, "totp", b"seed bytes").unwrap(),
            sealed,
            "a fresh nonce each time"
        );
        assert_eq!(open(&key, "client_secret", &sealed), Err(SealError::Open));
        assert_eq!(
            open(&SecretKey::from_bytes([4; 32]), "totp", &sealed),
            Err(SealError::Open)
        );
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            open(&key, "totp", std::str::from_utf8(&tampered).unwrap()),
            Err(SealError::Open)
        );
        for bad in ["", "v1.", "v2.AAAA", "v1.!!!!", "v1.AAAA"] {
            assert_eq!(open(&key, "totp", bad), Err(SealError::Open), "{bad:?}");
        }
    }
}
