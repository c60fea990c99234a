//! Every caller gets its own request's answer or an error, never another call's answer:
//! against workers that answer one request twice (in the same write, or a moment later
//! while idle), real line tools whose answers span several lines (`aspell -a` under
//! `Delimited::blank_line`, a marker-terminated `sh` worker), and a REPL that greets with a
//! banner and a prompt (`Delimited::prompt` with and without `skip_greeting`).
//!
//! `aspell` (with its English dictionary) is a Debian package: without it the aspell test
//! says it is skipped, unless `SUBPROCESS_POOL_REQUIRE_TOOLS=1` (as in CI), which makes it
//! fail.

mod support;

use std::fmt::Debug;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use subprocess_pool::protocol::{Delimited, Lines};
use subprocess_pool::{ProtocolError, Runner, RunnerError, SubprocessPool, WorkerSpec};
use support::{HANG_GUARD, eventually, guarded, python_worker, worker_error};

/// How to get the line tools these tests run.
const INSTALL_TOOLS: &str = "apt-get install aspell aspell-en";

/// The message of an "output nobody asked for" error; panics on any other outcome.
fn unasked<T: Debug>(result: Result<T, RunnerError>) -> String {
    match result {
        Err(RunnerError::Protocol(ProtocolError::Unasked(message))) => message,
        other => panic!("expected output nobody asked for (Unasked), got {other:?}"),
    }
}

/// Whether some idle worker of `pool` is known (to the task reading its stdout) to be
/// unusable. Looks without checking one out, which would recycle (and destroy) it.
fn some_idle_worker_faulted<P: subprocess_pool::Protocol>(pool: &SubprocessPool<P>) -> bool {
    let mut faulted = false;
    pool.pool().retain(|runner, _| {
        faulted |= runner.is_poisoned();
        true
    });
    faulted
}

// ----- 1. Never another call's answer -----

/// `stray_answers.py` answers request `N` twice when `N % MODULUS` is `TWICE` (one write)
/// or `LATE` (a second write 5 ms later): 2 requests in 100 misbehave.
const MODULUS: u64 = 100;
const TWICE: u64 = 17;
const LATE: u64 = 67;

/// How a request to `stray_answers.py` went.
#[derive(Debug, Default)]
struct Tally {
    answered: u64,
    twice_failed: u64,
    late_answered: u64,
    late_failed: u64,
}

/// Calls for requests `first`, `first + step`, ... below `end`, checking each outcome.
///
/// A request answered twice in one write must fail its own call (the bytes after its
/// answer cannot be told from the answer to a later request). A request answered again
/// 5 ms later is sent on a worker held out of the pool (`pool.pool().get()`, as a caller
/// holding a worker across several calls does), so the late copy arrives while nothing is
/// outstanding on that worker: no pipe reader could tell it from the next request's answer
/// if that request were already sent (see `protocol`'s "Which answer belongs to which
/// request"). The holder waits until the worker is known to be faulted, then its next
/// call must be refused, not answered with the late copy.
async fn drive(pool: SubprocessPool<Lines>, first: u64, end: u64, step: u64) -> Tally {
    let mut tally = Tally::default();
    for n in (first..end).step_by(step as usize) {
        let request = n.to_string();
        match n % MODULUS {
            TWICE => {
                let error =
                    worker_error(guarded("a call answered twice", pool.call(request)).await);
                let message = unasked::<()>(Err(error));
                assert!(
                    message.contains("right after its response to this request"),
                    "request {n}: {message}"
                );
                tally.twice_failed += 1;
            }
            LATE => {
                let mut runner = guarded("a checkout", pool.pool().get()).await.unwrap();
                let answer = guarded("a call answered late", runner.call(request)).await;
                // Normally the answer is read alone; on a machine too busy to read it
                // within 5 ms, both copies arrive together and this call fails instead.
                let answered = match answer {
                    Ok(answer) => {
                        assert_eq!(answer, n.to_string(), "request {n} got another answer");
                        true
                    }
                    Err(error) => {
                        let message = unasked::<String>(Err(error));
                        assert!(message.contains(&n.to_string()), "{message}");
                        false
                    }
                };
                guarded("the late copy to be noticed", async {
                    while !runner.is_poisoned() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                })
                .await;
                let next = runner.call(format!("{}", n + 1)).await;
                if answered {
                    let message = unasked(next);
                    assert!(
                        message.contains("while no request was outstanding"),
                        "{message}"
                    );
                    tally.late_answered += 1;
                } else {
                    assert!(matches!(next, Err(RunnerError::Poisoned)), "{next:?}");
                    tally.late_failed += 1;
                }
                // Back to the pool, which destroys it (it is poisoned).
            }
            _ => {
                let answer = guarded("a call", pool.call(request)).await;
                match answer {
                    Ok(answer) => assert_eq!(answer, n.to_string(), "request {n}"),
                    Err(error) => panic!("request {n} to a well-behaved worker failed: {error}"),
                }
                tally.answered += 1;
            }
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_call_ever_gets_another_calls_answer_from_workers_that_answer_twice() {
    const CALLS: u64 = 3000;
    const TASKS: u64 = 32;
    let spec = python_worker("stray_answers.py")
        .args([MODULUS, TWICE, LATE].map(|n| n.to_string()))
        .request_timeout(HANG_GUARD);
    let pool = SubprocessPool::builder(spec, Lines::default())
        .max_size(4)
        .build()
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        tasks.spawn(drive(pool.clone(), task, CALLS, TASKS));
    }
    let mut total = Tally::default();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(done) = tasks.join_next().await {
            let tally = done.unwrap();
            total.answered += tally.answered;
            total.twice_failed += tally.twice_failed;
            total.late_answered += tally.late_answered;
            total.late_failed += tally.late_failed;
        }
    })
    .await
    .expect("3000 calls finish within 60 s (a hang guard)");

    let twice = (0..CALLS).filter(|n| n % MODULUS == TWICE).count() as u64;
    let late = (0..CALLS).filter(|n| n % MODULUS == LATE).count() as u64;
    assert_eq!(total.answered, CALLS - twice - late, "{total:?}");
    assert_eq!(total.twice_failed, twice, "{total:?}");
    assert_eq!(total.late_answered + total.late_failed, late, "{total:?}");
    // Every worker that misbehaved was replaced; none was lent again.
    let metrics = pool.metrics();
    assert!(metrics.created > 4, "{metrics:?}");
    assert!(metrics.created > twice + late, "{metrics:?}");
    assert_eq!(metrics.create_failures, 0, "{metrics:?}");
    pool.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        pool.worker_metrics().faulted,
        twice + late,
        "{:?}",
        pool.worker_metrics()
    );
}

// ----- 2. A real Debian line tool: `aspell -a` under `Delimited::blank_line` -----

/// Whether `aspell` and its English dictionary are installed; if not, fails when
/// `SUBPROCESS_POOL_REQUIRE_TOOLS=1`, else says the test is skipped.
fn aspell_installed() -> bool {
    let dicts = std::process::Command::new("aspell")
        .args(["dump", "dicts"])
        .output();
    let found = match &dicts {
        Ok(output) => String::from_utf8_lossy(&output.stdout)
            .lines()
            .any(|dict| dict == "en"),
        Err(_) => false,
    };
    if found {
        return true;
    }
    let required = std::env::var("SUBPROCESS_POOL_REQUIRE_TOOLS").is_ok_and(|value| value == "1");
    assert!(
        !required,
        "aspell with an English dictionary not found ({dicts:?}) and \
         SUBPROCESS_POOL_REQUIRE_TOOLS=1 requires it: {INSTALL_TOOLS}"
    );
    // Past the test harness's capture of `eprintln!`, so a skip shows in every run.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: aspell with an English dictionary is not installed (to install it, \
         {INSTALL_TOOLS})"
    );
    false
}

#[tokio::test]
async fn aspell_answers_each_line_with_a_line_per_word_then_a_blank_line() {
    if !aspell_installed() {
        return;
    }
    let spec = WorkerSpec::new("aspell")
        .args(["-a", "--lang=en"])
        .ready_line_starting_with("@(#)")
        .request_timeout(HANG_GUARD);
    let pool = SubprocessPool::builder(spec, Delimited::blank_line())
        .max_size(2)
        .build()
        .unwrap();
    let answer = guarded("aspell", pool.call("hello world".into())).await;
    assert_eq!(answer.unwrap(), "*\n*");
    let helo = guarded("aspell", pool.call("helo".into())).await.unwrap();
    assert!(helo.starts_with("& helo "), "{helo:?}");
    assert!(!helo.contains('\n'), "one line for one word: {helo:?}");
    let suggestions = helo.split_once(": ").expect("a list of suggestions").1;
    assert!(
        suggestions.split(", ").any(|word| word == "hello"),
        "{helo:?}"
    );
    let mixed = guarded("aspell", pool.call("good wrld".into()))
        .await
        .unwrap();
    let lines: Vec<&str> = mixed.lines().collect();
    assert_eq!(lines.len(), 2, "{mixed:?}");
    assert_eq!(lines[0], "*");
    assert!(lines[1].starts_with("& wrld "), "{mixed:?}");
    assert!(lines[1].contains("world"), "{mixed:?}");

    // 50 calls from 5 tasks at once: every answer its own, on at most 2 workers.
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..5 {
        let pool = pool.clone();
        tasks.spawn(async move {
            for i in 0..10 {
                // `task + i` correct words, then one misspelled word naming the call.
                let words = vec!["the"; task + i];
                let misspelled = format!("zzq{}x", ["a", "b", "c", "d", "e"][task]);
                let request = format!("{} {misspelled}", words.join(" "));
                let answer = pool.call(request.clone()).await.unwrap();
                let lines: Vec<&str> = answer.lines().collect();
                assert_eq!(lines.len(), task + i + 1, "{request:?} -> {answer:?}");
                assert!(
                    lines[..task + i].iter().all(|line| *line == "*"),
                    "{answer:?}"
                );
                let last = lines[task + i];
                assert!(
                    last.starts_with(&format!("& {misspelled} ")) || last.starts_with("# "),
                    "{request:?} -> {answer:?}"
                );
                assert!(last.contains(&misspelled), "{request:?} -> {answer:?}");
            }
        });
    }
    support::join_all("50 aspell calls", tasks).await;
    let metrics = pool.metrics();
    assert!(metrics.created <= 2, "{metrics:?}");
    assert_eq!(metrics.create_failures, 0, "{metrics:?}");
    assert_eq!(pool.worker_metrics().faulted, 0);
    pool.shutdown(Duration::from_secs(1)).await;
}

// ----- 3. Answers ending with a marker line -----

/// A `sh` worker answering each line with three lines then `END` (one of them merely
/// containing the marker); `die` writes two lines of an answer and exits 3.
const MARKER_WORKER: &str = r#"
while IFS= read -r line; do
  case "$line" in
    die) printf 'partial one\npartial two\n'; exit 3 ;;
    *) echo "got: $line"; echo "THE END"; echo "${#line} chars"; echo END ;;
  esac
done
"#;

fn marker_pool() -> SubprocessPool<Delimited> {
    let spec = WorkerSpec::new("sh")
        .args(["-c", MARKER_WORKER])
        .request_timeout(HANG_GUARD);
    SubprocessPool::builder(spec, Delimited::line("END"))
        .max_size(1)
        .build()
        .unwrap()
}

#[tokio::test]
async fn answers_of_several_lines_end_at_the_marker_line() {
    let pool = marker_pool();
    for request in ["hello", "END", "the END of it", ""] {
        let answer = guarded("a call", pool.call(request.to_string())).await;
        assert_eq!(
            answer.unwrap(),
            format!("got: {request}\nTHE END\n{} chars", request.len())
        );
    }
    assert_eq!(pool.metrics().created, 1);
    pool.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_worker_exiting_before_its_marker_reports_the_unfinished_answer() {
    let pool = marker_pool();
    let answer = guarded("a call", pool.call("first".into())).await;
    assert_eq!(answer.unwrap(), "got: first\nTHE END\n5 chars");
    let error = worker_error(guarded("a call", pool.call("die".into())).await);
    let message = error.to_string();
    let RunnerError::Exited { status, output, .. } = &error else {
        panic!("expected the worker's exit, got {message}");
    };
    assert_eq!(status.code(), Some(3), "{message}");
    assert_eq!(output, "partial one\npartial two\n", "{message}");
    assert!(message.contains("with status 3"), "{message}");
    assert!(message.contains("so far"), "{message}");
    assert!(message.contains("partial one"), "{message}");
    // The next call gets its own answer from a fresh worker.
    let answer = guarded("a call", pool.call("after".into())).await;
    assert_eq!(answer.unwrap(), "got: after\nTHE END\n5 chars");
    assert_eq!(pool.metrics().created, 2);
    pool.shutdown(Duration::from_secs(1)).await;
}

// ----- 4. A REPL: a banner, then a prompt after every answer -----

fn repl() -> WorkerSpec {
    python_worker("tiny_repl.py").request_timeout(HANG_GUARD)
}

const BANNER: &str = "Tiny REPL 1.0";

#[tokio::test]
async fn a_repl_greeting_is_skipped_and_its_prompt_ends_each_answer() {
    // `Delimited::prompt` expects the greeting: no `skip_greeting` needed.
    let pool = SubprocessPool::builder(repl(), Delimited::prompt(">>> "))
        .max_size(1)
        .build()
        .unwrap();
    let cases = [
        ("add 2 3", "5"),
        ("count 3", "1\n2\n3"),
        ("a >>> b", "a >>> b"),
        (">>>x", ">>>x"),
        ("", ""),
        ("add 40 2", "42"),
    ];
    for (request, expected) in cases {
        let answer = guarded("a REPL call", pool.call(request.to_string())).await;
        assert_eq!(answer.unwrap(), expected, "{request:?}");
    }
    let metrics = pool.metrics();
    assert_eq!(metrics.created, 1, "{metrics:?}");
    assert_eq!(pool.worker_metrics().faulted, 0);
    pool.shutdown(Duration::from_secs(1)).await;

    // A ready line ending at the banner, with the greeting skipped: the prompt after it
    // is the greeting.
    let pool = SubprocessPool::builder(
        repl().ready_line_starting_with(BANNER).skip_greeting(),
        Delimited::prompt(">>> "),
    )
    .max_size(1)
    .build()
    .unwrap();
    let answer = guarded("a REPL call", pool.call("add 1 1".into())).await;
    assert_eq!(answer.unwrap(), "2");
    pool.shutdown(Duration::from_secs(1)).await;
}

/// A `sh` worker speaking lines that prints a banner line before its first request.
const BANNER_WORKER: &str = r#"echo "Banner 1.0"; while IFS= read -r line; do echo "$line"; done"#;

#[tokio::test]
async fn a_banner_not_skipped_is_output_nobody_asked_for() {
    // Read while no request is outstanding, the banner is an answer nobody asked for: the
    // worker is faulted before its first call, which is refused.
    let spec = WorkerSpec::new("sh").args(["-c", BANNER_WORKER]);
    let mut runner = guarded("spawning", Runner::spawn(&spec, Lines::default()))
        .await
        .unwrap();
    eventually("the banner to be read", || runner.is_poisoned()).await;
    let message = unasked(guarded("a call", runner.call("hello".into())).await);
    assert!(
        message.contains("while no request was outstanding"),
        "{message}"
    );
    assert!(
        message.contains("Banner 1.0"),
        "quotes the banner: {message}"
    );
    assert!(matches!(
        runner.call("hello".into()).await,
        Err(RunnerError::Poisoned)
    ));
    runner.shutdown().await;

    // Skipped as a greeting, it is read during the start and every answer is right.
    let pool = support::pool_of(spec.skip_greeting(), 1);
    for request in ["first", "second", "third"] {
        let answer = guarded("a call", pool.call(request.into())).await;
        assert_eq!(answer.unwrap(), request);
    }
    pool.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_repl_prompting_right_after_its_ready_line_greets_through_the_prompt() {
    // The ready line ends at the banner; the prompt written with it is the greeting.
    let pool = SubprocessPool::builder(
        repl().ready_line_starting_with(BANNER),
        Delimited::prompt(">>> "),
    )
    .max_size(1)
    .build()
    .unwrap();
    let answer = guarded("a call", pool.call("add 2 3".into())).await;
    assert_eq!(answer.unwrap(), "5");
    pool.shutdown(Duration::from_secs(1)).await;
}

/// A REPL called at once, many times: its greeting is read while it starts, so the first
/// request's answer is never the banner, and no answer is the one before it.
#[tokio::test]
async fn through_the_pool_a_repl_greeting_never_becomes_an_answer() {
    let pool = SubprocessPool::builder(repl(), Delimited::prompt(">>> "))
        .max_size(1)
        .build()
        .unwrap();
    for i in 0..5 {
        let answer = guarded("a REPL call", pool.call(format!("add {i} 100"))).await;
        assert_eq!(answer.unwrap(), (i + 100).to_string());
    }
    assert_eq!(pool.metrics().created, 1);
    pool.shutdown(Duration::from_secs(1)).await;
}

// ----- 5. A line landing a moment after the answer -----

/// A `sh` worker speaking lines: echoes each line, except `late FILE`: answers "late",
/// 20 ms later writes "extra", then creates FILE.
const LATE_WORKER: &str = r#"
while IFS= read -r line; do
  case "$line" in
    "late "*) echo late; sleep 0.02; echo extra; touch "${line#late }" ;;
    *) echo "$line" ;;
  esac
done
"#;

#[tokio::test]
async fn a_line_written_after_the_answer_is_caught_before_the_next_caller() {
    let spec = WorkerSpec::new("sh")
        .args(["-c", LATE_WORKER])
        .request_timeout(HANG_GUARD);
    let pool = support::pool_of(spec, 1);
    let marker: PathBuf = support::temp_path("answers-late");
    let _ = std::fs::remove_file(&marker);
    let answer = guarded("a call", pool.call("first".into())).await;
    assert_eq!(answer.unwrap(), "first");

    let late = guarded(
        "the late call",
        pool.call(format!("late {}", marker.display())),
    )
    .await;
    eventually("the worker's extra line", || marker.exists()).await;
    let _ = std::fs::remove_file(&marker);
    let answered = match late {
        Ok(answer) => {
            assert_eq!(answer, "late");
            true
        }
        // Only on a machine too busy to read "late" within 20 ms do both lines arrive
        // together, which fails that call instead.
        Err(error) => {
            let message = unasked::<String>(Err(worker_error::<String>(Err(error))));
            assert!(message.contains("extra"), "{message}");
            false
        }
    };
    if answered {
        // The idle worker's reader sees "extra" arrive with nothing outstanding.
        eventually("the idle worker to be found faulted", || {
            some_idle_worker_faulted(&pool)
        })
        .await;
    }

    // The next caller gets its own answer, from a fresh worker, and no error.
    let answer = guarded("the next call", pool.call("next".into())).await;
    assert_eq!(answer.unwrap(), "next");
    let answer = guarded("a call", pool.call("and another".into())).await;
    assert_eq!(answer.unwrap(), "and another");
    let metrics = pool.metrics();
    assert_eq!(metrics.created, 2, "{metrics:?}");
    if answered {
        assert_eq!(metrics.destroyed_by.recycle_failed, 1, "{metrics:?}");
    } else {
        assert_eq!(metrics.destroyed_by.broken, 1, "{metrics:?}");
    }
    pool.shutdown(Duration::from_secs(1)).await;
    assert_eq!(pool.worker_metrics().faulted, 1);
}
