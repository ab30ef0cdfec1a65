//! Email addresses as identifiers: one normalised form per mailbox, so that case and Unicode
//! variants of an address are one identity.

use unicode_normalization::UnicodeNormalization;

/// Why an email address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailProblem {
    Missing,
    Invalid,
}

/// The longest address accepted (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// Normalises an email address: trims surrounding whitespace, applies Unicode NFC, lowercases
/// it and drops a trailing dot from the domain. Idempotent. Refuses anything that is not a
/// plausible `local@domain` address.
pub fn normalize_email(input: &str) -> Result<String, EmailProblem> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(EmailProblem::Missing);
    }
    let nfc: String = trimmed.nfc().collect::<String>().to_lowercase();
    let nfc: String = nfc.nfc().collect();
    let (local, domain) = nfc.rsplit_once('@').ok_or(EmailProblem::Invalid)?;
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if local.is_empty()
        || local.len() > 64
        || domain.is_empty()
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
        || local.contains('@')
    {
        return Err(EmailProblem::Invalid);
    }
    let ok_local = local
        .chars()
        .all(|c| !c.is_control() && !c.is_whitespace() && !"<>()[]\\,;:\"".contains(c));
    let ok_domain = domain
        .chars()
        .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
    if !ok_local || !ok_domain {
        return Err(EmailProblem::Invalid);
    }
    let out = format!("{local}@{domain}");
    if out.len() > MAX_EMAIL_LEN {
        return Err(EmailProblem::Invalid);
    }
    Ok(out)
}

/// The local part of a normalised address (used by the password rules).
pub fn local_part(email: &str) -> &str {
    email.rsplit_once('@').map(|(l, _)| l).unwrap_or(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_space_and_trailing_dot() {
        assert_eq!(
            normalize_email("  Alice@Example.COM. ").as_deref(),
            Ok("alice@example.com")
        );
        assert_eq!(
            normalize_email("bob+tag@sub.example.org").as_deref(),
            Ok("bob+tag@sub.example.org")
        );
    }

    #[test]
    fn nfc_and_nfd_forms_are_one_identity() {
        let nfc = "jos\u{e9}@example.com";
        let nfd = "jose\u{301}@example.com";
        assert_eq!(normalize_email(nfc), normalize_email(nfd));
    }

    #[test]
    fn normalisation_is_idempotent() {
        for raw in ["A@B.co", " x.y@EXAMPLE.com.", "Ünïcödé@exämple.de", "q@w.e"] {
            let once = normalize_email(raw).unwrap_or_default();
            assert_eq!(normalize_email(&once).unwrap_or_default(), once, "{raw}");
        }
    }

    #[test]
    fn normalisation_is_idempotent_for_any_input() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let pool: Vec<char> = "abcXYZ019.-_+@@.. \tÉéÅa\u{301}\u{308}\u{0130}ıßẞΣςﬁ①ｶ가😀<>\"\0"
            .chars()
            .collect();
        let mut accepted = 0;
        for _ in 0..100_000 {
            let len = rng.gen_range(0..30);
            let raw: String = (0..len)
                .map(|_| pool[rng.gen_range(0..pool.len())])
                .collect();
            if let Ok(once) = normalize_email(&raw) {
                accepted += 1;
                assert_eq!(
                    normalize_email(&once).as_deref(),
                    Ok(once.as_str()),
                    "{raw:?}"
                );
            }
        }
        assert!(
            accepted > 100,
            "the generator must reach valid addresses too ({accepted})"
        );
    }

    #[test]
    fn refuses_malformed_addresses() {
        for bad in [
            "",
            "   ",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@.com",
            "a b@example.com",
            "a@exa mple.com",
            "a@@example.com",
            "a\0@example.com",
            "<a>@example.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?} should be refused");
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(normalize_email(&long).is_err());
    }
}
