//! Work collected under the pool's lock, to be done once it is released.

use std::task::Waker;
use std::time::Duration;

use crate::metrics::DestroyReason;

/// Work to do once the lock is released.
pub(crate) struct AfterUnlock<T> {
    pub(crate) wake: Option<Waker>,
    pub(crate) more_wakes: Vec<Waker>,
    pub(crate) destroy: Vec<(T, DestroyReason)>,
    /// Something a `shutdown` or a filling build may be waiting for changed.
    pub(crate) changed: bool,
    /// Maintenance should look again (e.g. to refill `min_idle`).
    pub(crate) wake_maintenance: bool,
    /// A create failed and a backoff delay must be timed: the delay, its number, and the
    /// consecutive failures so far.
    pub(crate) backoff_delay: Option<(Duration, u64, u32)>,
}

impl<T> AfterUnlock<T> {
    pub(crate) fn new() -> Self {
        Self {
            wake: None,
            more_wakes: Vec::new(),
            destroy: Vec::new(),
            changed: false,
            wake_maintenance: false,
            backoff_delay: None,
        }
    }

    pub(crate) fn wake(&mut self, waker: Option<Waker>) {
        if let Some(waker) = waker {
            match self.wake {
                None => self.wake = Some(waker),
                Some(_) => self.more_wakes.push(waker),
            }
        }
    }
}
