//! Warm workers against real processes: round trips, every fault failing only its own call,
//! and nothing left behind (no process, no zombie, no file descriptor).

mod support;

use std::time::Duration;

use pool_core::PoolError;
use subprocess_pool::protocol::{Direction, Lines};
use subprocess_pool::{CallError, ProtocolError, Runner, RunnerError, SubprocessPool, WorkerSpec};
use support::{SH_WORKER, eventually, group_gone, pool_of, some_worker_pid, worker_error};

fn sh_worker() -> WorkerSpec {
    WorkerSpec::new("sh").args(["-c", SH_WORKER])
}

/// A `SH_WORKER` command that does something after answering (`stray`: writes a line
/// nobody asked for; `quit`: closes stdout and exits), then creates a marker file.
struct AfterAnswer {
    command: &'static str,
    marker: std::path::PathBuf,
}

impl AfterAnswer {
    /// `command`, with a marker file of its own (`test` tells apart tests sending the
    /// same command).
    fn new(command: &'static str, test: &str) -> Self {
        let marker = support::temp_path(&format!("{command}-{test}"));
        let _ = std::fs::remove_file(&marker);
        Self { command, marker }
    }

    fn request(&self) -> String {
        format!("{} {}", self.command, self.marker.display())
    }

    /// Waits until the worker has done it.
    async fn done(self) {
        eventually(
            &format!("the worker's {} after answering", self.command),
            || self.marker.exists(),
        )
        .await;
        let _ = std::fs::remove_file(&self.marker);
    }
}

#[tokio::test]
async fn lines_round_trip_through_a_warm_cat() {
    let pool = pool_of(WorkerSpec::new("cat"), 2);
    for i in 0..100 {
        assert_eq!(
            pool.call(format!("request {i}")).await.unwrap(),
            format!("request {i}")
        );
    }
    assert_eq!(
        pool.metrics().created,
        1,
        "one warm worker served every call"
    );
    pool.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_timed_out_call_kills_the_worker_group_and_the_next_call_succeeds() {
    let pool = pool_of(sh_worker().request_timeout(Duration::from_secs(1)), 1);
    let pid = some_worker_pid(&pool).await;
    let error = worker_error(pool.call("sleep".into()).await);
    assert!(matches!(error, RunnerError::Timeout { .. }), "{error}");
    assert!(error.to_string().contains("timed out"), "{error}");
    group_gone("the timed-out worker's group to be gone", pid).await;
    assert_eq!(pool.call("next".into()).await.unwrap(), "next");
    pool.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_worker_dying_mid_call_reports_its_status_and_stderr() {
    let pool = pool_of(sh_worker(), 1);
    let error = worker_error(pool.call("exit 3".into()).await);
    let message = error.to_string();
    assert!(matches!(error, RunnerError::Exited { .. }), "{message}");
    assert!(message.contains("status 3"), "{message}");
    assert!(message.contains("dying on request"), "{message}");
    assert_eq!(pool.call("next".into()).await.unwrap(), "next");
}

#[tokio::test]
async fn a_worker_killed_by_a_signal_says_which() {
    let pool = pool_of(
        WorkerSpec::new("sh").args(["-c", "read line; kill -9 $$"]),
        1,
    );
    let message = worker_error(pool.call("x".into()).await).to_string();
    assert!(message.contains("signal 9"), "{message}");
}

#[tokio::test]
async fn garbage_on_stdout_is_a_protocol_error_and_the_pool_keeps_serving() {
    let pool = pool_of(sh_worker(), 1);
    let error = worker_error(pool.call("garbage".into()).await);
    assert!(
        matches!(error, RunnerError::Protocol(ProtocolError::Malformed(_))),
        "{error}"
    );
    assert_eq!(pool.call("next".into()).await.unwrap(), "next");
}

#[tokio::test]
async fn a_worker_answering_one_request_twice_fails_that_call_and_is_not_used_again() {
    let pool = pool_of(sh_worker(), 1);
    let error = worker_error(pool.call("twice".into()).await);
    let message = support::report(&error);
    assert!(
        matches!(error, RunnerError::Protocol(ProtocolError::Unasked(_))),
        "{message}"
    );
    assert!(message.contains("nobody asked for"), "{message}");
    assert!(message.contains("twice again"), "{message}");
    // Its second line must not become the next caller's answer.
    assert_eq!(pool.call("next".into()).await.unwrap(), "next");
    assert_eq!(pool.metrics().created, 2);
}

#[tokio::test]
async fn output_an_idle_worker_writes_unasked_retires_it_before_the_next_caller() {
    let pool = pool_of(sh_worker(), 1);
    let act = AfterAnswer::new("stray", "pool");
    assert_eq!(pool.call(act.request()).await.unwrap(), "stray");
    act.done().await;
    // The next caller gets its own answer from a fresh worker, not "unasked", and no error.
    assert_eq!(pool.call("next".into()).await.unwrap(), "next");
    assert_eq!(pool.metrics().created, 2);
    assert_eq!(pool.metrics().destroyed_by.recycle_failed, 1);
}

#[tokio::test]
async fn a_worker_that_quit_while_idle_is_replaced_without_failing_a_call() {
    let pool = pool_of(sh_worker(), 1);
    let act = AfterAnswer::new("quit", "pool");
    assert_eq!(pool.call(act.request()).await.unwrap(), "quit");
    act.done().await;
    // Within the 250 ms in which a worker that just answered is trusted to be alive, its
    // closed stdout still gives it away.
    assert_eq!(pool.call("next".into()).await.unwrap(), "next");
    assert_eq!(pool.metrics().created, 2);
}

#[tokio::test]
async fn a_runner_refuses_a_call_after_output_nobody_asked_for() {
    let mut runner = Runner::spawn(&sh_worker(), Lines::default()).await.unwrap();
    let act = AfterAnswer::new("stray", "runner");
    assert_eq!(runner.call(act.request()).await.unwrap(), "stray");
    act.done().await;
    // The reader saw the line arrive while the worker was idle.
    let message = support::report(&runner.call("next".into()).await.unwrap_err());
    assert!(
        message.contains("while no request was outstanding"),
        "{message}"
    );
    assert!(message.contains("unasked"), "{message}");
    assert!(runner.is_poisoned());
    runner.shutdown().await;
}

#[tokio::test]
async fn an_oversize_response_is_an_error_not_an_out_of_memory() {
    let pool = SubprocessPool::builder(sh_worker(), Lines::with_max_length(64 * 1024))
        .max_size(1)
        .build()
        .unwrap();
    let error = worker_error(pool.call("big".into()).await);
    let message = support::report(&error);
    assert!(
        matches!(
            error,
            RunnerError::Protocol(ProtocolError::FrameTooLarge { .. })
        ),
        "{message}"
    );
    assert!(message.contains("65536"), "names the limit: {message}");
    assert_eq!(pool.call("next".into()).await.unwrap(), "next");
}

#[tokio::test]
async fn a_request_with_a_newline_is_refused_before_it_reaches_the_worker() {
    let pool = pool_of(WorkerSpec::new("cat"), 1);
    let error = worker_error(pool.call("two\nlines".into()).await);
    assert!(error.worker_intact(), "{error}");
    assert_eq!(pool.call("one line".into()).await.unwrap(), "one line");
    assert_eq!(pool.metrics().created, 1, "the worker was not harmed");
}

#[tokio::test]
async fn a_request_over_the_frame_limit_is_refused_before_it_reaches_the_worker() {
    let pool = SubprocessPool::builder(WorkerSpec::new("cat"), Lines::with_max_length(8))
        .max_size(1)
        .build()
        .unwrap();
    let error = worker_error(pool.call("nine bytes".into()).await);
    assert!(
        matches!(
            error,
            RunnerError::Protocol(ProtocolError::FrameTooLarge {
                direction: Direction::Request,
                limit: 8,
                ..
            })
        ),
        "{error}"
    );
    assert!(error.worker_intact(), "{error}");
    assert_eq!(pool.call("fits".into()).await.unwrap(), "fits");
    assert_eq!(pool.metrics().created, 1, "the worker was not harmed");
}

#[tokio::test]
async fn a_worker_that_exits_at_startup_gives_a_startup_error_with_its_stderr() {
    let spec = WorkerSpec::new("sh")
        .args(["-c", "echo 'cannot load model' >&2; exit 2"])
        .ready_line("READY");
    let pool = pool_of(spec, 1);
    match pool.call("x".into()).await {
        Err(CallError::Pool(PoolError::Backend(error @ RunnerError::Startup { .. }))) => {
            let message = error.to_string();
            assert!(message.contains("cannot load model"), "{message}");
            assert!(message.contains("READY"), "{message}");
        }
        other => panic!("expected a startup error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_worker_that_never_becomes_ready_gives_a_startup_error() {
    let spec = WorkerSpec::new("sh")
        .args(["-c", "echo warming up; sleep 30"])
        .ready_line("READY")
        .startup_timeout(Duration::from_millis(300));
    let pool = pool_of(spec, 1);
    let message = match pool.call("x".into()).await {
        Err(CallError::Pool(PoolError::Backend(error))) => error.to_string(),
        other => panic!("expected a startup error, got {other:?}"),
    };
    assert!(message.contains("within 300ms"), "{message}");
}

#[tokio::test]
async fn output_after_the_ready_line_is_a_startup_error_not_a_first_answer() {
    // One write, so the banner arrives with the ready line.
    let script = "printf 'READY\\nbanner\\n'; while IFS= read -r l; do echo \"$l\"; done";
    let spec = WorkerSpec::new("sh")
        .args(["-c", script])
        .ready_line("READY");
    let pool = pool_of(spec, 1);
    let message = match pool.call("x".into()).await {
        Err(CallError::Pool(PoolError::Backend(error))) => error.to_string(),
        other => panic!("expected a startup error, got {other:?}"),
    };
    assert!(message.contains("after its ready line"), "{message}");
    assert!(message.contains("banner"), "{message}");
}

#[tokio::test]
async fn a_ready_line_is_awaited_and_earlier_output_skipped() {
    let script = "echo loading; echo READY; while IFS= read -r l; do echo \"got $l\"; done";
    let pool = pool_of(
        WorkerSpec::new("sh")
            .args(["-c", script])
            .ready_line("READY"),
        1,
    );
    assert_eq!(pool.call("x".into()).await.unwrap(), "got x");
}

#[tokio::test]
async fn a_cancelled_call_never_leaves_a_half_read_worker_in_the_pool() {
    let pool = pool_of(sh_worker(), 1);
    let cancelled = tokio::time::timeout(Duration::from_millis(50), pool.call("slow".into())).await;
    assert!(cancelled.is_err(), "the call was cut short");
    // The worker that would still answer "slow" must not serve the next call.
    assert_eq!(pool.call("fresh".into()).await.unwrap(), "fresh");
    assert_eq!(pool.metrics().created, 2);
}

#[tokio::test]
async fn a_megabyte_on_stderr_does_not_deadlock_the_worker() {
    let pool = pool_of(sh_worker(), 1);
    let reply = tokio::time::timeout(Duration::from_secs(10), pool.call("noisy".into())).await;
    assert_eq!(reply.expect("no deadlock").unwrap(), "noisy");
}

#[tokio::test]
async fn a_grandchild_holding_the_pipes_cannot_hang_a_call_whose_worker_exited() {
    // No request_timeout of its own: the default would take 60 s, the exit is seen at once.
    let pool = pool_of(sh_worker(), 1);
    let pid = some_worker_pid(&pool).await;
    let reply = tokio::time::timeout(Duration::from_secs(10), pool.call("orphan".into())).await;
    let error = worker_error(reply.expect("the exit ends the call, not a timeout"));
    let message = error.to_string();
    assert!(matches!(error, RunnerError::Exited { .. }), "{message}");
    assert!(
        message.contains("with status 0 before answering"),
        "{message}"
    );
    group_gone("the orphaned grandchild to be killed", pid).await;
}

#[tokio::test]
async fn a_write_to_a_dead_worker_is_worker_exited_not_a_panic() {
    // Driven directly: a pool would see at checkout that the worker is gone and lend a
    // fresh one instead.
    let spec = WorkerSpec::new("sh").args(["-c", "exec 0<&-; sleep 0.2; exit 5"]);
    let mut runner = Runner::spawn(&spec, Lines::default()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await; // it has exited by now
    let error = runner.call("anyone there?".into()).await.unwrap_err();
    assert!(error.to_string().contains("exited"), "{error}");
}

#[tokio::test]
async fn a_missing_program_a_non_executable_file_and_a_bad_directory_are_named() {
    // Named in the error's chain, as a log line that walks it shows.
    let missing = pool_of(WorkerSpec::new("/no/such/worker"), 1);
    let message = support::report(&missing.call("x".into()).await.unwrap_err());
    assert!(
        message.contains("/no/such/worker") && message.contains("not found"),
        "{message}"
    );

    let file = support::temp_path("not-executable");
    std::fs::write(&file, "#!/bin/sh\necho hi\n").unwrap();
    let not_executable = pool_of(WorkerSpec::new(&file), 1);
    let message = support::report(&not_executable.call("x".into()).await.unwrap_err());
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(message.contains("not executable"), "{message}");
    std::fs::remove_file(&file).unwrap();

    let bad_dir = pool_of(WorkerSpec::new("cat").current_dir("/no/such/dir"), 1);
    let message = support::report(&bad_dir.call("x".into()).await.unwrap_err());
    assert!(message.contains("/no/such/dir"), "{message}");
}

#[tokio::test]
async fn length_prefixed_frames_round_trip_through_a_python_worker() {
    use bytes::Bytes;
    use subprocess_pool::protocol::LengthPrefixed;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/workers/frame_echo.py");
    let spec = WorkerSpec::new("python3").args(["-u", script]);
    let pool = SubprocessPool::builder(spec, LengthPrefixed::with_max_frame(1024))
        .max_size(1)
        .build()
        .unwrap();
    for frame in [&b"\x00binary\n\xff"[..], b"", b"plain"] {
        let frame = Bytes::copy_from_slice(frame);
        assert_eq!(pool.call(frame.clone()).await.unwrap(), frame);
    }
    match pool.call(Bytes::from_static(b"huge")).await {
        Err(CallError::Worker(RunnerError::Protocol(ProtocolError::FrameTooLarge {
            limit: 1024,
            ..
        }))) => {}
        other => panic!("expected the oversize frame to be refused, got {other:?}"),
    }
    assert_eq!(
        pool.call(Bytes::from_static(b"after")).await.unwrap(),
        "after"
    );
}

#[tokio::test]
async fn a_health_check_ping_retires_a_stuck_worker_before_a_caller_uses_it() {
    // Answers its first line only, then reads without answering: alive but stuck.
    let script = "IFS= read -r l; echo \"$l\"; while read l; do :; done";
    let spec = WorkerSpec::new("sh")
        .args(["-c", script])
        .request_timeout(Duration::from_secs(1));
    let pool = SubprocessPool::builder(spec, Lines::default())
        .max_size(1)
        .health_check_after(Duration::ZERO)
        .ping("ping".to_string())
        .build()
        .unwrap();
    assert_eq!(pool.call("first".into()).await.unwrap(), "first"); // fresh: no check
    // The ping finds the worker stuck; a fresh one serves the caller instead.
    assert_eq!(pool.call("second".into()).await.unwrap(), "second");
    let metrics = pool.metrics();
    assert_eq!(
        (metrics.health_check_failures, metrics.created),
        (1, 2),
        "{metrics:?}"
    );
}

#[test]
fn worker_settings_no_worker_could_serve_under_are_refused_by_name() {
    let cases = [
        (
            WorkerSpec::new("cat").startup_timeout(Duration::ZERO),
            "WorkerSpec::startup_timeout",
        ),
        (
            WorkerSpec::new("cat").request_timeout(Duration::ZERO),
            "WorkerSpec::request_timeout",
        ),
        (
            WorkerSpec::new("cat").max_age(Duration::ZERO),
            "WorkerSpec::max_age",
        ),
        (
            WorkerSpec::new("cat").max_requests(0),
            "WorkerSpec::max_requests",
        ),
    ];
    for (spec, field) in cases {
        let error = SubprocessPool::builder(spec, Lines::default())
            .build()
            .unwrap_err();
        assert_eq!(error.field(), field, "{error}");
        assert!(error.to_string().contains(field), "{error}");
    }
    let zero_grace = WorkerSpec::new("cat").kill_grace(Duration::ZERO);
    assert!(
        SubprocessPool::builder(zero_grace, Lines::default())
            .build()
            .is_ok()
    );
}

#[tokio::test]
async fn every_error_chain_says_each_cause_once_and_loses_none() {
    // A worker that cannot be spawned: pool, runner, spawn and OS error, in order.
    let missing = pool_of(WorkerSpec::new("/no/such/worker"), 1);
    let error = missing.call("x".into()).await.unwrap_err();
    let chain = support::chain_said_once(&error);
    assert_eq!(chain.len(), 3, "{chain:?}");
    assert!(chain[1].contains("/no/such/worker"), "{chain:?}");
    assert!(chain[2].contains("No such file"), "{chain:?}");
    // A worker that breaks the protocol: the runner's error, then the protocol's.
    let pool = pool_of(sh_worker(), 1);
    let error = worker_error(pool.call("twice".into()).await);
    let chain = support::chain_said_once(&error);
    assert_eq!(chain[0], "protocol error", "{chain:?}");
    assert!(chain[1].contains("nobody asked for"), "{chain:?}");
    // A command that cannot be started, and one refused by a closed pool.
    let commands = subprocess_pool::CommandPool::builder().build().unwrap();
    let error = commands
        .run(subprocess_pool::CommandSpec::new("/no/such/tool"))
        .await
        .unwrap_err();
    let chain = support::chain_said_once(&error);
    assert!(chain[0].contains("/no/such/tool"), "{chain:?}");
    assert!(chain.len() >= 2, "the OS error is kept: {chain:?}");
    commands.close();
    let error = commands
        .run(subprocess_pool::CommandSpec::new("true"))
        .await
        .unwrap_err();
    let chain = support::chain_said_once(&error);
    assert_eq!(chain, ["no slot to run the command", "the pool is closed"]);
}
