//! A real HTTP backend on the global pools: warm python workers behind `POST /run`,
//! allowlisted one-shot commands behind `POST /exec`, every pool's status at `GET /status`.
//!
//! ```text
//! cargo run -p subprocess-pool --example backend -- 127.0.0.1:3000
//! curl -d 'hello world' http://127.0.0.1:3000/run            # DLROW OLLEH
//! curl -d '{"command":"wc","stdin":"four"}' http://127.0.0.1:3000/exec
//! curl http://127.0.0.1:3000/status
//! ```
//!
//! Ctrl-C or SIGTERM stops accepting connections, lets in-flight requests finish, then
//! shuts the pools down (workers get `GRACE` to finish, then their process groups are
//! killed).

mod app;

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

/// How long shutdown waits for in-flight calls.
const GRACE: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let listener = TcpListener::bind(&listen).await?;
    let settings = app::Settings {
        worker: app::python_worker()?
            .request_timeout(Duration::from_secs(5))
            .max_requests(10_000),
        workers: 4,
        wait_timeout: Duration::from_secs(5),
        allowlist: allowlist(),
        grace: GRACE,
    };
    println!("listening on http://{}", listener.local_addr()?);
    let report = app::serve(listener, settings, stop_signal()).await?;
    println!("stopped: {report:?}");
    Ok(())
}

/// The only commands `POST /exec` may run, by name.
fn allowlist() -> BTreeMap<String, Vec<String>> {
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

/// Resolves on ctrl-c or SIGTERM.
async fn stop_signal() {
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    println!("stopping: finishing in-flight requests");
}
