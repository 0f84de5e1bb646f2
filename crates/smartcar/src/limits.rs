//! What the strings of an event may be: limits and a character policy, decided here once for
//! every caller.
//!
//! Why: PostgreSQL refuses U+0000 in `TEXT` and index entries over about 2.7 KB, so such an event
//! could never be stored there (it failed on every delivery, while SQLite took it); and ids are
//! printed in logs and CLI tables, where a newline or an escape sequence would forge lines or
//! repaint the terminal. A body that breaks the policy is not an event ([`crate::ParseError`]):
//! the server keeps it, signed, as `malformed`, and answers 400.

use serde_json::Value;

use crate::Event;

/// The longest id (`eventId`, `vehicleId`), in characters. Smartcar's are 36-character UUIDs.
pub const MAX_ID_CHARS: usize = 128;
/// The longest name (event type, signal code, name and group, unit, error type, code, state and
/// resolution), in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// The longest free text kept in its own column (an error's description, message and doc URL),
/// in characters.
pub const MAX_TEXT_CHARS: usize = 4_096;

/// How an event breaks the policy. Messages name the field and the rule, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// A string somewhere in the body (a key or a value) holds a control character other than
    /// tab, line feed and carriage return.
    #[error("a string in the body holds the control character U+{code:04X}; only tab, line feed and carriage return are allowed")]
    ControlCharacter {
        /// The character's code point.
        code: u32,
    },
    /// A field is longer than its limit.
    #[error("{field} is longer than {max} characters")]
    TooLong {
        /// The field, as named on the wire.
        field: &'static str,
        /// Its limit.
        max: usize,
    },
    /// An id holds something other than printable ASCII without spaces.
    #[error("{field} may hold only printable ASCII characters without spaces")]
    IdCharacters {
        /// The field, as named on the wire.
        field: &'static str,
    },
}

/// Whether `c` may appear in a string of the body: anything but control characters, except tab,
/// line feed and carriage return (which free text may hold).
fn allowed(c: char) -> bool {
    !c.is_control() || matches!(c, '\t' | '\n' | '\r')
}

/// Checks every key and string of a parsed body for control characters. serde_json bounds the
/// nesting (128 levels), so the recursion is bounded too.
pub(crate) fn check_strings(value: &Value) -> Result<(), LimitError> {
    let text = |s: &str| match s.chars().find(|c| !allowed(*c)) {
        Some(c) => Err(LimitError::ControlCharacter { code: u32::from(c) }),
        None => Ok(()),
    };
    match value {
        Value::String(s) => text(s),
        Value::Array(items) => items.iter().try_for_each(check_strings),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            text(k)?;
            check_strings(v)
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

/// Checks the fields an event is stored and printed with.
pub(crate) fn check_event(event: &Event) -> Result<(), LimitError> {
    if !event.id.from_body_hash {
        id("eventId", &event.id.value)?;
    }
    for vehicle in event
        .vehicle_id
        .iter()
        .chain(event.vehicles.iter().filter_map(|v| v.vehicle_id.as_ref()))
    {
        id("vehicleId", vehicle)?;
    }
    bounded("eventType", event.event_type.as_str(), MAX_NAME_CHARS)?;
    for signal in &event.signals {
        bounded("signals[].code", &signal.code, MAX_NAME_CHARS)?;
        for (field, value) in [
            ("signals[].name", signal.name.as_deref()),
            ("signals[].group", signal.group.as_deref()),
            ("signals[].body.unit", signal.unit()),
        ] {
            value.map_or(Ok(()), |v| bounded(field, v, MAX_NAME_CHARS))?;
        }
    }
    for error in &event.errors {
        for (field, value, max) in [
            ("errors[].type", &error.error_type, MAX_NAME_CHARS),
            ("errors[].code", &error.code, MAX_NAME_CHARS),
            ("errors[].state", &error.state, MAX_NAME_CHARS),
            (
                "errors[].resolution",
                &error.resolution_type,
                MAX_NAME_CHARS,
            ),
            ("errors[].description", &error.description, MAX_TEXT_CHARS),
            (
                "errors[].suggestedUserMessage",
                &error.suggested_user_message,
                MAX_TEXT_CHARS,
            ),
            ("errors[].docURL", &error.doc_url, MAX_TEXT_CHARS),
        ] {
            value
                .as_deref()
                .map_or(Ok(()), |v| bounded(field, v, max))?;
        }
        for signal in &error.signals {
            bounded("errors[].signals[]", signal, MAX_NAME_CHARS)?;
        }
    }
    Ok(())
}

fn bounded(field: &'static str, value: &str, max: usize) -> Result<(), LimitError> {
    // Bytes bound characters from above: only long strings pay for the count.
    if value.len() > max && value.chars().count() > max {
        return Err(LimitError::TooLong { field, max });
    }
    Ok(())
}

/// Checks an id that enters some other way than in an event (a registration, a path), by the
/// rule of `eventId` and `vehicleId`: what is stored and looked up is what a delivery can name.
pub fn check_id(field: &'static str, value: &str) -> Result<(), LimitError> {
    id(field, value)
}

fn id(field: &'static str, value: &str) -> Result<(), LimitError> {
    bounded(field, value, MAX_ID_CHARS)?;
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(LimitError::IdCharacters { field });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_event, ParseError};

    fn check(body: &str, expected: Option<&str>) {
        let got = match parse_event(body.as_bytes()) {
            Ok(_) => None,
            Err(ParseError::Refused(e)) => Some(e.to_string()),
            Err(other) => panic!("{body}: {other}"),
        };
        assert_eq!(got.as_deref(), expected, "{body}");
    }

    #[test]
    fn the_policy_case_by_case() {
        let long_id = "a".repeat(MAX_ID_CHARS + 1);
        let max_id = "a".repeat(MAX_ID_CHARS);
        check(r#"{"eventId":"e-1","vehicleId":"3a5c8f72-e6d9"}"#, None);
        check(&format!(r#"{{"eventId":"{max_id}"}}"#), None);
        check(
            &format!(r#"{{"eventId":"{long_id}"}}"#),
            Some("eventId is longer than 128 characters"),
        );
        check(
            r#"{"eventId":"a\u0000b"}"#,
            Some("a string in the body holds the control character U+0000; only tab, line feed and carriage return are allowed"),
        );
        check(
            r#"{"eventId":"x","data":{"note":"\u001b[2J"}}"#,
            Some("a string in the body holds the control character U+001B; only tab, line feed and carriage return are allowed"),
        );
        check(
            r#"{"eventId":"x","k\u0007":1}"#,
            Some("a string in the body holds the control character U+0007; only tab, line feed and carriage return are allowed"),
        );
        check(
            r#"{"eventId":"x","data":{"note":"\u0085"}}"#,
            Some("a string in the body holds the control character U+0085; only tab, line feed and carriage return are allowed"),
        );
        check(
            r#"{"eventId":"a\nb"}"#,
            Some("eventId may hold only printable ASCII characters without spaces"),
        );
        check(
            r#"{"eventId":"a b"}"#,
            Some("eventId may hold only printable ASCII characters without spaces"),
        );
        check(
            r#"{"eventId":"e","data":{"vehicle":{"id":"véhicule"}}}"#,
            Some("vehicleId may hold only printable ASCII characters without spaces"),
        );
        check(
            &format!(r#"{{"eventId":"e","vehicleId":"{long_id}"}}"#),
            Some("vehicleId is longer than 128 characters"),
        );
        check(
            &format!(
                r#"{{"eventName":"x","payload":{{"vehicles":[{{"vehicleId":"{long_id}"}}]}}}}"#
            ),
            Some("vehicleId is longer than 128 characters"),
        );
        check(
            &format!(r#"{{"eventType":"{}"}}"#, "T".repeat(129)),
            Some("eventType is longer than 128 characters"),
        );
        check(
            &format!(
                r#"{{"eventType":"VEHICLE_STATE","data":{{"signals":[{{"code":"{}","body":{{"value":1}}}}]}}}}"#,
                "c".repeat(129)
            ),
            Some("signals[].code is longer than 128 characters"),
        );
        check(
            &format!(
                r#"{{"eventType":"VEHICLE_STATE","data":{{"signals":[{{"code":"odometer-traveleddistance","body":{{"value":1,"unit":"{}"}}}}]}}}}"#,
                "u".repeat(129)
            ),
            Some("signals[].body.unit is longer than 128 characters"),
        );
        check(
            &format!(
                r#"{{"eventType":"VEHICLE_ERROR","data":{{"errors":[{{"code":"X","description":"{}"}}]}}}}"#,
                "d".repeat(MAX_TEXT_CHARS + 1)
            ),
            Some("errors[].description is longer than 4096 characters"),
        );
        // Free text may hold line breaks and any printable character, ids stay as sent.
        check(
            r#"{"eventId":"e-1","eventType":"VEHICLE_ERROR","data":{"vehicle":{"model":"ID. Buzz é"},"errors":[{"code":"X","description":"two\nlines\tand é"}]}}"#,
            None,
        );
        // Characters are counted, not bytes.
        check(
            &format!(
                r#"{{"eventType":"VEHICLE_ERROR","data":{{"errors":[{{"description":"{}"}}]}}}}"#,
                "é".repeat(MAX_TEXT_CHARS)
            ),
            None,
        );
    }
}
