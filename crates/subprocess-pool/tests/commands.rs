//! One-shot commands against real processes: output, caps, timeouts that kill the whole
//! group, pipes held by grandchildren, spawn errors, bounded concurrency, close and
//! shutdown, cancellation, and nothing left behind.
//!
//! Real time is used only where a real child must run, with generous bounds. Each test
//! that starts processes runs on a runtime of its own inside `shared`, except the one that
//! counts the whole process's zombies and file descriptors, which runs `alone`.

mod support;

use std::future::Future;
use std::path::Path;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use pool_core::{PoolError, TimeoutKind};
use subprocess_pool::{CommandError, CommandOutput, CommandPool, CommandSpec, DEFAULT_MAX_OUTPUT};
use support::{baseline_fds, eventually, group_gone, open_fds, temp_path, zombie_children};

static PROCESSES: RwLock<()> = RwLock::new(());

/// Runs a test that starts processes, on a runtime of its own, beside other such tests.
fn shared(test: impl Future<Output = ()>) {
    let _shared = PROCESSES.read().unwrap_or_else(PoisonError::into_inner);
    runtime().block_on(test);
}

/// Runs a test that counts the whole process's zombies and file descriptors, alone: the
/// lock is taken before the runtime is built, so no other test's runtime or child exists
/// while it counts.
fn alone(test: impl Future<Output = ()>) {
    let _alone = PROCESSES.write().unwrap_or_else(PoisonError::into_inner);
    runtime().block_on(test);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Far more than any command here needs, even on a loaded machine; far less than a hang.
const NO_HANG: Duration = Duration::from_secs(20);

fn sh(script: &str) -> CommandSpec {
    CommandSpec::new("sh").args(["-c", script])
}

fn pool(max_size: usize) -> CommandPool {
    CommandPool::builder().max_size(max_size).build().unwrap()
}

/// Runs `spec`, failing the test rather than hanging.
async fn run(pool: &CommandPool, spec: CommandSpec) -> Result<CommandOutput, CommandError> {
    tokio::time::timeout(NO_HANG, pool.run(spec))
        .await
        .expect("run returned in time")
}

/// Starts `sleep seconds` on `pool` in the background and waits until it holds a slot.
async fn occupy(
    pool: &CommandPool,
    seconds: &str,
) -> tokio::task::JoinHandle<Result<CommandOutput, CommandError>> {
    let running = {
        let pool = pool.clone();
        let spec = CommandSpec::new("sleep").arg(seconds);
        tokio::spawn(async move { run(&pool, spec).await })
    };
    eventually("the command to start", || pool.status().in_use == 1).await;
    running
}

/// The process group id a command printed first on its stdout (`echo $$`).
fn printed_group(stdout: &[u8]) -> Option<u32> {
    std::str::from_utf8(stdout)
        .ok()?
        .lines()
        .next()?
        .parse()
        .ok()
}

/// Waits until a command wrote its pid (its process group id) into `file`.
async fn group_written_to(file: &Path) -> u32 {
    loop {
        if let Some(pgid) = std::fs::read(file).ok().and_then(|b| printed_group(&b)) {
            return pgid;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn the_pool_and_its_run_future_can_be_shared_across_threads() {
    fn send<T: Send>(_: &T) {}
    fn clone_send_sync<T: Clone + Send + Sync>() {}
    clone_send_sync::<CommandPool>();
    let pool = pool(1);
    let run = pool.run(CommandSpec::new("true"));
    send(&run);
}

#[test]
fn a_zero_max_size_is_refused_by_name() {
    let error = CommandPool::builder().max_size(0).build().unwrap_err();
    assert_eq!(error.field(), "max_size");
}

#[test]
fn the_default_pool_runs_as_many_commands_as_cpus() {
    let cpus = std::thread::available_parallelism().unwrap().get();
    let pool = CommandPool::builder().build().unwrap();
    assert_eq!(pool.status().max_size, cpus);
}

#[test]
fn stdin_bytes_go_in_and_stdout_comes_out() {
    shared(async {
        let out = run(
            &pool(2),
            CommandSpec::new("cat").stdin("round trip\n\0bytes"),
        )
        .await
        .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"round trip\n\0bytes");
        assert!(out.stderr.is_empty());
        assert!(!out.stdout_truncated && !out.stderr_truncated);
    });
}

#[test]
fn without_stdin_bytes_stdin_is_closed_at_once() {
    shared(async {
        let out = run(&pool(1), CommandSpec::new("cat")).await.unwrap();
        assert!(out.status.success());
        assert!(out.stdout.is_empty());
    });
}

#[test]
fn arguments_never_pass_through_a_shell() {
    shared(async {
        let spec = CommandSpec::new("printf").args(["%s|", "$HOME; echo injected", "*"]);
        let out = run(&pool(1), spec).await.unwrap();
        assert_eq!(out.stdout, b"$HOME; echo injected|*|");
    });
}

#[test]
fn environment_and_working_directory_are_applied() {
    shared(async {
        let pool = pool(1);
        let spec = sh("echo \"$GREETING ${HOME:-no home}\"; pwd")
            .env("GREETING", "hello")
            .env_remove("HOME")
            .current_dir("/");
        let out = run(&pool, spec).await.unwrap();
        assert_eq!(out.stdout, b"hello no home\n/\n");

        let spec = CommandSpec::new("/usr/bin/env")
            .env_clear()
            .env("ONLY", "this");
        let out = run(&pool, spec).await.unwrap();
        assert_eq!(out.stdout, b"ONLY=this\n");
    });
}

#[test]
fn a_non_zero_exit_is_an_output_not_an_error() {
    shared(async {
        let out = run(&pool(1), sh("echo out; echo oops >&2; exit 7"))
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(7));
        assert!(!out.status.success());
        assert_eq!(
            (out.stdout.as_slice(), out.stderr.as_slice()),
            (&b"out\n"[..], &b"oops\n"[..])
        );
    });
}

#[test]
fn stdout_over_the_cap_is_cut_and_flagged() {
    shared(async {
        let spec = sh("head -c 100000 /dev/zero; echo short >&2").max_output(4096);
        let out = run(&pool(1), spec).await.unwrap();
        assert!(out.status.success());
        assert_eq!((out.stdout.len(), out.stdout_truncated), (4096, true));
        assert_eq!(
            (out.stderr.as_slice(), out.stderr_truncated),
            (&b"short\n"[..], false)
        );
    });
}

#[test]
fn stderr_over_the_cap_is_cut_and_flagged() {
    shared(async {
        let spec = sh("echo short; head -c 100000 /dev/zero >&2").max_output(4096);
        let out = run(&pool(1), spec).await.unwrap();
        assert_eq!(
            (out.stdout.as_slice(), out.stdout_truncated),
            (&b"short\n"[..], false)
        );
        assert_eq!((out.stderr.len(), out.stderr_truncated), (4096, true));
    });
}

#[test]
fn output_exactly_at_the_cap_is_not_flagged_and_the_default_cap_is_one_mebibyte() {
    shared(async {
        let pool = pool(1);
        let out = run(&pool, sh("printf 12345678").max_output(8))
            .await
            .unwrap();
        assert_eq!(
            (out.stdout.as_slice(), out.stdout_truncated),
            (&b"12345678"[..], false)
        );

        assert_eq!(DEFAULT_MAX_OUTPUT, 1 << 20);
        let out = run(&pool, sh("head -c 2000000 /dev/zero")).await.unwrap();
        assert_eq!((out.stdout.len(), out.stdout_truncated), (1 << 20, true));
    });
}

#[test]
fn ten_megabytes_on_stderr_while_stdin_is_written_does_not_deadlock() {
    shared(async {
        // The command writes all of stderr before it reads a byte of its 1 MiB of stdin: both
        // pipes fill unless we read stderr while we write stdin.
        let spec = sh("head -c 10485760 /dev/zero >&2; cat").stdin(vec![b'x'; 1 << 20]);
        let out = run(&pool(1), spec).await.unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), 1 << 20);
        assert_eq!(
            (out.stderr.len(), out.stderr_truncated),
            (DEFAULT_MAX_OUTPUT, true)
        );
    });
}

#[test]
fn a_timeout_kills_the_whole_group_and_is_an_error_with_the_output_so_far() {
    shared(async {
        let pool = pool(1);
        // 200 ms is the timeout under test; should a loaded machine not even start the shell
        // and print its pid by then, try again with more time.
        let mut group = None;
        for limit in [200, 1_000, 5_000].map(Duration::from_millis) {
            let started = Instant::now();
            let error = run(&pool, sh("echo $$; sleep 30 & sleep 30").timeout(limit))
                .await
                .unwrap_err();
            assert!(
                started.elapsed() < limit + Duration::from_secs(5),
                "{:?}",
                started.elapsed()
            );
            let message = error.to_string();
            assert!(
                message.contains("timeout") && message.contains("sh"),
                "{message}"
            );
            let CommandError::Timeout { after, stdout, .. } = error else {
                panic!("expected a timeout, got {error}");
            };
            assert_eq!(after, limit);
            group = printed_group(&stdout);
            if group.is_some() {
                break;
            }
        }
        let group = group.expect("the shell printed its pid before its timeout");
        group_gone("the command's whole group to be gone", group).await;
        assert_eq!(pool.status().in_use, 0);
    });
}

#[test]
fn a_grandchild_holding_the_pipes_cannot_hang_a_run_and_is_killed() {
    shared(async {
        // The shell exits at once; the background sleep keeps its stdout and stderr open.
        let out = run(&pool(1), sh("echo $$; sleep 30 &")).await.unwrap();
        assert!(out.status.success());
        let group = printed_group(&out.stdout).expect("the shell printed its pid");
        assert_eq!(out.stdout, format!("{group}\n").as_bytes());
        group_gone("the grandchild to be killed", group).await;
    });
}

#[test]
fn output_a_background_job_writes_as_the_command_exits_is_kept() {
    shared(async {
        // The job's pipes stay open a moment after the shell exits: that moment is read.
        let out = run(&pool(1), sh("echo late & echo early")).await.unwrap();
        let mut lines: Vec<_> = out.stdout.split(|&b| b == b'\n').collect();
        lines.sort();
        assert_eq!(lines, [&b""[..], b"early", b"late"]);
    });
}

#[test]
fn a_missing_program_is_a_spawn_error_naming_it() {
    shared(async {
        let error = run(&pool(1), CommandSpec::new("/no/such/tool"))
            .await
            .unwrap_err();
        assert!(matches!(error, CommandError::Spawn(_)), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains("/no/such/tool") && message.contains("not found"),
            "{message}"
        );

        let error = run(&pool(1), CommandSpec::new("no-such-tool-on-path"))
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("no-such-tool-on-path"),
            "{error}"
        );
    });
}

#[test]
fn a_non_executable_file_is_a_spawn_error_naming_it() {
    shared(async {
        let file = temp_path("not-executable");
        std::fs::write(&file, "#!/bin/sh\necho should not run\n").unwrap();
        let error = run(&pool(1), CommandSpec::new(&file)).await.unwrap_err();
        std::fs::remove_file(&file).unwrap();
        assert!(matches!(error, CommandError::Spawn(_)), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains(&file.display().to_string()) && message.contains("not executable"),
            "{message}"
        );
    });
}

#[test]
fn a_bad_working_directory_is_a_spawn_error_naming_it() {
    shared(async {
        let error = run(
            &pool(1),
            CommandSpec::new("true").current_dir("/no/such/dir"),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, CommandError::Spawn(_)), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains("/no/such/dir") && message.contains("directory"),
            "{message}"
        );
    });
}

#[test]
fn at_most_max_size_commands_run_at_once_and_the_rest_wait() {
    shared(async {
        let pool = pool(2);
        let runs: Vec<_> = (0..4)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { run(&pool, CommandSpec::new("sleep").arg("0.3")).await })
            })
            .collect();
        let mut most_in_use = 0;
        let mut saw_two_waiting = false;
        while !runs.iter().all(|run| run.is_finished()) {
            let status = pool.status();
            most_in_use = most_in_use.max(status.in_use);
            saw_two_waiting |= status.in_use == 2 && status.waiting == 2;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for run in runs {
            assert!(run.await.unwrap().unwrap().status.success());
        }
        assert!(most_in_use <= 2, "{most_in_use} commands ran at once");
        assert!(saw_two_waiting, "never saw two running and two waiting");
        let status = pool.status();
        assert_eq!((status.in_use, status.waiting), (0, 0));
        assert!(pool.metrics().waits >= 2, "{:?}", pool.metrics());
    });
}

#[test]
fn a_full_pool_refuses_past_max_waiting_and_times_out_waiters() {
    shared(async {
        let pool = CommandPool::builder()
            .max_size(1)
            .max_waiting(0)
            .build()
            .unwrap();
        let busy = occupy(&pool, "0.5").await;
        let error = run(&pool, CommandSpec::new("true")).await.unwrap_err();
        assert!(
            matches!(error, CommandError::Pool(PoolError::Exhausted)),
            "{error}"
        );
        assert!(error.to_string().contains("no slot"), "{error}");
        busy.await.unwrap().unwrap();

        let pool = CommandPool::builder()
            .max_size(1)
            .wait_timeout(Duration::from_millis(50))
            .build()
            .unwrap();
        let busy = occupy(&pool, "0.5").await;
        let error = run(&pool, CommandSpec::new("true")).await.unwrap_err();
        assert!(
            matches!(
                error,
                CommandError::Pool(PoolError::Timeout {
                    kind: TimeoutKind::Wait,
                    ..
                })
            ),
            "{error}"
        );
        busy.await.unwrap().unwrap();
    });
}

#[test]
fn a_closed_pool_refuses_new_runs() {
    shared(async {
        let pool = pool(2);
        assert!(
            run(&pool, CommandSpec::new("true"))
                .await
                .unwrap()
                .status
                .success()
        );
        pool.close();
        assert!(pool.is_closed());
        let error = run(&pool, CommandSpec::new("true")).await.unwrap_err();
        assert!(
            matches!(error, CommandError::Pool(PoolError::Closed)),
            "{error}"
        );
        let report = support::report(&error);
        assert!(report.contains("closed"), "{report}");
    });
}

#[test]
fn shutdown_waits_for_running_commands() {
    shared(async {
        let pool = pool(2);
        let running = occupy(&pool, "0.3").await;
        let report = pool.shutdown(NO_HANG).await;
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(pool.status().in_use, 0);
        assert!(running.await.unwrap().unwrap().status.success());
        let error = run(&pool, CommandSpec::new("true")).await.unwrap_err();
        assert!(
            matches!(error, CommandError::Pool(PoolError::Closed)),
            "{error}"
        );
    });
}

#[test]
fn a_dropped_run_kills_its_command_group() {
    shared(async {
        let pool = pool(1);
        let file = temp_path("dropped-run");
        let _ = std::fs::remove_file(&file);
        let script = format!("echo $$ > {}; sleep 30 & sleep 30", file.display());
        let group = tokio::select! {
            result = run(&pool, sh(&script)) => panic!("the command ended: {result:?}"),
            group = group_written_to(&file) => group,
        };
        // The run future is dropped here, with its command still running.
        std::fs::remove_file(&file).unwrap();
        assert_eq!(pool.status().in_use, 0);
        group_gone("the command's group to be gone", group).await;
    });
}

#[test]
fn a_batch_of_runs_leaves_no_zombie_and_no_file_descriptor() {
    alone(async {
        let fds_before = baseline_fds().await;
        let pool = pool(4);
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    for i in 0..5 {
                        let out = run(&pool, CommandSpec::new("cat").stdin(format!("{task}-{i}")))
                            .await
                            .unwrap();
                        assert_eq!(out.stdout, format!("{task}-{i}").as_bytes());
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        // Every way a run can end: cut output, a timeout, a grandchild holding the pipes, a
        // spawn error, and a dropped run.
        let cut = run(&pool, sh("head -c 100000 /dev/zero").max_output(10))
            .await
            .unwrap();
        assert!(cut.stdout_truncated);
        let timed_out = run(&pool, sh("sleep 30").timeout(Duration::from_millis(100))).await;
        assert!(
            matches!(timed_out, Err(CommandError::Timeout { .. })),
            "{timed_out:?}"
        );
        run(&pool, sh("sleep 30 &")).await.unwrap();
        run(&pool, CommandSpec::new("/no/such/tool"))
            .await
            .unwrap_err();
        let dropped =
            tokio::time::timeout(Duration::from_millis(200), pool.run(sh("sleep 30"))).await;
        assert!(dropped.is_err());

        assert!(pool.shutdown(NO_HANG).await.is_clean());
        eventually("no zombie children", || zombie_children().is_empty()).await;
        eventually("file descriptors back to where they were", || {
            open_fds() <= fds_before
        })
        .await;
    });
}
