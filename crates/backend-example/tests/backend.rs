//! The axum backend example, driven over real HTTP with real workers: 500 requests on 32
//! keep-alive connections while a worker is killed from outside, then the shutdown path
//! SIGTERM takes; and hostile clients: half-sent heads, idle and excess connections,
//! clients that hang up, failures whose details must stay out of the answer.
//!
//! The backend runs on the process-wide pools, so these tests run one at a time.

#[path = "../src/app.rs"]
#[allow(dead_code)]
mod app;
#[path = "../src/errors.rs"]
mod errors;
#[path = "../src/server.rs"]
mod server;
#[path = "../src/soak.rs"]
mod soak;
#[path = "../../subprocess-pool/tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustix::process::{Pid, Signal, kill_process};
use soak::{upper, worker_pids};
use subprocess_pool::WorkerSpec;
use support::group_members;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const REQUESTS: usize = 500;
const CONNECTIONS: usize = 32;

/// Only one backend at a time: they share the process's global pools, and the soak counts
/// the process's descriptors.
static ONE_BACKEND: Mutex<()> = Mutex::new(());

/// Runs `test` alone, on a runtime of its own built after taking the lock and dropped
/// before releasing it (a runtime holds descriptors too).
fn alone(test: impl std::future::Future<Output = ()>) {
    let _alone = ONE_BACKEND.lock().unwrap_or_else(PoisonError::into_inner);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(test);
}

fn settings() -> app::Settings {
    let mut settings = app::Settings::new(
        app::python_worker()
            .expect("python3 runs")
            .request_timeout(Duration::from_secs(30)),
    );
    settings.commands = BTreeMap::from([
        ("wc".to_owned(), vec!["wc".to_owned(), "-c".to_owned()]),
        (
            "fail".to_owned(),
            ["sh", "-c", "echo password=hunter2 >&2; exit 3"]
                .map(str::to_owned)
                .to_vec(),
        ),
        (
            "sleep".to_owned(),
            vec!["sleep".to_owned(), "30".to_owned()],
        ),
    ]);
    settings.command_timeout = Duration::from_millis(300);
    settings.wait_timeout = Duration::from_secs(30);
    settings
}

/// A line worker in `sh`: `sleep` answers after 300 ms, `crash` writes a secret to stderr
/// and exits, `env NAME` answers the variable or `unset`, anything else is echoed.
fn sh_worker() -> WorkerSpec {
    let script = r#"
        while read -r line; do
            case "$line" in
                sleep) sleep 0.3; echo slept ;;
                crash) echo "password=hunter2" >&2; exit 3 ;;
                env\ *) printenv "${line#env }" || echo unset ;;
                *) echo "$line" ;;
            esac
        done"#;
    WorkerSpec::new("sh")
        .args(["-c", script])
        .request_timeout(Duration::from_secs(30))
}

/// A backend serving on a local port until `stop` is sent or dropped.
struct Backend {
    addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<pool_core::ShutdownReport, String>>,
}

impl Backend {
    async fn start(settings: app::Settings) -> Self {
        // A failed test before this one may have left the global pools up.
        let _ = subprocess_pool::global::shutdown(Duration::ZERO).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            app::serve(listener, settings, async {
                let _ = stopped.await;
            })
            .await
            .map_err(|error| error.to_string())
        });
        Self {
            addr,
            stop: Some(stop),
            server,
        }
    }

    /// Stops the server; returns how long it took and its shutdown report.
    async fn stop(mut self) -> (Duration, pool_core::ShutdownReport) {
        let started = Instant::now();
        self.stop.take().unwrap().send(()).unwrap();
        let report = tokio::time::timeout(Duration::from_secs(60), &mut self.server)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
        (started.elapsed(), report)
    }

    async fn status(&self) -> serde_json::Value {
        let (status, body) = send(&mut connect(self.addr).await, "GET", "/status", "").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// The worker pool's entry in `/status`.
fn workers_of(status: &serde_json::Value) -> &serde_json::Value {
    status["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|pool| pool["name"] == app::WORKERS)
        .expect("the worker pool is listed")
}

/// One keep-alive HTTP/1.1 connection.
async fn connect(addr: std::net::SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    sender
}

fn request(method: &str, path: &str, body: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "backend")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    body: &str,
) -> (StatusCode, String) {
    sender.ready().await.unwrap();
    let response = sender
        .send_request(request(method, path, body))
        .await
        .unwrap();
    let status = response.status();
    assert!(
        response.headers().contains_key("x-request-id"),
        "{status}: no request id"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// A failure must be a JSON error naming its kind and request id, and nothing else.
fn json_error(status: StatusCode, body: &str) -> serde_json::Value {
    let value: serde_json::Value = serde_json::from_str(body)
        .unwrap_or_else(|_| panic!("{status}: not a JSON error: {body:?}"));
    let fields: Vec<&String> = value.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["error", "kind", "request_id"], "{status}: {body}");
    assert!(
        value["error"].is_string() && value["kind"].is_string(),
        "{status}: {body}"
    );
    value
}

/// What the backend logged (this test binary's tracing events).
fn log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&log);
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || LogWriter(Arc::clone(&writer)))
            .init();
        log
    })
}

fn logged() -> String {
    String::from_utf8_lossy(&log().lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut log = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        log.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads from `stream` until the server closes it; returns when (ignoring what it sent).
async fn closed_by_server(stream: &mut TcpStream) -> Instant {
    let mut sink = [0; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), stream.read(&mut sink)).await {
            Ok(Ok(0) | Err(_)) => return Instant::now(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the server kept the connection open for 20 s"),
        }
    }
}

#[test]
fn backend_answers_every_request_while_a_worker_is_killed_then_leaves_no_worker() {
    alone(async {
        let backend = Backend::start(settings()).await;
        let addr = backend.addr;

        // The endpoints besides /run, and their errors.
        let mut probe = connect(addr).await;
        let (status, body) = send(
            &mut probe,
            "POST",
            "/exec",
            r#"{"command":"wc","stdin":"four"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (value["code"].as_i64(), value["stdout"].as_str()),
            (Some(0), Some("4\n"))
        );
        let (status, body) = send(&mut probe, "POST", "/exec", r#"{"command":"rm -rf /"}"#).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(json_error(status, &body)["kind"], "unknown_command");
        assert!(!body.contains("wc"), "the 404 names the allowlist: {body}");
        let (status, body) = send(&mut probe, "POST", "/run", "two\nlines").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            json_error(status, &body)["error"]
                .as_str()
                .unwrap()
                .contains("newline")
        );
        let big = "x".repeat(100_000);
        for (method, path, body, expected, kind) in [
            (
                "POST",
                "/run",
                &big[..],
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
            ),
            ("POST", "/nowhere", "", StatusCode::NOT_FOUND, "not_found"),
            (
                "DELETE",
                "/run",
                "",
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
            ),
            ("POST", "/exec", "{", StatusCode::BAD_REQUEST, "bad_request"),
        ] {
            let (status, body) = send(&mut connect(addr).await, method, path, body).await;
            assert_eq!(status, expected, "{method} {path}: {body}");
            assert_eq!(json_error(status, &body)["kind"], kind, "{body}");
        }

        // 500 requests over 32 connections; a worker is SIGKILLed from outside half way.
        let answered = Arc::new(AtomicUsize::new(0));
        let (halfway, reached) = oneshot::channel::<()>();
        let halfway = Arc::new(std::sync::Mutex::new(Some(halfway)));
        let clients: Vec<_> = (0..CONNECTIONS)
            .map(|c| {
                let (answered, halfway) = (Arc::clone(&answered), Arc::clone(&halfway));
                tokio::spawn(async move {
                    let mut sender = connect(addr).await;
                    let (mut ok, mut failed) = (0, 0);
                    for i in (c..REQUESTS).step_by(CONNECTIONS) {
                        let text = format!("request {i} of connection {c}");
                        let (status, body) = send(&mut sender, "POST", "/run", &text).await;
                        if status == StatusCode::OK {
                            assert_eq!(body, upper(&text));
                            ok += 1;
                        } else {
                            json_error(status, &body);
                            assert!(status.is_server_error(), "{status}: {body}");
                            failed += 1;
                        }
                        if answered.fetch_add(1, Ordering::SeqCst) + 1 == REQUESTS / 2 {
                            halfway.lock().unwrap().take().unwrap().send(()).unwrap();
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        reached.await.unwrap();
        let victims = worker_pids();
        assert!(!victims.is_empty(), "no worker found");
        kill_process(Pid::from_raw(victims[0] as i32).unwrap(), Signal::KILL).unwrap();
        let (mut ok, mut failed) = (0, 0);
        for client in clients {
            let (o, f) = client.await.unwrap();
            ok += o;
            failed += f;
        }
        eprintln!(
            "{ok} answered, {failed} failed cleanly after killing worker {}",
            victims[0]
        );
        assert_eq!(ok + failed, REQUESTS);
        assert!(
            failed <= 1,
            "{failed} requests failed for one killed worker"
        );

        // The pools saw it, and still serve.
        let status = backend.status().await;
        assert_eq!(status["pools"].as_array().unwrap().len(), 2, "{status}");
        let destroyed = workers_of(&status)["metrics"]["destroyed"].as_u64();
        assert!(destroyed >= Some(1), "{status}");
        let (status, body) = send(&mut probe, "POST", "/run", "after").await;
        assert_eq!((status, body), (StatusCode::OK, upper("after")));
        drop(probe);

        // The path SIGTERM takes in `main.rs`: stop accepting, finish, shut the pools down.
        let workers_before = worker_pids();
        assert!(!workers_before.is_empty());
        let (_, report) = backend.stop().await;
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(
            worker_pids(),
            Vec::<u32>::new(),
            "workers left after shutdown"
        );
        for pid in workers_before.into_iter().chain(victims) {
            assert!(
                group_members(pid).is_empty(),
                "process group {pid} still has members"
            );
        }
        assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
    });
}

#[test]
fn half_sent_request_heads_do_not_hold_shutdown_past_the_grace_period() {
    alone(async {
        let mut settings = settings();
        settings.worker = sh_worker();
        settings.grace = Duration::from_secs(1);
        // Only the grace period may end these connections.
        settings.http.header_read_timeout = Duration::from_secs(600);
        settings.http.idle_timeout = Duration::from_secs(600);
        let backend = Backend::start(settings).await;
        let mut stalled = Vec::new();
        for _ in 0..3 {
            let mut stream = TcpStream::connect(backend.addr).await.unwrap();
            stream
                .write_all(b"POST /run HTTP/1.1\r\nHost: backend\r\nContent-Le")
                .await
                .unwrap();
            stalled.push(stream);
        }
        let mut idle = connect(backend.addr).await;
        let (status, _) = send(&mut idle, "POST", "/run", "hello").await;
        assert_eq!(status, StatusCode::OK);

        let (took, report) = backend.stop().await;
        eprintln!("stopped in {took:?} with 3 half-sent heads and a grace of 1 s");
        assert!(took < Duration::from_secs(6), "stopping took {took:?}");
        assert!(report.is_clean(), "{report:?}");
        for mut stream in stalled {
            closed_by_server(&mut stream).await;
        }
    });
}

#[test]
fn stalled_heads_and_idle_connections_are_closed_after_their_timeouts() {
    alone(async {
        let mut settings = settings();
        settings.worker = sh_worker();
        settings.http.header_read_timeout = Duration::from_millis(300);
        settings.http.idle_timeout = Duration::from_millis(800);
        let backend = Backend::start(settings).await;

        // A head that stops half way: closed after the header timeout.
        let mut stalled = TcpStream::connect(backend.addr).await.unwrap();
        let started = Instant::now();
        stalled
            .write_all(b"POST /run HTTP/1.1\r\nHo")
            .await
            .unwrap();
        let after = closed_by_server(&mut stalled).await - started;
        eprintln!("a half-sent head was closed after {after:?} (timeout 300 ms)");
        assert!(after >= Duration::from_millis(300), "{after:?}");

        // A keep-alive connection that answered a request, then idles: closed after the idle
        // timeout, not the header timeout.
        let mut idle = TcpStream::connect(backend.addr).await.unwrap();
        idle.write_all(b"POST /run HTTP/1.1\r\nHost: backend\r\nContent-Length: 2\r\n\r\nhi")
            .await
            .unwrap();
        let mut answer = Vec::new();
        while !answer.ends_with(b"\r\n\r\nhi") {
            let mut chunk = [0; 512];
            let read = idle.read(&mut chunk).await.unwrap();
            assert!(read > 0, "closed before answering: {answer:?}");
            answer.extend_from_slice(&chunk[..read]);
        }
        let answered = Instant::now();
        let after = closed_by_server(&mut idle).await - answered;
        eprintln!("an idle keep-alive connection was closed after {after:?} (timeout 800 ms)");
        assert!(after >= Duration::from_millis(800), "{after:?}");
        let (_, report) = backend.stop().await;
        assert!(report.is_clean(), "{report:?}");
    });
}

#[test]
fn connections_over_the_limit_wait_until_one_closes() {
    alone(async {
        let mut settings = settings();
        settings.worker = sh_worker();
        settings.http.max_connections = 2;
        let backend = Backend::start(settings).await;
        let mut first = connect(backend.addr).await;
        let mut second = connect(backend.addr).await;
        assert_eq!(
            send(&mut first, "POST", "/run", "1").await.0,
            StatusCode::OK
        );
        assert_eq!(
            send(&mut second, "POST", "/run", "2").await.0,
            StatusCode::OK
        );

        let mut third = connect(backend.addr).await;
        third.ready().await.unwrap();
        let mut answer = Box::pin(third.send_request(request("POST", "/run", "3")));
        let early = tokio::time::timeout(Duration::from_millis(300), answer.as_mut()).await;
        assert!(
            early.is_err(),
            "a third connection was served over a limit of 2"
        );
        drop(first);
        let response = tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .expect("served once a connection closed")
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        drop(second);
        let (_, report) = backend.stop().await;
        assert!(report.is_clean(), "{report:?}");
    });
}

#[test]
fn clients_that_hang_up_cost_no_worker() {
    alone(async {
        let mut settings = settings();
        settings.worker = sh_worker();
        let backend = Backend::start(settings).await;

        // 40 clients ask for a 300 ms answer and hang up after 50 ms.
        let mut hang_ups = tokio::task::JoinSet::new();
        for _ in 0..40 {
            let addr = backend.addr;
            hang_ups.spawn(async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                stream
                    .write_all(
                        b"POST /run HTTP/1.1\r\nHost: backend\r\nContent-Length: 5\r\n\r\nsleep",
                    )
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            });
        }
        while let Some(done) = hang_ups.join_next().await {
            done.unwrap();
        }
        // The calls finish on their own (40 sleeps on 4 workers: about 3 s), then the pool has
        // all its workers back, none replaced.
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            let status = backend.status().await;
            if workers_of(&status)["status"]["in_use"] == 0 || Instant::now() > deadline {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let workers = workers_of(&status);
        assert_eq!(workers["status"]["in_use"], 0, "{workers}");
        // The 4 workers `min_idle` started, none replaced.
        assert_eq!(workers["metrics"]["created"], 4, "{workers}");
        assert_eq!(workers["metrics"]["destroyed"], 0, "{workers}");
        let (status, body) = send(&mut connect(backend.addr).await, "POST", "/run", "still").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "still"));
        let (_, report) = backend.stop().await;
        assert!(report.is_clean(), "{report:?}");
    });
}

#[test]
fn details_go_to_the_log_and_not_to_the_client_and_workers_get_no_secrets() {
    alone(async {
        log();
        let mut settings = settings();
        settings.worker = sh_worker();
        let backend = Backend::start(settings).await;
        let mut client = connect(backend.addr).await;

        // A worker that dies with a secret on its stderr.
        let (status, body) = send(&mut client, "POST", "/run", "crash").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        let error = json_error(status, &body);
        assert_eq!(error["kind"], "worker_failed");
        for secret in ["hunter2", "status", "sh"] {
            assert!(!body.contains(secret), "{secret:?} in the answer: {body}");
        }
        let id = error["request_id"].as_str().unwrap();
        let line = support::eventually_some("the failure logged", || {
            logged()
                .lines()
                .find(|line| line.contains(id))
                .map(str::to_owned)
        })
        .await;
        assert!(
            line.contains("hunter2") && line.contains("worker_failed"),
            "{line}"
        );

        // A command that fails with a secret on its stderr, and one that runs too long.
        let (status, body) = send(&mut client, "POST", "/exec", r#"{"command":"fail"}"#).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (value["code"].as_i64(), &value["success"]),
            (Some(3), &false.into())
        );
        assert!(!body.contains("hunter2"), "{body}");
        let started = Instant::now();
        let (status, body) = send(&mut client, "POST", "/exec", r#"{"command":"sleep"}"#).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
        assert_eq!(json_error(status, &body)["kind"], "command_timeout");
        assert!(started.elapsed() < Duration::from_secs(10));

        // Workers see the allowlisted environment only: not this process's.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        for (name, expected) in [
            ("CARGO_MANIFEST_DIR", "unset"),
            ("HOME", "unset"),
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ] {
            let (status, body) = send(&mut client, "POST", "/run", &format!("env {name}")).await;
            assert_eq!(
                (status, body.as_str()),
                (StatusCode::OK, expected),
                "{name}"
            );
        }
        let (_, report) = backend.stop().await;
        assert!(report.is_clean(), "{report:?}");
    });
}

#[test]
fn a_short_soak_answers_right_or_fails_cleanly_and_gives_back_every_descriptor() {
    alone(async {
        let fds_before = support::baseline_fds().await;
        let mut settings = settings();
        settings.http.header_read_timeout = Duration::from_millis(500);
        let report = soak::soak(settings, Duration::from_secs(4), 8, Duration::from_secs(1))
            .await
            .unwrap();
        eprintln!("{report}");
        assert_eq!(report.wrong, 0, "{report}");
        assert!(report.answered > 100, "{report}");
        assert!(report.kills >= 2, "{report}");
        for kind in report.failed.keys() {
            assert!(
                kind == "worker_failed" || kind == "worker_timeout",
                "{report}"
            );
        }
        // One failure at most per killed worker: the call it was serving.
        let failed: u64 = report.failed.values().sum();
        assert!(failed <= report.kills, "{report}");
        assert_eq!(
            worker_pids(),
            Vec::<u32>::new(),
            "workers left after the soak"
        );
        support::eventually("no zombie children", || {
            support::zombie_children().is_empty()
        })
        .await;
        support::eventually("descriptors back to where they were", || {
            support::open_fds() <= fds_before
        })
        .await;
    });
}
