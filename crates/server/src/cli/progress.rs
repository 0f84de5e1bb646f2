//! Progress of long commands, on a terminal only: indicatif draws to stderr when it is one and
//! hides itself otherwise, so scripts and pipes see only the summary.

use indicatif::{ProgressBar, ProgressStyle};

/// A spinner counting what a command has done so far, e.g. "signal values: 12000 deleted".
pub(super) fn counter(what: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_prefix(what.to_owned());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix}: {pos} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// A bar over `total` items.
pub(super) fn bar(what: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total).with_prefix(what.to_owned());
    if let Ok(style) = ProgressStyle::with_template("{prefix}: {wide_bar} {pos}/{len} ({eta})") {
        bar.set_style(style);
    }
    bar
}
