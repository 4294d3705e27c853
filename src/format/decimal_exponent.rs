//! Decimal text with an exponent too large to read.
//!
//! arrow-cast 59's `parse_decimal` (used by arrow-json for DECIMAL columns and by
//! [`super::cells`] for decimals written as text) accumulates the exponent of
//! `1.5e…` in an `i16` without checking: `1e99999` overflows. A debug build panics;
//! a release build wraps, so `1e65537` reads as `10`, a wrong value accepted
//! silently. Text whose exponent is beyond ±[`MAX_EXPONENT`] is rejected before it
//! reaches that parser, as PostgreSQL rejects it for NUMERIC. This module can go once
//! arrow checks the exponent itself.

/// PostgreSQL's bound on a NUMERIC's exponent in input (`NUMERIC_MAX_PRECISION`);
/// far below the `i16` arrow overflows, and no DECIMAL(38) value needs more.
const MAX_EXPONENT: u32 = 1000;

/// Why a record with such a number is rejected.
pub(super) const TOO_LARGE: &str =
    "a number's exponent is beyond ±1000 (PostgreSQL's NUMERIC limit)";

/// Whether `text`, read as a decimal number, has an exponent beyond ±1000.
pub(super) fn exponent_too_large(text: &str) -> bool {
    number_too_large(text.as_bytes())
}

/// Whether the JSON text `value` holds a number beyond ±1000 in exponent, bare
/// (`1e5000`) or as a whole string (`"1e5000"`, which arrow-json also reads into a
/// DECIMAL column). Strings that merely contain such text (`"SKU-9E1234"`) do not
/// count. Malformed JSON is left to the JSON reader to reject.
pub(super) fn json_has_too_large_exponent(value: &[u8]) -> bool {
    // Most values have no such number: a vectorized look for `e` or `E` followed by
    // four digits (which every exponent beyond ±1000 has) settles them without the
    // byte-by-byte walk below.
    if !may_hold_large_exponent(value) {
        return false;
    }
    let mut at = 0;
    while at < value.len() {
        match value[at] {
            b'"' => {
                let start = at + 1;
                let mut end = start;
                let mut escaped = false;
                while end < value.len() && value[end] != b'"' {
                    escaped |= value[end] == b'\\';
                    end += if value[end] == b'\\' { 2 } else { 1 };
                }
                let content = &value[start..end.min(value.len())];
                // A string with escapes is not a number's text.
                if !escaped && is_number_text(content) && number_too_large(content) {
                    return true;
                }
                at = end + 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = at;
                while at < value.len()
                    && matches!(value[at], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    at += 1;
                }
                if number_too_large(&value[start..at]) {
                    return true;
                }
            }
            _ => at += 1,
        }
    }
    false
}

/// Whether some `e` or `E` in `value` is followed, after an optional sign, by four
/// digits.
fn may_hold_large_exponent(value: &[u8]) -> bool {
    memchr::memchr2_iter(b'e', b'E', value).any(|at| {
        without_sign(&value[at + 1..])
            .get(..4)
            .is_some_and(|digits| digits.iter().all(u8::is_ascii_digit))
    })
}

/// Whether `text` looks like a number as arrow's decimal parser reads it: an optional
/// sign, digits with at most one point, then optionally `e`, a sign and digits.
fn is_number_text(text: &[u8]) -> bool {
    let text = without_sign(text);
    let (mantissa, exponent) = match text.iter().position(|b| matches!(b, b'e' | b'E')) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let points = mantissa.iter().filter(|&&b| b == b'.').count();
    let digits = mantissa.iter().filter(|b| b.is_ascii_digit()).count();
    let mantissa_ok = points <= 1 && digits > 0 && digits + points == mantissa.len();
    let exponent_ok = exponent.is_none_or(|e| {
        let e = without_sign(e);
        !e.is_empty() && e.iter().all(u8::is_ascii_digit)
    });
    mantissa_ok && exponent_ok
}

/// `text` without a leading `-` or `+`.
fn without_sign(text: &[u8]) -> &[u8] {
    match text.first() {
        Some(b'-' | b'+') => &text[1..],
        _ => text,
    }
}

/// Whether the number `number` has an exponent beyond the limit.
fn number_too_large(number: &[u8]) -> bool {
    match number.iter().position(|b| matches!(b, b'e' | b'E')) {
        Some(at) => exponent_beyond_limit(&number[at + 1..]).unwrap_or(false),
        None => false,
    }
}

/// Whether the exponent digits (after `e`, with an optional sign) exceed the limit;
/// None when they are not an exponent at all.
fn exponent_beyond_limit(exponent: &[u8]) -> Option<bool> {
    let digits = without_sign(exponent);
    let mut magnitude: u32 = 0;
    let mut any = false;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        any = true;
        magnitude = magnitude
            .saturating_mul(10)
            .saturating_add(u32::from(b - b'0'));
    }
    any.then_some(magnitude > MAX_EXPONENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents_past_postgresqls_limit_are_too_large() {
        for text in [
            "1e1001",
            "1E99999",
            "-2.5e-65537",
            "0e+5000",
            "1e99999999999999999999",
        ] {
            assert!(exponent_too_large(text), "{text}");
        }
        for text in ["1e1000", "12.5", "-1e-1000", "3E7", "e", "1e", "1ex", "abc"] {
            assert!(!exponent_too_large(text), "{text}");
        }
    }

    #[test]
    fn json_numbers_and_number_strings_are_found_other_strings_are_not() {
        let found: &[&[u8]] = &[
            br#"{"price": 1e65537}"#,
            br#"{"a": [1, {"b": -3.5E-99999}]}"#,
            br#"{"price": "1e65537"}"#,
            br#"{"name": "x", "price":2e2000}"#,
            br#"{"name": "e", "price": 1e+01001}"#,
        ];
        for value in found {
            assert!(
                json_has_too_large_exponent(value),
                "{}",
                String::from_utf8_lossy(value)
            );
        }
        let not_found: &[&[u8]] = &[
            br#"{"price": 1e300, "n": -12.5}"#,
            br#"{"price": 1e999, "e": "eE"}"#,
            br#"{"sku": "SKU-9E1234"}"#,
            br#"{"note": "say \"1e5000\" twice"}"#,
            br#"{"1e5000x": 1}"#,
            br#"{"price": 1e3"#,
            b"",
        ];
        for value in not_found {
            assert!(
                !json_has_too_large_exponent(value),
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }
}
