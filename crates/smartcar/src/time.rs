//! Just enough RFC 3339 to read `meta.deliveredAt` when it arrives as text.
//!
//! A full date-time crate would be the only reason to pull one into this crate; the format is small.

/// Epoch milliseconds of an RFC 3339 timestamp (`2025-10-31T07:39:11.529Z`, `…+02:00`).
///
/// Fractions beyond milliseconds are truncated. A timestamp without an offset is ambiguous and
/// gives `None`, as does anything malformed or out of range.
pub(crate) fn parse_rfc3339_millis(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    let separators_ok = b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't' | b' ')
        && b[13] == b':'
        && b[16] == b':';
    // Second 60 is a leap second; it counts as the first instant of the next minute.
    if !separators_ok
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }

    let mut rest = &b[19..];
    let mut millis = 0;
    if let Some((b'.', fraction)) = rest.split_first() {
        let len = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 {
            return None;
        }
        for (i, c) in fraction[..len.min(3)].iter().enumerate() {
            millis += i64::from(c - b'0') * [100, 10, 1][i];
        }
        rest = &fraction[len..];
    }

    let offset_minutes = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2], 0, 2)?;
            let minutes = digits(&[*m1, *m2], 0, 2)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let total = hours * 60 + minutes;
            if *sign == b'-' {
                -total
            } else {
                total
            }
        }
        _ => return None,
    };

    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

/// The number made of `len` ASCII digits at `at`.
fn digits(b: &[u8], at: usize, len: usize) -> Option<i64> {
    b.get(at..at + len)?.iter().try_fold(0, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Option<i64>) {
        assert_eq!(parse_rfc3339_millis(text), expected, "{text}");
    }

    #[test]
    fn rfc3339() {
        check("1970-01-01T00:00:00Z", Some(0));
        check("1970-01-01T00:00:00.001Z", Some(1));
        check("1969-12-31T23:59:59Z", Some(-1_000));
        check("2025-10-31T07:39:11.529Z", Some(1_761_896_351_529));
        check("2025-10-31t07:39:11.529z", Some(1_761_896_351_529));
        check("2025-10-31 07:39:11.529Z", Some(1_761_896_351_529));
        check("2025-10-31T07:39:11.5Z", Some(1_761_896_351_500));
        check("2025-10-31T07:39:11.529999999Z", Some(1_761_896_351_529));
        check("2025-10-31T09:39:11.529+02:00", Some(1_761_896_351_529));
        check("2025-10-31T02:09:11.529-05:30", Some(1_761_896_351_529));
        check("2026-02-01T09:25:43Z", Some(1_769_937_943_000));
        check("2024-02-29T00:00:00Z", Some(1_709_164_800_000));
        check("2016-12-31T23:59:60Z", Some(1_483_228_800_000));
        check("2000-03-01T00:00:00Z", Some(951_868_800_000));
        check("2023-02-29T00:00:00Z", None);
        check("2025-10-31T07:39:11", None);
        check("2025-10-31T07:39:11.Z", None);
        check("2025-10-31T24:00:00Z", None);
        check("2025-13-01T00:00:00Z", None);
        check("2025-00-01T00:00:00Z", None);
        check("2025-10-31T07:39:11+2:00", None);
        check("2025-10-31T07:39:11+24:00", None);
        check("2025-10-31T07:39:11Zjunk", None);
        check("2025-10-31", None);
        check("+025-10-31T07:39:11Z", None);
        check("2025-10-31T07:39:1éZ", None);
        check("", None);
    }
}
