use pool_core::TimeoutKind;

use crate::manager::{Fault, Hook};
use crate::ops::Outcome;

use super::{Acq, At, Created, Found, MGet, MGrant, MObj, MPool, Main, Mode, Reason, Ri, RiOut};

impl MPool {
    // The path of a `get` (`acquire.rs`, `find_or_queue.rs`).

    fn find_new(&mut self, mode: Mode) -> Found {
        if self.closed {
            return Found::Err(Outcome::Closed);
        }
        let popped = if self.fifo {
            self.idle.pop_front()
        } else {
            self.idle.pop_back()
        };
        if let Some(obj) = popped {
            if self.idle.len() < self.min_idle {
                self.notify_maintenance();
            }
            return Found::Idle(obj);
        }
        if self.try_reserve_create(mode) {
            return Found::Slot;
        }
        if mode == Mode::Try {
            return Found::Err(Outcome::Exhausted);
        }
        self.metrics.waits += 1;
        let key = self.next_key;
        self.next_key += 1;
        self.waiters.push_back(key);
        Found::Pending(key)
    }

    fn find_wait(&mut self, key: u64) -> Found {
        match self.grants.remove(&key) {
            None => Found::Pending(key),
            Some(MGrant::Object(_)) if self.closed => {
                self.retire(Reason::Closed);
                Found::Err(Outcome::Closed)
            }
            Some(MGrant::Object(obj)) => Found::Idle(obj),
            Some(MGrant::CreateSlot) if self.closed => {
                self.abandon_create();
                Found::Err(Outcome::Closed)
            }
            Some(MGrant::CreateSlot) => Found::Slot,
            Some(MGrant::Closed) => Found::Err(Outcome::Closed),
        }
    }

    fn give_up(&mut self, key: u64) {
        if let Some(position) = self.waiters.iter().position(|&k| k == key) {
            self.waiters.remove(position);
        }
        if let Some(grant) = self.grants.remove(&key) {
            self.regrant(grant);
        }
    }

    fn timed_out(&mut self, get: &MGet) -> Outcome {
        self.metrics.timeouts += 1;
        Outcome::Timeout {
            kind: get.phase,
            cause: get.last_error || self.last_create_error,
        }
    }

    fn lend(&mut self, obj: MObj) -> Outcome {
        let id = obj.id;
        self.lent = Some(obj);
        Outcome::Got(id)
    }

    /// What dropping a pending `get` (or its `acquire`, cut off by the deadline) undoes.
    pub(super) fn drop_get(&mut self, get: &mut MGet) {
        match std::mem::replace(&mut get.at, At::Done) {
            At::Find { key, .. } => self.give_up(key),
            At::Create { .. } => self.abandon_create(),
            At::Hook { .. } => {
                // The object is gone with the hook's future: destroyed as abandoned.
                self.reject(Reason::Abandoned, false);
            }
            At::Start | At::Done => {}
        }
    }

    pub(super) fn poll_get(&mut self, get: &mut MGet) -> Outcome {
        match std::mem::replace(&mut get.at, At::Done) {
            At::Start => self.main_loop(get, Main::FindNew),
            At::Find {
                acquire: false,
                key,
            } => self.main_loop(get, Main::FindWait(key)),
            At::Hook {
                acquire: false,
                obj,
                hook,
                bound,
            } => self.main_loop(get, Main::Ready(obj, Ri::Resume(hook, bound))),
            At::Find { acquire: true, key } => self.acquire(get, Acq::FindWait(key)),
            At::Create { timeout_at } => self.acquire(get, Acq::Create(Some(timeout_at))),
            At::Hook {
                acquire: true,
                obj,
                hook,
                bound,
            } => self.acquire(get, Acq::Ready(obj, Ri::Resume(hook, bound))),
            At::Done => unreachable!("polled a finished get"),
        }
    }

    /// `Shared::get`: `FindOrQueue` under the caller's deadline, then `ready_idle`.
    fn main_loop(&mut self, get: &mut MGet, mut at: Main) -> Outcome {
        loop {
            let (obj, ri) = match at {
                Main::FindNew | Main::FindWait(_) => {
                    let found = match at {
                        Main::FindWait(key) => self.find_wait(key),
                        _ => {
                            get.phase = TimeoutKind::Wait;
                            self.find_new(get.mode)
                        }
                    };
                    match found {
                        Found::Pending(key) => {
                            // `timeout_at` polls the inner future first, then its timer.
                            if self.passed(get.deadline) {
                                self.give_up(key);
                                return self.timed_out(get);
                            }
                            get.at = At::Find {
                                acquire: false,
                                key,
                            };
                            return Outcome::Pending;
                        }
                        Found::Err(outcome) => return outcome,
                        Found::Slot => return self.acquire(get, Acq::Create(None)),
                        Found::Idle(obj) => (obj, Ri::Begin),
                    }
                }
                Main::Ready(obj, ri) => (obj, ri),
            };
            get.phase = TimeoutKind::Recycle;
            let deadline = get.deadline;
            match self.ready_idle(get, obj, deadline, ri) {
                RiOut::Object(obj) => return self.lend(obj),
                RiOut::Rejected { kept_slot: false } => at = Main::FindNew,
                RiOut::Rejected { kept_slot: true } => return self.acquire(get, Acq::Create(None)),
                RiOut::DeadlinePassed => return self.timed_out(get),
                RiOut::Pending(hook, bound, obj) => {
                    get.at = At::Hook {
                        acquire: false,
                        obj,
                        hook,
                        bound,
                    };
                    return Outcome::Pending;
                }
                RiOut::Panicked => return Outcome::Panicked,
            }
        }
    }

    /// `create_then_retry`: `acquire` under one outer deadline, which cuts it off wherever
    /// it stands.
    fn acquire(&mut self, get: &mut MGet, at: Acq) -> Outcome {
        let outcome = self.acquire_inner(get, at);
        if outcome == Outcome::Pending && self.passed(get.deadline) {
            self.drop_get(get);
            return self.timed_out(get);
        }
        outcome
    }

    fn acquire_inner(&mut self, get: &mut MGet, mut at: Acq) -> Outcome {
        let has_deadline = get.deadline.is_some();
        loop {
            at = match at {
                Acq::Create(resume) => {
                    get.phase = TimeoutKind::Create;
                    match self.create_in_slot(has_deadline, resume) {
                        Created::Object(obj) => return self.lend(obj),
                        Created::Closed => return Outcome::Closed,
                        Created::Failed if !has_deadline => return Outcome::Backend,
                        Created::Failed => {
                            get.last_error = true;
                            Acq::FindNew
                        }
                        Created::TimedOut if !has_deadline => return self.timed_out(get),
                        Created::TimedOut => Acq::FindNew,
                        Created::Panicked => return Outcome::Panicked,
                        Created::Hanging(timeout_at) => {
                            get.at = At::Create { timeout_at };
                            return Outcome::Pending;
                        }
                    }
                }
                Acq::FindNew | Acq::FindWait(_) => {
                    let found = match at {
                        Acq::FindWait(key) => self.find_wait(key),
                        _ => {
                            get.phase = TimeoutKind::Wait;
                            self.find_new(get.mode)
                        }
                    };
                    match found {
                        Found::Pending(key) => {
                            get.at = At::Find { acquire: true, key };
                            return Outcome::Pending;
                        }
                        Found::Err(outcome) => return outcome,
                        Found::Slot => Acq::Create(None),
                        Found::Idle(obj) => Acq::Ready(obj, Ri::Begin),
                    }
                }
                Acq::Ready(obj, ri) => {
                    get.phase = TimeoutKind::Recycle;
                    match self.ready_idle(get, obj, None, ri) {
                        RiOut::Object(obj) => return self.lend(obj),
                        RiOut::Rejected { kept_slot: true } => Acq::Create(None),
                        RiOut::Rejected { kept_slot: false } | RiOut::DeadlinePassed => {
                            Acq::FindNew
                        }
                        RiOut::Pending(hook, bound, obj) => {
                            get.at = At::Hook {
                                acquire: true,
                                obj,
                                hook,
                                bound,
                            };
                            return Outcome::Pending;
                        }
                        RiOut::Panicked => return Outcome::Panicked,
                    }
                }
            };
        }
    }

    /// `create_in_slot`; `resume` is `Some(cut-off)` for a create already hanging.
    fn create_in_slot(&mut self, share_error: bool, resume: Option<Option<u64>>) -> Created {
        let fault = match resume {
            Some(_) => Some(Fault::Hang),
            None => self.script.take(Hook::Create),
        };
        match fault {
            None => {
                let obj = self.new_object(self.epoch);
                self.create_succeeded();
                let outcome = if self.closed {
                    self.retire(Reason::Closed);
                    Created::Closed
                } else {
                    Created::Object(obj)
                };
                self.creates_eased();
                outcome
            }
            Some(Fault::Fail) => {
                self.create_failed(share_error);
                Created::Failed
            }
            Some(Fault::Panic) => {
                // `CreateSlotGuard` gives the slot back while the panic unwinds.
                self.abandon_create();
                Created::Panicked
            }
            Some(Fault::Hang) => {
                let timeout_at = match resume {
                    Some(timeout_at) => timeout_at,
                    None => self.create_timeout.map(|limit| self.now + limit),
                };
                if self.passed(timeout_at) {
                    self.create_failed(false);
                    Created::TimedOut
                } else {
                    Created::Hanging(timeout_at)
                }
            }
        }
    }

    /// `ready_idle`: lifetime, health check (past `health_check_after`), recycle.
    fn ready_idle(
        &mut self,
        get: &mut MGet,
        mut obj: MObj,
        deadline: Option<u64>,
        ri: Ri,
    ) -> RiOut {
        match ri {
            Ri::Resume(hook, bound) => {
                if !self.passed(bound) {
                    return RiOut::Pending(hook, bound, obj);
                }
                self.hook_failed(get, hook, false, deadline)
            }
            Ri::Begin => {
                obj.uses += 1;
                let needs_now = self.max_lifetime.is_some()
                    || self.health_check_after.is_some()
                    || self.recycle_timeout.is_some();
                if needs_now {
                    if self.expired(&obj) {
                        let kept_slot = self.reject(Reason::Lifetime, true);
                        return RiOut::Rejected { kept_slot };
                    }
                    let idle_for = self.now - obj.last_used;
                    if self
                        .health_check_after
                        .is_some_and(|after| idle_for >= after)
                    {
                        obj = match self.call_hook(get, obj, Hook::HealthCheck, deadline) {
                            Ok(obj) => obj,
                            Err(out) => return out,
                        };
                    }
                }
                match self.call_hook(get, obj, Hook::Recycle, deadline) {
                    Ok(obj) => {
                        self.metrics.recycled += 1;
                        RiOut::Object(obj)
                    }
                    Err(out) => out,
                }
            }
        }
    }

    fn call_hook(
        &mut self,
        get: &mut MGet,
        obj: MObj,
        hook: Hook,
        deadline: Option<u64>,
    ) -> Result<MObj, RiOut> {
        // `hook_deadline`: `recycle_timeout` from now, or the caller's deadline if sooner.
        let own = self.recycle_timeout.map(|limit| self.now + limit);
        let bound = match (deadline, own) {
            (Some(caller), Some(own)) => Some(caller.min(own)),
            (caller, own) => caller.or(own),
        };
        match self.script.take(hook) {
            None => Ok(obj),
            Some(Fault::Fail) => Err(self.hook_failed(get, hook, true, deadline)),
            Some(Fault::Panic) => {
                self.reject(Reason::Abandoned, false);
                Err(RiOut::Panicked)
            }
            Some(Fault::Hang) if self.passed(bound) => {
                Err(self.hook_failed(get, hook, false, deadline))
            }
            Some(Fault::Hang) => Err(RiOut::Pending(hook, bound, obj)),
        }
    }

    /// `fail`: a hook failed (`error`) or timed out.
    fn hook_failed(
        &mut self,
        get: &mut MGet,
        hook: Hook,
        error: bool,
        deadline: Option<u64>,
    ) -> RiOut {
        if !error && self.passed(deadline) {
            self.reject(Reason::Abandoned, false);
            return RiOut::DeadlinePassed;
        }
        let reason = match hook {
            Hook::HealthCheck => Reason::HealthCheckFailed,
            _ => Reason::RecycleFailed,
        };
        let kept_slot = self.reject(reason, true);
        if error {
            get.last_error = true;
        }
        RiOut::Rejected { kept_slot }
    }
}
