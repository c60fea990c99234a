// A manager with injectable faults that records every call it gets, and whose call.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError};

use std::time::Duration;

use pool_core::{Manager, ObjectMeta, Pool};
use tokio::time::Instant;

/// Objects the test makes itself for `Pool::add` have ids above this, so they never
/// collide with the manager's own (from 1, in creation order).
pub(crate) const OUTSIDE: u64 = 1 << 40;

#[derive(Debug)]
pub(crate) struct Conn {
    /// Unique per manager, from 1, in creation order; above `OUTSIDE` if made by the test.
    pub(crate) id: u64,
    /// Read by `is_broken`; set by `Op::MarkBroken`.
    pub(crate) broken: bool,
}

/// The hooks a fault can be injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hook {
    Create = 0,
    Recycle = 1,
    HealthCheck = 2,
}

/// What the next call of a hook does instead of succeeding at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Returns an error.
    Fail,
    /// Panics.
    Panic,
    /// Never completes: only a timeout or a cancellation ends it.
    Hang,
}

/// The faults still to come.
#[derive(Debug, Clone, Default)]
pub(crate) struct Script {
    pub(crate) next: [Option<Fault>; 3],
    /// The backend is down: every create not otherwise scripted fails.
    pub(crate) down: bool,
}

impl Script {
    fn take(&mut self, hook: Hook) -> Option<Fault> {
        self.next[hook as usize]
            .take()
            .or((hook == Hook::Create && self.down).then_some(Fault::Fail))
    }
}

thread_local! {
    /// The key of the `get` the test is polling: hooks called in that poll are its calls;
    /// hooks run by the pool's own tasks (`min_idle` refills) have no caller.
    static CALLER: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Runs `poll` as the `get` with this key.
pub(crate) fn as_caller<R>(key: u64, poll: impl FnOnce() -> R) -> R {
    let outer = CALLER.replace(Some(key));
    let result = poll();
    CALLER.set(outer);
    result
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Ok,
    Err,
    Panic,
    /// The pool dropped the call's future: a cancelled `get`, or a timeout.
    Dropped,
}

#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) hook: Hook,
    pub(crate) caller: Option<u64>,
    /// The object a recycle or health check was given, or the one a create made.
    pub(crate) object: Option<u64>,
    pub(crate) end: Option<End>,
    /// When it started and ended, counted over all starts and ends (0: not ended).
    pub(crate) started: u64,
    pub(crate) ended: u64,
}

#[derive(Default)]
pub(crate) struct Backend {
    pub(crate) script: Script,
    pub(crate) max_concurrent_creates: usize,
    /// Every hook call, in the order they started.
    pub(crate) calls: Vec<Call>,
    pub(crate) events: u64,
    /// When each object was created (index: id - 1), so also the number created.
    pub(crate) created_at: Vec<Instant>,
    /// Objects the test made outside the pool (`FaultyManager::make_outside`).
    pub(crate) made_outside: u64,
    /// When the pool accepted each object the test gave it with `Pool::add`, by id: these
    /// count as created too.
    pub(crate) added: BTreeMap<u64, Instant>,
    /// Ids passed to `destroy`, in order.
    pub(crate) destroyed: Vec<u64>,
    /// Contract breaches seen from the backend's side: too many creates at once, a storm.
    pub(crate) trouble: Vec<String>,
    /// The pool, to read `Status::creating` when a create fails.
    pub(crate) pool: Option<Pool<FaultyManager>>,
    /// The pause after the first failed create since the last success.
    pause: Option<Pause>,
    /// When a create last failed or was cut off: creates may stay paused until at most
    /// `create_backoff_max` after it.
    pub(crate) last_create_trouble: Option<Instant>,
}

/// The shortest pause after a failed create (the guide: 10 ms, cut by a random up-to-half).
const PAUSE: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy)]
struct Pause {
    at: Instant,
    /// When the failure ended, in `Call` order.
    seq: u64,
    /// Create slots reserved but not yet in `create` when it failed: they may still start.
    reserved: usize,
}

impl Backend {
    /// When the pool got this object: made by `create`, or accepted by `Pool::add`.
    pub(crate) fn born(&self, id: u64) -> Instant {
        if id > OUTSIDE {
            self.added[&id]
        } else {
            self.created_at[id as usize - 1]
        }
    }

    /// Every object the pool got, created or added.
    pub(crate) fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        (1..=self.created_at.len() as u64).chain(self.added.keys().copied())
    }

    /// The objects the pool got: what `Metrics::created` counts.
    pub(crate) fn got(&self) -> u64 {
        (self.created_at.len() + self.added.len()) as u64
    }

    fn start(&mut self, hook: Hook, object: Option<u64>) -> usize {
        if hook == Hook::Create {
            let in_flight = self.in_flight(Hook::Create).count();
            if in_flight >= self.max_concurrent_creates {
                self.trouble.push(format!(
                    "a create started with {in_flight} in flight (max_concurrent_creates)"
                ));
            }
            // Not stormed: after a failed create, creates pause (at least 5 ms: 10 ms cut
            // by up to half); only slots reserved before the failure may start meanwhile.
            if let Some(pause) = self.pause.filter(|p| Instant::now() < p.at + PAUSE) {
                let calls = self.calls.iter();
                let started = calls.filter(|c| c.hook == Hook::Create && c.started > pause.seq);
                if started.count() >= pause.reserved {
                    self.trouble.push(format!(
                        "a create started {:?} after a failure (pause: {PAUSE:?})",
                        Instant::now() - pause.at
                    ));
                }
            }
        }
        self.events += 1;
        self.calls.push(Call {
            hook,
            caller: CALLER.get(),
            object,
            end: None,
            started: self.events,
            ended: 0,
        });
        self.calls.len() - 1
    }

    /// A create failed; `creating` is `Status::creating`, still counting it.
    fn create_failed(&mut self, index: usize, creating: usize) {
        // Only a plain error surely starts a pause; skip when a cut-off create (maybe
        // timed out, maybe cancelled) or a panic since the last success may have started one.
        let success = self.last_create_end(|end| end == End::Ok);
        let unsure = self.last_create_end(|end| end != End::Ok && end != End::Err) > success;
        let reserved = creating.saturating_sub(self.in_flight(Hook::Create).count());
        self.end(index, End::Err);
        if self.pause.is_none() && !unsure {
            let (at, seq) = (Instant::now(), self.events);
            self.pause = Some(Pause { at, seq, reserved });
        }
    }

    fn end(&mut self, index: usize, end: End) {
        if end == End::Ok && self.calls[index].hook == Hook::Create {
            self.pause = None;
        }
        if matches!(end, End::Err | End::Dropped) && self.calls[index].hook == Hook::Create {
            self.last_create_trouble = Some(Instant::now());
        }
        if self.calls[index].end.is_none() {
            self.events += 1;
            let call = &mut self.calls[index];
            call.end = Some(end);
            call.ended = self.events;
        }
    }

    pub(crate) fn in_flight(&self, hook: Hook) -> impl Iterator<Item = &Call> {
        self.calls
            .iter()
            .filter(move |call| call.hook == hook && call.end.is_none())
    }

    /// The hook call of this caller in flight, if any.
    pub(crate) fn busy(&self, caller: u64) -> Option<Hook> {
        let calls = self.calls.iter();
        calls
            .filter(|call| call.caller == Some(caller) && call.end.is_none())
            .map(|call| call.hook)
            .next()
    }

    /// Creates in flight for `min_idle` (no caller).
    pub(crate) fn refills(&self) -> usize {
        self.in_flight(Hook::Create)
            .filter(|call| call.caller.is_none())
            .count()
    }

    /// When the latest create ending as `end` says ended (0: none).
    pub(crate) fn last_create_end(&self, end: impl Fn(End) -> bool) -> u64 {
        let creates = self.calls.iter().filter(|call| call.hook == Hook::Create);
        creates
            .filter(|call| call.end.is_some_and(&end))
            .map(|call| call.ended)
            .max()
            .unwrap_or(0)
    }

    /// Whether creates may be paused: a create did not succeed after the latest success.
    pub(crate) fn creates_may_pause(&self) -> bool {
        self.last_create_end(|end| end != End::Ok) > self.last_create_end(|end| end == End::Ok)
    }

    pub(crate) fn count(&self, hook: Hook, end: End) -> u64 {
        let calls = self.calls.iter();
        calls
            .filter(|call| call.hook == hook && call.end == Some(end))
            .count() as u64
    }
}

/// Ends a call as `Dropped` (or `Panic` while unwinding) unless it was ended already.
struct Running {
    manager: FaultyManager,
    index: usize,
}

impl Running {
    fn end(self, end: End) {
        self.manager.backend().end(self.index, end);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let end = if std::thread::panicking() {
            End::Panic
        } else {
            End::Dropped
        };
        self.manager.backend().end(self.index, end);
    }
}

/// Clones share one backend, so the test can inject faults and read the record.
#[derive(Clone, Default)]
pub(crate) struct FaultyManager(Arc<Mutex<Backend>>);

impl FaultyManager {
    pub(crate) fn backend(&self) -> MutexGuard<'_, Backend> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes an object the way another source would, outside the pool, for `Pool::add`.
    pub(crate) fn make_outside(&self) -> Conn {
        let mut backend = self.backend();
        backend.made_outside += 1;
        let id = OUTSIDE + backend.made_outside;
        Conn { id, broken: false }
    }

    /// Runs a hook as scripted. Unless a fault says otherwise, every hook completes on its
    /// first poll, so the only way to catch a `get` half-way through a hook is `Hang`.
    async fn run(&self, hook: Hook, object: Option<u64>) -> (Running, io::Result<()>) {
        let (fault, index) = {
            let mut backend = self.backend();
            let fault = backend.script.take(hook);
            (fault, backend.start(hook, object))
        };
        let running = Running {
            manager: self.clone(),
            index,
        };
        let result = match fault {
            None => Ok(()),
            Some(Fault::Fail) => Err(io::Error::other(format!("injected {hook:?} failure"))),
            Some(Fault::Panic) => panic!("injected {hook:?} panic"),
            Some(Fault::Hang) => std::future::pending().await,
        };
        (running, result)
    }

    async fn hook(&self, hook: Hook, conn: &Conn) -> io::Result<()> {
        let (running, result) = self.run(hook, Some(conn.id)).await;
        running.end(if result.is_ok() { End::Ok } else { End::Err });
        result
    }
}

impl Manager for FaultyManager {
    type Object = Conn;
    type Error = io::Error;

    async fn create(&self) -> io::Result<Conn> {
        let (running, result) = self.run(Hook::Create, None).await;
        if let Err(error) = result {
            let pool = self.backend().pool.clone();
            let creating = pool.map_or(0, |pool| pool.status().creating);
            self.backend().create_failed(running.index, creating);
            return Err(error);
        }
        let mut backend = self.backend();
        backend.created_at.push(Instant::now());
        let id = backend.created_at.len() as u64;
        backend.calls[running.index].object = Some(id);
        backend.end(running.index, End::Ok);
        Ok(Conn { id, broken: false })
    }

    async fn recycle(&self, conn: &mut Conn, _: &ObjectMeta) -> io::Result<()> {
        self.hook(Hook::Recycle, conn).await
    }

    async fn health_check(&self, conn: &mut Conn, _: &ObjectMeta) -> io::Result<()> {
        self.hook(Hook::HealthCheck, conn).await
    }

    fn is_broken(&self, conn: &Conn) -> bool {
        conn.broken
    }

    async fn destroy(&self, conn: Conn) {
        self.backend().destroyed.push(conn.id);
    }
}

/// Injected panics are expected by the hundred: keep them off stderr.
pub(crate) fn silence_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !message.starts_with("injected ") {
                default(info);
            }
        }));
    });
}
