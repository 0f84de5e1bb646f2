//! Text from a request, made safe to print on one line: a log line, a table cell.
//!
//! Every string of a body may hold line breaks and tabs (free text does), and rows stored before
//! the id policy may hold any control character: printed as they are, a line break starts a
//! forged log line and an escape sequence drives the terminal. [`Escaped`] is the one way such
//! text is printed.

use std::borrow::Cow;
use std::fmt;

/// Displays text with every control character escaped (`\n`, `\r`, `\t`, `\u{1b}`, …), and the
/// invisible characters that reorder or break lines (U+2028, U+2029, bidirectional controls);
/// everything else is printed as it is.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escaped(self.0))
    }
}

/// Whether `c` must not be printed as it is.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with the characters [`Escaped`] escapes escaped; borrowed when there are none.
pub fn escaped(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(text: &str, expected: &str) {
        assert_eq!(Escaped(text).to_string(), expected);
    }

    #[test]
    fn control_and_line_breaking_characters_are_escaped_and_the_rest_kept() {
        check("sc-1", "sc-1");
        check("é \"quoted\" \\ ok", "é \"quoted\" \\ ok");
        check("VEHICLE_STATE\nFORGED line", "VEHICLE_STATE\\nFORGED line");
        check("a\r\tb", "a\\r\\tb");
        check("\u{1b}[31mred", "\\u{1b}[31mred");
        check("nul\u{0}", "nul\\u{0}");
        check("c1\u{85}", "c1\\u{85}");
        check("line\u{2028}sep", "line\\u{2028}sep");
        check("bidi\u{202e}txt", "bidi\\u{202e}txt");
        assert!(matches!(escaped("plain"), Cow::Borrowed(_)));
    }
}
