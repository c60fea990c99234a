//! What a worker needs said at its start and at its end: a handshake and a goodbye.

use std::future::Future;

use super::error::RunnerError;
use super::runner::Runner;
use crate::protocol::Protocol;

/// A per-worker conversation around the requests: a handshake run once when the pool
/// starts a worker, and a goodbye run when it stops one.
///
/// [`start`](Session::start) runs inside the pool's create, after the ready line, within
/// the spec's `startup_timeout`: every worker the pool lends, `min_idle` ones included,
/// has finished it. A handshake that fails or runs out of time is a failed create
/// ([`RunnerError::Startup`]), so the pool's backoff applies. [`goodbye`](Session::goodbye)
/// runs inside destroy, on a worker still in good order, before its stdin is closed; it is
/// bounded by the spec's `kill_grace`, after which the graceful kill goes on regardless.
///
/// Implement it with `async fn`s. [`LspSession`](crate::LspSession) is the handshake and
/// goodbye of the Language Server Protocol.
///
/// # Example
///
/// A worker that must be told its mode before its first request:
///
/// ```
/// use subprocess_pool::protocol::Lines;
/// use subprocess_pool::{Runner, RunnerError, Session, SubprocessPool, WorkerSpec};
///
/// struct Mode(&'static str);
///
/// impl Session<Lines> for Mode {
///     async fn start(&self, runner: &mut Runner<Lines>) -> Result<(), RunnerError> {
///         let answer = runner.call(format!("mode {}", self.0)).await?;
///         match answer.as_str() {
///             "mode upper" => Ok(()),
///             other => Err(RunnerError::Startup { reason: format!("refused its mode: {other}"), stderr: String::new() }),
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // `cat` echoes, so it "accepts" any mode.
/// let workers = SubprocessPool::builder(WorkerSpec::new("cat"), Lines::default())
///     .session(Mode("upper"))
///     .build()?;
/// assert_eq!(workers.call("hello".to_string()).await?, "hello");
/// # Ok(())
/// # }
/// ```
pub trait Session<P: Protocol>: Send + Sync + 'static {
    /// The handshake, run once per worker before it is lent. The default does nothing.
    fn start(
        &self,
        runner: &mut Runner<P>,
    ) -> impl Future<Output = Result<(), RunnerError>> + Send {
        let _ = runner;
        async { Ok(()) }
    }

    /// The goodbye, run before a worker in good order is stopped. The default does
    /// nothing.
    fn goodbye(&self, runner: &mut Runner<P>) -> impl Future<Output = ()> + Send {
        let _ = runner;
        async {}
    }
}

/// No handshake and no goodbye: the default [`Session`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoSession;

impl<P: Protocol> Session<P> for NoSession {}
