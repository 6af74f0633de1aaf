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
        value += 1;
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
                why: "unknown suffix (use m, k, M, G, T, Ki, Mi, Gi, Ti)",
            })
        }
    })
}

/// Parses a quantity into units of `10^-resolution` (resolution 3 gives milli-units).
fn parse_scaled(input: &str, resolution: u32) -> Result<u64> {
    let trimmed = input.trim();
    if trimmed.starts_with('-') {
        return Err(Error::Quantity { input: input.to_string(), why: "must not be negative" });
    }
    let (number, suffix) = split_suffix(trimmed.trim_start_matches('+'));
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
    value.and_then(|v| u64::try_from(v).ok()).ok_or(Error::Quantity { input: input.to_string(), why: "too large" })
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
    fn bad_quantities_are_errors() {
        for bad in ["", "-1", "abc", "1.2.3", "5Qi", "99999999999999999999999Pi", "."] {
            assert!(parse_bytes(bad).is_err(), "{bad:?} should be rejected");
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
