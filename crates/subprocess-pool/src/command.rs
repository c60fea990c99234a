//! One-shot commands: a fresh process per run, with bounded concurrency, a timeout, stdin
//! bytes, capped output, and nothing the command started left running afterwards.

mod capture;
mod error;
mod output;
mod pool;
mod run;
mod spec;

pub use error::CommandError;
pub use output::CommandOutput;
pub use pool::{CommandPool, CommandPoolBuilder};
pub use spec::{CommandSpec, DEFAULT_MAX_OUTPUT};
