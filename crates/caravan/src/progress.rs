//! Progress bars for the CLI's long work (loads, benchmarks, cluster
//! bootstrap), drawn by indicatif on stderr. When stderr is not a terminal
//! indicatif draws nothing, so logs and CI output stay clean.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// How often a bar redraws on its own (elapsed time, rates).
const TICK: Duration = Duration::from_millis(200);

/// A bar over `len` steps of work, such as listings created.
pub fn counting(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} ({per_sec}, {eta} left)")
        .expect("the template is valid")
        .progress_chars("#>.");
    bar.set_style(style);
    bar.set_prefix(what.to_owned());
    bar.enable_steady_tick(TICK);
    bar
}

/// A bar over a run of fixed length, in whole seconds; its message says
/// what has been done so far.
pub fn timed(duration: Duration, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(duration.as_secs().max(1));
    let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} s  {msg}")
        .expect("the template is valid")
        .progress_chars("#>.");
    bar.set_style(style);
    bar.set_prefix(what.to_owned());
    bar
}

/// A spinner for a wait of unknown length, such as replicas converging.
pub fn waiting(what: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    let style = ProgressStyle::with_template("{spinner} {prefix} {elapsed} {msg}").expect("the template is valid");
    bar.set_style(style);
    bar.set_prefix(what.to_owned());
    bar.enable_steady_tick(TICK);
    bar
}
