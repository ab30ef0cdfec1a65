//! Any input: no panic; an accepted address is short, normalised once and for all, and contains
//! exactly the one `@` the rules allow.
#![no_main]

use gatehouse_core::email::{normalize_email, MAX_EMAIL_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    if let Ok(email) = normalize_email(input) {
        assert!(email.len() <= MAX_EMAIL_LEN);
        assert_eq!(email.matches('@').count(), 1);
        assert_eq!(normalize_email(&email).as_deref(), Ok(email.as_str()));
    }
});
