//! Progress bars for the CLI's long work (loads, benchmarks, cluster
//! bootstrap, a node catching up with its peers), drawn by indicatif on
//! stderr. When stderr is not a terminal indicatif draws nothing, so logs
//! and CI output stay clean; when it is, log lines are written above the
//! bars ([`LogWriter`]), not through them.

use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// How often a bar redraws on its own (elapsed time, rates).
const TICK: Duration = Duration::from_millis(200);

/// Every bar the process draws, so that logs can step around them.
fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(MultiProgress::new)
}

/// Where log lines go: stderr, with the bars lifted while a line is
/// written so that neither garbles the other.
#[derive(Clone, Copy, Debug)]
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::new())
    }
}

/// One log event, written whole when it is dropped.
#[derive(Debug)]
pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        // Nowhere to report a failed write of a log line.
        bars().suspend(|| drop(std::io::stderr().write_all(&self.0)));
    }
}

/// A bar over `len` steps of work, such as listings created.
pub fn counting(len: u64, what: &str) -> ProgressBar {
    let bar = bars().add(ProgressBar::new(len));
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
    let bar = bars().add(ProgressBar::new(duration.as_secs().max(1)));
    let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} s  {msg}")
        .expect("the template is valid")
        .progress_chars("#>.");
    bar.set_style(style);
    bar.set_prefix(what.to_owned());
    bar
}

/// A spinner for a wait of unknown length, such as replicas converging.
pub fn waiting(what: &str) -> ProgressBar {
    let bar = bars().add(ProgressBar::new_spinner());
    let style = ProgressStyle::with_template("{spinner} {prefix} {elapsed} {msg}").expect("the template is valid");
    bar.set_style(style);
    bar.set_prefix(what.to_owned());
    bar.enable_steady_tick(TICK);
    bar
}

/// How often the catch-up bar looks at the node.
const CATCH_UP_POLL: Duration = Duration::from_millis(500);

/// Draws a bar while `node` fetches records its peers hold and it lacks
/// (a new node's bootstrap, or a return after time offline): records
/// fetched out of those known missing, with the rate and what is left.
/// Never ends: drop it when the node stops.
pub async fn catch_up(stats: std::sync::Arc<caravan_node::WriterStats>) -> std::convert::Infallible {
    use std::sync::atomic::Ordering::Relaxed;
    let fetched = || stats.replication.lock().expect("stats lock").fetched;
    // The bar, with the records fetched before it appeared.
    let mut shown: Option<(ProgressBar, u64)> = None;
    loop {
        let missing = stats.records_missing.load(Relaxed);
        let now_fetched = fetched();
        match (&shown, missing) {
            (None, 0) => {}
            (None, _) => shown = Some((counting(missing, "catching up: records"), now_fetched)),
            (Some((bar, _)), 0) => {
                bar.finish_and_clear();
                shown = None;
            }
            (Some((bar, before)), _) => {
                let done = now_fetched.saturating_sub(*before);
                bar.set_length(done + missing);
                bar.set_position(done);
            }
        }
        tokio::time::sleep(CATCH_UP_POLL).await;
    }
}
