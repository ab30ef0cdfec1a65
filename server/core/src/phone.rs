//! Phone numbers in E.164: parsing what people type, country calling codes, and masking for
//! display.

/// Why a phone number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneProblem {
    /// Not a number in international format.
    Invalid,
    /// The country calling code is not one texts may be sent to.
    CountryNotAllowed,
}

impl PhoneProblem {
    pub fn code(self) -> &'static str {
        match self {
            PhoneProblem::Invalid => "invalid",
            PhoneProblem::CountryNotAllowed => "country_not_allowed",
        }
    }
}

/// The country calling codes assigned by the ITU (E.164 country codes in use). They form a
/// prefix-free set, so a number's code is the one entry it starts with.
const CALLING_CODES: &[&str] = &[
    "1", "7", "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45",
    "46", "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
    "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98", "211",
    "212", "213", "216", "218", "220", "221", "222", "223", "224", "225", "226", "227", "228",
    "229", "230", "231", "232", "233", "234", "235", "236", "237", "238", "239", "240", "241",
    "242", "243", "244", "245", "246", "247", "248", "249", "250", "251", "252", "253", "254",
    "255", "256", "257", "258", "260", "261", "262", "263", "264", "265", "266", "267", "268",
    "269", "290", "291", "297", "298", "299", "350", "351", "352", "353", "354", "355", "356",
    "357", "358", "359", "370", "371", "372", "373", "374", "375", "376", "377", "378", "379",
    "380", "381", "382", "383", "385", "386", "387", "389", "420", "421", "423", "500", "501",
    "502", "503", "504", "505", "506", "507", "508", "509", "590", "591", "592", "593", "594",
    "595", "596", "597", "598", "599", "670", "672", "673", "674", "675", "676", "677", "678",
    "679", "680", "681", "682", "683", "685", "686", "687", "688", "689", "690", "691", "692",
    "850", "852", "853", "855", "856", "880", "886", "960", "961", "962", "963", "964", "965",
    "966", "967", "968", "970", "971", "972", "973", "974", "975", "976", "977", "992", "993",
    "994", "995", "996", "998",
];

/// The country calling code of an E.164 number (`+14155550100` → `1`).
pub fn calling_code(e164: &str) -> Option<&'static str> {
    let digits = e164.strip_prefix('+')?;
    CALLING_CODES
        .iter()
        .copied()
        .find(|c| digits.starts_with(c))
}

/// Whether `code` is an assigned country calling code (digits only, no `+`).
pub fn is_calling_code(code: &str) -> bool {
    CALLING_CODES.contains(&code)
}

/// Reads a phone number as people type it (`+1 (415) 555-0100`, `0044 20 7946 0958`) into
/// E.164 (`+14155550100`): a `+` or `00`, an assigned country code, 8 to 15 digits in all.
/// Spaces, dots, dashes and brackets are ignored; anything else is refused.
pub fn normalize_phone(input: &str) -> Result<String, PhoneProblem> {
    let input = input.trim();
    if input.len() > 40 {
        return Err(PhoneProblem::Invalid);
    }
    let rest = if let Some(r) = input.strip_prefix('+') {
        r
    } else if let Some(r) = input.strip_prefix("00") {
        r
    } else {
        return Err(PhoneProblem::Invalid);
    };
    let mut digits = String::with_capacity(15);
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '.' | '-' | '(' | ')' | '\u{a0}' => {}
            _ => return Err(PhoneProblem::Invalid),
        }
    }
    if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
        return Err(PhoneProblem::Invalid);
    }
    let e164 = format!("+{digits}");
    let code = calling_code(&e164).ok_or(PhoneProblem::Invalid)?;
    // The national part must have at least 4 digits.
    if digits.len() - code.len() < 4 {
        return Err(PhoneProblem::Invalid);
    }
    Ok(e164)
}

/// A number as shown to someone who may not own it: only the last two digits (`••••••••00`).
pub fn mask(e164: &str) -> String {
    let digits: Vec<char> = e164.chars().filter(char::is_ascii_digit).collect();
    let keep = digits.len().min(2);
    let hidden = digits.len() - keep;
    let mut out = String::from("+");
    out.extend(std::iter::repeat_n('•', hidden));
    out.extend(&digits[hidden..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_into_e164() {
        assert_eq!(
            normalize_phone("+1 (415) 555-0100").unwrap(),
            "+14155550100"
        );
        assert_eq!(
            normalize_phone(" 0044 20 7946 0958 ").unwrap(),
            "+442079460958"
        );
        assert_eq!(normalize_phone("+353.1.234.5678").unwrap(), "+35312345678");
        assert_eq!(normalize_phone("+49 30 901820").unwrap(), "+4930901820");
    }

    #[test]
    fn malformed_numbers_are_refused() {
        for bad in [
            "",
            "4155550100",
            "+",
            "+0123456789",
            "+1415555",
            "+1234567890123456",
            "+1 415 555 0100 ext 2",
            "+1-415-555-01OO",
            "+999 1234 5678",
            "+٤١٥٥٥٥٠١٠٠",
            "+1\n4155550100",
            &"+1".repeat(30),
        ] {
            assert_eq!(normalize_phone(bad), Err(PhoneProblem::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn calling_codes_are_prefix_free_and_found() {
        for a in CALLING_CODES {
            for b in CALLING_CODES {
                assert!(a == b || !b.starts_with(a), "{a} is a prefix of {b}");
            }
        }
        assert_eq!(calling_code("+14155550100"), Some("1"));
        assert_eq!(calling_code("+442079460958"), Some("44"));
        assert_eq!(calling_code("+35312345678"), Some("353"));
        assert!(is_calling_code("44") && !is_calling_code("999"));
    }

    #[test]
    fn masking_keeps_the_last_two_digits() {
        assert_eq!(mask("+14155550100"), "+•••••••••00");
        assert_eq!(mask("+4930901820"), "+••••••••20");
    }
}
