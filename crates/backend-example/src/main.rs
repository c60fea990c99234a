//! A real HTTP backend on the global pools: warm python workers behind `POST /run`,
//! allowlisted one-shot commands behind `POST /exec`, every pool's status at `GET /status`.
//!
//! ```text
//! cargo run -p backend-example -- 127.0.0.1:3000
//! curl -d 'hello world' http://127.0.0.1:3000/run            # DLROW OLLEH
//! curl -d '{"command":"wc","stdin":"four"}' http://127.0.0.1:3000/exec
//! curl http://127.0.0.1:3000/status
//! ```
//!
//! `-- --soak SECONDS` instead serves on a local port and drives itself for that long
//! (steady clients, hostile ones, a worker SIGKILLed every 3 s), then prints what it saw,
//! with the process's descriptors and memory sampled each second (`soak.rs`).
//!
//! Ctrl-C or SIGTERM stops accepting connections and lets in-flight requests finish within
//! `Settings::grace` (10 s); connections still open then are closed. The pools then get
//! `Settings::pool_grace` (5 s) for calls still running; workers still busy after it have
//! their process groups killed. Errors are logged to stderr with the request id the client
//! was given.

mod app;
mod errors;
mod server;
mod soak;

use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    if listen == "--soak" {
        let seconds = std::env::args()
            .nth(2)
            .map_or(Ok(30), |seconds| seconds.parse())
            .map_err(|error| format!("--soak takes a number of seconds: {error}"))?;
        let settings = app::Settings::new(app::python_worker()?);
        let duration = Duration::from_secs(seconds);
        let report = soak::soak(settings, duration, 16, Duration::from_secs(3)).await?;
        println!("{report}");
        return Ok(());
    }
    let listener = TcpListener::bind(&listen).await?;
    let settings = app::Settings::new(app::python_worker()?);
    println!("listening on http://{}", listener.local_addr()?);
    let report = app::serve(listener, settings, stop_signal()).await?;
    println!("stopped: {report:?}");
    Ok(())
}

/// Resolves on ctrl-c or SIGTERM.
async fn stop_signal() {
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    println!("stopping: finishing in-flight requests");
}
