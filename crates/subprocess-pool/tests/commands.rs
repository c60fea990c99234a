//! One-shot commands against real processes: output, caps, timeouts that kill the whole
//! group, spawn errors, bounded concurrency, and nothing left behind.

mod support;

use std::time::{Duration, Instant};

use pool_core::PoolError;
use subprocess_pool::{CommandError, CommandPool, CommandSpec};
use support::{eventually, group_members, zombie_children};

fn sh(script: &str) -> CommandSpec {
    CommandSpec::new("sh").args(["-c", script])
}

fn pool(max_size: usize) -> CommandPool {
    CommandPool::builder().max_size(max_size).build().unwrap()
}

#[tokio::test]
async fn stdin_bytes_go_in_and_stdout_comes_out() {
    let out = pool(2)
        .run(CommandSpec::new("cat").stdin("round trip"))
        .await
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"round trip");
    assert!(!out.stdout_truncated && !out.stderr_truncated);
}

#[tokio::test]
async fn a_non_zero_exit_is_an_output_not_an_error() {
    let out = pool(1).run(sh("echo oops >&2; exit 7")).await.unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(out.stderr, b"oops\n");
}

#[tokio::test]
async fn output_over_the_cap_is_cut_and_flagged_on_each_stream() {
    let spec = sh("head -c 100000 /dev/zero; head -c 5000 /dev/zero >&2").max_output(4096);
    let out = pool(1).run(spec).await.unwrap();
    assert_eq!((out.stdout.len(), out.stdout_truncated), (4096, true));
    assert_eq!((out.stderr.len(), out.stderr_truncated), (4096, true));
}

#[tokio::test]
async fn ten_megabytes_on_stderr_while_stdin_is_written_does_not_deadlock() {
    let spec = sh("head -c 10485760 /dev/zero >&2; cat").stdin(vec![b'x'; 1 << 20]);
    let out = tokio::time::timeout(Duration::from_secs(30), pool(1).run(spec))
        .await
        .expect("no deadlock")
        .unwrap();
    assert_eq!(out.stdout.len(), 1 << 20);
    assert!(out.stderr_truncated);
}

/// A file where a command writes its shell's pid, which is also its process group id.
fn pid_file(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{name}-{}", std::process::id()))
}

fn group_of(file: &std::path::Path) -> u32 {
    std::fs::read_to_string(file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_timeout_kills_the_whole_group_and_is_an_error() {
    let file = pid_file("timeout-group");
    let started = Instant::now();
    let script = format!("echo $$ > {}; sleep 30 & sleep 30", file.display());
    let error = pool(1)
        .run(sh(&script).timeout(Duration::from_secs(1)))
        .await
        .unwrap_err();
    assert!(matches!(error, CommandError::TimedOut { .. }), "{error}");
    assert!(error.to_string().contains("timeout"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let group = group_of(&file);
    eventually("the command's group to be gone", || {
        group_members(group).is_empty()
    })
    .await;
    eventually("no zombie children", || zombie_children().is_empty()).await;
    std::fs::remove_file(file).unwrap();
}

#[tokio::test]
async fn a_grandchild_holding_the_pipes_cannot_hang_a_run() {
    let started = Instant::now();
    let out = pool(1)
        .run(sh("echo parent; sleep 30 & echo $! > /dev/null"))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"parent\n");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_dropped_run_kills_its_command_group() {
    let pool = pool(1);
    let file = pid_file("dropped-run-group");
    let script = format!("echo $$ > {}; sleep 30 & sleep 30", file.display());
    let run = pool.run(sh(&script));
    assert!(
        tokio::time::timeout(Duration::from_secs(1), run)
            .await
            .is_err()
    );
    eventually("the slot to be free", || pool.status().in_use == 0).await;
    let group = group_of(&file);
    eventually("the command's group to be gone", || {
        group_members(group).is_empty()
    })
    .await;
    std::fs::remove_file(file).unwrap();
}

#[tokio::test]
async fn missing_program_non_executable_file_and_bad_directory_are_named() {
    let pool = pool(1);
    let message = pool
        .run(CommandSpec::new("/no/such/tool"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("/no/such/tool") && message.contains("not found"),
        "{message}"
    );

    let file = std::env::temp_dir().join(format!("not-executable-cmd-{}", std::process::id()));
    std::fs::write(&file, "#!/bin/sh\n").unwrap();
    let message = pool
        .run(CommandSpec::new(&file))
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("not executable"), "{message}");
    std::fs::remove_file(&file).unwrap();

    let message = pool
        .run(CommandSpec::new("true").current_dir("/no/such/dir"))
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("/no/such/dir"), "{message}");
}

#[tokio::test]
async fn at_most_max_size_commands_run_at_once() {
    let pool = pool(2);
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(CommandSpec::new("sleep").arg("0.3")).await })
        })
        .collect();
    eventually("two running and two waiting", || {
        let status = pool.status();
        status.in_use == 2 && status.waiting == 2
    })
    .await;
    for run in runs {
        assert!(run.await.unwrap().unwrap().status.success());
    }
    assert!(pool.status().in_use == 0);
}

#[tokio::test]
async fn a_closed_pool_refuses_new_runs_and_shutdown_waits_for_running_ones() {
    let pool = pool(2);
    let running = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.run(CommandSpec::new("sleep").arg("0.2")).await })
    };
    eventually("the command to start", || pool.status().in_use == 1).await;
    let report = pool.shutdown(Duration::from_secs(5)).await;
    assert!(report.is_clean(), "{report:?}");
    assert!(running.await.unwrap().unwrap().status.success());
    let error = pool.run(CommandSpec::new("true")).await.unwrap_err();
    assert!(
        matches!(error, CommandError::Pool(PoolError::Closed)),
        "{error}"
    );
}
