//! Lenient readers over `serde_json::Value`: a field of the wrong type reads as absent.
//!
//! Real payloads disagree with the docs and with each other, so nothing here fails; the parser
//! keeps what fits and skips the rest.

use serde_json::{Map, Value};

use crate::time::parse_rfc3339_millis;

/// The object at `key`, if it is one.
pub(crate) fn object<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Map<String, Value>> {
    map.get(key)?.as_object()
}

/// The array at `key`, if it is one.
pub(crate) fn array<'a>(map: &'a Map<String, Value>, key: &str) -> &'a [Value] {
    map.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The non-empty string at `key`.
pub(crate) fn string(map: &Map<String, Value>, key: &str) -> Option<String> {
    non_empty(map.get(key)?).map(str::to_owned)
}

/// The string value, unless it is empty or not a string.
pub(crate) fn non_empty(value: &Value) -> Option<&str> {
    value.as_str().filter(|s| !s.is_empty())
}

/// Epoch milliseconds at `key`: an integer, a float (truncated), a string of digits, or an
/// RFC 3339 timestamp.
pub(crate) fn millis(map: &Map<String, Value>, key: &str) -> Option<i64> {
    match map.get(key)? {
        Value::Number(n) => n.as_i64().or_else(|| float_to_i64(n.as_f64()?)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>().ok().or_else(|| parse_rfc3339_millis(s))
        }
        _ => None,
    }
}

/// An integer at `key`, also from a float with no fraction or a string of digits.
pub(crate) fn integer(map: &Map<String, Value>, key: &str) -> Option<i64> {
    match map.get(key)? {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0)
                .and_then(float_to_i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A finite number, also from a numeric string (`"42506.3"`).
pub(crate) fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|f| f.is_finite())
}

fn float_to_i64(f: f64) -> Option<i64> {
    // The bounds keep the cast from saturating silently; 2^63 is exactly representable.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (-LIMIT..LIMIT).contains(&f).then(|| f.trunc() as i64)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check_millis(value: Value, expected: Option<i64>) {
        let map = json!({ "t": value.clone() });
        let map = map.as_object().expect("object");
        assert_eq!(millis(map, "t"), expected, "{value}");
    }

    #[test]
    fn millis_from_many_shapes() {
        check_millis(json!(1769852860000_i64), Some(1769852860000));
        check_millis(json!(0), Some(0));
        check_millis(json!(1769852860000.7), Some(1769852860000));
        check_millis(json!("1769852860000"), Some(1769852860000));
        check_millis(json!(" 1769852860000 "), Some(1769852860000));
        check_millis(json!("2025-10-31T07:39:11.529Z"), Some(1761896351529));
        check_millis(json!(1e300), None);
        check_millis(json!(u64::MAX), None);
        check_millis(json!("soon"), None);
        check_millis(json!(true), None);
        check_millis(json!(null), None);
        check_millis(json!({"ms": 1}), None);
    }

    #[test]
    fn numbers_and_integers() {
        assert_eq!(number(&json!(42506.3)), Some(42506.3));
        assert_eq!(number(&json!("42506.3")), Some(42506.3));
        assert_eq!(number(&json!("NaN")), None);
        assert_eq!(number(&json!("inf")), None);
        assert_eq!(number(&json!(true)), None);
        let map = json!({"a": 6, "b": 6.0, "c": 6.5, "d": "6", "e": "six"});
        let map = map.as_object().expect("object");
        let got: Vec<_> = ["a", "b", "c", "d", "e", "f"]
            .iter()
            .map(|k| integer(map, k))
            .collect();
        assert_eq!(got, [Some(6), Some(6), None, Some(6), None, None]);
    }

    #[test]
    fn wrong_types_read_as_absent() {
        let map = json!({"s": 1, "e": "", "o": [], "a": {}});
        let map = map.as_object().expect("object");
        assert_eq!(string(map, "s"), None);
        assert_eq!(string(map, "e"), None);
        assert!(object(map, "o").is_none());
        assert!(array(map, "a").is_empty());
        assert!(array(map, "missing").is_empty());
    }
}
