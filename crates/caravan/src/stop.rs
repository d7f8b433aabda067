//! How a long-running command learns to stop: Ctrl-C (SIGINT) or SIGTERM,
//! what `docker stop`, systemd and `kill` send, both end it as cleanly.
//! The nodes a command starts (a cluster's, the demo's) die with it, even
//! when it is killed outright: each asks the kernel for a SIGTERM when its
//! parent dies ([`die_with_parent`]).

use anyhow::Context;
use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};

/// Set by a command for the nodes it starts: its process id.
pub const PARENT_PID_ENV: &str = "CARAVAN_PARENT_PID";

/// Resolves at the first SIGINT or SIGTERM after this call: both are
/// caught from the call on, not from the first poll, so a command calls it
/// before it says it is ready. Needs the tokio runtime.
pub fn requested() -> impl std::future::Future<Output = ()> + Send + 'static {
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        match (interrupt, terminate) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            (interrupt, terminate) => {
                let why = interrupt.err().or(terminate.err()).map(|e| e.to_string()).unwrap_or_default();
                tracing::warn!(why, "signals cannot be caught here; only Ctrl-C stops cleanly");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

/// In a node a command started: a SIGTERM when that command ends, however
/// it ends; an error if it has ended already.
pub fn die_with_parent() -> anyhow::Result<()> {
    let Ok(parent) = std::env::var(PARENT_PID_ENV) else { return Ok(()) };
    let parent: i32 = parent.parse().with_context(|| format!("{PARENT_PID_ENV}={parent:?} is not a process id"))?;
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).context("asking to stop with the parent")?;
    // Asked too late if the parent ended before: then this node is alone.
    anyhow::ensure!(nix::unistd::getppid().as_raw() == parent, "the command that started this node ({parent}) ended");
    Ok(())
}
