//! Several requests in flight per worker, with a real Bazel multiplex worker
//! (`examples/workers/multiplex_worker.py`, asyncio): answers matched by id whatever their
//! order, a death failing exactly the requests in flight on that worker, a timeout
//! cancelling one request while the others on the same worker succeed.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use subprocess_pool::protocol::{BazelJson, Lines, WorkRequest, WorkResponse};
use subprocess_pool::{CallError, MultiplexPool, RunnerError, WorkerSpec};
use support::{guarded, python};

fn spec() -> WorkerSpec {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/workers/multiplex_worker.py");
    WorkerSpec::new(python()).arg("-u").arg(script)
}

fn pool(spec: WorkerSpec, workers: usize, in_flight: usize) -> MultiplexPool<BazelJson> {
    MultiplexPool::builder(spec, BazelJson::default().multiplex())
        .max_size(workers)
        .max_in_flight(in_flight)
        .wait_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn request(arguments: &[&str]) -> WorkRequest {
    WorkRequest {
        arguments: arguments.iter().map(|&argument| argument.into()).collect(),
        ..Default::default()
    }
}

/// The text and the worker pid of a `sleep` answer ("TEXT@PID").
fn text_and_pid(response: &WorkResponse) -> (String, u32) {
    let (text, pid) = response.output.rsplit_once('@').expect("TEXT@PID");
    (text.to_string(), pid.parse().unwrap())
}

fn is_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_given_out_of_order_reach_their_own_callers() {
    let pool = pool(spec(), 1, 8);
    // Sent in order 0..8; the later ones sleep less, so they are answered first.
    let calls = (0..8).map(|n| {
        let pool = pool.clone();
        async move {
            let sleep = (400 - 50 * n).to_string();
            let text = format!("call {n}");
            let response = pool.call(request(&["sleep", &sleep, &text])).await.unwrap();
            let finished = std::time::Instant::now();
            assert_eq!(
                text_and_pid(&response).0,
                text,
                "call {n} got another's answer"
            );
            (n, finished, text_and_pid(&response).1)
        }
    });
    let results = guarded("8 calls", futures_join_all(calls)).await;
    let mut by_finish = results.clone();
    by_finish.sort_by_key(|(_, finished, _)| *finished);
    let order: Vec<_> = by_finish.iter().map(|(n, _, _)| *n).collect();
    assert_ne!(
        order,
        (0..8).collect::<Vec<_>>(),
        "answers came back in request order"
    );
    let pids: BTreeSet<_> = results.iter().map(|(_, _, pid)| *pid).collect();
    assert_eq!(pids.len(), 1, "one worker served all 8 at once");
    assert_eq!(pool.metrics().created, 1);
    assert_eq!(pool.in_flight(), 0);
    pool.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_death_fails_exactly_the_requests_in_flight_on_it() {
    let pool = pool(spec(), 2, 8);
    // Start both workers first (the first calls may all go to the first one up), so the
    // calls below spread over two live workers.
    let warm = guarded(
        "warm-up",
        futures_join_all((0..2).map(|_| pool.call(request(&["sleep", "100"])))),
    )
    .await;
    assert!(warm.iter().all(Result::is_ok), "{warm:?}");
    guarded("both workers up", async {
        while pool.status().in_use < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    // 8 calls spread 4 and 4 (fewest outstanding first); one of them kills its worker.
    let calls = (0..8).map(|n| {
        let pool = pool.clone();
        async move {
            let arguments: &[&str] = if n == 0 {
                &["die", "150"]
            } else {
                &["sleep", "600"]
            };
            pool.call(request(arguments)).await
        }
    });
    let results = guarded("8 calls", futures_join_all(calls)).await;
    let survivors: BTreeSet<_> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|r| text_and_pid(r).1))
        .collect();
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(
        failed.len(),
        4,
        "the dead worker's 4 requests fail: {results:?}"
    );
    assert_eq!(survivors.len(), 1, "the other worker's 4 succeed");
    for error in &failed {
        assert!(
            matches!(error, CallError::Worker(RunnerError::Exited { .. })),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("exited with status 3"),
            "{error}"
        );
    }
    // The pool goes on with a replacement.
    let response = guarded("after", pool.call(request(&["sleep", "1", "after"]))).await;
    assert_eq!(text_and_pid(&response.unwrap()).0, "after");
    pool.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_cancels_one_request_and_the_others_on_the_worker_succeed() {
    let spec = spec().request_timeout(Duration::from_millis(500));
    let pool = pool(spec, 1, 8);
    let slow = pool.call(request(&["sleep", "30000", "slow"]));
    let quick = futures_join_all((0..3).map(|n| {
        let pool = pool.clone();
        async move {
            let text = format!("quick {n}");
            pool.call(request(&["sleep", "100", &text]))
                .await
                .map(|r| text_and_pid(&r))
        }
    }));
    let (slow, quick) = guarded("calls", async { tokio::join!(slow, quick) }).await;
    match slow {
        Err(CallError::Worker(RunnerError::RequestTimeout { after })) => {
            assert_eq!(after, Duration::from_millis(500))
        }
        other => panic!("expected a request timeout, got {other:?}"),
    }
    let quick: Vec<_> = quick.into_iter().map(Result::unwrap).collect();
    let pid = quick[0].1;
    assert!(quick.iter().all(|(_, p)| *p == pid));
    // The worker was told to cancel, answered `wasCancelled`, and still serves.
    let cancels = guarded("cancels", pool.call(request(&["cancels"])))
        .await
        .unwrap();
    assert_eq!(cancels.output, "1");
    let after = guarded("after", pool.call(request(&["sleep", "1", "x"])))
        .await
        .unwrap();
    assert_eq!(text_and_pid(&after).1, pid, "the worker was not killed");
    assert_eq!(pool.metrics().created, 1);
    assert_eq!(pool.in_flight(), 0);
    pool.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_retire_after_max_requests_and_shutdown_leaves_none() {
    let pool = pool(spec().max_requests(10), 1, 4);
    let mut pids = BTreeSet::new();
    for n in 0..30 {
        let response = guarded("call", pool.call(request(&["sleep", "1", &n.to_string()])))
            .await
            .unwrap();
        pids.insert(text_and_pid(&response).1);
    }
    assert!(pids.len() >= 3, "10 requests per worker at most: {pids:?}");
    let report = pool.shutdown(Duration::from_secs(2)).await;
    assert!(report.is_clean(), "{report:?}");
    for pid in pids {
        guarded("worker gone", async {
            while is_alive(pid) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
}

#[test]
fn a_protocol_without_ids_is_refused_naming_the_protocol() {
    let error = MultiplexPool::builder(WorkerSpec::new("cat"), Lines::default())
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("protocol"), "{error}");
    assert!(error.to_string().contains("does not multiplex"), "{error}");
    let error = MultiplexPool::builder(WorkerSpec::new("cat"), BazelJson::default())
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("multiplex()"), "{error}");
    let error = MultiplexPool::builder(WorkerSpec::new("cat"), BazelJson::default().multiplex())
        .max_in_flight(0)
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("max_in_flight"), "{error}");
}

/// Runs `futures` concurrently on this task, results in their order.
async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(&mut outputs) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_rpc_and_bazel_proto_workers_take_many_requests_at_once() {
    use serde_json::json;
    use subprocess_pool::protocol::{BazelProto, JsonRpc, RpcMessage};

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workers/json_rpc_worker.py");
    let rpc = MultiplexPool::builder(
        WorkerSpec::new(python()).arg("-u").arg(script),
        JsonRpc::default(),
    )
    .max_size(1)
    .max_in_flight(16)
    .build()
    .unwrap();
    let answers = guarded(
        "json-rpc calls",
        futures_join_all((0..32).map(|n| rpc.call(RpcMessage::request("echo", json!([n]))))),
    )
    .await;
    for (n, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer.unwrap().unwrap(), json!([n]));
    }
    rpc.shutdown(Duration::from_secs(2)).await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workers/bazel_proto_worker.py");
    let spec = WorkerSpec::new(python())
        .arg("-u")
        .arg(script)
        .arg("--persistent_worker");
    let proto = MultiplexPool::builder(spec, BazelProto::default().multiplex())
        .max_size(2)
        .max_in_flight(8)
        .build()
        .unwrap();
    let answers = guarded(
        "bazel proto calls",
        futures_join_all((0..32).map(|n| proto.call(request(&["job", &n.to_string()])))),
    )
    .await;
    for (n, answer) in answers.into_iter().enumerate() {
        let answer = answer.unwrap();
        assert_eq!(answer.output, format!("job {n}"));
        assert_ne!(answer.request_id, 0, "multiplex ids are never 0");
    }
    proto.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_call_is_cancelled_on_the_worker_which_goes_on_serving() {
    let pool = pool(spec(), 1, 8);
    let dropped = tokio::time::timeout(
        Duration::from_millis(300),
        pool.call(request(&["sleep", "30000", "never"])),
    )
    .await;
    assert!(dropped.is_err(), "the call was dropped before its answer");
    let cancels = guarded("cancels", pool.call(request(&["cancels"])))
        .await
        .unwrap();
    assert_eq!(cancels.output, "1", "the worker was told to cancel");
    assert_eq!(pool.metrics().created, 1, "and was not replaced");
    assert_eq!(pool.in_flight(), 0);
    pool.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_program_fails_the_call_naming_it() {
    let spec = WorkerSpec::new("/nonexistent/multiplex-worker");
    // Without a deadline the caller gets the failed start itself.
    let pool = MultiplexPool::builder(spec.clone(), BazelJson::default().multiplex())
        .build()
        .unwrap();
    let error = guarded("call", pool.call(request(&["sleep", "1"])))
        .await
        .unwrap_err();
    assert!(
        matches!(error, CallError::Pool(pool_core::PoolError::Backend(_))),
        "{error:?}"
    );
    let report = support::report(&error);
    assert!(report.contains("/nonexistent/multiplex-worker"), "{report}");
    // With one, starts are retried until it passes; the timeout says why.
    let pool = MultiplexPool::builder(spec, BazelJson::default().multiplex())
        .wait_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let error = guarded("call", pool.call(request(&["sleep", "1"])))
        .await
        .unwrap_err();
    let report = support::report(&error);
    assert!(report.contains("timed out"), "{report}");
    assert!(report.contains("/nonexistent/multiplex-worker"), "{report}");
    pool.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_workers_that_fail_their_ping_retire() {
    // The ping outlasts `request_timeout`: it fails its first health check, while the
    // worker itself stays alive and well (a timed-out request is only cancelled), so only
    // the failed check can retire it.
    let pool = MultiplexPool::builder(
        spec().request_timeout(Duration::from_millis(300)),
        BazelJson::default().multiplex(),
    )
    .ping(request(&["sleep", "10000"]))
    .health_check_interval(Duration::from_millis(200))
    .build()
    .unwrap();
    let first = guarded("call", pool.call(request(&["sleep", "1"])))
        .await
        .unwrap();
    let first_pid = text_and_pid(&first).1;
    guarded("worker retired", async {
        while is_alive(first_pid) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let second = guarded("call", pool.call(request(&["sleep", "1"])))
        .await
        .unwrap();
    assert_ne!(text_and_pid(&second).1, first_pid, "a new worker serves");
    pool.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_workers_that_answer_their_ping_stay() {
    // One worker at most: with room for two, a call that came while a ping was in flight
    // could start a second worker (seen under the full suite's load), and that is not
    // what this test is about.
    let pool = MultiplexPool::builder(spec(), BazelJson::default().multiplex())
        .max_size(1)
        .ping(request(&["cancels"]))
        .health_check_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let first = guarded("call", pool.call(request(&["sleep", "1"])))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await; // several checks
    let second = guarded("call", pool.call(request(&["sleep", "1"])))
        .await
        .unwrap();
    assert_eq!(text_and_pid(&second).1, text_and_pid(&first).1);
    assert_eq!(pool.metrics().created, 1);
    // Pings did reach it: more requests than the three calls of this test.
    let requests = guarded("call", pool.call(request(&["requests"])))
        .await
        .unwrap();
    let requests: u32 = requests.output.parse().unwrap();
    assert!(
        requests > 3,
        "no ping reached the worker ({requests} requests)"
    );
    pool.shutdown(Duration::from_secs(2)).await;
}
