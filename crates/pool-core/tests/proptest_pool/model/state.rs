use std::collections::{HashMap, VecDeque};

use crate::backoff_log::ceil_ms;
use crate::manager::Script;
use crate::ops::Setup;

use super::{MBackoff, MGrant, MMetrics, MObj, MPool, MaintState, Mode, Reason, Task};

impl MPool {
    pub(super) fn new(setup: &Setup) -> Self {
        let needs_maintenance = setup.min_idle > 0
            || setup.idle_timeout_ms.is_some()
            || setup.max_lifetime_ms.is_some();
        let mut queue = VecDeque::new();
        if needs_maintenance {
            queue.push_back(Task::Maintenance);
        }
        Self {
            max_concurrent_creates: setup.max_concurrent_creates,
            min_idle: setup.min_idle,
            fifo: setup.fifo,
            create_timeout: setup.create_timeout_ms,
            recycle_timeout: setup.recycle_timeout_ms,
            health_check_after: setup.health_check_after_ms,
            idle_timeout: setup.idle_timeout_ms,
            max_lifetime: setup.max_lifetime_ms,
            max_uses: setup.max_uses.map(|uses| uses as u64),
            now: 0,
            max_size: setup.max_size,
            size: 0,
            creating: 0,
            refilling: 0,
            closed: false,
            epoch: 0,
            idle: VecDeque::new(),
            waiters: VecDeque::new(),
            grants: HashMap::new(),
            next_key: 0,
            next_id: 1,
            backoff: MBackoff::Open,
            backoff_timers: Vec::new(),
            hung_refills: Vec::new(),
            maintenance_alive: needs_maintenance,
            maintenance: MaintState::Queued,
            maintenance_seq: 0,
            maintenance_permit: false,
            queue,
            seq: 0,
            metrics: MMetrics::default(),
            last_create_error: false,
            destroying: 0,
            script: Script::default(),
            delays: VecDeque::new(),
            lent: None,
            trouble: Vec::new(),
        }
    }

    pub(super) fn passed(&self, deadline: Option<u64>) -> bool {
        deadline.is_some_and(|deadline| self.now >= deadline)
    }

    pub(super) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub(crate) fn in_use(&self) -> usize {
        self.size - self.idle.len() - self.creating
    }

    pub(crate) fn backoff_allows(&self) -> bool {
        matches!(self.backoff, MBackoff::Open | MBackoff::ProbeReady)
    }

    pub(super) fn expired(&self, obj: &MObj) -> bool {
        self.max_lifetime
            .is_some_and(|lifetime| self.now - obj.created >= lifetime)
    }

    pub(super) fn new_object(&mut self, epoch: u64) -> MObj {
        let id = self.next_id;
        self.next_id += 1;
        MObj {
            id,
            created: self.now,
            last_used: self.now,
            uses: 1,
            epoch,
            broken: false,
        }
    }

    // Transitions under the lock (`state.rs`).

    pub(super) fn can_start_create(&self) -> bool {
        !self.closed && self.creating < self.max_concurrent_creates && self.backoff_allows()
    }

    pub(super) fn start_create(&mut self) {
        self.creating += 1;
        if self.backoff == MBackoff::ProbeReady {
            self.backoff = MBackoff::Probing;
        }
    }

    /// A `try_get` cannot wait for a refill, so refills never keep it from creating.
    pub(super) fn try_reserve_create(&mut self, mode: Mode) -> bool {
        let refills_cover_demand = mode != Mode::Try && self.refilling > self.waiters.len();
        if self.size < self.max_size && self.can_start_create() && !refills_cover_demand {
            self.size += 1;
            self.start_create();
            true
        } else {
            false
        }
    }

    fn grant_front(&mut self, grant: MGrant) -> Result<(), MGrant> {
        match self.waiters.pop_front() {
            Some(key) => {
                self.grants.insert(key, grant);
                Ok(())
            }
            None => Err(grant),
        }
    }

    fn grant_creates(&mut self) {
        while self.waiters.len() > self.refilling
            && self.size < self.max_size
            && self.can_start_create()
        {
            self.size += 1;
            self.start_create();
            self.grant_front(MGrant::CreateSlot)
                .expect("a waiter was queued");
        }
    }

    pub(super) fn creates_eased(&mut self) {
        if self.closed {
            return;
        }
        self.grant_creates();
        if self.min_idle > 0 {
            self.notify_maintenance();
        }
    }

    fn release_slot(&mut self) {
        self.size -= 1;
        self.creates_eased();
    }

    pub(super) fn abandon_create(&mut self) {
        self.creating -= 1;
        if self.backoff == MBackoff::Probing {
            self.backoff = MBackoff::ProbeReady;
        }
        self.release_slot();
    }

    pub(super) fn create_succeeded(&mut self) {
        self.creating -= 1;
        self.metrics.created += 1;
        self.last_create_error = false;
        self.backoff = MBackoff::Open;
    }

    pub(super) fn create_failed(&mut self, shared_error: bool) {
        self.creating -= 1;
        self.metrics.create_failures += 1;
        if shared_error {
            self.last_create_error = true;
        }
        if self.backoff != MBackoff::Waiting {
            self.backoff = MBackoff::Waiting;
            match self.delays.pop_front() {
                Some(delay) => {
                    let seq = self.next_seq();
                    self.backoff_timers.push((self.now + ceil_ms(delay), seq));
                }
                None => self.trouble.push(format!(
                    "at {} ms the model started a backoff the engine did not log",
                    self.now
                )),
            }
        }
        self.release_slot();
    }

    fn count(&mut self, reason: Reason) {
        let by = &mut self.metrics.destroyed_by;
        let counter = match reason {
            Reason::Broken => &mut by.broken,
            Reason::RecycleFailed => &mut by.recycle_failed,
            Reason::HealthCheckFailed => &mut by.health_check_failed,
            Reason::IdleTimeout => &mut by.idle_timeout,
            Reason::Lifetime => &mut by.lifetime,
            Reason::MaxUses => &mut by.max_uses,
            Reason::Evicted => &mut by.evicted,
            Reason::Closed => &mut by.closed,
            Reason::RetainedOut => &mut by.retained_out,
            Reason::Abandoned => &mut by.abandoned,
        };
        *counter += 1;
        self.destroying += 1;
    }

    pub(super) fn retire(&mut self, reason: Reason) {
        self.count(reason);
        self.release_slot();
    }

    fn retire_keeping_slot(&mut self, reason: Reason) -> bool {
        self.count(reason);
        if self.idle.is_empty() && self.size <= self.max_size && self.can_start_create() {
            self.start_create();
            true
        } else {
            self.release_slot();
            false
        }
    }

    pub(super) fn put_back(&mut self, obj: MObj) {
        if self.closed {
            self.retire(Reason::Closed);
        } else if self.size > self.max_size || obj.epoch != self.epoch {
            self.retire(Reason::Evicted);
        } else if let Err(MGrant::Object(obj)) = self.grant_front(MGrant::Object(obj)) {
            self.idle.push_back(obj);
        }
    }

    pub(super) fn regrant(&mut self, grant: MGrant) {
        match grant {
            MGrant::Object(obj) => self.put_back(obj),
            MGrant::CreateSlot => self.abandon_create(),
            MGrant::Closed => {}
        }
    }

    pub(super) fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        while self.idle.pop_front().is_some() {
            self.retire(Reason::Closed);
        }
        while self.grant_front(MGrant::Closed).is_ok() {}
        self.notify_maintenance();
    }

    /// `Checkout::reject` / `reject_keeping_slot`: counts a failed hook, then retires.
    pub(super) fn reject(&mut self, reason: Reason, keep_slot: bool) -> bool {
        match reason {
            Reason::RecycleFailed => self.metrics.recycle_failures += 1,
            Reason::HealthCheckFailed => self.metrics.health_check_failures += 1,
            _ => {}
        }
        if keep_slot {
            self.retire_keeping_slot(reason)
        } else {
            self.retire(reason);
            false
        }
    }

    // Handles and guards.

    pub(super) fn return_object(&mut self, mut obj: MObj) {
        let stamps = self.idle_timeout.is_some() || self.health_check_after.is_some();
        let verdict = if obj.broken {
            Some(Reason::Broken)
        } else if self.max_uses.is_some_and(|max| obj.uses >= max) {
            Some(Reason::MaxUses)
        } else if stamps || self.max_lifetime.is_some() {
            if self.expired(&obj) {
                Some(Reason::Lifetime)
            } else {
                if stamps {
                    obj.last_used = self.now;
                }
                None
            }
        } else {
            None
        };
        match verdict {
            Some(reason) => self.retire(reason),
            None if self.waiters.is_empty()
                && !self.closed
                && self.size <= self.max_size
                && obj.epoch == self.epoch =>
            {
                self.idle.push_back(obj);
            }
            None => self.put_back(obj),
        }
    }

    pub(super) fn take_object(&mut self) {
        self.metrics.taken += 1;
        self.release_slot();
    }

    pub(super) fn resize(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.grant_creates();
        while self.size > self.max_size {
            if self.idle.pop_front().is_none() {
                break;
            }
            self.retire(Reason::Evicted);
        }
    }

    pub(super) fn retain_even(&mut self) {
        for obj in std::mem::take(&mut self.idle) {
            if obj.id % 2 == 0 {
                self.put_back(obj);
            } else {
                self.retire(Reason::RetainedOut);
            }
        }
    }

    pub(super) fn evict_all(&mut self) {
        self.epoch += 1;
        while self.idle.pop_front().is_some() {
            self.retire(Reason::Evicted);
        }
    }
}
