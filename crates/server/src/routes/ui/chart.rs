//! Charts as inline SVG, drawn here: stacked bars (deliveries per hour) and an odometer line with
//! void readings marked apart. Each chart is `role="img"` with a `<title>` and a description;
//! each bar segment and point has its own `<title>`, which browsers show on hover.

use chrono::NaiveDateTime;
use maud::{html, Markup};

use super::layout::colour;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
/// Room for the axis labels: left, right, top, bottom.
const PAD: (f64, f64, f64, f64) = (48.0, 12.0, 10.0, 26.0);

/// One part of a bar.
#[derive(Debug, Clone)]
pub struct Segment {
    /// How many.
    pub value: i64,
    /// Its fill.
    pub colour: &'static str,
}

/// One bar: its segments bottom up.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Under the bar (may be empty to leave it unlabelled).
    pub label: String,
    /// Shown on hover.
    pub title: String,
    /// Bottom up.
    pub segments: Vec<Segment>,
}

/// Stacked bars with a count axis. `title` names the chart for screen readers.
pub fn stacked_bars(id: &str, title: &str, description: &str, bars: &[Bar]) -> Markup {
    let (left, right, top, bottom) = PAD;
    let plot_w = WIDTH - left - right;
    let plot_h = HEIGHT - top - bottom;
    let highest = bars
        .iter()
        .map(|b| b.segments.iter().map(|s| s.value.max(0)).sum::<i64>())
        .max()
        .unwrap_or(0);
    let top_value = nice_ceiling(highest.max(1) as f64);
    let slot = plot_w / bars.len().max(1) as f64;
    let bar_w = (slot * 0.72).max(1.0);
    let y = |v: f64| top + plot_h - v / top_value * plot_h;
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img"
            aria-labelledby=(format!("{id}-title {id}-desc")) xmlns="http://www.w3.org/2000/svg" {
            title id=(format!("{id}-title")) { (title) }
            desc id=(format!("{id}-desc")) { (description) }
            @for fraction in [0.0, 0.5, 1.0] {
                @let gy = y(top_value * fraction);
                line x1=(num(left)) x2=(num(WIDTH - right)) y1=(num(gy)) y2=(num(gy))
                    stroke=(colour::RULE) stroke-width="1" {}
                text x=(num(left - 6.0)) y=(num(gy + 4.0)) text-anchor="end" font-size="13"
                    fill=(colour::MUTED) { (count_label(top_value * fraction)) }
            }
            @for (i, bar) in bars.iter().enumerate() {
                @let x = left + slot * i as f64 + (slot - bar_w) / 2.0;
                g {
                    title { (bar.title) }
                    // A transparent hit area, so the hover title works over an empty hour too.
                    rect x=(num(x)) y=(num(top)) width=(num(bar_w)) height=(num(plot_h))
                        fill="transparent" {}
                    @for (y0, h, fill) in stack(&bar.segments, y) {
                        rect x=(num(x)) y=(num(y0)) width=(num(bar_w)) height=(num(h)) fill=(fill) {}
                    }
                }
                @if !bar.label.is_empty() {
                    text x=(num(x + bar_w / 2.0)) y=(num(HEIGHT - 8.0)) text-anchor="middle"
                        font-size="13" fill=(colour::MUTED) { (bar.label) }
                }
            }
        }
    }
}

/// One reading on the odometer chart.
#[derive(Debug, Clone)]
pub struct Point {
    /// When the car read it (UTC).
    pub at: NaiveDateTime,
    /// The value.
    pub km: f64,
    /// Shown on hover.
    pub title: String,
    /// Whether it is void (drawn apart, not joined to the line).
    pub void: bool,
}

/// The odometer over `[from, to]`: active readings joined by a line, void ones as crosses. The
/// value axis fits the active readings; a void reading beyond it is drawn on the edge, and its
/// title gives the value.
pub fn odometer(
    id: &str,
    title: &str,
    description: &str,
    points: &[Point],
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Markup {
    let (left, right, top, bottom) = PAD;
    let left = left + 28.0; // kilometre labels are wider than counts
    let plot_w = WIDTH - left - right;
    let plot_h = HEIGHT - top - bottom;
    let active: Vec<&Point> = points.iter().filter(|p| !p.void).collect();
    let values: Vec<f64> = if active.is_empty() {
        points.iter().map(|p| p.km).collect()
    } else {
        active.iter().map(|p| p.km).collect()
    };
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if !lo.is_finite() {
        (0.0, 1.0)
    } else {
        let margin = ((hi - lo) * 0.08).max(1.0);
        (lo - margin, hi + margin)
    };
    let (lo, hi, ticks) = round_ticks(lo, hi);
    let span_ms = (to - from).num_milliseconds().max(1) as f64;
    let x = |t: NaiveDateTime| left + ((t - from).num_milliseconds() as f64 / span_ms) * plot_w;
    let y = |v: f64| top + plot_h - ((v - lo) / (hi - lo)).clamp(0.0, 1.0) * plot_h;
    let line: String = active
        .iter()
        .map(|p| format!("{},{}", num(x(p.at)), num(y(p.km))))
        .collect::<Vec<_>>()
        .join(" ");
    let mid = from + (to - from) / 2;
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img"
            aria-labelledby=(format!("{id}-title {id}-desc")) xmlns="http://www.w3.org/2000/svg" {
            title id=(format!("{id}-title")) { (title) }
            desc id=(format!("{id}-desc")) { (description) }
            @for v in &ticks {
                line x1=(num(left)) x2=(num(WIDTH - right)) y1=(num(y(*v))) y2=(num(y(*v)))
                    stroke=(colour::RULE) stroke-width="1" {}
                text x=(num(left - 6.0)) y=(num(y(*v) + 4.0)) text-anchor="end" font-size="13"
                    fill=(colour::MUTED) { (km_label(*v)) " km" }
            }
            @for (t, anchor) in [(from, "start"), (mid, "middle"), (to, "end")] {
                text x=(num(x(t))) y=(num(HEIGHT - 8.0)) text-anchor=(anchor) font-size="13"
                    fill=(colour::MUTED) { (t.format("%Y-%m-%d").to_string()) }
            }
            @if active.len() > 1 {
                polyline points=(line) fill="none" stroke=(colour::LINE) stroke-width="2"
                    stroke-linejoin="round" {}
            }
            @for p in &active {
                circle cx=(num(x(p.at))) cy=(num(y(p.km))) r="3.5" fill=(colour::LINE) {
                    title { (p.title) }
                }
            }
            @for p in points.iter().filter(|p| p.void) {
                @let (cx, cy) = (x(p.at), y(p.km));
                g stroke=(colour::REJECTED) stroke-width="2.5" stroke-linecap="round" {
                    title { (p.title) }
                    // A wider transparent target: a cross is thin to hover.
                    circle cx=(num(cx)) cy=(num(cy)) r="7" fill="transparent" stroke="none" {}
                    line x1=(num(cx - 5.0)) y1=(num(cy - 5.0)) x2=(num(cx + 5.0)) y2=(num(cy + 5.0)) {}
                    line x1=(num(cx - 5.0)) y1=(num(cy + 5.0)) x2=(num(cx + 5.0)) y2=(num(cy - 5.0)) {}
                }
            }
        }
    }
}

/// Each non-empty segment's top, height and fill, stacked bottom up on the scale `y`.
fn stack(segments: &[Segment], y: impl Fn(f64) -> f64) -> Vec<(f64, f64, &'static str)> {
    let mut base = 0.0;
    let mut out = Vec::new();
    for segment in segments.iter().filter(|s| s.value > 0) {
        let v = segment.value as f64;
        out.push((
            y(base + v),
            (y(base) - y(base + v)).max(0.5),
            segment.colour,
        ));
        base += v;
    }
    out
}

/// The smallest of 1, 2, 2.5 or 5 times a power of ten that is at least `v`.
fn nice_ceiling(v: f64) -> f64 {
    let power = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|c| *c >= v)
        .unwrap_or(v)
}

/// The axis `[lo, hi]` widened to round numbers, and its ticks: a step of 1, 2, 2.5 or 5 times a
/// power of ten, so that labels read 48,000 / 50,000 / 52,000 km, with two to five ticks.
fn round_ticks(lo: f64, hi: f64) -> (f64, f64, Vec<f64>) {
    let step = nice_ceiling((hi - lo) / 3.0);
    let first = (lo / step).floor();
    let last = (hi / step).ceil().max(first + 1.0);
    // Integer multiples of the step: no drift from adding it up.
    let ticks: Vec<f64> = (0..=(last - first) as i64)
        .map(|i| (first + i as f64) * step)
        .collect();
    (first * step, last * step, ticks)
}

/// A kilometre figure with thousands separated by commas and only the decimals it has:
/// `48,000`, `12.5`.
fn km_label(v: f64) -> String {
    let rounded = (v * 100.0).round() / 100.0;
    let whole = rounded.trunc().abs() as u64;
    let digits = whole.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let fraction = format!("{:.2}", rounded.fract().abs());
    let fraction = fraction.trim_start_matches('0').trim_end_matches('0');
    let sign = if rounded < 0.0 { "-" } else { "" };
    if fraction == "." {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}{fraction}")
    }
}

fn count_label(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A coordinate with one decimal: short SVG, no visible loss.
fn num(v: f64) -> String {
    format!("{v:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers() {
        for (v, expected) in [
            (1.0, 1.0),
            (3.0, 5.0),
            (7.0, 10.0),
            (11.0, 20.0),
            (21.0, 25.0),
            (26.0, 50.0),
            (1234.0, 2000.0),
        ] {
            assert_eq!(nice_ceiling(v), expected, "{v}");
        }
    }

    #[test]
    fn odometer_ticks_are_round() {
        // The values the issue saw: 48,001 to 52,382 km, with the chart's margin.
        let (lo, hi, ticks) = round_ticks(47_651.0, 52_732.0);
        assert_eq!(
            ticks,
            vec![46_000.0, 48_000.0, 50_000.0, 52_000.0, 54_000.0]
        );
        assert_eq!((lo, hi), (46_000.0, 54_000.0));
        for (lo, hi) in [
            (0.0, 1.0),
            (99.0, 102.0),
            (12_340.5, 12_343.9),
            (1.0e6, 1.3e6),
        ] {
            let (a, b, ticks) = round_ticks(lo, hi);
            assert!(a <= lo && b >= hi, "{lo}..{hi} -> {a}..{b}");
            assert!((2..=5).contains(&ticks.len()), "{lo}..{hi}: {ticks:?}");
            let step = ticks[1] - ticks[0];
            assert_eq!(nice_ceiling(step), step, "{lo}..{hi}: step {step}");
        }
        for (v, label) in [
            (48_000.0, "48,000"),
            (1_250_000.0, "1,250,000"),
            (999.0, "999"),
            (12.5, "12.5"),
            (0.25, "0.25"),
            (0.0, "0"),
        ] {
            assert_eq!(km_label(v), label, "{v}");
        }
    }

    fn at(hour: u32) -> NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
            .and_then(|d| d.and_hms_opt(hour, 0, 0))
            .expect("time")
    }

    #[test]
    fn a_bar_is_as_tall_as_its_share_of_the_axis() {
        let bars = [Bar {
            label: "00".into(),
            title: "10 created".into(),
            segments: vec![
                Segment {
                    value: 5,
                    colour: colour::SUCCESS,
                },
                Segment {
                    value: 5,
                    colour: colour::FAILED,
                },
            ],
        }];
        let svg = stacked_bars("c", "t", "d", &bars).into_string();
        // The axis tops at 10: each segment fills half the plot's height.
        let plot_h = HEIGHT - PAD.2 - PAD.3;
        assert_eq!(
            svg.matches(&format!("height=\"{}\"", num(plot_h / 2.0)))
                .count(),
            2
        );
        assert!(svg.contains("<title>10 created</title>"), "{svg}");
    }

    #[test]
    fn void_readings_are_crosses_with_their_reason_and_outside_the_line() {
        let point = |hour, km, void| Point {
            at: at(hour),
            km,
            title: if void {
                format!("void <{km}>")
            } else {
                format!("{km}")
            },
            void,
        };
        let points = [
            point(1, 100.0, false),
            point(2, 110.0, false),
            point(3, 5_000.0, true),
            point(4, 120.0, false),
        ];
        let svg = odometer("o", "t", "d", &points, at(0), at(5)).into_string();
        assert_eq!(svg.matches("<polyline").count(), 1);
        let line = svg
            .split("points=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("points");
        assert_eq!(line.split(' ').count(), 3, "{line}");
        assert_eq!(svg.matches("<circle").count(), 3 + 1);
        assert!(svg.contains("<title>void &lt;5000&gt;</title>"), "{svg}");
        // Beyond the active range: drawn on the top edge (y = PAD.2).
        assert!(
            svg.contains(&format!("y1=\"{}\"", num(PAD.2 - 5.0))),
            "{svg}"
        );
    }
}
