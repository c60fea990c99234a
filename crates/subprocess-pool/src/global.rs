//! One set of pools for the whole process, started with the app and drained when it stops.
//!
//! Backend code wants its pools where every handler can reach them, created once at
//! start-up and shut down gracefully at the end (what a Python service does in its web
//! framework's lifespan hook). [`Global<T>`](Global) is that slot for any pool;
//! [`init`], [`get`] and [`shutdown`] are the ready-made default, holding [`Pools`]: a
//! [`CommandPool`](crate::CommandPool) and named worker pools.
//!
//! Every function is thread-safe and reports misuse as a [`GlobalError`], never a panic:
//! a second `init` while running, a `get` before `init` or after `shutdown`. `init` after
//! `shutdown` starts afresh.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use subprocess_pool::global::{self, GlobalConfig, GlobalError};
//! use subprocess_pool::protocol::Lines;
//! use subprocess_pool::{CommandPool, CommandSpec, SubprocessPool, WorkerSpec};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // At start-up:
//! global::init(
//!     GlobalConfig::new()
//!         .commands(CommandPool::builder().max_size(4))
//!         .workers("echo", SubprocessPool::builder(WorkerSpec::new("cat"), Lines::default())),
//! )?;
//!
//! // In any handler:
//! let pools = global::get()?;
//! let reply = pools.workers::<Lines>("echo")?.call("hi".to_string()).await?;
//! assert_eq!(reply, "hi");
//! let out = pools.commands().run(CommandSpec::new("echo").arg("hello")).await?;
//! assert_eq!(out.stdout, b"hello\n");
//!
//! // At the end: drains the command pool and every worker pool.
//! let report = global::shutdown(Duration::from_secs(5)).await?;
//! assert!(report.is_clean());
//! assert!(matches!(global::get(), Err(GlobalError::ShutDown)));
//! # Ok(())
//! # }
//! ```

mod config;
mod error;
mod key;
mod pools;
mod shutdown;
mod slot;

use std::sync::Arc;
use std::time::Duration;

use pool_core::ShutdownReport;

pub use config::GlobalConfig;
pub use error::GlobalError;
pub use key::WorkersKey;
pub use pools::{COMMANDS, PoolReport, Pools};
pub use shutdown::GracefulShutdown;
pub use slot::Global;

/// The slot behind [`init`], [`get`] and [`shutdown`].
static DEFAULT: Global<Pools> = Global::new();

/// Builds every pool of `config` and makes them the process's pools.
///
/// Errors with [`GlobalError::AlreadyRunning`] if pools are running (call [`shutdown`]
/// first), or with the error of the pool that could not be built; nothing is left running
/// then.
pub fn init(config: GlobalConfig) -> Result<Arc<Pools>, GlobalError> {
    // Checked first so a second `init` does not start (and then stop) worker processes.
    if DEFAULT.is_running() {
        return Err(GlobalError::AlreadyRunning);
    }
    // Losing a race with another `init` drops `pools`, which closes them.
    DEFAULT.init(config.build()?)
}

/// The process's pools.
///
/// Errors with [`GlobalError::NotInitialized`] before [`init`] and [`GlobalError::ShutDown`]
/// after [`shutdown`].
pub fn get() -> Result<Arc<Pools>, GlobalError> {
    DEFAULT.get()
}

/// Takes the process's pools out (later [`get`]s fail), closes them all and waits up to
/// `grace` for what is checked out to come back; every worker process is then stopped.
///
/// Errors with [`GlobalError::NotInitialized`] or [`GlobalError::ShutDown`] when no pools
/// are running.
pub async fn shutdown(grace: Duration) -> Result<ShutdownReport, GlobalError> {
    DEFAULT.shutdown(grace).await
}
