//! An object together with the pool's private bookkeeping for it.

use tokio::time::Instant;

use crate::meta::ObjectMeta;

/// One pooled object: what the user sees plus what only the pool needs.
///
/// The pool keeps each entry in a `Box` for the object's whole life (one allocation per
/// create), so handing it between the idle list, a waiter and a guard moves one pointer.
pub(crate) struct Entry<T> {
    pub(crate) object: T,
    pub(crate) meta: ObjectMeta,
    /// Set only when `max_lifetime` is configured: the object's own, jittered deadline.
    pub(crate) expires_at: Option<Instant>,
    /// Set only when `max_uses` is configured: the object's own, jittered use limit.
    pub(crate) max_uses: Option<u64>,
    /// Set only when `health_check_interval` is configured: when maintenance next checks it.
    pub(crate) next_check: Option<Instant>,
    /// The pool's eviction epoch when the object joined; an older epoch means `evict_all`
    /// ran while it was out.
    pub(crate) epoch: u64,
}

impl<T> Entry<T> {
    pub(crate) fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}
