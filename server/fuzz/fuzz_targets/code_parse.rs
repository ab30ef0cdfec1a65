//! Any input: no panic; an accepted code is exactly six ASCII digits.
#![no_main]

use gatehouse_core::codes::parse_code;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    if let Some(code) = parse_code(input) {
        assert_eq!(code.expose().len(), 6);
        assert!(code.expose().bytes().all(|b| b.is_ascii_digit()));
    }
});
