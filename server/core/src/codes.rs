//! Email one-time codes: six digits from the operating system's CSPRNG, ten minutes of life,
//! five wrong tries, single use, and at most one resend a minute (which keeps the failure count).

use rand::Rng;

use crate::secret::{SecretKey, SecretString};
use crate::store::CodePurpose;
use crate::tokens::keyed_hash;

pub const CODE_DIGITS: usize = 6;
pub const CODE_TTL_MS: i64 = 10 * 60 * 1000;
pub const MAX_WRONG_ATTEMPTS: i64 = 5;
pub const RESEND_INTERVAL_MS: i64 = 60 * 1000;
/// How long the right to set a new password lasts after a reset code was proven.
pub const RESET_GRANT_TTL_MS: i64 = 10 * 60 * 1000;

/// A fresh code.
pub fn generate_code() -> SecretString {
    let n: u32 = rand::rngs::OsRng.gen_range(0..1_000_000);
    SecretString::new(format!("{n:06}"))
}

/// Reads what a person typed: digits only after removing spaces and dashes, exactly six.
pub fn parse_code(input: &str) -> Option<SecretString> {
    let digits: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    (digits.len() == CODE_DIGITS && digits.chars().all(|c| c.is_ascii_digit()))
        .then(|| SecretString::new(digits))
}

/// How a code is stored: keyed by the server secret and bound to its flow and purpose.
pub fn code_hash(
    key: &SecretKey,
    purpose: CodePurpose,
    flow_id: &str,
    code: &SecretString,
) -> String {
    keyed_hash(
        key,
        &["one-time-code", purpose.as_str(), flow_id, code.expose()],
    )
}

/// Recovery codes per set.
pub const RECOVERY_CODES: usize = 10;
/// Lower-case letters and digits without the look-alikes (i, l, o, 0, 1): 31 symbols, so ten of
/// them carry about 49 bits.
const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// A new recovery code, shown as `xxxxx-xxxxx`.
pub fn generate_recovery_code() -> SecretString {
    let mut rng = rand::rngs::OsRng;
    let chars: String = (0..10)
        .map(|_| char::from(RECOVERY_ALPHABET[rng.gen_range(0..RECOVERY_ALPHABET.len())]))
        .collect();
    SecretString::new(format!("{}-{}", &chars[..5], &chars[5..]))
}

/// Reads a typed recovery code: case, spaces and the dash do not matter.
pub fn parse_recovery_code(input: &str) -> Option<SecretString> {
    let chars: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    (chars.len() == 10 && chars.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)))
        .then(|| SecretString::new(chars))
}

/// How a recovery code is stored: keyed by the server secret and bound to its account.
pub fn recovery_code_hash(key: &SecretKey, user_id: &str, code: &SecretString) -> String {
    keyed_hash(key, &["recovery-code", user_id, code.expose()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..1000 {
            let c = generate_code();
            assert_eq!(c.expose().len(), 6);
            assert!(c.expose().chars().all(|c| c.is_ascii_digit()));
        }
    }

    #[test]
    fn parse_accepts_spacing_and_refuses_the_rest() {
        assert_eq!(
            parse_code(" 123 456 ").map(|c| c.expose().to_string()),
            Some("123456".into())
        );
        assert_eq!(
            parse_code("123-456").map(|c| c.expose().to_string()),
            Some("123456".into())
        );
        for bad in ["", "12345", "1234567", "12a456", "１２３４５６", "123456\0"] {
            assert!(parse_code(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn recovery_codes_read_back_however_they_are_typed() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let code = generate_recovery_code();
            assert_eq!(code.expose().len(), 11);
            assert_eq!(&code.expose()[5..6], "-");
            let parsed = parse_recovery_code(code.expose()).unwrap();
            assert_eq!(
                parse_recovery_code(&code.expose().to_uppercase()).unwrap(),
                parsed
            );
            assert_eq!(
                parse_recovery_code(&format!(" {} ", code.expose().replace('-', " "))).unwrap(),
                parsed
            );
            assert!(seen.insert(parsed.expose().to_string()));
        }
        for bad in [
            "",
            "abcde-fghi",
            "abcde-fghijk",
            "abcde-fghi1",
            "123456",
            "abcde_fghij",
        ] {
            assert!(parse_recovery_code(bad).is_none(), "{bad:?}");
        }
        let key = SecretKey::from_bytes([1; 32]);
        let code = parse_recovery_code("abcde-fghjk").unwrap();
        assert_ne!(
            recovery_code_hash(&key, "user-a", &code),
            recovery_code_hash(&key, "user-b", &code)
        );
    }

    #[test]
    fn hash_is_bound_to_flow_and_purpose() {
        let key = SecretKey::from_bytes([9; 32]);
        let code = SecretString::new("123456");
        let a = code_hash(&key, CodePurpose::SignIn, "flow-a", &code);
        assert_ne!(a, code_hash(&key, CodePurpose::SignIn, "flow-b", &code));
        assert_ne!(
            a,
            code_hash(&key, CodePurpose::ResetPassword, "flow-a", &code)
        );
    }
}
