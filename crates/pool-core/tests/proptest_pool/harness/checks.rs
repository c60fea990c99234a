// The checks after each step, and at the end of a case.

use super::*;

impl Harness<'_> {
    /// Destroys in this step: each counted under the reason the contract gives it.
    pub(super) fn check_destroys(&mut self, op: &Op, before: &Before) -> Step {
        let m = self.pool.metrics();
        let (by, was) = (&m.destroyed_by, before.metrics.destroyed_by);
        prop_assert_eq!(
            by.broken - was.broken,
            self.expect.broken,
            "destroyed_by.broken"
        );
        prop_assert_eq!(
            by.max_uses - was.max_uses,
            self.expect.max_uses,
            "by.max_uses"
        );
        prop_assert_eq!(
            by.retained_out - was.retained_out,
            self.expect.retained_out,
            "destroyed_by.retained_out"
        );
        prop_assert!(
            by.closed == was.closed || self.closed,
            "by.closed on an open pool"
        );
        prop_assert!(
            by.evicted == was.evicted || self.evictions || matches!(op, Op::DropObject(_)),
            "by.evicted with no shrink nor evict_all"
        );
        prop_assert!(by.lifetime == was.lifetime || self.setup.max_lifetime_ms.is_some());
        if by.idle_timeout > was.idle_timeout {
            prop_assert!(self.setup.idle_timeout_ms.is_some(), "by.idle_timeout");
            if matches!(op, Op::AdvanceClock(_)) {
                // Keeping `min_idle`.
                let idle = self.pool.status().idle;
                prop_assert!(idle >= self.setup.min_idle, "idle sweep below min_idle");
            }
        }
        Ok(())
    }

    /// The invariants, checked after every step.
    pub(crate) fn check(&mut self) -> Step {
        self.settle();
        self.sync_queue()?;
        let s = self.pool.status();
        let m = self.pool.metrics();
        let now = Instant::now();
        let setup = &self.setup;

        // Occupancy adds up, and stays within max_size except right after a shrink.
        prop_assert_eq!(s.size, s.idle + s.in_use + s.creating, "{:?}", s);
        let over = s.size.saturating_sub(s.max_size);
        prop_assert!(
            over <= self.shrink_allowance,
            "size above max_size without a shrink in progress: {s:?}, allowance {}",
            self.shrink_allowance
        );
        self.shrink_allowance = over;
        prop_assert!(
            over == 0 || s.idle == 0,
            "surplus kept idle after a shrink: {s:?}"
        );
        prop_assert_eq!(s.waiting, self.queue.len(), "waiting vs the gets queued");

        // Counters only grow, and agree with what the manager and the test saw.
        counters_grow(&self.metrics, &m)?;
        self.metrics = m.clone();
        prop_assert_eq!(
            m.destroyed,
            total(&m.destroyed_by),
            "destroyed vs destroyed_by"
        );
        prop_assert_eq!(
            m.created,
            m.destroyed + m.taken + (s.size - s.creating) as u64,
            "created != destroyed + taken + (size - creating): {:?} {:?}",
            m,
            s
        );
        prop_assert_eq!(m.taken, self.taken.len() as u64, "taken");
        prop_assert_eq!(m.timeouts, self.timeouts, "timeouts vs Timeout errors seen");
        prop_assert_eq!(
            m.recycled,
            self.recycled,
            "recycled vs idle objects handed out"
        );
        let by = m.destroyed_by;
        prop_assert_eq!(m.recycle_failures, by.recycle_failed, "recycle failures");
        prop_assert_eq!(m.health_check_failures, by.health_check_failed);
        let backend = self.manager.backend();
        prop_assert!(backend.trouble.is_empty(), "{:?}", backend.trouble);
        // Created: the manager's successful creates, and the adds the pool accepted.
        prop_assert_eq!(m.created, backend.got(), "created vs creates and adds");
        // Every destroy the pool started has run by now (settle yielded to it).
        prop_assert_eq!(
            m.destroyed,
            backend.destroyed.len() as u64,
            "destroyed vs destroys"
        );
        for (key, added) in self.doomed.drain(..) {
            prop_assert!(
                backend.destroyed.contains(&added),
                "get #{key} was handed added object {added}, but got another, and {added} lives"
            );
        }
        // Failures counted: every error, and at most every cut-off call (a timeout) too.
        let failed = |hook| {
            let count = |end| backend.count(hook, end);
            (
                count(End::Err),
                count(End::Err) + count(End::Dropped) + count(End::Panic),
            )
        };
        for (hook, counted) in [
            (Hook::Create, m.create_failures),
            (Hook::Recycle, m.recycle_failures),
            (Hook::HealthCheck, m.health_check_failures),
        ] {
            let (least, most) = failed(hook);
            prop_assert!(
                (least..=most).contains(&counted),
                "{hook:?} failures {counted}"
            );
        }
        let cut = |hook| backend.count(hook, End::Dropped) + backend.count(hook, End::Panic);
        prop_assert!(
            by.abandoned <= cut(Hook::Recycle) + cut(Hook::HealthCheck),
            "abandoned"
        );

        // Creates: each for a caller that needs it or for `min_idle`, within bounds.
        let refills = backend.refills();
        prop_assert!(refills <= setup.min_idle, "{refills} refills in flight");
        prop_assert!(backend.in_flight(Hook::Create).count() <= s.creating);
        // Each pending get is queued, holds an object (served, or in a hook), or holds a
        // create slot (served, or creating); after close some just wait to see `Closed`.
        prop_assert!(
            self.held.len() <= s.in_use,
            "{} held, {:?}",
            self.held.len(),
            s
        );
        let accounted = s.waiting + (s.in_use - self.held.len()) + (s.creating - refills);
        prop_assert!(
            accounted == self.pending.len() || self.closed && accounted <= self.pending.len(),
            "{s:?} with {} held, {refills} refills and {} pending gets",
            self.held.len(),
            self.pending.len()
        );
        // Nobody waits beside an idle object, or beside room to create unless creates are
        // paused after a failure or refills in flight cover the waiters.
        if s.waiting > 0 {
            prop_assert_eq!(s.idle, 0, "a waiter waits beside an idle object: {:?}", s);
            prop_assert!(
                s.size >= s.max_size
                    || s.creating >= setup.max_concurrent_creates
                    || backend.creates_may_pause()
                    || refills >= s.waiting,
                "a waiter waits beside room to create: {s:?}"
            );
        }

        // No object in two places: held, idle, taken, destroyed are disjoint; none twice.
        drop(backend);
        let idle = self.idle_ids();
        prop_assert_eq!(idle.len(), s.idle);
        let backend = self.manager.backend();
        let mut seen = HashSet::new();
        let out = self.held.iter().map(|o| o.id).chain(idle.iter().copied());
        for id in out.chain(self.taken.iter().copied()) {
            prop_assert!(seen.insert(id), "object {id} is in two places");
        }
        for &id in &backend.destroyed {
            prop_assert!(
                seen.insert(id),
                "object {id} destroyed twice, or while in use"
            );
            let got = id <= backend.created_at.len() as u64 || backend.added.contains_key(&id);
            prop_assert!(got, "object {id} destroyed, yet never created nor added");
        }
        // Maintenance: no idle object outlives its lifetime, nor (beyond `min_idle`) its
        // idle timeout, by more than one maintenance period (it wakes at the earliest
        // deadline it knows of, and at least every `idle_timeout` and `max_lifetime / 20`,
        // so an object that goes idle unannounced waits up to one period).
        self.idle_seen.retain(|id, _| idle.contains(id));
        let arrived = idle.iter().filter_map(|id| self.idle_seen.get(id)).max();
        if idle.iter().any(|id| !self.idle_seen.contains_key(id)) || arrived.is_none() {
            self.idle_changed = now; // an arrival may lift the count above `min_idle`
        }
        for &id in &idle {
            let created = backend.born(id);
            let idle_since = self.objects.get(&id).map_or(created, |obj| obj.idle_since);
            let seen = *self.idle_seen.entry(id).or_insert(now);
            if let Some(limit) = setup.max_lifetime_ms {
                let period = Duration::from_millis(limit.div_ceil(20));
                prop_assert!(
                    now - created < Duration::from_millis(limit) || now - seen < period,
                    "idle object {id} outlived its lifetime: made {:?} ago, idle {:?}",
                    now - created,
                    now - seen
                );
            }
            if let Some(limit) = setup.idle_timeout_ms.map(Duration::from_millis) {
                prop_assert!(
                    now - idle_since.max(self.idle_changed) <= limit
                        || idle.len() <= setup.min_idle,
                    "object {id} idle for {:?} with {} idle",
                    now - idle_since,
                    idle.len()
                );
            }
        }
        Ok(())
    }

    /// Drops everything, shuts down, and checks every object was destroyed once or taken.
    pub(crate) fn finish(mut self) -> Step {
        self.held.clear();
        self.pending.clear();
        self.shutdowns.clear();
        // Long enough for a refill stuck in a hanging create to be cut off (30 s at most);
        // the paused clock jumps there at once.
        let report = self
            .rt
            .block_on(self.pool.shutdown(Duration::from_secs(60)));
        prop_assert!(report.is_clean(), "unclean shutdown: {report:?}");
        self.settle();
        let s = self.pool.status();
        prop_assert_eq!(s.size, 0, "slots left after shutdown: {:?}", s);
        let backend = self.manager.backend();
        prop_assert!(backend.trouble.is_empty(), "{:?}", backend.trouble);
        let mut destroyed = HashSet::new();
        for &id in &backend.destroyed {
            prop_assert!(destroyed.insert(id), "object {id} destroyed twice");
            prop_assert!(!self.taken.contains(&id), "taken object {id} destroyed");
        }
        for id in backend.ids() {
            prop_assert!(
                destroyed.contains(&id) || self.taken.contains(&id),
                "object {id} was neither destroyed nor taken"
            );
        }
        let m = self.pool.metrics();
        prop_assert_eq!(m.created, backend.got());
        prop_assert_eq!(m.destroyed, backend.destroyed.len() as u64);
        Ok(())
    }
}

/// The `destroyed_by` counters that grew, by name, once per object.
pub(super) fn reasons(was: &DestroyedBy, now: &DestroyedBy) -> Vec<&'static str> {
    let fields = |by: &DestroyedBy| {
        [
            ("broken", by.broken),
            ("recycle_failed", by.recycle_failed),
            ("health_check_failed", by.health_check_failed),
            ("idle_timeout", by.idle_timeout),
            ("lifetime", by.lifetime),
            ("max_uses", by.max_uses),
            ("evicted", by.evicted),
            ("closed", by.closed),
            ("retained_out", by.retained_out),
            ("abandoned", by.abandoned),
        ]
    };
    let pairs = fields(was).into_iter().zip(fields(now));
    let grew = pairs.flat_map(|((name, a), (_, b))| std::iter::repeat_n(name, (b - a) as usize));
    grew.collect()
}

pub(super) fn total(by: &DestroyedBy) -> u64 {
    by.broken
        + by.recycle_failed
        + by.health_check_failed
        + by.idle_timeout
        + by.lifetime
        + by.max_uses
        + by.evicted
        + by.closed
        + by.retained_out
        + by.abandoned
}

pub(super) fn counters_grow(was: &Metrics, now: &Metrics) -> Step {
    let fields = |m: &Metrics| {
        let by = &m.destroyed_by;
        [
            m.created,
            m.destroyed,
            m.taken,
            m.recycled,
            m.recycle_failures,
            m.health_check_failures,
            m.create_failures,
            m.timeouts,
            m.waits,
            m.leaks,
            by.broken,
            by.recycle_failed,
            by.health_check_failed,
            by.idle_timeout,
            by.lifetime,
            by.max_uses,
            by.evicted,
            by.closed,
            by.retained_out,
            by.abandoned,
        ]
    };
    let grew = fields(was).iter().zip(fields(now)).all(|(a, b)| *a <= b);
    prop_assert!(
        grew && was.wait_time <= now.wait_time,
        "a counter fell: {was:?} -> {now:?}"
    );
    Ok(())
}

pub(super) fn describe(poll: &Result<Poll<GetResult>, Box<dyn std::any::Any + Send>>) -> String {
    match poll {
        Err(_) => "panicked".into(),
        Ok(Poll::Pending) => "pending".into(),
        Ok(Poll::Ready(Ok(object))) => format!("object {}", object.id),
        Ok(Poll::Ready(Err(error))) => format!("{error:?}"),
    }
}
