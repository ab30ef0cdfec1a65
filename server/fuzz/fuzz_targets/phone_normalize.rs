//! Any input: no panic; an accepted number is E.164 (a `+`, 8 to 15 digits, an assigned country
//! calling code), normalised once and for all, and its mask never shows more than two digits.
#![no_main]

use gatehouse_core::phone::{calling_code, mask, normalize_phone};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    if let Ok(number) = normalize_phone(input) {
        let digits = &number[1..];
        assert!(number.starts_with('+'));
        assert!((8..=15).contains(&digits.len()));
        assert!(digits.bytes().all(|b| b.is_ascii_digit()));
        assert!(calling_code(&number).is_some());
        assert_eq!(normalize_phone(&number).as_deref(), Ok(number.as_str()));
        assert!(mask(&number).chars().filter(char::is_ascii_digit).count() <= 2);
    }
});
