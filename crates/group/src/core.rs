//! The Raft core a member runs, started again in place when the group's
//! timers change.
//!
//! openraft fixes a core's heartbeat and election timeout when it starts.
//! So when the group agrees on new timers, each member shuts its core down
//! and starts a new one over the same log store and the same state machine
//! (both outlive cores): nothing is read again from disk, the process keeps
//! serving, and a leader stays leader (openraft restores a leader whose
//! vote is committed). Writes and the Raft messages a member serves take
//! a shared guard for as long as a core works on them, and a restart an
//! exclusive one, so none meets a core halfway through stopping: what
//! arrives during the swap waits the few milliseconds it takes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use openraft::ServerState;

use crate::{Effects, GroupLog, LedgerMachine, MemberId, Raft, Timers, Transport, TransportFactory};

/// A member's running core; clones share it.
pub(crate) struct Core<T, E> {
    inner: Arc<Inner<T, E>>,
}

impl<T, E> Clone for Core<T, E> {
    fn clone(&self) -> Self {
        Core { inner: self.inner.clone() }
    }
}

struct Inner<T, E> {
    running: RwLock<Running>,
    /// Shared while a core works on a write, exclusive while it is swapped.
    swapping: tokio::sync::RwLock<()>,
    /// Set by [`Core::shutdown`]: no core starts after it.
    stopping: AtomicBool,
    member_id: MemberId,
    transport: T,
    log: GroupLog,
    machine: LedgerMachine<E>,
}

#[derive(Clone)]
struct Running {
    raft: Raft,
    timers: Timers,
    /// Counts cores started: a stopped core that was replaced is no failure.
    generation: u64,
}

impl<T: Transport + Clone, E: Effects> Core<T, E> {
    /// Starts the first core: `machine` is a handle on the state machine
    /// that stays here for the cores started later.
    pub(crate) async fn start(
        member_id: MemberId,
        timers: Timers,
        transport: T,
        log: GroupLog,
        machine: LedgerMachine<E>,
    ) -> Result<Core<T, E>, String> {
        let raft = start_raft(member_id, timers, &transport, &log, &machine).await?;
        let running = RwLock::new(Running { raft, timers, generation: 0 });
        let swapping = tokio::sync::RwLock::new(());
        let stopping = AtomicBool::new(false);
        Ok(Core { inner: Arc::new(Inner { running, swapping, stopping, member_id, transport, log, machine }) })
    }

    /// The core running now (a cheap handle).
    pub(crate) fn raft(&self) -> Raft {
        self.inner.running.read().expect("core lock").raft.clone()
    }

    /// The timers the running core was started with.
    pub(crate) fn timers(&self) -> Timers {
        self.inner.running.read().expect("core lock").timers
    }

    /// Runs `work` on the running core, never on one being swapped out.
    pub(crate) async fn on_core<F, R>(&self, work: impl FnOnce(Raft) -> F) -> R
    where
        F: std::future::Future<Output = R>,
    {
        let _shared = self.inner.swapping.read().await;
        work(self.raft()).await
    }

    /// Starts a core on `timers` in place of the running one, unless it
    /// runs on them already. Waits for the writes under way to end.
    pub(crate) async fn retime(&self, timers: Timers) -> Result<(), String> {
        let _exclusive = self.inner.swapping.write().await;
        let old = self.inner.running.read().expect("core lock").clone();
        if old.timers == timers {
            return Ok(());
        }
        let state = old.raft.metrics().borrow().state;
        if state == ServerState::Shutdown || self.inner.stopping.load(Ordering::Acquire) {
            return Err("the member has stopped".into());
        }
        let Inner { member_id, transport, log, machine, .. } = &*self.inner;
        // Checked before the old core stops: a refusal leaves it running.
        crate::raft_config(timers)?;
        if let Err(error) = old.raft.shutdown().await {
            tracing::warn!(%error, "the core did not stop cleanly before its restart");
        }
        let raft = start_raft(*member_id, timers, transport, log, machine).await?;
        *self.inner.running.write().expect("core lock") = Running { raft, timers, generation: old.generation + 1 };
        tracing::info!(
            heartbeat_ms = timers.heartbeat_ms,
            election_timeout_ms = timers.election_timeout_ms,
            was = ?state,
            "Raft core started again on the group's new timers"
        );
        Ok(())
    }

    /// Resolves when the core has stopped for good: on a fatal error, or
    /// when shut down, but not when it was replaced by a new one.
    pub(crate) async fn stopped(&self) {
        loop {
            let Running { raft, generation, .. } = self.inner.running.read().expect("core lock").clone();
            let mut metrics = raft.metrics();
            let _ = metrics.wait_for(|m| m.state == ServerState::Shutdown || m.running_state.is_err()).await;
            // A swap stops the old core first, then publishes the new one.
            let _settled = self.inner.swapping.read().await;
            if self.inner.running.read().expect("core lock").generation == generation {
                return;
            }
        }
    }

    /// Stops the running core (and, as no other starts after it, the
    /// member). Writes under way end with the core.
    pub(crate) async fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::Release);
        loop {
            let Running { raft, generation, .. } = self.inner.running.read().expect("core lock").clone();
            if let Err(error) = raft.shutdown().await {
                tracing::warn!(%error, "the replica group did not stop cleanly");
            }
            // A swap that began before `stopping` was set may have started
            // another core meanwhile: that one stops too.
            let _settled = self.inner.swapping.read().await;
            if self.inner.running.read().expect("core lock").generation == generation {
                return;
            }
        }
    }
}

async fn start_raft<T: Transport + Clone, E: Effects>(
    member_id: MemberId,
    timers: Timers,
    transport: &T,
    log: &GroupLog,
    machine: &LedgerMachine<E>,
) -> Result<Raft, String> {
    let config = crate::raft_config(timers)?;
    let factory = TransportFactory(transport.clone());
    Raft::new(member_id, Arc::new(config), factory, log.clone(), machine.clone())
        .await
        .map_err(|e| format!("starting the replica group: {e}"))
}
