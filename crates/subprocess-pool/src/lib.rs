//! Warm worker processes as pooled objects, and one-shot commands, built on `pool-core`.
//!
//! Spawning a process costs milliseconds (tens of them for an interpreter); a request to a
//! process that is already running costs tens of microseconds. [`SubprocessPool`] keeps
//! worker processes warm, speaks to them over their stdin and stdout with a [`Protocol`],
//! checks and recycles them, and replaces one that breaks without losing more than the
//! call it was serving. [`CommandPool`] runs fresh processes with bounded concurrency,
//! timeouts and capped output.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod command;
mod error;
pub mod global;
mod launch;
mod lsp;
mod manager;
mod metrics;
mod pool;
mod process_group;
pub mod protocol;
mod runner;
mod session;
mod spec;
mod stderr;

pub use command::{
    CommandError, CommandOutput, CommandPool, CommandPoolBuilder, CommandSpec, DEFAULT_MAX_OUTPUT,
};
pub use error::RunnerError;
pub use global::{Global, GlobalError};
pub use launch::SpawnError;
pub use lsp::LspSession;
pub use manager::RunnerManager;
pub use metrics::WorkerMetrics;
pub use pool::{CallError, SubprocessPool, SubprocessPoolBuilder};
pub use protocol::{Protocol, ProtocolError};
pub use runner::Runner;
pub use session::{NoSession, Session};
pub use spec::{DEFAULT_REQUEST_TIMEOUT, WorkerSpec};
pub use stderr::StderrMode;
