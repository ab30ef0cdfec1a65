//! Authenticator-app codes (TOTP, RFC 6238 over HOTP, RFC 4226): HMAC-SHA-1, 6 digits, 30-second
//! steps. A code is accepted for the current step and the one before it (entry delay), and each
//! accepted step is recorded so that no code, nor any older one, is ever accepted again.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;

use crate::secret::SecretString;

pub const DIGITS: u32 = 6;
pub const STEP_SECONDS: i64 = 30;
/// Secrets are 160 bits, the size RFC 4226 recommends for HMAC-SHA-1.
pub const SECRET_BYTES: usize = 20;

/// A TOTP secret. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

impl TotpSecret {
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        TotpSecret(bytes)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        TotpSecret(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret as people type it into an app: RFC 4648 base32 without padding.
    pub fn to_base32(&self) -> String {
        base32_encode(&self.0)
    }
}

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

pub fn base32_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let bits = u64::from_be_bytes([0, 0, 0, buf[0], buf[1], buf[2], buf[3], buf[4]]);
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..chars {
            let index = ((bits >> (35 - i * 5)) & 0x1f) as usize;
            out.push(char::from(ALPHABET[index]));
        }
    }
    out
}

/// Decodes RFC 4648 base32 (case-insensitive; spaces and padding ignored).
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u64, 0u32);
    for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let value = ALPHABET
            .iter()
            .position(|a| char::from(*a) == c.to_ascii_uppercase())? as u64;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// HOTP (RFC 4226 section 5.3): dynamic truncation of HMAC-SHA-1(secret, counter).
pub fn hotp(secret: &TotpSecret, counter: u64) -> u32 {
    let Ok(mut mac) = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes()) else {
        return 0;
    };
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = (u32::from(digest[offset]) & 0x7f) << 24
        | u32::from(digest[offset + 1]) << 16
        | u32::from(digest[offset + 2]) << 8
        | u32::from(digest[offset + 3]);
    binary % 10u32.pow(DIGITS)
}

/// The step a Unix time (seconds) falls in.
pub fn step_at(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP_SECONDS)
}

/// The code for a step, zero-padded to six digits.
pub fn code_for_step(secret: &TotpSecret, step: i64) -> String {
    format!("{:06}", hotp(secret, step.max(0) as u64))
}

/// Checks a code at `unix_seconds`: the current step, then the previous one. Only steps later
/// than `last_used_step` count. Returns the matching step; the caller must record it with a
/// single conditional write before treating the code as accepted.
pub fn verify(
    secret: &TotpSecret,
    code: &SecretString,
    unix_seconds: i64,
    last_used_step: i64,
) -> Option<i64> {
    let typed = code.expose();
    if typed.len() != DIGITS as usize || !typed.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(unix_seconds);
    [now, now - 1]
        .into_iter()
        .filter(|step| *step > last_used_step)
        .find(|step| {
            let expected = code_for_step(secret, *step);
            subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), typed.as_bytes()).into()
        })
}

/// The `otpauth://` URI that authenticator apps read from the QR code.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &TotpSecret) -> String {
    let issuer = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        account = percent_encode(account),
        secret = secret.to_base32(),
    )
}

/// RFC 3986 percent-encoding of everything but unreserved characters.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows (seed "12345678901234567890"), last six digits.
    #[test]
    fn rfc_6238_test_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(code_for_step(&secret, step_at(time)), code, "T = {time}");
        }
    }

    #[test]
    fn rfc_4226_hotp_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(hotp(&secret, counter as u64), *code);
        }
    }

    #[test]
    fn accepts_the_current_and_previous_step_only() {
        let secret = TotpSecret::generate();
        let now = 1_800_000_015;
        let step = step_at(now);
        let code = |s: i64| SecretString::new(code_for_step(&secret, s));
        assert_eq!(verify(&secret, &code(step), now, -1), Some(step));
        assert_eq!(verify(&secret, &code(step - 1), now, -1), Some(step - 1));
        for other in [step - 2, step + 1, step + 2] {
            assert_eq!(
                verify(&secret, &code(other), now, -1),
                None,
                "step offset {}",
                other - step
            );
        }
        assert_eq!(verify(&secret, &SecretString::new("12345"), now, -1), None);
        assert_eq!(verify(&secret, &SecretString::new("12345a"), now, -1), None);
    }

    #[test]
    fn a_used_step_and_every_earlier_one_are_refused() {
        let secret = TotpSecret::generate();
        let now = 1_800_000_015;
        let step = step_at(now);
        let current = SecretString::new(code_for_step(&secret, step));
        let previous = SecretString::new(code_for_step(&secret, step - 1));
        assert_eq!(
            verify(&secret, &current, now, step),
            None,
            "replay of the used code"
        );
        assert_eq!(
            verify(&secret, &previous, now, step),
            None,
            "a lower step after a higher one"
        );
        assert_eq!(verify(&secret, &current, now, step - 1), Some(step));
    }

    #[test]
    fn otpauth_uri_is_exact() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        assert_eq!(secret.to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            otpauth_uri("Acme ID", "ada+test@example.com", &secret),
            "otpauth://totp/Acme%20ID:ada%2Btest%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Acme%20ID&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn base32_matches_rfc_4648() {
        for (input, out) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(input.as_bytes()), out);
        }
        assert_eq!(TotpSecret::generate().to_base32().len(), 32);
        for (input, out) in [
            ("foobar", "mzxw 6ytb oi"),
            ("fooba", "MZXW6YTB"),
            ("f", "MY======"),
        ] {
            assert_eq!(base32_decode(out).as_deref(), Some(input.as_bytes()));
        }
        assert_eq!(base32_decode("M1"), None);
        assert!(!format!("{:?}", TotpSecret::generate()).contains('A'));
    }
}
