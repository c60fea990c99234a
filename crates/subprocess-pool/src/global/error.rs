//! What can go wrong with a process-wide pool slot.

use pool_core::BuildError;

/// An error from [`Global`](crate::Global) or the default facade in
/// [`global`](crate::global).
///
/// None of these is a panic: a backend that calls [`global::get`](crate::global::get) before
/// start-up finished, or after shutdown began, gets one of these and can answer its request
/// with a "service unavailable" instead of crashing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GlobalError {
    /// `init` was called while a pool was already running in this slot.
    #[error("a pool is already running in this global slot; call shutdown before init again")]
    AlreadyRunning,
    /// `get` (or `shutdown`) was called before any `init`.
    #[error("no pool is running: call init at start-up before get")]
    NotInitialized,
    /// `get` (or `shutdown`) was called after `shutdown`.
    #[error("the global pool was shut down; call init to start a new one")]
    ShutDown,
    /// Two worker pools were configured under the same name, or one under the command
    /// pool's name ([`COMMANDS`](crate::global::COMMANDS)).
    #[error(
        "two pools are named {name:?}; each name must be unique (\"commands\" is the command pool's)"
    )]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// A pool could not be built from its configuration.
    #[error("pool {pool:?} could not be built")]
    Build {
        /// The pool's name (`"commands"` for the command pool).
        pool: String,
        /// Why it was refused.
        #[source]
        source: BuildError,
    },
    /// No worker pool has this name.
    #[error("no worker pool is named {name:?} (configured: {configured})")]
    UnknownPool {
        /// The name asked for.
        name: String,
        /// The names that exist, comma-separated.
        configured: String,
    },
    /// The worker pool exists but speaks another protocol than the one asked for.
    #[error("worker pool {name:?} speaks another protocol than {asked}")]
    WrongProtocol {
        /// The pool's name.
        name: String,
        /// The protocol type asked for.
        asked: &'static str,
    },
}
