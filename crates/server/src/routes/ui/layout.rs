//! The pages' shell: the theme's colours, the one stylesheet, the header, and how times and
//! distances read.

use std::sync::LazyLock;

use base64::Engine as _;
use chrono::NaiveDateTime;
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// The theme. Every pair of colours that is text on a background is listed in
/// [`TEXT_PAIRS`], and every chart colour in [`GRAPHIC_COLOURS`], so that a test checks their
/// contrast (WCAG 2.1 AA: 4.5:1 for text, 3:1 for graphics).
pub mod colour {
    /// The page.
    pub const PAGE: &str = "#ffffff";
    /// Panels and table heads.
    pub const PANEL: &str = "#f6f8fa";
    /// Body text.
    pub const TEXT: &str = "#1f2328";
    /// Secondary text.
    pub const MUTED: &str = "#57606a";
    /// Links.
    pub const LINK: &str = "#0550ae";
    /// Borders and grid lines (not text).
    pub const RULE: &str = "#d0d7de";
    /// The header bar.
    pub const HEADER: &str = "#24292f";
    /// Text on the header bar and on badges.
    pub const ON_DARK: &str = "#ffffff";
    /// A success: a meter entry, a recorded error.
    pub const SUCCESS: &str = "#1a7f37";
    /// Skipped: nothing to record.
    pub const SKIPPED: &str = "#6e7781";
    /// Refused by the odometer rules; void entries.
    pub const REJECTED: &str = "#9a6700";
    /// Failed: unusable data, given up.
    pub const FAILED: &str = "#cf222e";
    /// The odometer line.
    pub const LINE: &str = "#0969da";
}

/// Text colour on background colour, each pair the pages use.
#[cfg(test)]
const TEXT_PAIRS: [(&str, &str); 13] = [
    (colour::TEXT, colour::PAGE),
    (colour::TEXT, colour::PANEL),
    (colour::MUTED, colour::PAGE),
    (colour::MUTED, colour::PANEL),
    (colour::LINK, colour::PAGE),
    (colour::LINK, colour::PANEL),
    (colour::ON_DARK, colour::HEADER),
    (colour::ON_DARK, colour::SUCCESS),
    (colour::ON_DARK, colour::SKIPPED),
    (colour::ON_DARK, colour::REJECTED),
    (colour::ON_DARK, colour::FAILED),
    (colour::FAILED, colour::PAGE),
    (colour::REJECTED, colour::PAGE),
];

/// Colours drawn on the page background in charts.
#[cfg(test)]
const GRAPHIC_COLOURS: [&str; 5] = [
    colour::SUCCESS,
    colour::SKIPPED,
    colour::REJECTED,
    colour::FAILED,
    colour::LINE,
];

/// The one stylesheet, inline: nothing is loaded from anywhere.
pub static STYLE: LazyLock<String> = LazyLock::new(|| {
    use colour::*;
    format!(
        "*{{box-sizing:border-box}}\
body{{margin:0;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:{TEXT};background:{PAGE}}}\
header{{background:{HEADER};color:{ON_DARK};padding:.6rem 1.5rem;display:flex;gap:1.5rem;align-items:baseline}}\
header a{{color:{ON_DARK};text-decoration:none;font-weight:600}}\
header a.brand{{font-size:1.1rem;margin-right:1rem}}\
header nav{{display:flex;gap:1.25rem}}\
header a:hover,header a:focus{{text-decoration:underline}}\
main{{max-width:1120px;margin:0 auto;padding:1rem 1.5rem 3rem}}\
h1{{font-size:1.5rem;margin:.6rem 0 .4rem}}\
h2{{font-size:1.15rem;margin:1.6rem 0 .5rem;border-bottom:1px solid {RULE};padding-bottom:.25rem}}\
a{{color:{LINK}}}\
p.lead{{color:{MUTED};margin:.2rem 0 1rem}}\
.muted{{color:{MUTED}}}\
.tiles{{display:flex;flex-wrap:wrap;gap:.75rem;margin:.5rem 0}}\
.tile{{background:{PANEL};border:1px solid {RULE};border-radius:6px;padding:.5rem .9rem;min-width:8.5rem}}\
.tile .n{{font-size:1.5rem;font-weight:650;display:block}}\
.tile .k{{color:{MUTED};font-size:.85rem}}\
table{{border-collapse:collapse;width:100%;margin:.4rem 0;font-size:.92rem}}\
th,td{{text-align:left;padding:.3rem .55rem;border-bottom:1px solid {RULE};vertical-align:top}}\
th{{background:{PANEL};font-weight:600}}\
td.num,th.num{{text-align:right;font-variant-numeric:tabular-nums}}\
td.num,td.t{{white-space:nowrap}}\
code{{font-size:.88em}}\
.badge{{display:inline-block;border-radius:1em;padding:0 .55em;font-size:.8rem;font-weight:600;color:{ON_DARK};white-space:nowrap}}\
.success{{background:{SUCCESS}}}.skipped{{background:{SKIPPED}}}.rejected{{background:{REJECTED}}}.failed{{background:{FAILED}}}\
.warn{{color:{FAILED};font-weight:600}}\
.rejected-text{{color:{REJECTED};font-weight:600}}\
figure{{margin:.5rem 0 1rem;min-width:0}}\
.split{{display:grid;grid-template-columns:minmax(0,5fr) minmax(0,3fr);gap:1.5rem;align-items:start}}\
table.compact td,table.compact th{{padding:.15rem .5rem}}\
svg.chart{{width:100%;height:auto;max-height:300px;display:block}}\
.legend{{display:flex;flex-wrap:wrap;gap:1rem;margin:.3rem 0;font-size:.88rem}}\
.swatch{{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.3em;vertical-align:-.05em}}\
.swatch.line{{background:{LINE}}}\
form.filter{{display:flex;flex-wrap:wrap;gap:.75rem;align-items:end;background:{PANEL};border:1px solid {RULE};border-radius:6px;padding:.6rem .9rem;margin:.5rem 0}}\
form.filter label{{display:flex;flex-direction:column;font-size:.85rem;color:{TEXT};gap:.15rem}}\
select,input,button{{font:inherit;padding:.25rem .4rem;border:1px solid {MUTED};border-radius:4px;background:{PAGE};color:{TEXT}}}\
button{{background:{HEADER};color:{ON_DARK};border-color:{HEADER};cursor:pointer}}\
nav.choices{{display:flex;flex-wrap:wrap;gap:.4rem .8rem;font-size:.9rem;margin:.3rem 0}}\
nav.choices [aria-current]{{font-weight:700;color:{TEXT};text-decoration:none}}\
:focus-visible{{outline:3px solid {LINK};outline-offset:2px}}\
@media (max-width:800px){{.split{{display:block}}main{{padding:.5rem .75rem}}table{{font-size:.82rem}}}}"
    )
});

/// `Content-Security-Policy` of every page: nothing but this page's own stylesheet (named by
/// its hash, so no other inline style or script runs), forms posting to this host, no framing.
pub static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = ring::digest::digest(&ring::digest::SHA256, STYLE.as_bytes());
    format!(
        "default-src 'none'; style-src 'sha256-{}'; img-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
        base64::engine::general_purpose::STANDARD.encode(hash.as_ref())
    )
});

/// Which header link is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `/ui/`.
    Overview,
    /// `/ui/events`.
    Events,
    /// A vehicle page (no header link of its own).
    Vehicle,
}

/// A whole page: `title` is the document's title and its one `<h1>`.
pub fn page(section: Section, title: &str, body: Markup) -> Markup {
    let link = |href: &str, text: &str, this: Section| {
        html! {
            @if section == this {
                a href=(href) aria-current="page" { (text) }
            } @else {
                a href=(href) { (text) }
            }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · meterhook" }
                style { (PreEscaped(STYLE.as_str())) }
            }
            body {
                header {
                    a.brand href="/ui/" { "meterhook" }
                    nav aria-label="Pages" {
                        (link("/ui/", "Overview", Section::Overview))
                        (link("/ui/events", "Events", Section::Events))
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A UTC time to the minute, as people read it.
pub fn minute(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A UTC time to the second.
pub fn second(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// How long ago `t` was, roughly: `just now`, `5 min ago`, `3 h ago`, `12 d ago`.
pub fn ago(now: NaiveDateTime, t: NaiveDateTime) -> String {
    let secs = (now - t).num_seconds();
    match secs {
        s if s < 60 => "just now".to_owned(),
        s if s < 3_600 => format!("{} min ago", s / 60),
        s if s < 2 * 86_400 => format!("{} h ago", s / 3_600),
        s => format!("{} d ago", s / 86_400),
    }
}

/// A distance in kilometres with one decimal and thin spaces between thousands: `12 345.6 km`.
pub fn km(value: f64) -> String {
    let text = format!("{:.1}", value.abs());
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, "0"));
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push('\u{202f}');
        }
        grouped.push(digit);
    }
    let sign = if value < 0.0 && text != "0.0" {
        "-"
    } else {
        ""
    };
    format!("{sign}{grouped}.{fraction}\u{a0}km")
}

/// A signal's value with its unit.
pub fn signal_value(value: Option<f64>, unit: Option<&str>) -> String {
    match (value, unit) {
        (None, _) => "–".to_owned(),
        (Some(v), Some(u)) => format!("{} {u}", trim_number(v)),
        (Some(v), None) => trim_number(v),
    }
}

fn trim_number(v: f64) -> String {
    let text = format!("{v:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WCAG 2.1 relative luminance of `#rrggbb`.
    fn luminance(hex: &str) -> f64 {
        let channel = |i: usize| {
            let v = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).expect("hex colour")) / 255.0;
            if v <= 0.039_28 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
    }

    fn contrast(a: &str, b: &str) -> f64 {
        let (la, lb) = (luminance(a), luminance(b));
        (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
    }

    #[test]
    fn contrast_is_computed_as_wcag_defines_it() {
        assert!((contrast("#000000", "#ffffff") - 21.0).abs() < 1e-9);
        assert!((contrast("#ffffff", "#ffffff") - 1.0).abs() < 1e-9);
        // WebAIM's checker gives 4.54:1 for #767676 on white.
        assert!((contrast("#767676", "#ffffff") - 4.54).abs() < 0.01);
    }

    #[test]
    fn every_text_colour_meets_aa_on_its_background() {
        for (text, background) in TEXT_PAIRS {
            let ratio = contrast(text, background);
            assert!(ratio >= 4.5, "{text} on {background}: {ratio:.2}:1");
        }
    }

    #[test]
    fn every_chart_colour_stands_out_from_the_page() {
        for c in GRAPHIC_COLOURS {
            let ratio = contrast(c, colour::PAGE);
            assert!(ratio >= 3.0, "{c} on the page: {ratio:.2}:1");
        }
    }

    #[test]
    fn the_stylesheet_uses_only_listed_colours() {
        let listed: Vec<&str> = TEXT_PAIRS
            .iter()
            .flat_map(|(a, b)| [*a, *b])
            .chain(GRAPHIC_COLOURS)
            .chain([colour::RULE])
            .collect();
        for (i, _) in STYLE.match_indices('#') {
            let used = &STYLE[i..i + 7];
            assert!(listed.contains(&used), "{used} is not in the checked pairs");
        }
    }

    #[test]
    fn distances_and_ages_read_well() {
        assert_eq!(km(12345.64), "12\u{202f}345.6\u{a0}km");
        assert_eq!(km(0.04), "0.0\u{a0}km");
        assert_eq!(km(999.95), "1\u{202f}000.0\u{a0}km");
        assert_eq!(km(-1234.5), "-1\u{202f}234.5\u{a0}km");
        let t = NaiveDateTime::parse_from_str("2026-12-04 12:00:00", "%F %T").expect("time");
        let later = |s: i64| t + chrono::TimeDelta::seconds(s);
        assert_eq!(ago(later(59), t), "just now");
        assert_eq!(ago(later(600), t), "10 min ago");
        assert_eq!(ago(later(7_200), t), "2 h ago");
        assert_eq!(ago(later(3 * 86_400), t), "3 d ago");
        assert_eq!(signal_value(Some(89.0), Some("%")), "89 %");
        assert_eq!(signal_value(Some(2.125), None), "2.125");
        assert_eq!(signal_value(None, Some("km")), "–");
    }
}
