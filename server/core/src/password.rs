//! Password rules after NIST SP 800-63B: a length floor and a generous ceiling, no composition
//! rules, and a refusal of passwords that are common or built from the account's own context.
//! Each refusal has a reason the page can show.

use unicode_normalization::UnicodeNormalization;
use zxcvbn::matching::patterns::MatchPattern;

use crate::email::local_part;

/// At least this many characters (Unicode code points).
pub const MIN_LEN: usize = 8;
/// The length the sign-up hint recommends.
pub const RECOMMENDED_LEN: usize = 15;
/// The longest password accepted; far above the 64 that NIST asks verifiers to allow.
pub const MAX_LEN: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordProblem {
    TooShort,
    TooLong,
    Common,
    ContainsEmail,
    ContainsProductName,
    /// In the breached-password corpus.
    Breached,
}

impl PasswordProblem {
    /// A stable code (message-catalogue key suffix and test assertion).
    pub fn code(self) -> &'static str {
        match self {
            PasswordProblem::TooShort => "too_short",
            PasswordProblem::TooLong => "too_long",
            PasswordProblem::Common => "common",
            PasswordProblem::ContainsEmail => "contains_email",
            PasswordProblem::ContainsProductName => "contains_product_name",
            PasswordProblem::Breached => "breached",
        }
    }
}

/// The form in which a password is hashed and verified: Unicode NFKC, so the same password typed
/// on different keyboards verifies. Nothing else is changed (no trimming, no case folding).
pub fn normalize_password(password: &str) -> String {
    password.nfkc().collect()
}

/// Checks a new password for an account with the given email, under the given product names
/// (the built-in name and the branded one).
pub fn check_new_password(
    password: &str,
    email: &str,
    product_names: &[&str],
) -> Result<(), PasswordProblem> {
    let normalized = normalize_password(password);
    let len = normalized.chars().count();
    if len < MIN_LEN {
        return Err(PasswordProblem::TooShort);
    }
    if len > MAX_LEN {
        return Err(PasswordProblem::TooLong);
    }
    let lower = normalized.to_lowercase();
    let local = local_part(email).to_lowercase();
    if local.chars().count() >= 3 && lower.contains(&local) {
        return Err(PasswordProblem::ContainsEmail);
    }
    for name in product_names {
        let name = name.trim().to_lowercase();
        if name.chars().count() >= 3 && lower.contains(&name) {
            return Err(PasswordProblem::ContainsProductName);
        }
    }
    if is_common_password(&normalized) {
        return Err(PasswordProblem::Common);
    }
    Ok(())
}

/// Passwords that take fewer guesses than this are refused as too easy to guess.
const MIN_GUESSES_LOG10: f64 = 5.0;

/// True when the password is commonly used or trivially guessable: the whole password is one
/// entry of the ranked list of the 30,000 most common passwords that ships inside the `zxcvbn`
/// crate (case-insensitive, also in l33t spelling), or it falls to fewer than 100,000 guesses
/// (repeated or sequential characters, keyboard walks: the "expected" values NIST asks
/// verifiers to refuse).
pub fn is_common_password(password: &str) -> bool {
    if password.chars().count() > 100 {
        return false;
    }
    let entropy = zxcvbn::zxcvbn(password, &[]);
    if entropy.guesses_log10() < MIN_GUESSES_LOG10 {
        return true;
    }
    let last = password.chars().count().saturating_sub(1);
    entropy.sequence().iter().any(|m| {
        m.i == 0
            && m.j == last
            && matches!(&m.pattern, MatchPattern::Dictionary(d)
                // The dictionary type is not nameable outside the crate; its Debug form is stable.
                if format!("{:?}", d.dictionary_name) == "Passwords")
    })
}

/// A 0-4 strength estimate for the sign-up hint.
pub fn strength(password: &str, user_inputs: &[&str]) -> u8 {
    let truncated: String = password.chars().take(100).collect();
    zxcvbn::zxcvbn(&truncated, user_inputs).score() as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMAIL: &str = "alice.walker@example.com";
    const NAMES: &[&str] = &["Gatehouse"];

    fn check(p: &str) -> Result<(), PasswordProblem> {
        check_new_password(p, EMAIL, NAMES)
    }

    #[test]
    fn length_floor_and_ceiling_in_code_points() {
        assert_eq!(check("Zq9#mT2"), Err(PasswordProblem::TooShort));
        assert_eq!(check("Zq9#mT2v"), Ok(()));
        for n in [64usize, 128, 1000] {
            let p: String = "correct horse battery staple "
                .chars()
                .cycle()
                .take(n)
                .collect();
            assert_eq!(check(&p), Ok(()), "{n} characters");
        }
        assert_eq!(check(&"x7".repeat(600)), Err(PasswordProblem::TooLong));
        // Emoji and CJK count by code point: 8 of them is enough.
        assert_eq!(check("🔑🐉🌊🎲🧭🪐🍄🎻"), Ok(()));
        assert_eq!(check("秘密の合言葉です"), Ok(()));
    }

    #[test]
    fn no_composition_rules() {
        assert_eq!(check("plainlowercasewordsonly"), Ok(()));
        assert_eq!(check(" !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ "), Ok(()));
    }

    #[test]
    fn common_passwords_are_refused() {
        for p in [
            "password",
            "12345678",
            "qwertyuiop",
            "iloveyou",
            "Password1",
            "P@ssw0rd",
            "baseball",
            "sunshine",
        ] {
            assert_eq!(check(p), Err(PasswordProblem::Common), "{p}");
        }
        assert!(!is_common_password("vivid-otter-quarry-41"));
    }

    #[test]
    fn context_words_are_refused() {
        assert_eq!(
            check("my-Alice.Walker-pass"),
            Err(PasswordProblem::ContainsEmail)
        );
        assert_eq!(
            check("I love GATEHOUSE a lot"),
            Err(PasswordProblem::ContainsProductName)
        );
        assert_eq!(
            check_new_password(
                "acme rocks forever",
                "x@example.com",
                &["Gatehouse", "Acme"]
            ),
            Err(PasswordProblem::ContainsProductName)
        );
    }

    /// The 3,000 most common passwords (the head of the ranked list in the `zxcvbn` crate),
    /// kept in the repository so the test does not depend on how the crate stores its list.
    const TOP_3000: &str = include_str!("../testdata/common-passwords-top3000.txt");

    #[test]
    fn the_three_thousand_most_common_passwords_are_all_refused_with_a_reason() {
        let list: Vec<&str> = TOP_3000.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(list.len(), 3000);
        for p in list {
            match check_new_password(p, "someone@example.com", NAMES) {
                Err(PasswordProblem::TooShort | PasswordProblem::Common) => {}
                other => panic!("{p:?} was not refused as short or common: {other:?}"),
            }
        }
    }

    #[test]
    fn random_strong_passwords_are_almost_never_flagged_common() {
        use rand::{Rng, SeedableRng};
        const CHARSET: &[u8] =
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&*+-=?@^_~";
        let mut rng = rand::rngs::StdRng::seed_from_u64(16);
        let flagged = (0..10_000)
            .filter(|_| {
                let p: String = (0..16)
                    .map(|_| CHARSET[rng.gen_range(0..CHARSET.len())] as char)
                    .collect();
                is_common_password(&p)
            })
            .count();
        assert!(
            flagged < 10,
            "{flagged} of 10,000 random 16-character passwords flagged (limit: under 0.1%)"
        );
    }

    #[test]
    fn password_normalisation_is_stable_for_any_unicode() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let pool: Vec<char> =
            "aAzZ09 ~ÅåÉéﬁﬂ①⑴ｶﾞ가각\u{301}\u{308}\u{0130}ßẞΣσς😀👩‍💻\u{200d}\u{fe0f}ﬀ℃Ω"
                .chars()
                .collect();
        for _ in 0..100_000 {
            let len = rng.gen_range(0..24);
            let p: String = (0..len)
                .map(|_| pool[rng.gen_range(0..pool.len())])
                .collect();
            let once = normalize_password(&p);
            assert_eq!(normalize_password(&once), once, "{p:?}");
        }
    }

    #[test]
    fn normalization_is_stable_and_exact() {
        let composed = "caf\u{e9}-long-phrase";
        let decomposed = "cafe\u{301}-long-phrase";
        assert_eq!(normalize_password(composed), normalize_password(decomposed));
        assert_ne!(
            normalize_password("Password1x"),
            normalize_password("password1x")
        );
        assert_ne!(
            normalize_password("secret phrase "),
            normalize_password("secret phrase")
        );
    }
}
