//! Kubernetes-style resource quantities, parsed without floating point surprises.
//!
//! CPU is kept in millicores and memory in bytes, the units the scheduler counts in.

use crate::error::{Error, Result};

fn split_suffix(input: &str) -> (&str, &str) {
    let at = input.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(input.len());
    input.split_at(at)
}

/// Parses a decimal number into (integer part, fractional digits) scaled by `10^scale`.
fn scaled(number: &str, scale: u32, input: &str) -> Result<u128> {
    let bad = |why| Error::Quantity { input: input.to_string(), why };
    if number.is_empty() {
        return Err(bad("no digits"));
    }
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() {
        return Err(bad("no digits"));
    }
    if frac.contains('.') {
        return Err(bad("more than one decimal point"));
    }
    let mut value: u128 = 0;
    for c in int.chars() {
        let d = u128::from(c.to_digit(10).ok_or_else(|| bad("not a digit"))?);
        value = value.checked_mul(10).and_then(|v| v.checked_add(d)).ok_or_else(|| bad("too large"))?;
    }
    let mut digits = frac.chars();
    for _ in 0..scale {
        let d = match digits.next() {
            Some(c) => u128::from(c.to_digit(10).ok_or_else(|| bad("not a digit"))?),
            None => 0,
        };
        value = value.checked_mul(10).and_then(|v| v.checked_add(d)).ok_or_else(|| bad("too large"))?;
    }
    // Digits beyond the unit's resolution round up, as Kubernetes does.
    if digits.any(|c| c != '0') {
        value = value.checked_add(1).ok_or_else(|| bad("too large"))?;
    }
    Ok(value)
}

/// Multiplier of a quantity suffix, as (power-of-ten exponent, binary multiplier).
fn suffix_multiplier(suffix: &str, input: &str) -> Result<(i32, u128)> {
    Ok(match suffix {
        "" => (0, 1),
        "m" => (-3, 1),
        "k" => (3, 1),
        "M" => (6, 1),
        "G" => (9, 1),
        "T" => (12, 1),
        "P" => (15, 1),
        "Ki" => (0, 1 << 10),
        "Mi" => (0, 1 << 20),
        "Gi" => (0, 1 << 30),
        "Ti" => (0, 1 << 40),
        "Pi" => (0, 1 << 50),
        _ => {
            return Err(Error::Quantity {
                input: input.to_string(),
                why: "unknown suffix (use m, k, M, G, T, P, Ki, Mi, Gi, Ti, Pi)",
            })
        }
    })
}

/// Longest quantity text the parser reads; longer input is refused before any work.
pub const MAX_QUANTITY_LEN: usize = 64;

/// Parses a quantity into units of `10^-resolution` (resolution 3 gives milli-units).
///
/// Strict: an unsigned decimal number and an optional suffix, nothing else (no spaces,
/// no sign, no exponent), so what passes here is also what a member's apiserver or
/// Slurm takes. Values larger than a `u64` of the unit are errors, never wrapped.
fn parse_scaled(input: &str, resolution: u32) -> Result<u64> {
    let bad = |why| Error::Quantity { input: input.chars().take(MAX_QUANTITY_LEN).collect(), why };
    if input.len() > MAX_QUANTITY_LEN {
        return Err(bad("longer than 64 characters"));
    }
    if input.starts_with(|c: char| c.is_whitespace()) || input.ends_with(|c: char| c.is_whitespace()) {
        return Err(bad("has spaces around it"));
    }
    if input.starts_with('-') {
        return Err(bad("must not be negative"));
    }
    if input.starts_with('+') {
        return Err(bad("must not have a sign"));
    }
    let (number, suffix) = split_suffix(input);
    let (exp10, binary) = suffix_multiplier(suffix, input)?;
    // Work in units of 10^-9 so fractions of binary suffixes ("1.5Ki") stay exact.
    const FRACTION_DIGITS: i32 = 9;
    let exact = scaled(number, FRACTION_DIGITS as u32, input)?.checked_mul(binary);
    let shift = exp10 + resolution as i32 - FRACTION_DIGITS;
    let value = exact.and_then(|v| {
        if shift >= 0 {
            v.checked_mul(10u128.checked_pow(shift as u32)?)
        } else {
            // Finer than our resolution (e.g. "1500m" bytes): round up.
            Some(v.div_ceil(10u128.pow((-shift) as u32)))
        }
    });
    value.and_then(|v| u64::try_from(v).ok()).ok_or_else(|| bad("too large"))
}

/// CPU quantity in millicores: "8" -> 8000, "500m" -> 500, "1.5" -> 1500.
pub fn parse_cpu_millis(input: &str) -> Result<u64> {
    parse_scaled(input, 3)
}

/// Memory quantity in bytes: "64Gi", "512M", "1000".
pub fn parse_bytes(input: &str) -> Result<u64> {
    parse_scaled(input, 0)
}

/// A plain count (accelerators, extended resources): "8", "2k".
pub fn parse_count(input: &str) -> Result<u64> {
    parse_scaled(input, 0)
}

/// Formats millicores the way `kubectl` would show them.
pub fn format_cpu_millis(millis: u64) -> String {
    if millis % 1000 == 0 {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Formats bytes with the largest exact binary suffix.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)];
    for (suffix, size) in UNITS {
        if bytes >= size && bytes % size == 0 {
            return format!("{}{suffix}", bytes / size);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities() {
        assert_eq!(parse_cpu_millis("8"), Ok(8000));
        assert_eq!(parse_cpu_millis("500m"), Ok(500));
        assert_eq!(parse_cpu_millis("1.5"), Ok(1500));
        assert_eq!(parse_cpu_millis("0.0001"), Ok(1), "rounds up below a millicore");
        assert_eq!(parse_cpu_millis("2k"), Ok(2_000_000));
    }

    #[test]
    fn memory_quantities() {
        assert_eq!(parse_bytes("64Gi"), Ok(64 << 30));
        assert_eq!(parse_bytes("1M"), Ok(1_000_000));
        assert_eq!(parse_bytes("1.5Ki"), Ok(1536));
        assert_eq!(parse_bytes("1500m"), Ok(2), "millibytes round up to whole bytes");
    }

    #[test]
    fn rounding_up_at_the_largest_value_is_an_error_not_an_overflow() {
        // The first 39 digits are u128::MAX; the fraction rounds it up by one.
        let at_max = "340282366920938463463374607431768211455.5";
        assert!(parse_count(at_max).is_err());
        assert!(parse_bytes(at_max).is_err());
        assert!(parse_cpu_millis("340282366920938463463374607431768211.4555").is_err());
    }

    #[test]
    fn bad_quantities_are_errors() {
        for bad in [
            "",
            "-1",
            "abc",
            "1.2.3",
            "5Qi",
            "99999999999999999999999Pi",
            ".",
            " 8",
            "8 ",
            "\t8",
            "+8",
            "+-8",
            "1e400",
            "1e3",
            "NaN",
            "inf",
            "Infinity",
            "8x",
            "8 Gi",
            "0x10",
            "١",
        ] {
            assert!(parse_bytes(bad).is_err(), "{bad:?} should be rejected");
            assert!(parse_cpu_millis(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let why = |s: &str| parse_bytes(s).unwrap_err().to_string();
        assert_eq!(why(" 8"), "invalid quantity \" 8\": has spaces around it");
        assert_eq!(why("+-8"), "invalid quantity \"+-8\": must not have a sign");
        assert_eq!(why("8x"), "invalid quantity \"8x\": unknown suffix (use m, k, M, G, T, P, Ki, Mi, Gi, Ti, Pi)");
        assert_eq!(
            why("1e400"),
            "invalid quantity \"1e400\": unknown suffix (use m, k, M, G, T, P, Ki, Mi, Gi, Ti, Pi)"
        );
        assert!(why(&"9".repeat(1000)).ends_with("longer than 64 characters"));
        assert!(why("99999999999999999999").ends_with("too large"));
        assert!(parse_bytes("16383Pi").is_ok() && why("16384Pi").ends_with("too large"), "u64 holds 2^64 - 1 bytes");
    }

    #[test]
    fn huge_values_are_refused_not_wrapped() {
        assert_eq!(parse_bytes("18446744073709551615"), Ok(u64::MAX));
        assert!(parse_bytes("18446744073709551616").is_err());
        assert_eq!(parse_cpu_millis("18446744073709551615m"), Ok(u64::MAX));
        assert!(parse_cpu_millis("18446744073709552").is_err(), "cores x 1000 overflow u64");
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_never_reads_past_the_input(s in "\\PC{0,80}") {
            let _ = parse_bytes(&s);
            let _ = parse_cpu_millis(&s);
            let _ = parse_count(&s);
        }

        #[test]
        fn integers_parse_to_themselves(n in 0u64..u64::MAX) {
            proptest::prop_assert_eq!(parse_bytes(&n.to_string()), Ok(n));
        }

        #[test]
        fn anything_with_spaces_or_signs_is_refused(n in 0u64..1_000_000, pre in "[ +\t-]{1,3}") {
            let with_prefix = format!("{pre}{n}");
            let with_suffix = format!("{n}{pre}");
            proptest::prop_assert!(parse_bytes(&with_prefix).is_err());
            proptest::prop_assert!(parse_bytes(&with_suffix).is_err());
        }

        #[test]
        fn suffixes_scale_exactly(n in 0u64..1_000_000) {
            proptest::prop_assert_eq!(parse_bytes(&format!("{n}Ki")), Ok(n << 10));
            proptest::prop_assert_eq!(parse_bytes(&format!("{n}G")), Ok(n * 1_000_000_000));
            proptest::prop_assert_eq!(parse_cpu_millis(&format!("{n}m")), Ok(n));
        }
    }

    #[test]
    fn formatting_round_trips() {
        for millis in [0, 250, 1000, 64_000] {
            assert_eq!(parse_cpu_millis(&format_cpu_millis(millis)), Ok(millis));
        }
        for bytes in [0, 1 << 30, 3 << 20, 12345] {
            assert_eq!(parse_bytes(&format_bytes(bytes)), Ok(bytes));
        }
    }
}
