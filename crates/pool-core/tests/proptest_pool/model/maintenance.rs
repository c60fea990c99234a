use std::time::Duration;

use crate::backoff_log::ceil_ms;
use crate::manager::{Fault, Hook};

use super::{MBackoff, MPool, MaintState, Reason, Task};

impl MPool {
    // Background tasks (`maintenance.rs`, `shared.rs`).

    pub(super) fn notify_maintenance(&mut self) {
        if !self.maintenance_alive {
            return;
        }
        match self.maintenance {
            MaintState::Waiting(_) => {
                self.maintenance = MaintState::Queued;
                self.queue.push_back(Task::Maintenance);
            }
            MaintState::Queued | MaintState::Running => self.maintenance_permit = true,
        }
    }

    /// Lets every task that is ready run, as the test's yields to the runtime do: first
    /// the tasks woken during the step, then those whose timers are due, oldest deadline
    /// first, then whatever they wake or spawn, in order.
    pub(crate) fn settle(&mut self) {
        let now = self.now;
        let mut due: Vec<(u64, u64, Task)> = Vec::new();
        self.backoff_timers.retain(|&(at, seq)| {
            let fire = at <= now;
            if fire {
                due.push((at, seq, Task::BackoffElapsed));
            }
            !fire
        });
        self.hung_refills.retain(|&(at, seq)| {
            let fire = at <= now;
            if fire {
                due.push((at, seq, Task::RefillTimedOut));
            }
            !fire
        });
        if let MaintState::Waiting(Some(at)) = self.maintenance {
            if self.maintenance_alive && at <= now {
                self.maintenance = MaintState::Queued;
                due.push((at, self.maintenance_seq, Task::Maintenance));
            }
        }
        due.sort_by_key(|&(at, seq, _)| (at, seq));
        self.queue.extend(due.into_iter().map(|(_, _, task)| task));
        while let Some(task) = self.queue.pop_front() {
            match task {
                Task::Maintenance => self.run_maintenance(),
                Task::Refill { epoch } => self.run_refill(epoch),
                Task::RefillTimedOut => {
                    self.refilling -= 1;
                    self.create_failed(false);
                }
                Task::BackoffElapsed => {
                    if self.backoff == MBackoff::Waiting {
                        self.backoff = MBackoff::ProbeReady;
                    }
                    self.creates_eased();
                }
            }
        }
        self.destroying = 0; // every `destroy` spawned has run
    }

    fn run_maintenance(&mut self) {
        if !self.maintenance_alive {
            return;
        }
        self.maintenance = MaintState::Running;
        loop {
            let wake_at = self.maintenance_pass();
            if !self.maintenance_alive {
                return;
            }
            if std::mem::take(&mut self.maintenance_permit) {
                continue;
            }
            self.maintenance = MaintState::Waiting(wake_at);
            self.maintenance_seq = self.next_seq();
            return;
        }
    }

    /// One pass: lifetime sweep, idle sweep (keeping `min_idle`), refills; returns the
    /// tick it sleeps until.
    fn maintenance_pass(&mut self) -> Option<u64> {
        if self.closed {
            self.maintenance_alive = false;
            return None;
        }
        if self.max_lifetime.is_some() {
            for obj in std::mem::take(&mut self.idle) {
                if self.expired(&obj) {
                    self.retire(Reason::Lifetime);
                } else {
                    self.idle.push_back(obj);
                }
            }
        }
        if let Some(timeout) = self.idle_timeout {
            let mut removable = self.idle.len().saturating_sub(self.min_idle);
            for obj in std::mem::take(&mut self.idle) {
                if removable > 0 && self.now - obj.last_used >= timeout {
                    removable -= 1;
                    self.retire(Reason::IdleTimeout);
                } else {
                    self.idle.push_back(obj);
                }
            }
        }
        while self.idle.len() + self.refilling < self.min_idle
            && self.size < self.max_size
            && self.can_start_create()
        {
            self.size += 1;
            self.start_create();
            self.refilling += 1;
            self.queue.push_back(Task::Refill { epoch: self.epoch });
        }
        // `next_wake`: each idle object's lifetime (its jitter stays inside the same
        // millisecond tick) and idle timeout, and a fallback period.
        let removable = self.idle.len() > self.min_idle;
        let mut wake: Option<u64> = None;
        let mut consider = |at: u64| wake = Some(wake.map_or(at, |w| w.min(at)));
        for obj in &self.idle {
            if let Some(lifetime) = self.max_lifetime {
                consider(obj.created + lifetime);
            }
            if let Some(timeout) = self.idle_timeout.filter(|_| removable) {
                consider(obj.last_used + timeout);
            }
        }
        let fallback = [
            self.idle_timeout.map(|ms| ms * 1_000_000),
            self.max_lifetime.map(|ms| ms * 1_000_000 / 20),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(nanos) = fallback {
            consider(self.now + ceil_ms(Duration::from_nanos(nanos)));
        }
        wake
    }

    fn run_refill(&mut self, epoch: u64) {
        match self.script.take(Hook::Create) {
            None => {
                self.refilling -= 1;
                let mut obj = self.new_object(epoch);
                obj.uses = 0; // idle until lent

                self.create_succeeded();
                if self.closed {
                    self.retire(Reason::Closed);
                } else {
                    self.put_back(obj);
                }
                self.creates_eased();
            }
            Some(Fault::Fail) => {
                self.refilling -= 1;
                self.create_failed(true);
            }
            Some(Fault::Panic) => {
                self.refilling -= 1;
                self.create_failed(false);
            }
            Some(Fault::Hang) => {
                let bound = self
                    .create_timeout
                    .or(self.recycle_timeout)
                    .unwrap_or(30_000);
                let seq = self.next_seq();
                self.hung_refills.push((self.now + bound, seq));
            }
        }
    }
}
