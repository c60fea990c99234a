//! The backend's routes and the pools they use. `main.rs` runs it with real signals;
//! `tests/backend.rs` runs it in-process. `server.rs` holds the connections, `errors.rs`
//! turns failures into answers.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use pool_core::ShutdownReport;
use serde::{Deserialize, Serialize};
use subprocess_pool::global::{self, GlobalConfig};
use subprocess_pool::protocol::Lines;
use subprocess_pool::{CommandPool, CommandSpec, SubprocessPool, WorkerSpec};
use tokio::net::TcpListener;

use crate::errors::{ApiError, RequestId, request_ids};
use crate::server::{self, HttpLimits};

/// The worker pool `POST /run` uses.
pub(crate) const WORKERS: &str = "upper";

/// The worker `POST /run` talks to: `examples/workers/upper.py` on python's real
/// interpreter, resolved once (a pyenv shim on `PATH` would add its own start-up to every
/// worker start, and the workers get no `PATH` of their own to find one with).
pub(crate) fn python_worker() -> Result<WorkerSpec, Box<dyn std::error::Error + Send + Sync>> {
    let output = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .map_err(|error| format!("python3 is needed for the workers: {error}"))?;
    let python = String::from_utf8(output.stdout)?.trim().to_owned();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../subprocess-pool/examples/workers/upper.py");
    Ok(WorkerSpec::new(python).arg("-u").arg(script))
}

/// The commands `POST /exec` may run by default, by name.
pub(crate) fn default_commands() -> BTreeMap<String, Vec<String>> {
    [
        ("date", &["date", "-u"][..]),
        ("uname", &["uname", "-a"]),
        ("wc", &["wc", "-c"]),
    ]
    .into_iter()
    .map(|(name, line)| {
        (
            name.to_owned(),
            line.iter().map(|s| s.to_string()).collect(),
        )
    })
    .collect()
}

/// The environment workers and commands get, and nothing else: a fixed `PATH`, and this
/// process's locale and time zone if set. The server's own environment (credentials,
/// tokens) is not passed on.
pub(crate) fn default_env() -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned())]);
    for name in ["LANG", "LC_ALL", "TZ"] {
        if let Ok(value) = std::env::var(name) {
            env.insert(name.to_owned(), value);
        }
    }
    env
}

/// The backend's configuration.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The worker every `POST /run` body is sent to, one line per request.
    pub(crate) worker: WorkerSpec,
    /// How many warm workers (all started at start-up).
    pub(crate) workers: usize,
    /// How long a request may wait for a free worker or command slot.
    pub(crate) wait_timeout: Duration,
    /// The only commands `POST /exec` runs, by name: program and arguments, fixed at start.
    pub(crate) commands: BTreeMap<String, Vec<String>>,
    /// How long an `/exec` command may run before its process group is killed.
    pub(crate) command_timeout: Duration,
    /// The whole environment of workers and commands (see [`default_env`]).
    pub(crate) env: BTreeMap<String, String>,
    /// Connection and body limits.
    pub(crate) http: HttpLimits,
    /// How long open connections get to finish when the server stops; those still open
    /// then are closed.
    pub(crate) grace: Duration,
    /// How long the pools then get: calls still running (those whose client left) finish,
    /// workers exit; workers still busy after it have their process groups killed.
    pub(crate) pool_grace: Duration,
}

impl Settings {
    /// The example's defaults around `worker`.
    pub(crate) fn new(worker: WorkerSpec) -> Self {
        Self {
            worker: worker
                .request_timeout(Duration::from_secs(5))
                .max_requests(10_000),
            workers: 4,
            wait_timeout: Duration::from_secs(5),
            commands: default_commands(),
            command_timeout: Duration::from_secs(10),
            env: default_env(),
            http: HttpLimits::default(),
            grace: Duration::from_secs(10),
            pool_grace: Duration::from_secs(5),
        }
    }

    /// The pools these settings describe.
    fn pools(&self) -> GlobalConfig {
        let worker = self
            .env
            .iter()
            .fold(self.worker.clone().env_clear(), |spec, (name, value)| {
                spec.env(name, value)
            });
        let workers = SubprocessPool::builder(worker, Lines::default())
            .max_size(self.workers)
            .min_idle(self.workers)
            .wait_timeout(self.wait_timeout);
        let commands = CommandPool::builder().wait_timeout(self.wait_timeout);
        GlobalConfig::new()
            .commands(commands)
            .workers(WORKERS, workers)
    }

    /// The command `name` stands for, with its own environment and timeout.
    fn command(&self, name: &str) -> Option<CommandSpec> {
        let (program, args) = self.commands.get(name)?.split_first()?;
        let spec = CommandSpec::new(program)
            .args(args)
            .env_clear()
            .timeout(self.command_timeout);
        Some(
            self.env
                .iter()
                .fold(spec, |spec, (name, value)| spec.env(name, value)),
        )
    }
}

/// Starts the pools, serves until `stop` resolves, then stops: connections within
/// `settings.grace`, the pools within `settings.pool_grace` after that.
pub(crate) async fn serve(
    listener: TcpListener,
    settings: Settings,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<ShutdownReport, Box<dyn std::error::Error + Send + Sync>> {
    global::init(settings.pools())?;
    let settings = Arc::new(settings);
    let app = Router::new()
        .route("/run", post(run))
        .route("/exec", post(exec))
        .route("/status", get(status))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(axum::middleware::from_fn(request_ids))
        .with_state(Arc::clone(&settings));
    server::serve(listener, app, settings.http.clone(), stop, settings.grace).await;
    Ok(global::shutdown(settings.pool_grace).await?)
}

/// Reads a whole body within the limits: too big is 413, too slow is 408, both as JSON.
async fn read_body(body: Body, limits: &HttpLimits) -> Result<Bytes, ApiError> {
    let read = tokio::time::timeout(
        limits.body_timeout,
        axum::body::to_bytes(body, limits.max_body),
    );
    match read.await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(error)) => {
            let too_large = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            Err(if too_large {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the body is larger than {} bytes", limits.max_body),
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    "the body could not be read",
                )
            })
        }
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the body did not arrive in time",
        )),
    }
}

/// `POST /run`: the body, one line of UTF-8, goes to a warm worker; its answer comes back.
async fn run(State(settings): State<Arc<Settings>>, body: Body) -> Result<String, ApiError> {
    let body = read_body(body, &settings.http).await?;
    let request = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", "body is not UTF-8"))?;
    let pools = global::get()?;
    let workers = pools.workers::<Lines>(WORKERS)?.clone();
    // The call runs in a task of its own: when the client hangs up, hyper drops this
    // handler, and a call dropped half-way would retire its worker (its answer is still
    // coming). The task lets the call finish, within the worker's request timeout, and the
    // worker goes back to the pool.
    let call = tokio::spawn(async move { workers.call(request).await });
    Ok(call.await??)
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

/// The answer of `POST /exec`. The command's stderr goes to the log, not to the client.
#[derive(Debug, Serialize)]
struct ExecResponse {
    /// The exit code, or `null` when a signal ended the command.
    code: Option<i32>,
    success: bool,
    stdout: String,
    stdout_truncated: bool,
    elapsed_ms: u128,
}

/// `POST /exec`: runs an allowlisted command, fresh, and answers its output.
async fn exec(
    State(settings): State<Arc<Settings>>,
    Extension(id): Extension<RequestId>,
    body: Body,
) -> Result<Json<ExecResponse>, ApiError> {
    let body = read_body(body, &settings.http).await?;
    let request: ExecRequest = serde_json::from_slice(&body).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("invalid JSON body: {error}"),
        )
    })?;
    let Some(spec) = settings.command(&request.command) else {
        return Err(
            ApiError::new(StatusCode::NOT_FOUND, "unknown_command", "no such command")
                .detail(format!("{:?} is not an allowed command", request.command)),
        );
    };
    let pools = global::get()?;
    let output = pools.commands().run(spec.stdin(request.stdin)).await?;
    if !output.stderr.is_empty() {
        tracing::info!(
            request_id = %id,
            command = request.command,
            stderr = %String::from_utf8_lossy(&output.stderr),
            "command wrote to stderr"
        );
    }
    Ok(Json(ExecResponse {
        code: output.status.code(),
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stdout_truncated: output.stdout_truncated,
        elapsed_ms: output.elapsed.as_millis(),
    }))
}

/// `GET /status`: every pool's `Status` and `Metrics`.
async fn status() -> Result<Response, ApiError> {
    let pools = global::get()?;
    Ok(Json(serde_json::json!({ "pools": pools.reports() })).into_response())
}
