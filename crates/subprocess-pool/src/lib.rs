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
pub mod global;
mod launch;
mod process_group;
pub mod protocol;
mod stderr;
mod worker;

pub use command::{
    CommandError, CommandOutput, CommandPool, CommandPoolBuilder, CommandSpec, DEFAULT_MAX_OUTPUT,
};
pub use global::{Global, GlobalError};
pub use launch::SpawnError;
pub use protocol::{Protocol, ProtocolError};
pub use stderr::StderrMode;
pub use worker::{
    CallError, DEFAULT_MAX_IN_FLIGHT, DEFAULT_REQUEST_TIMEOUT, LspSession, MultiplexPool,
    MultiplexPoolBuilder, NoSession, Runner, RunnerError, RunnerManager, Session, SubprocessPool,
    SubprocessPoolBuilder, WorkerMetrics, WorkerSpec,
};
