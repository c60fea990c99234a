//! What a pool's workers did, beyond what `pool_core::Metrics` counts.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use super::runner::Fate;

/// Counters of a [`SubprocessPool`](crate::SubprocessPool)'s workers since it was built,
/// from [`SubprocessPool::worker_metrics`](crate::SubprocessPool::worker_metrics).
///
/// `pool_core::Metrics::destroyed_by` counts every worker a call found unusable as
/// `broken`; these say why: it exited, was killed, or faulted. Planned retirements are
/// the pool's own: [`WorkerSpec::max_requests`](crate::WorkerSpec::max_requests) and
/// [`WorkerSpec::max_age`](crate::WorkerSpec::max_age) are its `max_uses` and
/// `max_lifetime`, counted in `destroyed_by.max_uses` and `destroyed_by.lifetime`.
/// Counters only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct WorkerMetrics {
    /// Messages workers sent (frames that answer no request: notifications, log lines,
    /// requests to the host).
    pub messages: u64,
    /// Of those, the ones dropped because no message handler was set.
    pub messages_dropped: u64,
    /// Workers that exited on their own while in the pool (one that closed its stdout and
    /// then had to be killed counts as `killed`).
    pub exited: u64,
    /// Workers the pool killed: a request timed out, or they would not exit.
    pub killed: u64,
    /// Workers that broke the protocol, wrote output nobody asked for, or whose call
    /// failed or was cancelled half-way.
    pub faulted: u64,
}

/// The live counters behind [`WorkerMetrics`], shared by a pool's manager and its runners.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    messages: AtomicU64,
    messages_dropped: AtomicU64,
    exited: AtomicU64,
    killed: AtomicU64,
    faulted: AtomicU64,
    /// The pool's name, for the events its workers log: the builder sets it (to the
    /// program's name, then to the one given), before any worker can start.
    name: Mutex<Arc<str>>,
}

impl Counters {
    /// Counters of workers that log as `name`.
    pub(crate) fn named(name: &str) -> Self {
        let counters = Self::default();
        counters.set_name(name);
        counters
    }

    /// Names the pool.
    pub(crate) fn set_name(&self, name: &str) {
        *self.name.lock().unwrap_or_else(PoisonError::into_inner) = name.into();
    }

    /// The pool's name (read when an event is logged).
    pub(crate) fn name(&self) -> Arc<str> {
        self.name
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn message(&self, handled: bool) {
        self.messages.fetch_add(1, Relaxed);
        if !handled {
            self.messages_dropped.fetch_add(1, Relaxed);
        }
    }

    /// Counts a worker that went and logs how: one WARN when it failed (exited, was
    /// killed, faulted), a DEBUG line when it was stopped as planned.
    pub(crate) fn worker_ended(&self, pid: u32, fate: Fate) {
        self.ended(fate);
        let pool = self.name();
        match fate {
            Fate::Stopped => {
                tracing::debug!(target: "subprocess_pool", pool = %pool, pid, "worker stopped")
            }
            _ => {
                tracing::warn!(target: "subprocess_pool", pool = %pool, pid, ended = fate.as_str(), "worker ended")
            }
        }
    }

    /// Counts a worker going, by how it went.
    fn ended(&self, fate: Fate) {
        let counter = match fate {
            Fate::Exited => &self.exited,
            Fate::Killed => &self.killed,
            Fate::Faulted => &self.faulted,
            Fate::Stopped => return,
        };
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> WorkerMetrics {
        WorkerMetrics {
            messages: self.messages.load(Relaxed),
            messages_dropped: self.messages_dropped.load(Relaxed),
            exited: self.exited.load(Relaxed),
            killed: self.killed.load(Relaxed),
            faulted: self.faulted.load(Relaxed),
        }
    }
}
