//! [`Quantity`]: a resource amount as written in a spec, an integer or a Kubernetes
//! quantity string ("8", "500m", "64Gi").
//!
//! Kubernetes' `IntOrString` has an `i32` integer side, so `memory: 68719476736` (plain
//! bytes) was stored by the apiserver but could not be decoded. This type takes any JSON
//! number and any string and keeps the text; [`crate::convert`] parses it and names the
//! field when it is not a quantity. The schema bounds integers and gives strings a
//! pattern, so the apiserver refuses what the parser would reject.

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;

/// Largest integer a quantity may be written as: 2^53 - 1, the largest integer every
/// JSON reader keeps exactly.
pub const MAX_INTEGER: u64 = (1 << 53) - 1;

/// Longest quantity string.
pub const MAX_LENGTH: u64 = 32;

/// What a quantity string must look like: an unsigned decimal number and an optional
/// suffix, the forms [`computenet_core::quantity`] parses (no sign, no exponent, no spaces).
pub const PATTERN: &str = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTP]i|[mkMGTP])?$";

/// A resource amount: an integer or a quantity string, kept as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Quantity {
    /// Written as a JSON number (any size; the schema bounds new ones).
    Number(serde_json::Number),
    /// Written as a string.
    Text(String),
}

impl Quantity {
    /// The text the quantity parser reads.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Quantity::Number(n) => Cow::Owned(n.to_string()),
            Quantity::Text(s) => Cow::Borrowed(s),
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl From<&str> for Quantity {
    fn from(s: &str) -> Self {
        Quantity::Text(s.to_string())
    }
}

impl From<u64> for Quantity {
    fn from(n: u64) -> Self {
        Quantity::Number(n.into())
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Quantity::Number(n) => n.serialize(s),
            Quantity::Text(t) => s.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(serde_json::Number),
            Text(String),
        }
        match Raw::deserialize(d) {
            Ok(Raw::Number(n)) => Ok(Quantity::Number(n)),
            Ok(Raw::Text(t)) => Ok(Quantity::Text(t)),
            Err(_) => {
                Err(serde::de::Error::custom("a quantity is an integer or a string such as \"8\", \"500m\", \"64Gi\""))
            }
        }
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> Cow<'static, str> {
        "Quantity".into()
    }

    fn inline_schema() -> bool {
        true
    }

    // `pattern` and `maxLength` apply to strings only, `minimum` and `maximum` to numbers
    // only: together they bound both sides of the int-or-string.
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "x-kubernetes-int-or-string": true,
            "pattern": PATTERN,
            "maxLength": MAX_LENGTH,
            "minimum": 0,
            "maximum": MAX_INTEGER,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_integer_or_string_decodes_and_round_trips() {
        for json in ["68719476736", "8", "\"64Gi\"", "\" 8\"", "18446744073709551615", "-1", "1.5"] {
            let q: Quantity = serde_json::from_str(json).unwrap();
            assert_eq!(serde_json::to_string(&q).unwrap(), json);
        }
        let q: Quantity = serde_json::from_str("68719476736").unwrap();
        assert_eq!(q.text(), "68719476736");
    }

    #[test]
    fn other_json_is_a_clear_error() {
        for json in ["true", "null", "[1]", "{}"] {
            let e = serde_json::from_str::<Quantity>(json).unwrap_err().to_string();
            assert!(e.contains("a quantity is an integer or a string"), "{e}");
        }
    }

    #[test]
    fn the_schema_pattern_takes_exactly_what_the_parser_takes() {
        let pattern = regex::Regex::new(PATTERN).unwrap();
        for ok in ["8", "500m", "64Gi", "1.5", ".5", "1.", "2k", "1Pi"] {
            assert!(pattern.is_match(ok) && computenet_core::quantity::parse_bytes(ok).is_ok(), "{ok}");
        }
        for bad in [" 8", "8 ", "+8", "-8", "+-8", "8x", "1e3", "", ".", "1.2.3", "5Qi", "8 Gi"] {
            assert!(!pattern.is_match(bad), "pattern takes {bad:?}");
            assert!(computenet_core::quantity::parse_bytes(bad).is_err(), "parser takes {bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn what_the_pattern_takes_the_parser_takes(s in "[0-9.+ eEkmMGTPi-]{0,12}") {
            let pattern = regex::Regex::new(PATTERN).unwrap();
            let parsed = computenet_core::quantity::parse_bytes(&s);
            // Within the length bound, the only difference is size: the parser refuses more than u64 holds.
            if pattern.is_match(&s) {
                proptest::prop_assert!(parsed.is_ok() || parsed.unwrap_err().to_string().contains("too large"), "{:?}", s);
            } else {
                proptest::prop_assert!(parsed.is_err(), "{:?}", s);
            }
        }
    }
}
