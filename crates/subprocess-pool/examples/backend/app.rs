//! The backend's HTTP side: routes, the pools they use, and how pool errors become HTTP
//! answers. `main.rs` runs it with real signals; `tests/backend.rs` runs it in-process.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pool_core::{PoolError, ShutdownReport};
use serde::{Deserialize, Serialize};
use subprocess_pool::global::{self, GlobalConfig, GlobalError};
use subprocess_pool::protocol::Lines;
use subprocess_pool::{
    CallError, CommandError, CommandPool, CommandSpec, ProtocolError, RunnerError, SubprocessPool,
    WorkerSpec,
};
use tokio::net::TcpListener;

/// The worker pool `POST /run` uses.
pub(crate) const WORKERS: &str = "upper";

/// The worker `POST /run` talks to: `examples/workers/upper.py` on python's real
/// interpreter, resolved once (a pyenv shim on `PATH` would add its own start-up to every
/// worker start).
pub(crate) fn python_worker() -> Result<WorkerSpec, Box<dyn std::error::Error + Send + Sync>> {
    let output = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .map_err(|error| format!("python3 is needed for the workers: {error}"))?;
    let python = String::from_utf8(output.stdout)?.trim().to_owned();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/workers/upper.py");
    Ok(WorkerSpec::new(python).arg("-u").arg(script))
}

/// What the backend runs: its warm worker and the commands `POST /exec` may run.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The worker every `POST /run` body is sent to, one line per request.
    pub(crate) worker: WorkerSpec,
    /// How many warm workers (all started at start-up).
    pub(crate) workers: usize,
    /// How long a request may wait for a free worker or command slot.
    pub(crate) wait_timeout: Duration,
    /// The only commands `POST /exec` runs, by name: program and arguments, fixed at start.
    pub(crate) allowlist: BTreeMap<String, Vec<String>>,
    /// How long shutdown waits for in-flight calls before stopping workers.
    pub(crate) grace: Duration,
}

impl Settings {
    /// The pools these settings describe.
    fn pools(&self) -> GlobalConfig {
        let workers = SubprocessPool::builder(self.worker.clone(), Lines::default())
            .max_size(self.workers)
            .min_idle(self.workers)
            .wait_timeout(self.wait_timeout);
        let commands = CommandPool::builder().wait_timeout(self.wait_timeout);
        GlobalConfig::new()
            .commands(commands)
            .workers(WORKERS, workers)
    }
}

/// Starts the pools, serves until `stop` resolves, lets in-flight requests finish, then
/// shuts the pools down within `settings.grace`.
pub(crate) async fn serve(
    listener: TcpListener,
    settings: Settings,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<ShutdownReport, Box<dyn std::error::Error + Send + Sync>> {
    global::init(settings.pools())?;
    let app = Router::new()
        .route("/run", post(run))
        .route("/exec", post(exec))
        .route("/status", get(status))
        .with_state(Arc::new(settings.allowlist.clone()));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await;
    // The server has stopped accepting and every in-flight request has been answered.
    let report = global::shutdown(settings.grace).await?;
    served?;
    Ok(report)
}

/// `POST /run`: the body, one line of UTF-8, goes to a warm worker; its answer comes back.
async fn run(body: Bytes) -> Result<String, ApiError> {
    let request = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", "body is not UTF-8"))?;
    let pools = global::get()?;
    let workers = pools.workers::<Lines>(WORKERS)?;
    Ok(workers.call(request).await?)
}

/// The body of `POST /exec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecRequest {
    /// A name from the allowlist; never a command line.
    command: String,
    /// Bytes for the command's stdin.
    #[serde(default)]
    stdin: String,
}

/// The answer of `POST /exec`.
#[derive(Debug, Serialize)]
struct ExecResponse {
    /// The exit code, or `null` when a signal ended the command.
    code: Option<i32>,
    success: bool,
    stdout: String,
    stderr: String,
    stdout_truncated: bool,
    stderr_truncated: bool,
    elapsed_ms: u128,
}

/// `POST /exec`: runs an allowlisted command, fresh, and answers its output.
async fn exec(
    State(allowlist): State<Arc<BTreeMap<String, Vec<String>>>>,
    body: Bytes,
) -> Result<Json<ExecResponse>, ApiError> {
    let request: ExecRequest = serde_json::from_slice(&body).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("invalid JSON body: {error}"),
        )
    })?;
    let Some((program, args)) = allowlist
        .get(&request.command)
        .and_then(|line| line.split_first())
    else {
        let allowed: Vec<&str> = allowlist.keys().map(String::as_str).collect();
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_command",
            format!(
                "{:?} is not an allowed command (allowed: {})",
                request.command,
                allowed.join(", ")
            ),
        ));
    };
    let spec = CommandSpec::new(program).args(args).stdin(request.stdin);
    let pools = global::get()?;
    let output = pools.commands().run(spec).await?;
    Ok(Json(ExecResponse {
        code: output.status.code(),
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        stdout_truncated: output.stdout_truncated,
        stderr_truncated: output.stderr_truncated,
        elapsed_ms: output.elapsed.as_millis(),
    }))
}

/// `GET /status`: every pool's `Status` and `Metrics`.
async fn status() -> Result<Response, ApiError> {
    let pools = global::get()?;
    Ok(Json(serde_json::json!({ "pools": pools.reports() })).into_response())
}

/// An error answer: an HTTP status and a JSON body `{"error": ..., "kind": ...}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message, "kind": self.kind });
        (self.status, Json(body)).into_response()
    }
}

/// An error's message followed by its sources', so the answer says why.
fn describe(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = cause.source();
    }
    message
}

/// No worker or slot could be had: the service is busy, shutting down, or cannot start
/// workers.
fn pool_error<E: std::error::Error + 'static>(error: &PoolError<E>) -> (StatusCode, &'static str) {
    match error {
        // Waited in vain while workers kept failing to start: the cause is downstream.
        PoolError::Timeout {
            last_error: Some(_),
            ..
        } => (StatusCode::BAD_GATEWAY, "worker_unavailable"),
        PoolError::Timeout { .. } | PoolError::Exhausted => {
            (StatusCode::SERVICE_UNAVAILABLE, "busy")
        }
        PoolError::Closed => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
        PoolError::Backend(_) => (StatusCode::BAD_GATEWAY, "worker_unavailable"),
    }
}

impl From<CallError> for ApiError {
    fn from(error: CallError) -> Self {
        let (status, kind) = match &error {
            CallError::Pool(pool) => pool_error(pool),
            CallError::Worker(RunnerError::Protocol(ProtocolError::InvalidRequest(_))) => {
                (StatusCode::BAD_REQUEST, "invalid_request")
            }
            CallError::Worker(RunnerError::Protocol(ProtocolError::FrameTooLarge {
                direction: "request",
                ..
            })) => (StatusCode::PAYLOAD_TOO_LARGE, "request_too_large"),
            CallError::Worker(RunnerError::Timeout { .. }) => {
                (StatusCode::GATEWAY_TIMEOUT, "worker_timeout")
            }
            CallError::Worker(_) => (StatusCode::BAD_GATEWAY, "worker_failed"),
        };
        ApiError::new(status, kind, describe(&error))
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        let (status, kind) = match &error {
            CommandError::Pool(pool) => pool_error(pool),
            CommandError::TimedOut { .. } => (StatusCode::GATEWAY_TIMEOUT, "command_timeout"),
            CommandError::Spawn(_) => (StatusCode::INTERNAL_SERVER_ERROR, "command_not_started"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "command_failed"),
        };
        ApiError::new(status, kind, describe(&error))
    }
}

impl From<GlobalError> for ApiError {
    fn from(error: GlobalError) -> Self {
        let status = match error {
            GlobalError::NotInitialized | GlobalError::ShutDown => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, "unavailable", describe(&error))
    }
}
