//! The Language Server Protocol's handshake and goodbye.

use serde_json::Value;

use super::error::RunnerError;
use super::runner::Runner;
use super::session::Session;
use crate::protocol::{JsonRpc, RpcMessage};

/// The [`Session`] of a language server: `initialize` (with the given params) and the
/// `initialized` notification when a worker starts, `shutdown` and the `exit` notification
/// when it stops. Use it with the [`JsonRpc`] protocol.
///
/// Notifications the server sends (diagnostics after `textDocument/didOpen`,
/// `window/logMessage`) go to the pool's message handler, or are dropped and counted;
/// they never retire a worker. Requests the server sends to the client are answered by
/// the handler, else with "method not found".
///
/// Documents are state of one server: open a document and ask about it on the same
/// worker, holding it with `pool.pool().get()`, as in the example.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use serde_json::json;
/// use subprocess_pool::protocol::{JsonRpc, RpcMessage};
/// use subprocess_pool::{LspSession, SubprocessPool, WorkerSpec};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let servers = SubprocessPool::builder(WorkerSpec::new("pylsp"), JsonRpc::default())
///     .session(LspSession::new(json!({ "processId": null, "rootUri": null, "capabilities": {} })))
///     .on_message(|pid, message| {
///         if message.method() == Some("textDocument/publishDiagnostics") {
///             println!("server {pid}: {message:?}");
///         }
///         None // no reply: notifications get none
///     })
///     .max_size(2)
///     .min_idle(1)
///     .build()?;
///
/// let mut server = servers.pool().get().await?;
/// let uri = "file:///tmp/example.py";
/// server.send(RpcMessage::notification("textDocument/didOpen", json!({
///     "textDocument": { "uri": uri, "languageId": "python", "version": 1, "text": "import os\n" }
/// }))).await?;
/// let hover = server.call(RpcMessage::request("textDocument/hover", json!({
///     "textDocument": { "uri": uri }, "position": { "line": 0, "character": 8 }
/// }))).await??; // the pool's error, then the server's own JSON-RPC error
/// println!("{hover}");
/// drop(server);
/// servers.shutdown(Duration::from_secs(5)).await; // each server gets shutdown + exit
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LspSession {
    initialize: Value,
}

impl LspSession {
    /// A session that starts each server with `initialize` and these params (at least
    /// `{"processId": null, "rootUri": null, "capabilities": {}}`).
    pub fn new(initialize_params: Value) -> Self {
        Self {
            initialize: initialize_params,
        }
    }
}

impl Session<JsonRpc> for LspSession {
    async fn start(&self, runner: &mut Runner<JsonRpc>) -> Result<(), RunnerError> {
        let request = RpcMessage::request("initialize", self.initialize.clone());
        if let Err(error) = runner.call(request).await? {
            return Err(RunnerError::Startup {
                reason: format!("it refused `initialize`: {error}"),
                stderr: String::new(),
            });
        }
        runner
            .send(RpcMessage::notification(
                "initialized",
                serde_json::json!({}),
            ))
            .await
    }

    async fn goodbye(&self, runner: &mut Runner<JsonRpc>) {
        // A server that does not answer `shutdown` is killed after `kill_grace` anyway.
        if runner
            .call(RpcMessage::request("shutdown", Value::Null))
            .await
            .is_ok()
        {
            let _ = runner
                .send(RpcMessage::notification("exit", Value::Null))
                .await;
        }
    }
}
