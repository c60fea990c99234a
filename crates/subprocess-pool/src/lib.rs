#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

/// The generic pool this crate is built on, re-exported so that its types
/// (`PoolError`, `Status`, `Metrics`, `ShutdownReport`, `PoolConfig`...) need no second
/// dependency kept in step with this one.
pub use pool_core;

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
    CallError, DEFAULT_MAX_IN_FLIGHT, DEFAULT_REQUEST_TIMEOUT, KeyedSubprocessPool,
    KeyedSubprocessPoolBuilder, LspSession, MultiplexPool, MultiplexPoolBuilder, NoSession, Runner,
    RunnerError, RunnerManager, Session, SubprocessPool, SubprocessPoolBuilder, WorkerMetrics,
    WorkerSpec,
};
