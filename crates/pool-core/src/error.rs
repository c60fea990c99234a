//! The errors a pool reports.

use std::fmt;
use std::sync::Arc;

/// Which phase of a [`get`](crate::Pool::get) was running when its time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeoutKind {
    /// Waiting for an object to come back or for a free slot.
    Wait,
    /// Creating a new object (the caller's deadline, or `create_timeout`), or waiting to
    /// try again after a create made for this caller failed: a timeout on a down backend
    /// says `Create`, not `Wait`.
    Create,
    /// Recycling or health-checking an idle object.
    Recycle,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutKind::Wait => "waiting for an object",
            TimeoutKind::Create => "creating an object",
            TimeoutKind::Recycle => "recycling an object",
        })
    }
}

/// Why a [`get`](crate::Pool::get) failed.
///
/// # Example
///
/// ```
/// # use pool_core::{Manager, Pool, PoolError};
/// # struct M;
/// # impl Manager for M {
/// #     type Object = ();
/// #     type Error = std::io::Error;
/// #     async fn create(&self) -> Result<(), Self::Error> { Err(std::io::Error::other("refused")) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = Pool::builder(M).build().unwrap();
/// let error = pool.get().await.unwrap_err();
/// assert!(matches!(&error, PoolError::Backend(e) if e.to_string() == "refused"));
/// // The cause is the source, not repeated in the message.
/// assert_eq!(error.to_string(), "the manager could not create an object");
/// assert_eq!(std::error::Error::source(&error).unwrap().to_string(), "refused");
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
pub enum PoolError<E> {
    /// The caller's deadline (`wait_timeout` or [`get_timeout`](crate::Pool::get_timeout)) or
    /// `create_timeout` passed.
    ///
    /// `last_error`, when there is one, is this error's `source()` (the message does not
    /// repeat it), so a report that walks the chain says why: "timed out waiting for an
    /// object: connection refused".
    #[error("timed out {kind}")]
    Timeout {
        /// The phase the caller was in.
        kind: TimeoutKind,
        /// The caller's own latest create or recycle failure, else the pool's latest create
        /// failure since its last successful create. (A failure returned as `Backend` to a
        /// caller without a deadline went to that caller and is not kept by the pool.)
        #[source]
        last_error: Option<Arc<E>>,
    },
    /// The manager failed to create an object for this caller (a caller without a
    /// deadline; with one, failures are retried until it passes). The manager's error is
    /// this error's `source()`.
    #[error("the manager could not create an object")]
    Backend(#[source] E),
    /// The pool was closed.
    #[error("the pool is closed")]
    Closed,
    /// No object could be had without waiting: from [`try_get`](crate::Pool::try_get) when
    /// nothing is idle and no create may start now (the pool is full, or creates are
    /// paused after a failure), or from a `get` when `max_waiting` callers already wait.
    #[error(
        "the pool is exhausted: no object was free, none could be created at once, and this call may not wait (try_get, or max_waiting callers already waiting)"
    )]
    Exhausted,
}

/// Why [`Pool::add`](crate::Pool::add) refused an object; the object is handed back.
///
/// # Example
///
/// ```
/// # use pool_core::{AddError, Manager, Pool};
/// # struct M;
/// # impl Manager for M {
/// #     type Object = u32;
/// #     type Error = std::convert::Infallible;
/// #     async fn create(&self) -> Result<u32, Self::Error> { Ok(0) }
/// # }
/// let pool = Pool::builder(M).max_size(1).build().unwrap();
/// pool.add(7).unwrap();
/// let refused = pool.add(8).unwrap_err();
/// assert!(matches!(refused, AddError::Full(_)));
/// assert_eq!(refused.into_object(), 8);
/// ```
#[derive(Debug, thiserror::Error)]
pub enum AddError<T> {
    /// The pool already counts `max_size` objects (idle, lent or being created).
    #[error("the pool is full")]
    Full(T),
    /// The pool is closed.
    #[error("the pool is closed")]
    Closed(T),
}

impl<T> AddError<T> {
    /// The object that was refused.
    pub fn into_object(self) -> T {
        match self {
            AddError::Full(object) | AddError::Closed(object) => object,
        }
    }
}

/// A pool setting was refused by [`PoolBuilder::build`](crate::PoolBuilder::build) or
/// [`Pool::resize`](crate::Pool::resize); the message names the setting.
///
/// # Example
///
/// ```
/// # use pool_core::{Manager, Pool};
/// # struct M;
/// # impl Manager for M {
/// #     type Object = ();
/// #     type Error = std::convert::Infallible;
/// #     async fn create(&self) -> Result<(), Self::Error> { Ok(()) }
/// # }
/// let err = Pool::builder(M).max_size(0).build().unwrap_err();
/// assert_eq!(err.field(), "max_size");
/// assert_eq!(err.to_string(), "invalid pool setting `max_size`: must be at least 1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pool setting `{field}`: {problem}")]
pub struct BuildError {
    field: &'static str,
    problem: String,
}

impl BuildError {
    /// Refuses the setting `field` because of `problem`; for crates that build on
    /// pool-core and check settings of their own alongside the pool's.
    ///
    /// ```
    /// let err = pool_core::BuildError::new("WorkerSpec::startup_timeout", "must be more than zero");
    /// assert_eq!(err.field(), "WorkerSpec::startup_timeout");
    /// ```
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }

    /// The name of the refused setting, as spelled in [`PoolConfig`](crate::PoolConfig).
    pub fn field(&self) -> &'static str {
        self.field
    }
}
