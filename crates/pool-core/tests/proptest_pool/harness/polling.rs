// Starting and polling `get`s, and keeping the observed waiter queue.

use super::*;

impl Harness<'_> {
    pub(super) fn start_get(&mut self, start: Start, before: &Before) -> Step {
        let pool = self.pool.clone();
        let ms = Duration::from_millis;
        let (future, timeout): (Pin<Box<dyn Future<Output = GetResult>>>, _) = match start {
            Start::Get => (
                Box::pin(async move { pool.get().await }),
                self.setup.wait_timeout_ms.map(ms),
            ),
            Start::Timeout(t) => (
                Box::pin(async move { pool.get_timeout(ms(t)).await }),
                Some(ms(t)),
            ),
            Start::Try => (Box::pin(async move { pool.try_get().await }), None),
        };
        let is_try = matches!(start, Start::Try);
        let key = self.next_key;
        self.next_key += 1;
        if timeout.is_none() {
            self.no_deadline.insert(key);
        }
        let mut get = PendingGet {
            key,
            future,
            deadline: timeout.map(|t| Instant::now() + t),
            is_try,
        };
        let outcome = self.poll_get(&mut get, Place::New)?;
        let s = before.status;
        if self.closed {
            prop_assert_eq!(&outcome, &Outcome::Closed, "a get on a closed pool");
        }
        if is_try {
            // `try_get` never queues, and says `Exhausted` only with nothing idle (or
            // every idle object failing its checkout) and no create able to start: the
            // pool full, `max_concurrent_creates` in flight, or creates paused after a
            // failure.
            let may_pause = self.manager.backend().creates_may_pause();
            let idle_failed = self.pool.metrics().destroyed > before.metrics.destroyed;
            let room = s.size < s.max_size && s.creating < self.setup.max_concurrent_creates;
            if outcome == Outcome::Exhausted {
                prop_assert!(
                    (s.idle == 0 || idle_failed) && (!room || may_pause),
                    "try_get said Exhausted with an idle object or room to create: {s:?}"
                );
            } else if s.idle == 0 && !room && !self.closed {
                prop_assert_eq!(&outcome, &Outcome::Exhausted, "try_get on a full pool");
            }
        }
        if outcome == Outcome::Pending {
            self.pending.push(get);
        }
        Ok(())
    }

    pub(super) fn poll_pending(&mut self) -> Step {
        for mut get in std::mem::take(&mut self.pending) {
            let busy = self.manager.backend().busy(get.key);
            let place = if self.queue.contains(&get.key) {
                Place::Queued
            } else if self.granted.contains(&get.key) {
                Place::Granted
            } else if let Some(hook) = busy {
                Place::Busy(hook)
            } else {
                let key = get.key;
                let trouble = format!("get #{key} neither queued, served nor in a hook");
                return Err(TestCaseError::fail(trouble));
            };
            if self.poll_get(&mut get, place)? == Outcome::Pending {
                self.pending.push(get);
            }
        }
        Ok(())
    }

    /// Polls a get once and checks its outcome against the contract.
    pub(super) fn poll_get(
        &mut self,
        get: &mut PendingGet,
        place: Place,
    ) -> Result<Outcome, TestCaseError> {
        let key = get.key;
        let now = Instant::now();
        let s = self.pool.status();
        let m = self.pool.metrics();
        let idle = if s.idle > 0 {
            self.idle_ids()
        } else {
            Vec::new()
        };
        let events = self.manager.backend().events;
        let future = &mut get.future;
        let poll = as_caller(key, || {
            catch_unwind(AssertUnwindSafe(|| {
                future
                    .as_mut()
                    .poll(&mut Context::from_waker(Waker::noop()))
            }))
        });
        let queued = self.pool.metrics().waits - m.waits;
        prop_assert!(queued <= 1, "one poll queued {} times", queued);
        let backend = self.manager.backend();
        // This caller's calls that ended in this poll.
        let ended: Vec<_> = backend
            .calls
            .iter()
            .filter(|call| call.caller == Some(key) && call.ended > events)
            .cloned()
            .collect();
        let ended_as = |hook: Hook, end: End| {
            ended
                .iter()
                .filter(move |call| call.hook == hook && call.end == Some(end))
        };
        let create_failed = ended_as(Hook::Create, End::Err).next().is_some();
        let panicked = ended.iter().any(|call| call.end == Some(End::Panic));
        let fresh = ended_as(Hook::Create, End::Ok).find_map(|call| call.object);
        let checked = |id| ended_as(Hook::HealthCheck, End::Ok).any(|c| c.object == Some(id));
        let recycled = |id| ended_as(Hook::Recycle, End::Ok).any(|c| c.object == Some(id));
        let own_error = backend
            .calls
            .iter()
            .any(|call| call.caller == Some(key) && call.end == Some(End::Err));
        // A create made for this caller failed or was cut off: its later waiting counts as
        // creating.
        let create_tried = backend.calls.iter().any(|call| {
            call.caller == Some(key)
                && call.hook == Hook::Create
                && matches!(call.end, Some(End::Err | End::Dropped))
        });
        // The pool keeps its latest create failure since its last success, unless that
        // failure went to a caller without a deadline as `Backend`.
        let success = backend.last_create_end(|end| end == End::Ok);
        let pool_error = backend.calls.iter().any(|call| {
            call.hook == Hook::Create
                && call.end == Some(End::Err)
                && call.ended > success
                && !call.caller.is_some_and(|k| self.no_deadline.contains(&k))
        });
        let busy = backend.busy(key);
        // Whether nothing could serve it before its deadline: creates may be paused, and
        // the pause ends at most `create_backoff_max` after the latest failed create.
        let may_be_paused_until = backend
            .last_create_trouble
            .filter(|_| backend.creates_may_pause())
            .map(|at| at + pool_core::DEFAULT_CREATE_BACKOFF_MAX);
        drop(backend);

        if place == Place::Queued {
            // Fairness: a queued get is served only from the front of the queue.
            prop_assert!(
                matches!(poll, Ok(Poll::Pending)) && queued == 0 && busy.is_none()
                    || matches!(
                        poll,
                        Ok(Poll::Ready(Err(PoolError::Timeout {
                            kind: TimeoutKind::Wait | TimeoutKind::Create,
                            ..
                        })))
                    ),
                "get #{} served out of turn: queue {:?}, poll {:?}",
                key,
                self.queue,
                describe(&poll)
            );
        }
        if place == Place::Granted && self.closed {
            prop_assert!(
                matches!(poll, Ok(Poll::Ready(Err(PoolError::Closed)))),
                "a get served after close did not get Closed"
            );
        }
        prop_assert_eq!(
            panicked,
            poll.is_err(),
            "a hook panicked in get #{}, or it panicked with none",
            key
        );
        let result = match poll {
            Err(_) => {
                self.handed.remove(&key);
                self.leave_queue(key);
                self.sync_queue()?;
                return Ok(Outcome::Panicked);
            }
            Ok(Poll::Pending) => {
                if let Some(deadline) = get.deadline {
                    // Timers fire on millisecond ticks; one tick of slack.
                    prop_assert!(
                        now < deadline + Duration::from_millis(1),
                        "get #{} outlived its deadline by {:?}",
                        key,
                        now - deadline
                    );
                }
                prop_assert!(!create_failed || get.deadline.is_some(), "no Backend error");
                if queued == 1 {
                    prop_assert!(!get.is_try, "try_get queued");
                    self.leave_queue(key);
                    self.queue.push_back(key);
                } else if place != Place::Queued {
                    prop_assert!(
                        busy.is_some(),
                        "get #{key} pending, yet not queued nor busy"
                    );
                    self.leave_queue(key);
                }
                self.sync_queue()?;
                return Ok(Outcome::Pending);
            }
            Ok(Poll::Ready(result)) => result,
        };
        let handed = self.handed.remove(&key);
        self.leave_queue(key);
        self.sync_queue()?;
        prop_assert!(
            !create_failed
                || get.deadline.is_some()
                || matches!(result, Err(PoolError::Backend(_))),
            "get #{key} without a deadline: its create failed, but it got {result:?}"
        );
        let outcome = match result {
            Ok(object) => {
                let id = object.id;
                prop_assert!(!self.closed, "object {id} handed out after close");
                prop_assert!(!object.broken, "broken object {id} handed out again");
                let destroyed = self.manager.backend().destroyed.contains(&id);
                prop_assert!(!destroyed, "destroyed object {id} handed out");
                if let Some(added) = handed.filter(|&added| added != id) {
                    // Served by an add: that object, unless its checkout failed and it
                    // was destroyed (checked once the destroy has run, in `check`).
                    self.doomed.push((key, added));
                }
                let (hca, lifetime) =
                    (self.setup.health_check_after_ms, self.setup.max_lifetime_ms);
                let max_uses = self.setup.max_uses;
                let obj = self.obj(id);
                obj.uses += 1;
                let (uses, age, idle_for) = (obj.uses, now - obj.created, now - obj.idle_since);
                prop_assert!(
                    max_uses.is_none_or(|max| uses <= max),
                    "object {id} used {uses} times"
                );
                if let Some(limit) = lifetime.map(Duration::from_millis) {
                    prop_assert!(age < limit, "object {id} handed out at age {age:?}");
                }
                if fresh != Some(id) {
                    // An idle object: recycled, health-checked first if idle long enough.
                    prop_assert!(recycled(id), "object {id} handed out without a recycle");
                    self.recycled += 1;
                    let due = hca.is_some_and(|after| idle_for >= Duration::from_millis(after));
                    prop_assert_eq!(
                        checked(id),
                        due,
                        "health check of {} idle {:?}",
                        id,
                        idle_for
                    );
                }
                // Idle objects go out in `queue_mode` order; the ones before it failed.
                let order: Vec<u64> = if self.setup.fifo {
                    idle.clone()
                } else {
                    idle.iter().rev().copied().collect()
                };
                let skipped = order.iter().take_while(|&&i| i != id).count() as u64;
                let destroyed = self.pool.metrics().destroyed - m.destroyed;
                if idle.contains(&id) || (place == Place::New && !idle.is_empty()) {
                    prop_assert!(
                        skipped <= destroyed,
                        "got {} from idle {:?} ({})",
                        id,
                        idle,
                        if self.setup.fifo { "fifo" } else { "lifo" }
                    );
                }
                self.held.push(object);
                Outcome::Got(id)
            }
            Err(PoolError::Closed) => {
                prop_assert!(self.closed, "Closed from an open pool");
                Outcome::Closed
            }
            Err(PoolError::Exhausted) => {
                prop_assert!(get.is_try, "Exhausted from a waiting get");
                Outcome::Exhausted
            }
            Err(PoolError::Backend(error)) => {
                // Without a deadline, a create made for this caller that fails is its answer.
                prop_assert!(get.deadline.is_none() && create_failed, "Backend({error})");
                prop_assert_eq!(error.to_string(), "injected Create failure");
                Outcome::Backend
            }
            Err(PoolError::Timeout { kind, last_error }) => {
                self.timeouts += 1;
                match get.deadline {
                    Some(deadline) => {
                        // Early only when nothing could serve it in time: no object at all,
                        // and creates paused past its deadline.
                        let too_late = kind == TimeoutKind::Create
                            && self.pool.status().size == 0
                            && may_be_paused_until.is_some_and(|until| deadline <= until);
                        prop_assert!(
                            now >= deadline || too_late,
                            "timed out {:?} early",
                            deadline - now
                        )
                    }
                    // Without a deadline, only `create_timeout` ends a get in a timeout.
                    None => prop_assert!(
                        kind == TimeoutKind::Create && self.setup.create_timeout_ms.is_some(),
                        "Timeout {kind:?} from a get without a deadline"
                    ),
                }
                // The phase it was in, or one it moved on to in this poll: a hook cut off
                // by its own timeout (`create_timeout`, `recycle_timeout`) sends the get on
                // to look again, and perhaps to create or recycle, before its deadline
                // ends it.
                let create_cut = self.setup.create_timeout_ms.is_some();
                let hook_cut = self.setup.recycle_timeout_ms.is_some();
                let phase_ok = match place {
                    Place::Queued if create_tried => kind == TimeoutKind::Create,
                    Place::Queued => kind == TimeoutKind::Wait,
                    Place::Busy(Hook::Create) => kind == TimeoutKind::Create || create_cut,
                    Place::Busy(_) => kind == TimeoutKind::Recycle || hook_cut,
                    Place::Granted | Place::New => true,
                };
                prop_assert!(phase_ok, "Timeout {kind:?} of a get in {place:?}");
                // Its own latest failure, else the pool's since its last success.
                prop_assert_eq!(
                    last_error.is_some(),
                    own_error || pool_error,
                    "last_error of get #{}",
                    key
                );
                Outcome::Timeout {
                    kind,
                    cause: last_error.is_some(),
                }
            }
        };
        Ok(outcome)
    }

    pub(super) fn leave_queue(&mut self, key: u64) {
        self.queue.retain(|&k| k != key);
        self.granted.remove(&key);
    }

    /// Every fall of `Status::waiting` the test did not cause serves the front of the queue.
    pub(super) fn sync_queue(&mut self) -> Step {
        let waiting = self.pool.status().waiting;
        prop_assert!(
            waiting <= self.queue.len(),
            "{} waiting, {} queued gets",
            waiting,
            self.queue.len()
        );
        while self.queue.len() > waiting {
            let key = self.queue.pop_front().unwrap();
            self.granted.insert(key);
        }
        Ok(())
    }
}
