// A manager with injectable faults that records what it created and destroyed.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError};

use pool_core::{Manager, ObjectMeta};

#[derive(Debug)]
pub(crate) struct Conn {
    /// Unique per manager, from 1, in creation order.
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

/// The faults still to come; the pool and the model each keep one and consume it in the
/// same order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Script {
    pub(crate) next: [Option<Fault>; 3],
    /// The backend is down: every create not otherwise scripted fails.
    pub(crate) down: bool,
}

impl Script {
    pub(crate) fn take(&mut self, hook: Hook) -> Option<Fault> {
        self.next[hook as usize]
            .take()
            .or((hook == Hook::Create && self.down).then_some(Fault::Fail))
    }
}

#[derive(Default)]
pub(crate) struct Backend {
    pub(crate) script: Script,
    /// The last id handed out, so also the number of objects created.
    pub(crate) last_id: u64,
    /// Ids passed to `destroy`, in order.
    pub(crate) destroyed: Vec<u64>,
}

/// Clones share one backend, so the test can inject faults and read the record.
#[derive(Clone, Default)]
pub(crate) struct FaultyManager(Arc<Mutex<Backend>>);

impl FaultyManager {
    pub(crate) fn backend(&self) -> MutexGuard<'_, Backend> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a hook as scripted. Unless a fault says otherwise, every hook completes on its
    /// first poll, so the only way to catch a `get` half-way through a hook is `Hang`.
    async fn run(&self, hook: Hook) -> io::Result<()> {
        let fault = self.backend().script.take(hook);
        match fault {
            None => Ok(()),
            Some(Fault::Fail) => Err(io::Error::other(format!("injected {hook:?} failure"))),
            Some(Fault::Panic) => panic!("injected {hook:?} panic"),
            Some(Fault::Hang) => std::future::pending().await,
        }
    }
}

impl Manager for FaultyManager {
    type Object = Conn;
    type Error = io::Error;

    async fn create(&self) -> io::Result<Conn> {
        self.run(Hook::Create).await?;
        let mut backend = self.backend();
        backend.last_id += 1;
        Ok(Conn {
            id: backend.last_id,
            broken: false,
        })
    }

    async fn recycle(&self, _: &mut Conn, _: &ObjectMeta) -> io::Result<()> {
        self.run(Hook::Recycle).await
    }

    async fn health_check(&self, _: &mut Conn, _: &ObjectMeta) -> io::Result<()> {
        self.run(Hook::HealthCheck).await
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
