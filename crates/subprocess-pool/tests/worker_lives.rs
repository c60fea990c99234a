//! A worker's whole life against real processes: JSON-RPC conversations in both directions
//! (answers, notifications while idle, requests to the host, wrong ids, error responses),
//! sessions (handshake in create, goodbye in destroy), exits noticed at once and reported
//! with their status and stderr, workers that die while starting, kills by the pool, and
//! planned retirements counted apart from failures.

mod support;

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pool_core::PoolError;
use serde_json::{Value, json};
use subprocess_pool::protocol::{JsonRpc, Lines, RpcError, RpcId, RpcMessage};
use subprocess_pool::{
    CallError, DEFAULT_REQUEST_TIMEOUT, ProtocolError, Runner, RunnerError, Session,
    SubprocessPool, WorkerSpec,
};
use support::{HANG_GUARD, eventually, guarded, pool_of, temp_path, worker_error};

/// The JSON-RPC worker of `tests/workers/json_rpc_worker.py`.
fn json_rpc_worker() -> WorkerSpec {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/workers/json_rpc_worker.py"
    );
    WorkerSpec::new(support::python()).args(["-u", script])
}

/// A pool of one JSON-RPC worker, with no message handler.
fn json_rpc_pool() -> SubprocessPool<JsonRpc> {
    SubprocessPool::builder(json_rpc_worker(), JsonRpc::default())
        .max_size(1)
        .build()
        .unwrap()
}

fn request(method: &str, params: Value) -> RpcMessage {
    RpcMessage::request(method, params)
}

/// The startup error from a call whose worker could not be created.
fn startup_error<T: Debug>(result: Result<T, CallError>) -> RunnerError {
    match result {
        Err(CallError::Pool(PoolError::Backend(error @ RunnerError::Startup { .. }))) => error,
        other => panic!("expected a failed create (a startup error), got {other:?}"),
    }
}

// ----- 1. JSON-RPC with a worker of our own -----

#[tokio::test]
async fn json_rpc_echo_answers_every_request_with_its_own_id() {
    let pool = SubprocessPool::builder(json_rpc_worker(), JsonRpc::default())
        .max_size(2)
        .build()
        .unwrap();
    // Two tasks at once over two workers: every answer is its own request's.
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..2 {
        let pool = pool.clone();
        tasks.spawn(async move {
            for i in 0..50 {
                let params = json!({ "task": task, "n": i, "text": format!("call {i}") });
                let answer = pool.call(request("echo", params.clone())).await.unwrap();
                assert_eq!(answer, Ok(params));
            }
        });
    }
    support::join_all("100 echo calls", tasks).await;
    let metrics = pool.metrics();
    assert!(metrics.created <= 2, "{metrics:?}");
    assert_eq!(metrics.create_failures, 0, "{metrics:?}");
    assert_eq!(pool.worker_metrics().faulted, 0);
    pool.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_notification_sent_while_idle_reaches_the_handler_and_keeps_the_worker() {
    let (sent, mut received) = tokio::sync::mpsc::unbounded_channel();
    let pool = SubprocessPool::builder(json_rpc_worker(), JsonRpc::default())
        .max_size(1)
        .on_message(move |pid, message: &RpcMessage| {
            let _ = sent.send((pid, message.clone()));
            None
        })
        .build()
        .unwrap();
    let answer = pool.call(request("notify-later", Value::Null)).await;
    assert_eq!(answer.unwrap(), Ok(json!("ok")));
    // ~20 ms after answering, with no request outstanding, the worker notifies.
    let (from, message) = guarded("the notification", received.recv())
        .await
        .expect("the handler lives as long as the pool");
    assert_eq!(
        message,
        RpcMessage::notification("$/progress", json!({ "done": true }))
    );
    // The same worker, not retired for talking while idle, serves the next call.
    let echoed = pool.call(request("echo", json!([1, 2]))).await.unwrap();
    assert_eq!(echoed, Ok(json!([1, 2])));
    let pid = pool.pool().get().await.unwrap().pid();
    assert_eq!(from, pid, "the handler is told which worker spoke");
    assert_eq!(pool.metrics().created, 1, "{:?}", pool.metrics());
    let workers = pool.worker_metrics();
    assert_eq!(workers.messages, 1, "{workers:?}");
    assert_eq!(workers.messages_dropped, 0, "{workers:?}");
    assert_eq!(workers.faulted, 0, "{workers:?}");
    pool.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_request_from_the_worker_is_answered_by_the_handler() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let pool = SubprocessPool::builder(json_rpc_worker(), JsonRpc::default())
        .max_size(1)
        .on_message({
            let seen = seen.clone();
            move |_, message: &RpcMessage| match message {
                RpcMessage::Request { id, method, .. } if method == "workspace/configuration" => {
                    seen.lock().unwrap().push(id.clone());
                    Some(RpcMessage::reply(id.clone(), Ok(json!([{ "tabSize": 4 }]))))
                }
                _ => None,
            }
        })
        .build()
        .unwrap();
    let answer = guarded("ask-host", pool.call(request("ask-host", Value::Null))).await;
    assert_eq!(answer.unwrap(), Ok(json!({ "host": [{ "tabSize": 4 }] })));
    assert_eq!(*seen.lock().unwrap(), [RpcId::String("s1".into())]);
    let workers = pool.worker_metrics();
    assert_eq!((workers.messages, workers.messages_dropped), (1, 0));
    assert_eq!(pool.metrics().created, 1);
    pool.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_request_from_the_worker_without_a_handler_gets_method_not_found() {
    let pool = json_rpc_pool();
    // The worker waits for the host's reply before answering: the default reply must
    // reach it, or this call would hang.
    let answer = guarded("ask-host", pool.call(request("ask-host", Value::Null))).await;
    assert_eq!(
        answer.unwrap(),
        Ok(json!({ "host_error": RpcError::METHOD_NOT_FOUND }))
    );
    let workers = pool.worker_metrics();
    assert_eq!((workers.messages, workers.messages_dropped), (1, 1));
    // The worker is still in good order.
    assert_eq!(
        pool.call(request("echo", json!("still here")))
            .await
            .unwrap(),
        Ok(json!("still here"))
    );
    assert_eq!(pool.metrics().created, 1);
    pool.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn an_answer_with_the_wrong_id_fails_the_call_and_replaces_the_worker() {
    let pool = json_rpc_pool();
    let error = worker_error(pool.call(request("wrong-id", Value::Null)).await);
    assert!(
        matches!(
            error,
            RunnerError::Protocol(ProtocolError::Mismatch {
                expected: 1,
                got: 1001
            })
        ),
        "{error}"
    );
    let answer = pool.call(request("echo", json!("next"))).await.unwrap();
    assert_eq!(answer, Ok(json!("next")));
    assert_eq!(pool.metrics().created, 2, "{:?}", pool.metrics());
    eventually("the mismatched worker to be counted as faulted", || {
        pool.worker_metrics().faulted == 1
    })
    .await;
    pool.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn an_error_response_is_an_answer_and_keeps_the_worker() {
    let pool = json_rpc_pool();
    let answer = pool.call(request("fail", Value::Null)).await.unwrap();
    match answer {
        Err(RpcError { code, message, .. }) => {
            assert_eq!(code, -32000);
            assert_eq!(message, "nope");
        }
        other => panic!("expected an error response, got {other:?}"),
    }
    let answer = pool.call(request("echo", json!(7))).await.unwrap();
    assert_eq!(answer, Ok(json!(7)));
    assert_eq!(pool.metrics().created, 1, "{:?}", pool.metrics());
    let workers = pool.worker_metrics();
    assert_eq!((workers.faulted, workers.exited, workers.killed), (0, 0, 0));
    pool.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_notification_through_call_is_refused_before_it_is_sent() {
    let pool = json_rpc_pool();
    let error = worker_error(
        pool.call(RpcMessage::notification("$/cancel", json!({ "id": 1 })))
            .await,
    );
    assert!(
        matches!(
            error,
            RunnerError::Protocol(ProtocolError::InvalidRequest(_))
        ),
        "{error}"
    );
    assert!(error.worker_intact(), "{error}");
    let answer = pool.call(request("echo", json!("intact"))).await.unwrap();
    assert_eq!(answer, Ok(json!("intact")));
    assert_eq!(pool.metrics().created, 1, "the worker was not harmed");
    pool.shutdown(Duration::from_secs(1)).await;
}

// ----- 2. Sessions -----

/// Says "hello" and expects "hello" back; counts the handshakes that succeeded.
struct Hello {
    handshakes: Arc<AtomicUsize>,
}

impl Session<Lines> for Hello {
    async fn start(&self, runner: &mut Runner<Lines>) -> Result<(), RunnerError> {
        let answer = runner.call("hello".to_string()).await?;
        if answer != "hello" {
            return Err(RunnerError::Startup {
                reason: format!("it answered {answer:?} to hello"),
                stderr: String::new(),
            });
        }
        self.handshakes.fetch_add(1, SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn min_idle_workers_have_had_their_handshake() {
    let handshakes = Arc::new(AtomicUsize::new(0));
    let pool = SubprocessPool::builder(WorkerSpec::new("cat"), Lines::default())
        .session(Hello {
            handshakes: handshakes.clone(),
        })
        .max_size(2)
        .min_idle(2)
        .build()
        .unwrap();
    eventually("both min_idle workers to finish their handshake", || {
        handshakes.load(SeqCst) == 2
    })
    .await;
    eventually("both workers to be idle", || pool.status().idle == 2).await;
    assert_eq!(pool.call("after".into()).await.unwrap(), "after");
    assert_eq!(handshakes.load(SeqCst), 2, "no new worker was needed");
    assert_eq!(pool.metrics().created, 2, "{:?}", pool.metrics());
    pool.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_failed_handshake_is_a_failed_create() {
    let handshakes = Arc::new(AtomicUsize::new(0));
    let spec = WorkerSpec::new("sh").args(["-c", r#"while IFS= read -r l; do echo "no $l"; done"#]);
    let pool = SubprocessPool::builder(spec, Lines::default())
        .session(Hello {
            handshakes: handshakes.clone(),
        })
        .max_size(1)
        .build()
        .unwrap();
    let error = startup_error(guarded("the call", pool.call("x".into())).await);
    let message = error.to_string();
    assert!(message.contains("handshake failed"), "{message}");
    assert!(
        message.contains(r#"it answered "no hello" to hello"#),
        "{message}"
    );
    assert!(pool.metrics().create_failures >= 1, "{:?}", pool.metrics());
    assert_eq!(handshakes.load(SeqCst), 0);
}

/// A lines worker that echoes, except `bye FILE` (creates FILE, answers "bye") and `sleep`
/// (says so on stderr and sleeps 30 s).
const GOODBYE_WORKER: &str = r#"
while IFS= read -r line; do
  case "$line" in
    "bye "*) touch "${line#bye }"; echo bye ;;
    sleep) echo "sleeping on request" >&2; sleep 30 ;;
    *) echo "$line" ;;
  esac
done
"#;

/// Says "bye FILE" to each worker it stops; counts the goodbyes begun.
struct Goodbye {
    marker: PathBuf,
    goodbyes: Arc<AtomicUsize>,
}

impl Goodbye {
    fn new(test: &str) -> (Self, Arc<AtomicUsize>) {
        let marker = temp_path(&format!("goodbye-{test}"));
        let _ = std::fs::remove_file(&marker);
        let goodbyes = Arc::new(AtomicUsize::new(0));
        let session = Self {
            marker,
            goodbyes: goodbyes.clone(),
        };
        (session, goodbyes)
    }
}

impl Session<Lines> for Goodbye {
    async fn goodbye(&self, runner: &mut Runner<Lines>) {
        self.goodbyes.fetch_add(1, SeqCst);
        let answer = runner.call(format!("bye {}", self.marker.display())).await;
        assert_eq!(answer.ok().as_deref(), Some("bye"));
    }
}

#[tokio::test]
async fn the_goodbye_runs_on_shutdown() {
    let (session, goodbyes) = Goodbye::new("shutdown");
    let marker = session.marker.clone();
    let pool = SubprocessPool::builder(
        WorkerSpec::new("sh").args(["-c", GOODBYE_WORKER]),
        Lines::default(),
    )
    .session(session)
    .max_size(1)
    .build()
    .unwrap();
    assert_eq!(pool.call("work".into()).await.unwrap(), "work");
    assert!(!marker.exists());
    let report = pool.shutdown(Duration::from_secs(5)).await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(goodbyes.load(SeqCst), 1);
    assert!(
        marker.exists(),
        "the worker was told goodbye before it was stopped"
    );
    let _ = std::fs::remove_file(&marker);
}

#[tokio::test]
async fn no_goodbye_for_a_worker_whose_call_timed_out() {
    let (session, goodbyes) = Goodbye::new("timeout");
    let marker = session.marker.clone();
    let spec = WorkerSpec::new("sh")
        .args(["-c", GOODBYE_WORKER])
        .request_timeout(Duration::from_millis(300));
    let pool = SubprocessPool::builder(spec, Lines::default())
        .session(session)
        .max_size(1)
        .build()
        .unwrap();
    let error = worker_error(guarded("the call", pool.call("sleep".into())).await);
    assert!(matches!(error, RunnerError::Timeout { .. }), "{error}");
    eventually("the timed-out worker to be destroyed", || {
        pool.worker_metrics().killed == 1
    })
    .await;
    // Destroy counts the worker, then (only for a worker in good order) begins the goodbye
    // in the same poll: had it begun, it would be counted by now.
    assert_eq!(goodbyes.load(SeqCst), 0, "no goodbye for a killed worker");
    assert!(!marker.exists());
    // Its replacement is in good order, and is told goodbye.
    assert_eq!(pool.call("next".into()).await.unwrap(), "next");
    let report = pool.shutdown(Duration::from_secs(5)).await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(goodbyes.load(SeqCst), 1);
    assert!(marker.exists());
    let _ = std::fs::remove_file(&marker);
}

// ----- 3. Exits are noticed -----

#[tokio::test]
async fn a_worker_exiting_mid_request_fails_the_call_at_once_with_its_status_and_stderr() {
    // Default settings: the request timeout is 60 s, so only noticing the exit ends this
    // call in time.
    let spec = WorkerSpec::new("sh").args(["-c", "read l; echo 'out of cheese' >&2; exit 3"]);
    let pool = pool_of(spec, 1);
    let started = Instant::now();
    let error = worker_error(guarded("the call", pool.call("x".into())).await);
    let took = started.elapsed();
    let message = error.to_string();
    match &error {
        RunnerError::Exited { status, .. } => assert_eq!(status.code(), Some(3), "{message}"),
        _ => panic!("expected Exited, got {message}"),
    }
    assert!(message.contains("with status 3"), "{message}");
    assert!(message.contains("out of cheese"), "{message}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    eventually("the worker to be counted as exited", || {
        pool.worker_metrics().exited == 1
    })
    .await;
}

#[tokio::test]
async fn a_worker_exiting_half_way_through_its_answer_quotes_what_it_wrote() {
    let spec = WorkerSpec::new("sh").args(["-c", "read l; printf 'half an ans'; exit 0"]);
    let pool = pool_of(spec, 1);
    let error = worker_error(guarded("the call", pool.call("x".into())).await);
    let message = error.to_string();
    match &error {
        RunnerError::Exited { output, .. } => assert_eq!(output, "half an ans", "{message}"),
        _ => panic!("expected Exited, got {message}"),
    }
    assert!(message.contains("status 0"), "{message}");
    assert!(message.contains(r#""half an ans""#), "{message}");
    assert!(message.contains("so far"), "{message}");
}

#[tokio::test]
async fn a_hung_worker_times_out_is_killed_and_its_stderr_is_quoted() {
    assert_eq!(DEFAULT_REQUEST_TIMEOUT, Duration::from_secs(60));
    let default = format!("{:?}", WorkerSpec::new("x"));
    assert!(
        default.contains("request_timeout: Some(60s)"),
        "a spec has a request timeout by default: {default}"
    );

    let spec = WorkerSpec::new("sh")
        .args(["-c", "read l; echo 'spinning for ever' >&2; exec sleep 30"])
        .request_timeout(Duration::from_millis(300));
    let pool = pool_of(spec, 1);
    let error = worker_error(guarded("the call", pool.call("x".into())).await);
    let message = error.to_string();
    match &error {
        RunnerError::Timeout { after, .. } => {
            assert_eq!(*after, Duration::from_millis(300), "{message}")
        }
        _ => panic!("expected Timeout, got {message}"),
    }
    assert!(message.contains("killed by the pool"), "{message}");
    assert!(message.contains("spinning for ever"), "{message}");
    eventually("the worker to be counted as killed", || {
        pool.worker_metrics().killed == 1
    })
    .await;
}

// ----- 4. A worker that dies during start-up is a failed create -----

#[tokio::test]
async fn a_worker_exiting_before_its_ready_line_is_a_failed_create() {
    let spec = WorkerSpec::new("sh")
        .args(["-c", "echo 'no licence' >&2; exit 4"])
        .ready_line("READY");
    let pool = pool_of(spec, 1);
    let error = startup_error(guarded("the call", pool.call("x".into())).await);
    let message = error.to_string();
    assert!(message.contains("did not start"), "{message}");
    assert!(message.contains("status 4"), "{message}");
    assert!(message.contains("no licence"), "{message}");
    assert!(message.contains("READY"), "{message}");
    assert!(pool.metrics().create_failures >= 1, "{:?}", pool.metrics());
}

fn cannot_start() -> WorkerSpec {
    WorkerSpec::new("sh").args(["-c", "echo cannot start >&2; exit 2"])
}

#[tokio::test]
async fn a_worker_dying_at_once_without_a_ready_line_puts_creates_on_probation() {
    let pool = pool_of(cannot_start(), 1);
    // The first worker is lent (nothing says it cannot start until it dies).
    let first = guarded("the first call", pool.call("x".into())).await;
    let error = worker_error(first);
    let message = error.to_string();
    assert!(
        matches!(
            error,
            RunnerError::Exited { .. } | RunnerError::Startup { .. }
        ),
        "{message}"
    );
    assert!(message.contains("status 2"), "{message}");
    assert!(message.contains("cannot start"), "{message}");
    // Every next worker is watched, dies within the watch, and is a failed create.
    for call in 2..=4 {
        let error = startup_error(guarded("a call", pool.call("x".into())).await);
        let message = error.to_string();
        assert!(message.contains("did not start"), "call {call}: {message}");
        assert!(message.contains("status 2"), "call {call}: {message}");
        assert!(message.contains("cannot start"), "call {call}: {message}");
    }
    assert!(pool.metrics().create_failures >= 1, "{:?}", pool.metrics());
}

#[tokio::test]
async fn a_caller_with_a_deadline_gets_the_startup_error_without_a_spawn_storm() {
    let wait = Duration::from_millis(300);
    let pool = SubprocessPool::builder(cannot_start(), Lines::default())
        .max_size(1)
        .wait_timeout(wait)
        .build()
        .unwrap();
    // The first worker dies at its first request, which puts creates on probation.
    let first = guarded("the first call", pool.call("x".into())).await;
    assert!(first.is_err(), "{first:?}");
    let before = pool.metrics();
    let started = Instant::now();
    let second = guarded("the second call", pool.call("x".into())).await;
    let took = started.elapsed();
    match &second {
        Err(CallError::Pool(PoolError::Timeout {
            last_error: Some(error),
            ..
        })) => {
            let message = error.to_string();
            assert!(matches!(**error, RunnerError::Startup { .. }), "{message}");
            assert!(message.contains("did not start"), "{message}");
            assert!(message.contains("status 2"), "{message}");
        }
        other => panic!("expected a timeout carrying the startup error, got {other:?}"),
    }
    // Told by its deadline: at once when the next backoff pause would outlast it.
    assert!(took <= wait + Duration::from_millis(200), "took {took:?}");
    let after = pool.metrics();
    let creates =
        (after.created + after.create_failures) - (before.created + before.create_failures);
    // The backoff paces the attempts (10 ms, doubling): a handful, not hundreds.
    assert!(creates >= 1, "{after:?}");
    assert!(creates < 30, "{creates} creates in {took:?}: {after:?}");
}

// ----- 5. Killed by the pool is reported as such -----

#[tokio::test]
async fn a_worker_that_closes_its_stdout_and_lingers_is_killed_by_the_pool() {
    let spec = WorkerSpec::new("sh")
        .args([
            "-c",
            "read l; exec 1>&-; echo 'closing up' >&2; exec sleep 30",
        ])
        .kill_grace(Duration::from_millis(300));
    let pool = pool_of(spec, 1);
    let error = worker_error(guarded("the call", pool.call("x".into())).await);
    let message = error.to_string();
    assert!(matches!(error, RunnerError::Killed { .. }), "{message}");
    assert!(message.contains("killed by the pool"), "{message}");
    assert!(message.contains("closed its stdout"), "{message}");
    assert!(!message.contains("signal 9"), "{message}");
    assert!(message.contains("closing up"), "{message}");
    eventually("the worker to be counted as killed", || {
        pool.worker_metrics().killed == 1
    })
    .await;
    let workers = pool.worker_metrics();
    assert_eq!((workers.exited, workers.faulted), (0, 0), "{workers:?}");
}

#[tokio::test]
async fn a_worker_that_will_not_exit_at_shutdown_is_counted_as_killed() {
    // Ignores the end of its input: only the kill after `kill_grace` stops it.
    let spec = WorkerSpec::new("sh")
        .args(["-c", "trap '' TERM; read l; echo \"$l\"; exec sleep 30"])
        .kill_grace(Duration::from_millis(100));
    let pool = pool_of(spec, 1);
    assert_eq!(pool.call("x".into()).await.unwrap(), "x");
    let pid = support::some_worker_pid(&pool).await;
    pool.shutdown(HANG_GUARD).await;
    let workers = pool.worker_metrics();
    assert_eq!(workers.killed, 1, "{workers:?}");
    support::group_gone("the lingering worker to be killed", pid).await;
}

// ----- 6. Planned retirements are the pool's own -----

#[tokio::test]
async fn planned_retirements_are_counted_by_the_pool_not_as_failures() {
    let pool = pool_of(WorkerSpec::new("cat").max_requests(3), 1);
    for i in 0..10 {
        assert_eq!(
            pool.call(format!("call {i}")).await.unwrap(),
            format!("call {i}")
        );
    }
    // 3 calls each (a limit under 20 is not jittered): 3, 3, 3, 1. `max_requests` is the
    // pool's `max_uses`, so pool-core counts each retirement as such, not as `broken`.
    let metrics = pool.metrics();
    assert_eq!(metrics.created, 4, "{metrics:?}");
    assert_eq!(metrics.destroyed_by.max_uses, 3, "{metrics:?}");
    assert_eq!(metrics.destroyed_by.broken, 0, "{metrics:?}");
    // Every destroy has finished once shutdown returns: none of them was a failure.
    assert!(pool.shutdown(HANG_GUARD).await.is_clean());
    let workers = pool.worker_metrics();
    assert_eq!(
        (workers.exited, workers.killed, workers.faulted),
        (0, 0, 0),
        "{workers:?}"
    );
}

/// Answers each line with its pid and how many lines it has read so far (pings and the
/// handshake included), then the line.
fn counting_worker() -> WorkerSpec {
    WorkerSpec::new("sh").args([
        "-c",
        r#"n=0; while IFS= read -r l; do n=$((n+1)); echo "$$ $n $l"; done"#,
    ])
}

/// The pid and the line count of a `counting_worker` answer.
fn pid_and_count(answer: &str) -> (u32, u64) {
    let mut words = answer.split(' ');
    let pid = words.next().unwrap().parse().unwrap();
    let count = words.next().unwrap().parse().unwrap();
    (pid, count)
}

/// Says hello to each worker it starts: a request the worker answers before any call.
struct SayHello;

impl Session<Lines> for SayHello {
    async fn start(&self, runner: &mut Runner<Lines>) -> Result<(), RunnerError> {
        runner.call("hello".to_string()).await.map(drop)
    }
}

#[tokio::test]
async fn max_requests_counts_calls_not_pings_or_handshakes() {
    const LIMIT: usize = 3;
    let pool = SubprocessPool::builder(
        counting_worker().max_requests(LIMIT as u64),
        Lines::default(),
    )
    .session(SayHello)
    .ping("ping".to_string())
    // A ping before every checkout, and more in the background between calls.
    .health_check_after(Duration::ZERO)
    .health_check_interval(Duration::from_millis(10))
    .max_size(1)
    .build()
    .unwrap();
    let mut served: Vec<(u32, Vec<u64>)> = Vec::new();
    for i in 0..10 {
        let answer = pool.call(format!("call {i}")).await.unwrap();
        assert!(answer.ends_with(&format!(" call {i}")), "{answer}");
        let (pid, count) = pid_and_count(&answer);
        match served.last_mut() {
            Some((last, counts)) if *last == pid => counts.push(count),
            _ => served.push((pid, vec![count])),
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // Each worker served exactly `LIMIT` calls (the last one what was left), although it
    // answered the handshake and several pings besides.
    let calls: Vec<usize> = served.iter().map(|(_, counts)| counts.len()).collect();
    assert_eq!(calls, [LIMIT, LIMIT, LIMIT, 1], "{served:?}");
    for (pid, counts) in &served[..3] {
        let last = *counts.last().unwrap();
        // The handshake, `LIMIT` calls, a ping before each call after the first, and
        // background pings.
        assert!(
            last > LIMIT as u64 + 1,
            "worker {pid} read only {last} lines: {counts:?}"
        );
    }
    let metrics = pool.metrics();
    assert_eq!(metrics.destroyed_by.max_uses, 3, "{metrics:?}");
    assert_eq!(metrics.destroyed_by.broken, 0, "{metrics:?}");
    assert_eq!(metrics.health_check_failures, 0, "{metrics:?}");
    pool.shutdown(HANG_GUARD).await;
}

#[tokio::test]
async fn the_smaller_of_max_requests_and_max_uses_wins() {
    async fn calls_per_worker(pool: SubprocessPool<Lines>) -> Vec<usize> {
        let mut per_worker: Vec<(u32, usize)> = Vec::new();
        for i in 0..5 {
            let (pid, _) = pid_and_count(&pool.call(format!("call {i}")).await.unwrap());
            match per_worker.last_mut() {
                Some((last, calls)) if *last == pid => *calls += 1,
                _ => per_worker.push((pid, 1)),
            }
        }
        assert_eq!(pool.metrics().destroyed_by.max_uses, 2);
        pool.shutdown(HANG_GUARD).await;
        per_worker.into_iter().map(|(_, calls)| calls).collect()
    }
    let spec_smaller = SubprocessPool::builder(counting_worker().max_requests(2), Lines::default())
        .max_uses(10)
        .max_size(1)
        .build()
        .unwrap();
    assert_eq!(calls_per_worker(spec_smaller).await, [2, 2, 1]);
    let builder_smaller =
        SubprocessPool::builder(counting_worker().max_requests(10), Lines::default())
            .max_uses(2)
            .max_size(1)
            .build()
            .unwrap();
    assert_eq!(calls_per_worker(builder_smaller).await, [2, 2, 1]);
}

#[tokio::test]
async fn max_age_is_the_pools_max_lifetime() {
    let pool = SubprocessPool::builder(
        counting_worker().max_age(Duration::from_millis(200)),
        Lines::default(),
    )
    .max_lifetime(Duration::from_secs(3600))
    .max_size(1)
    .build()
    .unwrap();
    let (first, _) = pid_and_count(&pool.call("a".into()).await.unwrap());
    // The pool's maintenance retires the idle worker once it is past its age.
    eventually("the worker to be retired for its age", || {
        pool.metrics().destroyed_by.lifetime == 1
    })
    .await;
    let (second, _) = pid_and_count(&pool.call("b".into()).await.unwrap());
    assert_ne!(first, second);
    let metrics = pool.metrics();
    assert_eq!(metrics.destroyed_by.broken, 0, "{metrics:?}");
    assert_eq!(metrics.destroyed_by.recycle_failed, 0, "{metrics:?}");
    pool.shutdown(HANG_GUARD).await;
}

#[tokio::test]
async fn a_runner_on_its_own_has_no_request_limit() {
    let spec = counting_worker().max_requests(2);
    let mut runner = Runner::spawn(&spec, Lines::default()).await.unwrap();
    for i in 1..=5u64 {
        let (_, count) = pid_and_count(&runner.call(format!("call {i}")).await.unwrap());
        assert_eq!(count, i);
    }
    runner.shutdown().await;
}
