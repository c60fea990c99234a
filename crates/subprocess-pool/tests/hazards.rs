//! Regression tests for hazards a review found, each against real processes: output a
//! worker leaves behind when it exits, or writes while the caller's thread is busy, or writes
//! together with its answer (a second copy, a log line); a protocol whose code panics; a
//! worker that talks while the host writes to it, or whose stdin a daemon holds; a worker
//! that lived long and died idle taken for one that cannot start; and a create cancelled
//! while its worker gets ready.

mod support;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pool_core::PoolError;
use serde_json::json;
use subprocess_pool::protocol::{
    BazelJson, Incoming, JsonRpc, Lines, LinesFraming, RpcMessage, WorkRequest,
};
use subprocess_pool::{
    CallError, Protocol, ProtocolError, Runner, RunnerError, SubprocessPool, WorkerSpec,
};
use support::{HANG_GUARD, eventually, group_gone, guarded, python, temp_path, worker_error};

/// A worker spec for the python script `tests/workers/<script>`, run unbuffered without
/// the `site` import (it starts in ~10 ms instead of ~50 ms).
fn quick_python(script: &str) -> WorkerSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/workers")
        .join(script);
    WorkerSpec::new(python()).arg("-S").arg("-u").arg(path)
}

/// A worker spec for an inline python program (`-c`), run without the `site` import.
fn python_program(program: &str) -> WorkerSpec {
    WorkerSpec::new(python()).args(["-S", "-u", "-c", program])
}

/// The pid in `path`, once a worker has written it whole.
fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

// ----- 1. Output left behind by a worker that exited -----

#[tokio::test]
async fn a_call_after_the_worker_exited_is_refused_not_answered_with_its_last_words() {
    // Answers one request, leaves a subshell (in its group) that writes a line 50 ms later,
    // and exits. The reader keeps reading an exited worker's stdout for a moment (its last
    // words may be an answer), so a request sent then could be "answered" with that line.
    let spec = WorkerSpec::new("sh").args([
        "-c",
        r#"IFS= read -r line; echo "$line"; (sleep 0.05; echo stray) & exit 0"#,
    ]);
    let mut runner = guarded("spawning", Runner::spawn(&spec, Lines::default()))
        .await
        .unwrap();
    let answer = guarded("the first call", runner.call("first".into())).await;
    assert_eq!(answer.unwrap(), "first");
    eventually("the worker's exit to be seen", || !runner.is_alive()).await;
    let next = guarded("the call after the exit", runner.call("second".into())).await;
    match next {
        Err(
            RunnerError::Exited { .. }
            | RunnerError::Poisoned
            | RunnerError::Protocol(ProtocolError::Unasked(_)),
        ) => {}
        Ok(answer) => panic!("a call to an exited worker was answered with {answer:?}"),
        Err(error) => panic!("expected Exited, Poisoned or Unasked, got {error:?}"),
    }
    assert!(runner.is_poisoned());
}

// ----- 2. A stray line written while the caller's thread was busy -----

/// Answers each line, then 10 ms later writes a second line nobody asked for and creates
/// the file named by its first argument. Answers after the first wait 100 ms, so that a
/// host that sent the next request anyway reads the extra line alone, as the answer.
const EXTRA_LINE_WORKER: &str = r#"
while IFS= read -r line; do
  if [ -e "$1" ]; then sleep 0.1; fi
  echo "$line"
  sleep 0.01
  echo "extra after $line"
  : > "$1"
done
"#;

#[tokio::test]
async fn a_line_written_while_the_callers_thread_was_busy_is_not_the_next_answer() {
    let marker = temp_path("hazards-extra-line");
    let _ = std::fs::remove_file(&marker);
    let spec =
        WorkerSpec::new("sh").args(["-c", EXTRA_LINE_WORKER, "sh", marker.to_str().unwrap()]);
    let mut runner = guarded("spawning", Runner::spawn(&spec, Lines::default()))
        .await
        .unwrap();
    let answer = guarded("the first call", runner.call("a".into())).await;
    assert_eq!(answer.unwrap(), "a");
    // Busy work on the runtime's only thread: the task reading the worker's stdout cannot
    // run until this returns, by which time the extra line is in the pipe.
    let blocked = std::time::Instant::now();
    while !marker.exists() {
        assert!(
            blocked.elapsed() < HANG_GUARD,
            "the worker never wrote its extra line"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let next = guarded("the next call", runner.call("b".into())).await;
    let _ = std::fs::remove_file(&marker);
    match next {
        Err(RunnerError::Protocol(ProtocolError::Unasked(message))) => {
            assert!(message.contains("extra after a"), "{message}");
        }
        Ok(answer) => panic!("the next call was answered with the unasked line {answer:?}"),
        Err(error) => panic!("expected Unasked, got {error:?}"),
    }
    assert!(runner.is_poisoned());
}

// ----- 3. Two copies of an answer with an id, in one write -----

fn work(argument: impl Into<String>) -> WorkRequest {
    WorkRequest {
        arguments: vec![argument.into()],
        ..Default::default()
    }
}

/// How the rounds of one caller went: answers that were another call's (the call, the
/// output it got), second calls made, and second calls refused.
#[derive(Debug, Default)]
struct TwiceTally {
    wrong: Vec<(String, String)>,
    second_calls: usize,
    refused: usize,
}

/// `rounds` rounds, each on a new worker held across two calls (as a caller holding a
/// worker does): "twice", answered twice in one write, then a request of the round's own.
async fn twice_rounds(pool: SubprocessPool<BazelJson>, caller: usize, rounds: usize) -> TwiceTally {
    let mut tally = TwiceTally::default();
    for round in 0..rounds {
        let own = format!("caller {caller} round {round}");
        let mut runner = pool.pool().get().await.unwrap();
        match runner.call(work("twice")).await {
            Ok(response) if response.output == "twice" => {}
            Ok(response) => {
                tally
                    .wrong
                    .push((format!("twice before {own}"), response.output));
                continue;
            }
            Err(error) => {
                // Both copies were read together: the first call may fail instead.
                assert!(
                    matches!(error, RunnerError::Protocol(ProtocolError::Unasked(_))),
                    "{own}: {error:?}"
                );
                continue;
            }
        }
        tally.second_calls += 1;
        match runner.call(work(own.clone())).await {
            Ok(response) if response.output == own => {}
            Ok(response) => tally.wrong.push((own, response.output)),
            Err(_) => tally.refused += 1,
        }
        // Back to the pool, which destroys it (it faulted).
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_copy_of_an_answer_with_an_id_never_answers_the_next_request() {
    // Singleplex Bazel requests all carry requestId 0, so the id cannot tell the second
    // copy from the next request's answer: only reading both copies together can.
    const ROUNDS: usize = 100;
    let spec = quick_python("hazard_bazel_twice.py").request_timeout(HANG_GUARD);
    let pool = SubprocessPool::builder(spec, BazelJson::default())
        .max_size(2)
        .build()
        .unwrap();
    // Two callers, polled by the test's own thread (not spawned): the tasks reading the
    // workers' stdout run on the runtime's two worker threads, so a caller sends its next
    // request in parallel with the reader that just handed it the first answer. (A caller
    // spawned on a worker thread would mostly run only after that reader yields.)
    let (first, second) = guarded("the rounds", async {
        tokio::join!(
            twice_rounds(pool.clone(), 0, ROUNDS),
            twice_rounds(pool.clone(), 1, ROUNDS),
        )
    })
    .await;
    let wrong: Vec<_> = first.wrong.iter().chain(&second.wrong).collect();
    assert!(
        wrong.is_empty(),
        "{} of {} rounds had a call get another call's answer (call, output): {:?}",
        wrong.len(),
        2 * ROUNDS,
        &wrong[..wrong.len().min(5)]
    );
    // The second copy faults every worker it comes from: none answers a call after it.
    assert_eq!(first.refused, first.second_calls, "{first:?}");
    assert_eq!(second.refused, second.second_calls, "{second:?}");
    pool.shutdown(Duration::from_secs(1)).await;
}

// ----- 4. A log line in the same write as the answer -----

/// Lines, where lines starting with `#` are log messages (the `Protocol` docs' example).
#[derive(Clone)]
struct LinesWithLogs;

impl Protocol for LinesWithLogs {
    type Request = String;
    type Response = String;
    type Message = String;
    type Codec = LinesFraming;

    fn codec(&self) -> LinesFraming {
        Lines::default().codec()
    }

    fn classify(&self, line: String) -> Result<Incoming<String, String>, ProtocolError> {
        Ok(match line.strip_prefix('#') {
            Some(log) => Incoming::Message(log.trim().to_string()),
            None => Incoming::Response {
                id: None,
                response: line,
            },
        })
    }
}

#[tokio::test]
async fn a_log_line_written_with_the_answer_is_a_message_not_a_fault() {
    const CALLS: u64 = 20;
    let spec = python_program(
        "import os, sys\n\
         for line in iter(sys.stdin.buffer.readline, b''):\n    \
             os.write(1, line + b'# served\\n')\n",
    )
    .request_timeout(HANG_GUARD);
    let pool = SubprocessPool::builder(spec, LinesWithLogs)
        .max_size(1)
        .build()
        .unwrap();
    for i in 0..CALLS {
        let answer = guarded("a call", pool.call(format!("call {i}"))).await;
        assert_eq!(answer.unwrap(), format!("call {i}"));
    }
    eventually("every log line to be counted", || {
        pool.worker_metrics().messages >= CALLS
    })
    .await;
    assert_eq!(pool.metrics().created, 1, "{:?}", pool.metrics());
    pool.shutdown(Duration::from_secs(1)).await;
    let workers = pool.worker_metrics();
    assert_eq!(workers.faulted, 0, "{workers:?}");
    assert!(workers.messages >= CALLS, "{workers:?}");
}

// ----- 5. A protocol whose code panics -----

/// Lines whose `classify` panics on the line "boom" (a bug in a user's protocol).
#[derive(Clone)]
struct PanicsOnBoom;

impl Protocol for PanicsOnBoom {
    type Request = String;
    type Response = String;
    type Message = Infallible;
    type Codec = LinesFraming;

    fn codec(&self) -> LinesFraming {
        Lines::default().codec()
    }

    fn classify(&self, line: String) -> Result<Incoming<String, Infallible>, ProtocolError> {
        assert_ne!(line, "boom", "PanicsOnBoom cannot classify this line");
        Ok(Incoming::Response {
            id: None,
            response: line,
        })
    }
}

#[tokio::test]
async fn a_panic_in_the_protocols_code_fails_the_call_at_once_and_replaces_the_worker() {
    // Only noticing the reader's panic ends the call in time: the request timeout is 30 s.
    let spec = WorkerSpec::new("cat").request_timeout(Duration::from_secs(30));
    let pool = SubprocessPool::builder(spec, PanicsOnBoom)
        .max_size(1)
        .build()
        .unwrap();
    assert_eq!(pool.call("before".into()).await.unwrap(), "before");
    let error = worker_error(guarded("the call answered boom", pool.call("boom".into())).await);
    assert!(
        !matches!(error, RunnerError::Timeout { .. }),
        "the call failed only at its request timeout: {error}"
    );
    let answer = guarded("the next call", pool.call("after".into())).await;
    assert_eq!(answer.unwrap(), "after");
    assert_eq!(pool.metrics().created, 2, "{:?}", pool.metrics());
    pool.shutdown(Duration::from_secs(1)).await;
}

// ----- 6. A worker that talks while the host writes a long request -----

#[tokio::test]
async fn a_worker_asking_the_host_while_the_host_writes_to_it_does_not_deadlock() {
    // The worker (see its script) sends the host a request and ~300 KB of notifications
    // without reading its stdin, while the host writes a 1 MiB request: the host must keep
    // reading its stdout (and reply to its request once it can write again).
    let spec = quick_python("hazard_chatty_rpc.py").request_timeout(Duration::from_secs(2));
    let mut runner = guarded("spawning", Runner::spawn(&spec, JsonRpc::default()))
        .await
        .unwrap();
    let text = "y".repeat(1 << 20);
    let outcome = guarded(
        "a long request to a chatty worker",
        runner.call(RpcMessage::request("big", json!({ "text": text }))),
    )
    .await;
    match outcome {
        Ok(Ok(result)) => {
            let size = result["size"].as_u64().expect("a size");
            assert!(size > 1 << 20, "{result}");
        }
        Err(RunnerError::Timeout { .. }) => {}
        other => panic!("expected the answer (or a timeout), got {other:?}"),
    }
}

// ----- 7. A worker whose stdin a daemon holds -----

/// Kills (SIGKILL) the process whose pid is in a file, if any, when dropped.
struct KillPidInFile(PathBuf);

impl Drop for KillPidInFile {
    fn drop(&mut self) {
        if let Some(pid) = read_pid(&self.0) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A python program that first forks a daemon (a session of its own, so out of the
/// worker's process group) that keeps the worker's standard stream `fd` open, sends its
/// other two to /dev/null, writes its pid to the file named by `sys.argv[1]` and sleeps
/// 30 s; the worker then runs `worker`.
fn with_daemon_holding(fd: u8, worker: &str) -> String {
    let others: String = (0..3)
        .filter(|&other| other != fd)
        .map(|other| format!("    os.dup2(null, {other})\n"))
        .collect();
    format!(
        r#"
import os, sys, time
pid_file = sys.argv[1]
if os.fork() == 0:
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
{others}    with open(pid_file + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(pid_file + ".tmp", pid_file)
    time.sleep(30)
    os._exit(0)
{worker}"#
    )
}

/// A runner of the python `worker` beside a daemon that holds its standard stream `fd`
/// (see [`with_daemon_holding`]), with `limits` applied to its spec and spoken to with
/// `protocol`, returned once the daemon has written its pid; the guard kills the daemon.
async fn beside_a_daemon(
    fd: u8,
    worker: &str,
    limits: impl FnOnce(WorkerSpec) -> WorkerSpec,
    protocol: Lines,
) -> (Runner<Lines>, KillPidInFile) {
    let pid_file = temp_path(&format!("hazards-fd{fd}-holder"));
    let _ = std::fs::remove_file(&pid_file);
    let daemon = KillPidInFile(pid_file.clone());
    let script = with_daemon_holding(fd, worker);
    let spec =
        limits(WorkerSpec::new(python()).args(["-S", "-c", &script, pid_file.to_str().unwrap()]));
    let runner = guarded("spawning", Runner::spawn(&spec, protocol))
        .await
        .unwrap();
    eventually("the daemon to start", || read_pid(&pid_file).is_some()).await;
    (runner, daemon)
}

/// A worker whose stdin a daemon holds ([`with_daemon_holding`] 0): it sleeps without
/// ever reading it.
const SLEEPS: &str = "time.sleep(1000)\n";

/// A worker whose stdout a daemon holds ([`with_daemon_holding`] 1): it answers its first
/// line, then exits with status 3 on its second.
const ANSWERS_ONCE_THEN_EXITS: &str = "\
sys.stdout.write(sys.stdin.readline())
sys.stdout.flush()
sys.stdin.readline()
sys.exit(3)
";

/// A worker whose stderr a daemon holds ([`with_daemon_holding`] 2): it echoes lines.
const ECHOES: &str = "\
for line in sys.stdin:
    sys.stdout.write(line)
    sys.stdout.flush()
";

#[tokio::test]
async fn a_request_stuck_writing_to_a_stdin_a_daemon_holds_times_out() {
    let limit = Duration::from_secs(1);
    let (mut runner, daemon) = beside_a_daemon(
        0,
        SLEEPS,
        |spec| spec.request_timeout(limit),
        Lines::with_max_length(2 << 20),
    )
    .await;
    // Far more than a pipe holds: the write cannot finish while nobody reads. Killing the
    // worker at the timeout does not close the pipe either: the daemon holds it.
    let outcome = guarded("a request nobody reads", runner.call("y".repeat(1 << 20))).await;
    match outcome {
        Err(RunnerError::Timeout { after, .. }) => assert_eq!(after, limit),
        other => panic!("expected a timeout, got {other:?}"),
    }
    drop(runner);
    drop(daemon);
}

#[tokio::test]
async fn a_worker_that_exits_while_a_daemon_holds_its_stdout_fails_its_call_at_once() {
    // Longer than the hang guard: only the exit itself can end the call in time.
    let (mut runner, daemon) = beside_a_daemon(
        1,
        ANSWERS_ONCE_THEN_EXITS,
        |spec| spec.request_timeout(Duration::from_secs(3600)),
        Lines::default(),
    )
    .await;
    assert_eq!(
        guarded("a call", runner.call("hello".into()))
            .await
            .unwrap(),
        "hello"
    );
    // The pipe stays open after the exit (the daemon holds it): the reader learns of the
    // exit from the task that reaps the worker, though it has read many times since.
    let outcome = guarded("a call the worker exits on", runner.call("bye".into())).await;
    match outcome {
        Err(RunnerError::Exited { status, .. }) => assert_eq!(status.code(), Some(3)),
        other => panic!("expected the worker's exit, got {other:?}"),
    }
    drop(runner);
    drop(daemon);
}

// ----- 8. A worker that lived long and exited idle could start -----

#[tokio::test]
async fn a_worker_that_exits_idle_after_a_second_does_not_fail_later_creates() {
    // Each worker echoes lines for 1.2 s, then exits.
    let spec = WorkerSpec::new("timeout").args(["1.2", "cat"]);
    let pool = support::pool_of(spec, 1);
    // Lent, never asked, given back, and exits idle: it never answered, but it lived over a
    // second, so it was able to start.
    let pid = guarded("a checkout", pool.pool().get())
        .await
        .unwrap()
        .pid();
    guarded(
        "the idle worker's exit",
        group_gone("the idle worker to exit", pid),
    )
    .await;
    let answer = guarded("the call after it", pool.call("after".into())).await;
    assert_eq!(answer.unwrap(), "after");
    let metrics = pool.metrics();
    assert_eq!(metrics.create_failures, 0, "{metrics:?}");
    assert_eq!(metrics.created, 2, "{metrics:?}");
    pool.shutdown(Duration::from_secs(1)).await;
}

// ----- 9. A create cancelled while its worker gets ready -----

#[tokio::test]
async fn a_create_cancelled_while_the_worker_gets_ready_leaves_nothing_behind() {
    let pid_file = temp_path("hazards-cancelled-create");
    let _ = std::fs::remove_file(&pid_file);
    // Starts a grandchild in its group, writes its pid (its group), then never gets ready.
    let spec = WorkerSpec::new("sh")
        .args([
            "-c",
            r#"sleep 31 & echo $$ > "$1"; sleep 30; echo READY; cat"#,
            "sh",
            pid_file.to_str().unwrap(),
        ])
        .ready_line("READY")
        .startup_timeout(Duration::from_secs(30));
    let pool = SubprocessPool::builder(spec, Lines::default())
        .max_size(1)
        .wait_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let outcome = guarded(
        "a call whose worker never gets ready",
        pool.call("x".into()),
    )
    .await;
    match outcome {
        Err(CallError::Pool(PoolError::Timeout { .. })) => {}
        other => panic!("expected the caller's wait to time out, got {other:?}"),
    }
    // Written within a few ms of the start, long before the 300 ms wait ran out.
    let pid = read_pid(&pid_file).expect("the worker wrote its pid during the wait");
    let _ = std::fs::remove_file(&pid_file);
    group_gone("the cancelled worker's group to be killed", pid).await;
}

// ----- From the second review -----

#[tokio::test]
async fn a_workers_stdout_is_not_inherited_by_the_workers_started_after_it() {
    let mut first = guarded(
        "spawning",
        Runner::spawn(&WorkerSpec::new("cat"), Lines::default()),
    )
    .await
    .unwrap();
    let pipe = std::fs::read_link(format!("/proc/{}/fd/1", first.pid())).unwrap();
    let lister = WorkerSpec::new("sh").args([
        "-c",
        r#"while read l; do for f in /proc/$$/fd/*; do readlink "$f"; done | tr '\n' ' '; echo; done"#,
    ]);
    let mut second = guarded("spawning", Runner::spawn(&lister, Lines::default()))
        .await
        .unwrap();
    let open = guarded("listing", second.call("list".into()))
        .await
        .unwrap();
    let pipe = pipe.to_string_lossy();
    assert!(
        !open.contains(pipe.as_ref()),
        "the second worker holds the first one's stdout {pipe}: {open}"
    );
    assert_eq!(
        guarded("a call", first.call("still mine".into()))
            .await
            .unwrap(),
        "still mine"
    );
    first.shutdown().await;
    second.shutdown().await;
}

/// A worker that answers "a", then 50 ms later writes a log line and a stale line.
const LOG_THEN_STALE: &str = r#"
while IFS= read -r line; do
  echo "$line"
  if [ "$line" = a ]; then sleep 0.05; printf '#log\nstale\n'; fi
done
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_read_while_a_slow_handler_runs_never_answers_the_next_request() {
    let spec = WorkerSpec::new("sh").args(["-c", LOG_THEN_STALE]);
    // The handler holds the reader after it read "#log\nstale" until the test lets it go:
    // the next request is sent meanwhile, finds the pipe empty, and must not get "stale".
    let (started, handler_started) = std::sync::mpsc::channel::<()>();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    let mut runner = guarded(
        "spawning",
        Runner::spawn_with(&spec, LinesWithLogs, move |_, _: &String| {
            let _ = started.send(());
            let _ = released.lock().unwrap().recv_timeout(HANG_GUARD);
            None
        }),
    )
    .await
    .unwrap();
    assert_eq!(guarded("a", runner.call("a".into())).await.unwrap(), "a");
    // The test's body runs on a thread of its own, not on a worker: blocking it is fine.
    handler_started
        .recv_timeout(HANG_GUARD)
        .expect("the handler holds the reader");
    let second = tokio::spawn(async move {
        let outcome = runner.call("b".into()).await;
        (runner, outcome)
    });
    // Long enough for "b" to be sent and echoed; the reader is still held.
    std::thread::sleep(Duration::from_millis(200));
    release.send(()).unwrap();
    let (runner, outcome) = guarded("b", second).await.unwrap();
    match outcome {
        Ok(answer) => assert_ne!(
            answer, "stale",
            "another call's line was taken for the answer"
        ),
        Err(error) => assert!(
            matches!(error, RunnerError::Protocol(ProtocolError::Unasked(_))),
            "{error}"
        ),
    }
    runner.shutdown().await;
}

// ----- The stderr reader stops with its worker -----

/// Whether this process still has a file descriptor on `target` (a `pipe:[inode]`).
fn holds(target: &Path) -> bool {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .any(|link| link == target)
}

#[tokio::test]
async fn the_stderr_reader_stops_with_its_worker_though_a_daemon_holds_the_pipe() {
    let (mut runner, daemon) = beside_a_daemon(2, ECHOES, |spec| spec, Lines::default()).await;
    assert_eq!(
        guarded("a call", runner.call("hello".into()))
            .await
            .unwrap(),
        "hello"
    );
    let stderr_pipe = std::fs::read_link(format!("/proc/{}/fd/2", runner.pid())).unwrap();
    assert!(holds(&stderr_pipe), "the pool reads the worker's stderr");
    guarded("the shutdown", runner.shutdown()).await;
    eventually("the pool to let go of the worker's stderr", || {
        !holds(&stderr_pipe)
    })
    .await;
    drop(daemon);
}
