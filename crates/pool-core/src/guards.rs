//! Guards that undo a step of a `get` (or of maintenance) if it is cancelled or panics.

use std::sync::Arc;

use crate::entry::Entry;
use crate::manager::Manager;
use crate::metrics::DestroyReason;
use crate::shared::Shared;

/// Gives a reserved create slot back if the create is cancelled or panics.
pub(crate) struct CreateSlotGuard<'a, M: Manager> {
    shared: &'a Arc<Shared<M>>,
}

impl<'a, M: Manager> CreateSlotGuard<'a, M> {
    pub(crate) fn new(shared: &'a Arc<Shared<M>>) -> Self {
        Self { shared }
    }

    /// The create ended with an outcome, which the caller now settles itself.
    pub(crate) fn settled(self) {
        std::mem::forget(self);
    }
}

impl<M: Manager> Drop for CreateSlotGuard<'_, M> {
    fn drop(&mut self) {
        self.shared
            .with_state(|state, after| state.create_abandoned(after));
    }
}

/// Holds an object taken from the idle list while a hook readies or checks it. An object
/// still here when the guard drops (its `get` or check was cancelled, or panicked) is
/// destroyed as abandoned, since it may be half-recycled.
pub(crate) struct Readying<'a, M: Manager> {
    shared: &'a Arc<Shared<M>>,
    entry: Option<Box<Entry<M::Object>>>,
    /// Taken aside by maintenance (counted in `checking`) rather than for a caller.
    background: bool,
}

impl<'a, M: Manager> Readying<'a, M> {
    /// The pool's name, for log events.
    pub(crate) fn pool_name(&self) -> &str {
        &self.shared.name
    }

    pub(crate) fn for_caller(shared: &'a Arc<Shared<M>>, entry: Box<Entry<M::Object>>) -> Self {
        Self {
            shared,
            entry: Some(entry),
            background: false,
        }
    }

    /// For an object maintenance took off the idle list (`checking` counted it).
    pub(crate) fn for_background_check(
        shared: &'a Arc<Shared<M>>,
        entry: Box<Entry<M::Object>>,
    ) -> Self {
        Self {
            shared,
            entry: Some(entry),
            background: true,
        }
    }

    pub(crate) fn entry_mut(&mut self) -> Option<&mut Entry<M::Object>> {
        self.entry.as_deref_mut()
    }

    /// The object passed: hand it on.
    pub(crate) fn release(mut self) -> Option<Box<Entry<M::Object>>> {
        self.entry.take()
    }

    /// Destroys the object, counting why; its slot is freed.
    pub(crate) fn reject(&mut self, reason: DestroyReason) {
        self.destroy_object(reason, false);
    }

    /// Destroys the object, counting why, and keeps its slot for the caller to create in
    /// when a create may start now, so a caller whose object failed does not lose its
    /// turn to those queued behind it. Returns whether the slot was kept.
    pub(crate) fn reject_keeping_slot(&mut self, reason: DestroyReason) -> bool {
        self.destroy_object(reason, true)
    }

    #[inline(never)]
    fn destroy_object(&mut self, reason: DestroyReason, keep_slot: bool) -> bool {
        let Some(entry) = self.entry.take() else {
            return false;
        };
        let background = self.background;
        self.shared.with_state(|state, after| {
            state.readying_rejected(entry.object, reason, background, keep_slot, after)
        })
    }
}

impl<M: Manager> Drop for Readying<'_, M> {
    #[inline]
    fn drop(&mut self) {
        // Almost always released already; the check stays inline, the rest out of line.
        if self.entry.is_some() {
            self.reject(DestroyReason::Abandoned);
        }
    }
}
