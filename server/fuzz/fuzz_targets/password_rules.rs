//! Any password and address: the rules never panic, normalisation is stable, and a password
//! accepted for an address never contains that address's local part.
#![no_main]

use gatehouse_core::password::{check_new_password, normalize_password};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    let (password, email) = input.split_once('\u{1}').unwrap_or((input, "someone@example.com"));
    let once = normalize_password(password);
    assert_eq!(normalize_password(&once), once);
    if check_new_password(password, email, &["Gatehouse"]).is_ok() {
        let local = email.rsplit_once('@').map(|(l, _)| l).unwrap_or(email).to_lowercase();
        if local.chars().count() >= 3 {
            assert!(!once.to_lowercase().contains(&local));
        }
    }
});
