//! The axum backend example, driven over real HTTP: 500 requests on 32 keep-alive
//! connections while a worker is killed from outside, then the same shutdown path SIGTERM
//! takes, after which no worker process is left.

#[path = "../examples/backend/app.rs"]
#[allow(dead_code)]
mod app;
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustix::process::{Pid, Signal, kill_process};
use support::{children, group_members};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const REQUESTS: usize = 500;
const CONNECTIONS: usize = 32;

/// The job `examples/workers/upper.py` does.
fn upper(text: &str) -> String {
    text.to_uppercase().chars().rev().collect()
}

fn settings() -> app::Settings {
    let allowlist = BTreeMap::from([("wc".to_owned(), vec!["wc".to_owned(), "-c".to_owned()])]);
    app::Settings {
        worker: app::python_worker()
            .expect("python3 runs")
            .request_timeout(Duration::from_secs(30)),
        workers: 4,
        wait_timeout: Duration::from_secs(30),
        allowlist,
        grace: Duration::from_secs(10),
    }
}

/// Our children running `upper.py`: the warm workers.
fn worker_pids() -> Vec<u32> {
    children()
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains("upper.py"))
        })
        .collect()
}

/// One keep-alive HTTP/1.1 connection.
async fn connect(addr: std::net::SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    sender
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    body: &str,
) -> (StatusCode, String) {
    sender.ready().await.unwrap();
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "backend")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// A failure must be a JSON error naming what happened.
fn assert_json_error(status: StatusCode, body: &str) {
    let value: serde_json::Value = serde_json::from_str(body)
        .unwrap_or_else(|_| panic!("{status}: not a JSON error: {body:?}"));
    assert!(
        value["error"].is_string() && value["kind"].is_string(),
        "{status}: {body}"
    );
    assert!(status.is_server_error(), "{status}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_answers_every_request_while_a_worker_is_killed_then_leaves_no_worker() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app::serve(listener, settings(), async {
        let _ = stopped.await;
    }));

    // The endpoints besides /run.
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
    assert!(body.contains("not an allowed command"), "{body}");
    let (status, body) = send(&mut probe, "POST", "/run", "two\nlines").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("newline"), "{body}");

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
                        assert_json_error(status, &body);
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
    let (status, body) = send(&mut probe, "GET", "/status", "").await;
    assert_eq!(status, StatusCode::OK);
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    let pools = value["pools"].as_array().unwrap();
    assert_eq!(pools.len(), 2, "{body}");
    let workers = &pools[1];
    assert_eq!(workers["name"], "upper");
    assert!(
        workers["metrics"]["destroyed"].as_u64().unwrap() >= 1,
        "{body}"
    );
    let (status, body) = send(&mut probe, "POST", "/run", "after").await;
    assert_eq!((status, body), (StatusCode::OK, upper("after")));
    drop(probe);

    // The path SIGTERM takes in `main.rs`: stop accepting, finish, shut the pools down.
    let workers_before = worker_pids();
    assert!(!workers_before.is_empty());
    stop.send(()).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
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
}
