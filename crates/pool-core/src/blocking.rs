//! `get` for synchronous code: the same future, driven on the calling thread.

use std::future::Future;
use std::panic::Location;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use tokio::runtime::{Handle, RuntimeFlavor};

use crate::error::PoolError;
use crate::get::Mode;
use crate::manager::Manager;
use crate::object::Object;
use crate::pool::Pool;

/// Why [`Pool::get_blocking`] or [`Pool::try_get_blocking`] gave no object.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlockingError<E> {
    /// The `get` itself failed, as [`Pool::get`] would have.
    #[error(transparent)]
    Pool(#[from] PoolError<E>),
    /// Called on the thread of a current-thread runtime, whose timers and wake-ups only
    /// that thread drives: blocking it would never end. Use `get().await` there.
    #[error(
        "get_blocking was called on a current-thread tokio runtime's own thread, where it would block for ever; use get().await"
    )]
    OnRuntimeThread,
    /// No tokio runtime to run the pool's timers and background work: build (or first
    /// use) the pool inside one, and keep it running.
    #[error(
        "get_blocking needs a tokio runtime: build or first use the pool inside one, and keep that runtime running"
    )]
    NoRuntime,
}

impl<M: Manager> Pool<M> {
    /// [`get`](Pool::get) for synchronous code (a plain thread, a `spawn_blocking` task,
    /// code ported from r2d2): blocks the calling thread until it has an object or the
    /// `get` fails, with every guarantee and setting of `get` (`wait_timeout` included).
    ///
    /// The pool's timers and background work run on a tokio runtime: the one present
    /// where the pool was built or first used, which must still be running (a
    /// multi-thread runtime runs on its own; a current-thread one only while something
    /// drives it). On a multi-thread runtime's worker thread it hands the thread's other
    /// tasks off first (`tokio::task::block_in_place`). Inside a current-thread runtime's
    /// context it refuses with [`BlockingError::OnRuntimeThread`] rather than block for ever:
    /// on its own thread nothing else would drive the pool's timers, and tokio does not
    /// tell that thread apart from the runtime's `spawn_blocking` threads, so those are
    /// refused too.
    ///
    /// # Example
    ///
    /// ```
    /// # use pool_core::{Manager, Pool};
    /// # struct M;
    /// # impl Manager for M {
    /// #     type Object = u32;
    /// #     type Error = std::convert::Infallible;
    /// #     async fn create(&self) -> Result<u32, Self::Error> { Ok(7) }
    /// # }
    /// let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    /// let pool = runtime.block_on(async { Pool::builder(M).max_size(2).build().unwrap() });
    /// // Synchronous code, on a plain thread:
    /// let object = std::thread::spawn(move || *pool.get_blocking().unwrap())
    ///     .join()
    ///     .unwrap();
    /// assert_eq!(object, 7);
    /// ```
    #[track_caller]
    pub fn get_blocking(&self) -> Result<Object<M>, BlockingError<M::Error>> {
        let caller = Location::caller();
        self.block_on(|pool| pool.get_with(pool.shared().config.wait_timeout, Mode::Wait, caller))
    }

    /// [`try_get`](Pool::try_get) for synchronous code, as [`get_blocking`](Pool::get_blocking)
    /// runs [`get`](Pool::get).
    #[track_caller]
    pub fn try_get_blocking(&self) -> Result<Object<M>, BlockingError<M::Error>> {
        let caller = Location::caller();
        self.block_on(|pool| pool.get_with(None, Mode::Try, caller))
    }

    fn block_on<'a, F>(
        &'a self,
        get: impl FnOnce(&'a Self) -> F,
    ) -> Result<Object<M>, BlockingError<M::Error>>
    where
        F: Future<Output = Result<Object<M>, PoolError<M::Error>>>,
    {
        let current = Handle::try_current().ok();
        if current
            .as_ref()
            .is_some_and(|handle| handle.runtime_flavor() == RuntimeFlavor::CurrentThread)
        {
            return Err(BlockingError::OnRuntimeThread);
        }
        let Some(runtime) = current.or_else(|| self.shared().runtime()) else {
            return Err(BlockingError::NoRuntime);
        };
        let _entered = runtime.enter();
        let run = || park_until_ready(get(self));
        let outcome = if runtime.runtime_flavor() == RuntimeFlavor::MultiThread {
            // A worker thread hands its tasks to another worker first; any other thread
            // just runs `run`.
            tokio::task::block_in_place(run)
        } else {
            run()
        };
        Ok(outcome?)
    }
}

/// Wakes the parked thread that polls the future.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` on this thread, parking it between wake-ups.
fn park_until_ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}
