//! A real language server in the pool: python-lsp-server 1.15.0 (`pylsp`, with pyflakes)
//! behind `LspSession` and the `JsonRpc` protocol. Its diagnostics arrive as notifications
//! while no request is outstanding, which must reach the message handler (or be dropped
//! and counted) and never fault the worker; the handshake runs before any worker is lent,
//! `min_idle` ones included; the goodbye lets the server exit on its own.
//!
//! pylsp is found at `$PYLSP`, else at `<workspace root>/target/lsp-venv/bin/pylsp`. Without
//! it these tests say they are skipped, unless `SUBPROCESS_POOL_REQUIRE_PYLSP=1` (as in CI),
//! which makes them fail.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use subprocess_pool::protocol::{JsonRpc, RpcError, RpcMessage};
use subprocess_pool::{LspSession, Runner, SubprocessPool, SubprocessPoolBuilder, WorkerSpec};
use support::HANG_GUARD;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How to get pylsp where these tests look for it.
const INSTALL: &str = "from the workspace root, run `python3 -m venv target/lsp-venv && \
     target/lsp-venv/bin/pip install 'python-lsp-server[pyflakes]==1.15.0'`, or set PYLSP \
     to a pylsp executable";

/// A document with an unused import, which pyflakes reports.
const SOURCE: &str = "import os\n\ndef f(x):\n    return x.upper()\n";
const UNUSED_IMPORT: &str = "'os' imported but unused";

/// The pylsp these tests run, or `None` (having said so on stderr) if there is none and it
/// is not required.
fn pylsp() -> Option<PathBuf> {
    let path = match std::env::var_os("PYLSP").filter(|path| !path.is_empty()) {
        Some(path) => find_program(Path::new(&path)),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/lsp-venv/bin/pylsp"),
    };
    if path.is_file() {
        return Some(path);
    }
    let required = std::env::var("SUBPROCESS_POOL_REQUIRE_PYLSP").is_ok_and(|value| value == "1");
    assert!(
        !required,
        "pylsp not found at {} and SUBPROCESS_POOL_REQUIRE_PYLSP=1 requires it: {INSTALL}",
        path.display()
    );
    // Past the test harness's capture of `eprintln!`, so a skip shows in every run.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: pylsp not installed at {} (to install it, {INSTALL})",
        path.display()
    );
    None
}

/// `program` as given if it names a path, else the first match on `PATH` (or itself).
fn find_program(program: &Path) -> PathBuf {
    if program.components().count() > 1 {
        return program.to_path_buf();
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| program.to_path_buf())
}

/// Starts pylsp with bounds that only guard against hangs.
fn server(pylsp: &Path) -> WorkerSpec {
    WorkerSpec::new(pylsp)
        .startup_timeout(Duration::from_secs(30))
        .request_timeout(Duration::from_secs(30))
}

/// The handshake's params: the least pylsp accepts.
fn lsp_session() -> LspSession {
    LspSession::new(json!({ "processId": null, "rootUri": null, "capabilities": {} }))
}

/// A pool of pylsp servers with the LSP handshake and goodbye.
fn builder(spec: WorkerSpec) -> SubprocessPoolBuilder<JsonRpc, LspSession> {
    SubprocessPool::builder(spec, JsonRpc::default()).session(lsp_session())
}

/// A document URI unique to this test process and `name`. The file need not exist: the
/// server reads the text from `didOpen`.
fn document_uri(name: &str) -> String {
    let path =
        std::env::temp_dir().join(format!("subprocess-pool-{name}-{}.py", std::process::id()));
    format!("file://{}", path.display())
}

fn did_open(uri: &str) -> RpcMessage {
    RpcMessage::notification(
        "textDocument/didOpen",
        json!({
            "textDocument": { "uri": uri, "languageId": "python", "version": 1, "text": SOURCE }
        }),
    )
}

fn at(method: &str, uri: &str, line: u32, character: u32) -> RpcMessage {
    RpcMessage::request(
        method,
        json!({
            "textDocument": { "uri": uri },
            "position": { "line": line, "character": character }
        }),
    )
}

/// Hover on `os` in `import os`.
fn hover_on_os(uri: &str) -> RpcMessage {
    at("textDocument/hover", uri, 0, 7)
}

/// The markdown (or plain) text of a hover result.
fn hover_text(hover: &Value) -> String {
    let contents = &hover["contents"];
    match contents {
        Value::String(text) => text.clone(),
        Value::Object(_) => contents["value"].as_str().unwrap_or_default().to_string(),
        Value::Array(parts) => parts
            .iter()
            .map(|part| match part {
                Value::String(text) => text.clone(),
                part => part["value"].as_str().unwrap_or_default().to_string(),
            })
            .collect(),
        _ => String::new(),
    }
}

/// The labels of a completion result (a list of items, or a `CompletionList`).
fn completion_labels(completion: &Value) -> Vec<String> {
    let items = match completion {
        Value::Array(items) => items,
        list => list["items"].as_array().unwrap_or_else(|| {
            panic!("completion is neither a list nor a CompletionList: {completion}")
        }),
    };
    items
        .iter()
        .filter_map(|item| item["label"].as_str().map(str::to_string))
        .collect()
}

/// The params of a `textDocument/publishDiagnostics` notification.
fn diagnostics_params(message: &RpcMessage) -> Option<&Value> {
    match message {
        RpcMessage::Notification {
            method,
            params: Some(params),
        } if method == "textDocument/publishDiagnostics" => Some(params),
        _ => None,
    }
}

#[tokio::test]
async fn diagnostics_reach_the_handler_between_requests_and_one_warm_server_answers_on() {
    let Some(pylsp) = pylsp() else { return };
    let (messages, mut received) = mpsc::unbounded_channel();
    let pool = builder(server(&pylsp))
        .on_message(move |pid, message| {
            let _ = messages.send((pid, message.clone()));
            None
        })
        .max_size(1)
        .build()
        .unwrap();
    let uri = document_uri("lsp-diagnostics");

    let mut held = pool.pool().get().await.unwrap();
    let pid = held.pid();
    held.send(did_open(&uri)).await.unwrap();
    // Nothing is sent until the diagnostics are in: they arrive while no request is
    // outstanding, and must go to the handler rather than fault the worker.
    let diagnostics = tokio::time::timeout(HANG_GUARD, async {
        loop {
            let (from, message) = received
                .recv()
                .await
                .expect("the handler lives in the pool");
            if let Some(params) = diagnostics_params(&message) {
                assert_eq!(from, pid, "the handler is told which server sent it");
                return params.clone();
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no publishDiagnostics within {HANG_GUARD:?} of didOpen"));
    assert_eq!(diagnostics["uri"], json!(uri), "{diagnostics}");
    let found = diagnostics["diagnostics"]
        .as_array()
        .unwrap_or_else(|| panic!("no diagnostics list: {diagnostics}"));
    assert!(
        found.iter().any(|diagnostic| diagnostic["message"]
            .as_str()
            .is_some_and(|message| message.contains(UNUSED_IMPORT))),
        "pyflakes' unused import is not among the diagnostics: {diagnostics}"
    );
    assert!(!held.is_poisoned(), "a notification faulted the worker");

    // The same server, which has the document open, answers about it. Its first answer
    // may come before jedi has found the standard library on a fresh machine (seen once in
    // CI: `{"contents": ""}`), so it may be asked again, on the same worker.
    let mut hover = Value::Null;
    for _ in 0..20 {
        hover = held.call(hover_on_os(&uri)).await.unwrap().unwrap();
        if !hover_text(&hover).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let text = hover_text(&hover);
    assert!(text.contains("OS routines"), "hover on `os`: {hover}");
    let completion = held
        .call(at("textDocument/completion", &uri, 0, 9))
        .await
        .unwrap()
        .unwrap();
    let labels = completion_labels(&completion);
    assert!(
        labels.iter().any(|label| label == "os"),
        "completion after `import os` lacks `os`: {labels:?}"
    );
    drop(held);

    // Back in the pool, the one warm server serves every call.
    for i in 0..20 {
        let hover = pool
            .call(hover_on_os(&uri))
            .await
            .unwrap_or_else(|error| panic!("call {i} failed in the pool: {error}"))
            .unwrap_or_else(|error| panic!("call {i} failed in the server: {error}"));
        assert!(!hover_text(&hover).is_empty(), "call {i}: {hover}");
    }
    assert_eq!(pool.metrics().created, 1, "one server served every call");
    let workers = pool.worker_metrics();
    assert_eq!(workers.faulted, 0, "{workers:?}");
    assert!(workers.messages >= 1, "{workers:?}");
    assert_eq!(
        workers.messages_dropped, 0,
        "a handler was set: {workers:?}"
    );
    assert!(pool.shutdown(HANG_GUARD).await.is_clean());
}

#[tokio::test]
async fn a_min_idle_server_has_finished_its_handshake_before_it_is_lent() {
    let Some(pylsp) = pylsp() else { return };
    let uri = document_uri("lsp-min-idle");

    // Without the handshake, pylsp refuses requests: what an answer below proves.
    let mut bare = Runner::spawn(&server(&pylsp), JsonRpc::default())
        .await
        .unwrap();
    let refused = bare.call(hover_on_os(&uri)).await.unwrap();
    assert!(
        matches!(&refused, Err(error) if error.code == RpcError::INVALID_PARAMS),
        "pylsp answered a request before `initialize` with {refused:?}"
    );
    bare.shutdown().await;

    let pool = builder(server(&pylsp))
        .max_size(1)
        .min_idle(1)
        .build()
        .unwrap();
    // The pool starts the server in the background; the test waits only until it is idle,
    // and asks nothing of it before.
    support::eventually("the min_idle server to be started", || {
        pool.status().idle == 1
    })
    .await;
    let mut held = pool.pool().get().await.unwrap();
    held.send(did_open(&uri)).await.unwrap();
    let hover = held
        .call(hover_on_os(&uri))
        .await
        .unwrap()
        .unwrap_or_else(|error| panic!("the lent server was not initialized: {error}"));
    // A hover result (its text depends on jedi; the first test checks it).
    assert!(hover.get("contents").is_some(), "{hover}");
    drop(held);
    assert_eq!(pool.metrics().created, 1, "the min_idle server was lent");
    assert!(pool.shutdown(HANG_GUARD).await.is_clean());
}

#[tokio::test]
async fn shutting_the_pool_down_says_goodbye_and_the_server_exits_on_its_own() {
    let Some(pylsp) = pylsp() else { return };
    // pylsp under `sh`, which records the status it exits with (the pool's kill would take
    // `sh` too, and no status would be written); pylsp logs the messages it handles.
    let log = support::temp_path("pylsp-goodbye.log");
    let status = support::temp_path("pylsp-goodbye.status");
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&status);
    let spec = WorkerSpec::new("sh")
        .args([
            "-c".as_ref(),
            r#""$0" -vv --log-file "$1"; echo "$?" > "$2""#.as_ref(),
            pylsp.as_os_str(),
            log.as_os_str(),
            status.as_os_str(),
        ])
        // Long enough that a kill at shutdown would show in its duration.
        .kill_grace(HANG_GUARD)
        .startup_timeout(Duration::from_secs(30));
    let pool = builder(spec).max_size(1).build().unwrap();

    let held = pool.pool().get().await.unwrap();
    let pid = held.pid();
    drop(held);
    let began = Instant::now();
    let report = pool.shutdown(2 * HANG_GUARD).await;
    let took = began.elapsed();
    assert!(report.is_clean(), "{report:?}");
    assert!(
        took < HANG_GUARD,
        "shutdown took {took:?}: the server did not exit within kill_grace"
    );
    let workers = pool.worker_metrics();
    assert_eq!(workers.killed, 0, "{workers:?}");
    assert_eq!(workers.faulted, 0, "{workers:?}");
    support::group_gone("the server's process group to be gone", pid).await;

    let exit_status = std::fs::read_to_string(&status)
        .unwrap_or_else(|error| panic!("no exit status recorded (killed?): {error}"));
    assert_eq!(exit_status.trim(), "0", "pylsp's exit status");
    let handled = std::fs::read_to_string(&log).unwrap();
    for goodbye in ["'method': 'shutdown'", "'method': 'exit'"] {
        assert!(
            handled.contains(goodbye),
            "pylsp never got {goodbye}; its log:\n{handled}"
        );
    }
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&status);
}

#[tokio::test]
async fn without_a_handler_diagnostics_are_dropped_and_counted_and_the_server_serves_on() {
    let Some(pylsp) = pylsp() else { return };
    let pool = builder(server(&pylsp)).max_size(1).build().unwrap();
    let uri = document_uri("lsp-dropped");

    let mut held = pool.pool().get().await.unwrap();
    held.send(did_open(&uri)).await.unwrap();
    drop(held);
    // The diagnostics arrive while the server is idle in the pool.
    support::eventually("the diagnostics to be dropped", || {
        pool.worker_metrics().messages_dropped >= 1
    })
    .await;
    let hover = pool
        .call(hover_on_os(&uri))
        .await
        .expect("the server that sent a notification serves on")
        .unwrap();
    assert!(hover.get("contents").is_some(), "{hover}");
    assert_eq!(pool.metrics().created, 1, "the server was not replaced");
    let workers = pool.worker_metrics();
    assert_eq!(workers.messages, workers.messages_dropped, "{workers:?}");
    assert_eq!(workers.faulted, 0, "{workers:?}");
    assert!(pool.shutdown(HANG_GUARD).await.is_clean());
}
