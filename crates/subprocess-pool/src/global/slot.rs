//! `Global<T>`: one process-wide slot for a pool, started with the app and drained when it
//! stops.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pool_core::ShutdownReport;

use super::{GlobalError, GracefulShutdown};

/// A process-wide slot for one pool (or a bundle of pools), usable from a `static`.
///
/// [`init`](Global::init) puts a value in at start-up, [`get`](Global::get) hands out a
/// shared handle to it from anywhere, and [`shutdown`](Global::shutdown) takes it out and
/// drains it. Every method is thread-safe and none panics: a second `init` while a value is
/// running is [`GlobalError::AlreadyRunning`], a `get` before `init` is
/// [`GlobalError::NotInitialized`] and after `shutdown` [`GlobalError::ShutDown`]; `init`
/// after `shutdown` starts afresh (a test suite, or an app that restarts its pools, can
/// cycle as often as it likes).
///
/// Handles already given out by `get` stay usable after `shutdown` began, but the pool
/// behind them is closed: their calls fail with the pool's `Closed` error.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use subprocess_pool::protocol::Lines;
/// use subprocess_pool::{Global, GlobalError, SubprocessPool, WorkerSpec};
///
/// static WORKERS: Global<SubprocessPool<Lines>> = Global::new();
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// assert!(matches!(WORKERS.get(), Err(GlobalError::NotInitialized)));
///
/// WORKERS.init(SubprocessPool::builder(WorkerSpec::new("cat"), Lines::default()).build()?)?;
/// let reply = WORKERS.get()?.call("hi".to_string()).await?;
/// assert_eq!(reply, "hi");
///
/// let report = WORKERS.shutdown(Duration::from_secs(1)).await?;
/// assert!(report.is_clean());
/// assert!(matches!(WORKERS.get(), Err(GlobalError::ShutDown)));
/// # Ok(())
/// # }
/// ```
pub struct Global<T> {
    slot: Mutex<Slot<T>>,
}

enum Slot<T> {
    Empty,
    Running(Arc<T>),
    ShutDown,
}

impl<T> Global<T> {
    /// An empty slot; `const`, so it can initialize a `static`.
    pub const fn new() -> Self {
        Self {
            slot: Mutex::new(Slot::Empty),
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Slot<T>> {
        // The slot is only ever replaced whole, so a panic elsewhere cannot leave it torn.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts `value` in the slot and returns a handle to it.
    ///
    /// Errors with [`GlobalError::AlreadyRunning`] if a value is running (`value` is then
    /// dropped). Works on an empty slot and on one that was shut down.
    pub fn init(&self, value: T) -> Result<Arc<T>, GlobalError> {
        let mut slot = self.slot();
        if matches!(*slot, Slot::Running(_)) {
            return Err(GlobalError::AlreadyRunning);
        }
        let value = Arc::new(value);
        *slot = Slot::Running(Arc::clone(&value));
        Ok(value)
    }

    /// A handle to the running value.
    ///
    /// Errors with [`GlobalError::NotInitialized`] before the first `init` and
    /// [`GlobalError::ShutDown`] after `shutdown`.
    pub fn get(&self) -> Result<Arc<T>, GlobalError> {
        match &*self.slot() {
            Slot::Running(value) => Ok(Arc::clone(value)),
            Slot::Empty => Err(GlobalError::NotInitialized),
            Slot::ShutDown => Err(GlobalError::ShutDown),
        }
    }

    /// Whether a value is running (between `init` and `shutdown`).
    pub fn is_running(&self) -> bool {
        matches!(*self.slot(), Slot::Running(_))
    }

    /// Takes the running value out of the slot (later `get`s fail with
    /// [`GlobalError::ShutDown`]), then closes and drains it within `grace`.
    ///
    /// The slot is emptied before the drain starts, so `init` may start a new value while
    /// the old one drains. Errors with [`GlobalError::NotInitialized`] or
    /// [`GlobalError::ShutDown`] when nothing is running.
    pub async fn shutdown(&self, grace: Duration) -> Result<ShutdownReport, GlobalError>
    where
        T: GracefulShutdown,
    {
        let value = {
            let mut slot = self.slot();
            match std::mem::replace(&mut *slot, Slot::ShutDown) {
                Slot::Running(value) => value,
                Slot::Empty => {
                    *slot = Slot::Empty;
                    return Err(GlobalError::NotInitialized);
                }
                Slot::ShutDown => return Err(GlobalError::ShutDown),
            }
        };
        Ok(value.shutdown(grace).await)
    }
}

impl<T> Default for Global<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Global<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.slot() {
            Slot::Empty => "empty",
            Slot::Running(_) => "running",
            Slot::ShutDown => "shut down",
        };
        f.debug_struct("Global").field("state", &state).finish()
    }
}
