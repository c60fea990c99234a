//! Warm workers: one live process per [`Runner`], pooled by a [`SubprocessPool`] through a
//! [`RunnerManager`], started as a [`WorkerSpec`] says, with an optional [`Session`]
//! (handshake and goodbye) around the requests.

mod error;
mod keyed;
mod lsp;
mod manager;
mod metrics;
mod multiplex;
mod pool;
mod runner;
mod session;
mod spec;

pub use error::RunnerError;
pub use keyed::{KeyedSubprocessPool, KeyedSubprocessPoolBuilder};
pub use lsp::LspSession;
pub use manager::RunnerManager;
pub use metrics::WorkerMetrics;
pub use multiplex::{DEFAULT_MAX_IN_FLIGHT, MultiplexPool, MultiplexPoolBuilder};
pub use pool::{CallError, SubprocessPool, SubprocessPoolBuilder};
pub use runner::Runner;
pub use session::{NoSession, Session};
pub use spec::{DEFAULT_REQUEST_TIMEOUT, WorkerSpec};
