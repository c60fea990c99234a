//! How failures become HTTP answers. A client gets a status, a short `kind` and message,
//! and the request's id; the details (stderr tails, exit statuses, paths, the allowlist)
//! go to the log under the same id, never into a response body.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pool_core::{ErrorChain, PoolError};
use subprocess_pool::global::GlobalError;
use subprocess_pool::protocol::Direction;
use subprocess_pool::{CallError, CommandError, ProtocolError, RunnerError};

/// The id of one request: in its `x-request-id` response header, in its error body, and in
/// every log line about it.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(String);

impl RequestId {
    /// A new id: this server's start time and a counter, so ids from different runs differ.
    fn next() -> Self {
        static STARTED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let started = STARTED.get_or_init(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_secs())
        });
        Self(format!(
            "{started:x}-{}",
            COUNT.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Middleware: gives each request a [`RequestId`] (handlers may extract it), and turns an
/// [`ApiError`] answer into its JSON body, logging its details under that id.
pub(crate) async fn request_ids(mut request: Request, next: Next) -> Response {
    let id = RequestId::next();
    let route = format!("{} {}", request.method(), request.uri().path());
    request.extensions_mut().insert(id.clone());
    let mut response = next.run(request).await;
    if let Some(error) = response.extensions_mut().remove::<ApiError>() {
        error.log(&id, &route);
        response = error.answer(&id);
    }
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// A failed request: what the client is told, and what only the log is told.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    status: StatusCode,
    kind: &'static str,
    /// For the client: short, and free of anything from the server's inside.
    message: String,
    /// For the log: the whole error and its causes.
    detail: Option<String>,
}

impl ApiError {
    /// An error whose `message` says all there is (the client's own mistake).
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            detail: None,
        }
    }

    /// Adds what the log is told besides `message`.
    pub(crate) fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// An error whose cause the log gets in full and the client does not.
    fn with_detail(
        status: StatusCode,
        kind: &'static str,
        message: &str,
        error: &(dyn std::error::Error + 'static),
    ) -> Self {
        Self {
            status,
            kind,
            message: message.to_owned(),
            detail: Some(ErrorChain(error).to_string()),
        }
    }

    fn log(&self, id: &RequestId, route: &str) {
        let detail = self.detail.as_deref().unwrap_or(&self.message);
        let status = self.status.as_u16();
        if self.status.is_server_error() {
            tracing::warn!(request_id = %id, route, status, kind = self.kind, detail, "request failed");
        } else {
            tracing::info!(request_id = %id, route, status, kind = self.kind, detail, "request refused");
        }
    }

    /// The answer: `{"error": message, "kind": kind, "request_id": id}`.
    fn answer(&self, id: &RequestId) -> Response {
        let body = serde_json::json!({
            "error": self.message,
            "kind": self.kind,
            "request_id": id.0,
        });
        (self.status, Json(body)).into_response()
    }
}

impl IntoResponse for ApiError {
    /// A bare status carrying the error: [`request_ids`] writes the body, because only it
    /// knows the request's id.
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// No worker or slot could be had: the service is busy, shutting down, or cannot start
/// workers.
fn pool_error<E: std::error::Error + 'static>(
    error: &PoolError<E>,
) -> (StatusCode, &'static str, &'static str) {
    match error {
        // Waited in vain while workers kept failing to start: the cause is downstream.
        PoolError::Timeout {
            last_error: Some(_),
            ..
        }
        | PoolError::Backend(_) => (
            StatusCode::BAD_GATEWAY,
            "worker_unavailable",
            "workers cannot be started right now",
        ),
        PoolError::Timeout { .. } | PoolError::Exhausted => (
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "every worker is busy; try again later",
        ),
        PoolError::Closed => (
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the service is shutting down",
        ),
    }
}

impl From<CallError> for ApiError {
    fn from(error: CallError) -> Self {
        let (status, kind, message) = match &error {
            CallError::Pool(pool) => pool_error(pool),
            // The client's own request was refused before any worker saw it: say why.
            CallError::Worker(RunnerError::Protocol(ProtocolError::InvalidRequest(reason))) => {
                return ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("the request cannot be sent to a worker: {reason}"),
                );
            }
            CallError::Worker(RunnerError::Protocol(ProtocolError::FrameTooLarge {
                direction: Direction::Request,
                ..
            })) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                "the request is larger than a worker accepts",
            ),
            CallError::Worker(RunnerError::Timeout { .. } | RunnerError::RequestTimeout { .. }) => {
                (
                    StatusCode::GATEWAY_TIMEOUT,
                    "worker_timeout",
                    "the worker did not answer in time",
                )
            }
            _ => (
                StatusCode::BAD_GATEWAY,
                "worker_failed",
                "the worker failed to answer",
            ),
        };
        ApiError::with_detail(status, kind, message, &error)
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        let (status, kind, message) = match &error {
            CommandError::Pool(pool) => pool_error(pool),
            CommandError::Timeout { .. } => (
                StatusCode::GATEWAY_TIMEOUT,
                "command_timeout",
                "the command did not finish in time",
            ),
            CommandError::Spawn(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "command_not_started",
                "the command could not be started",
            ),
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "command_failed",
                "the command failed",
            ),
        };
        ApiError::with_detail(status, kind, message, &error)
    }
}

impl From<GlobalError> for ApiError {
    fn from(error: GlobalError) -> Self {
        let status = match error {
            GlobalError::NotInitialized | GlobalError::ShutDown => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::with_detail(
            status,
            "unavailable",
            "the service is not available",
            &error,
        )
    }
}

/// A request's task ended without an answer (it panicked): a bug, logged, not explained.
impl From<tokio::task::JoinError> for ApiError {
    fn from(error: tokio::task::JoinError) -> Self {
        ApiError::with_detail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
            &error,
        )
    }
}
