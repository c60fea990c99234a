//! Helpers shared by the integration tests: what /proc says about processes we started.
#![allow(dead_code)]

#[path = "../../../pool-core/tests/support/chain.rs"]
mod chain;
#[allow(unused_imports)]
pub(crate) use chain::{chain, chain_said_once, report};

use std::fmt::Debug;
use std::fs;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use subprocess_pool::protocol::Lines;
use subprocess_pool::{CallError, RunnerError, SubprocessPool, WorkerSpec};

/// A bound that only guards against a hang: nothing in these tests should come near it.
pub(crate) const HANG_GUARD: Duration = Duration::from_secs(10);

/// Awaits `future`, panicking (instead of hanging the suite) if it takes over `HANG_GUARD`.
pub(crate) async fn guarded<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(HANG_GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what} took over {HANG_GUARD:?}"))
}

/// Waits (under `HANG_GUARD`) for every task of `tasks`, passing on their panics.
pub(crate) async fn join_all(what: &str, mut tasks: tokio::task::JoinSet<()>) {
    guarded(what, async {
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    })
    .await;
}

/// The worker's error from a call that reached a worker.
pub(crate) fn worker_error<T: Debug>(result: Result<T, CallError>) -> RunnerError {
    match result {
        Err(CallError::Worker(error)) => error,
        other => panic!("expected a worker error, got {other:?}"),
    }
}

/// The real python interpreter (`python3` on `PATH` may be a slow pyenv shim), resolved
/// once.
pub(crate) fn python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let output = std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 runs");
        assert!(output.status.success(), "python3 failed: {output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    })
}

/// A python worker script of `tests/workers`, run unbuffered by the real interpreter.
pub(crate) fn python_worker(script: &str) -> WorkerSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/workers")
        .join(script);
    WorkerSpec::new(python()).arg("-u").arg(path)
}

/// A pool of up to `max_size` workers started from `spec`, speaking lines.
pub(crate) fn pool_of(spec: WorkerSpec, max_size: usize) -> SubprocessPool<Lines> {
    SubprocessPool::builder(spec, Lines::default())
        .max_size(max_size)
        .build()
        .unwrap()
}

/// The pid (and process group) of a worker of `pool`, checked out and returned.
pub(crate) async fn some_worker_pid(pool: &SubprocessPool<Lines>) -> u32 {
    worker_pids(pool, 1).await[0]
}

/// The pids of `n` distinct workers, all checked out at once (one at a time, a LIFO pool
/// would lend the same worker every time), then given back.
pub(crate) async fn worker_pids(pool: &SubprocessPool<Lines>, n: usize) -> Vec<u32> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(pool.pool().get().await.unwrap());
    }
    held.iter().map(|runner| runner.pid()).collect()
}

/// Fields of /proc/<pid>/stat: (pid, state, ppid, pgrp).
fn stat(pid: &str) -> Option<(u32, char, u32, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((pid.parse().ok()?, state, ppid, pgrp))
}

fn all_processes() -> Vec<(u32, char, u32, u32)> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| stat(entry.ok()?.file_name().to_str()?))
        .collect()
}

/// Processes still in the process group `pgid` (zombies included).
pub(crate) fn group_members(pgid: u32) -> Vec<u32> {
    all_processes()
        .into_iter()
        .filter(|&(_, _, _, pgrp)| pgrp == pgid)
        .map(|(pid, ..)| pid)
        .collect()
}

/// Processes of group `pgid` that are still there for us: alive, or dead and waiting for us
/// to reap them. (A killed grandchild is reparented to init, which reaps it on its own
/// schedule, a second or two here: a zombie of init's is dead and not ours to reap.)
pub(crate) fn remaining_in_group(pgid: u32) -> Vec<u32> {
    let me = std::process::id();
    all_processes()
        .into_iter()
        .filter(|&(_, state, ppid, pgrp)| pgrp == pgid && (state != 'Z' || ppid == me))
        .map(|(pid, ..)| pid)
        .collect()
}

/// Our children, running or not yet reaped.
pub(crate) fn children() -> Vec<u32> {
    let me = std::process::id();
    all_processes()
        .into_iter()
        .filter(|&(_, _, ppid, _)| ppid == me)
        .map(|(pid, ..)| pid)
        .collect()
}

/// Our children that exited but were never reaped.
pub(crate) fn zombie_children() -> Vec<u32> {
    let me = std::process::id();
    all_processes()
        .into_iter()
        .filter(|&(_, state, ppid, _)| ppid == me && state == 'Z')
        .map(|(pid, ..)| pid)
        .collect()
}

/// Open file descriptors of this process.
pub(crate) fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Open file descriptors once tokio's process machinery is set up (its first child creates
/// descriptors that live as long as the process), so a later count compares like with like.
pub(crate) async fn baseline_fds() -> usize {
    let status = tokio::process::Command::new("true").status().await.unwrap();
    assert!(status.success());
    open_fds()
}

/// A path under the temp dir unique to this test process (and to `name` within it).
pub(crate) fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("subprocess-pool-{name}-{}", std::process::id()))
}

/// Waits (real time, up to 5 s, generous for a loaded CI machine) until `done` holds;
/// panics naming `what` otherwise.
pub(crate) async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("gave up after 5 s waiting for {what}");
}

/// Waits (as [`eventually`]) until `found` finds something, and returns it.
pub(crate) async fn eventually_some<T>(what: &str, mut found: impl FnMut() -> Option<T>) -> T {
    for _ in 0..500 {
        if let Some(found) = found() {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("gave up after 5 s waiting for {what}");
}

/// Waits (as [`eventually`]) until no process is left in process group `pgid`.
pub(crate) async fn group_gone(what: &str, pgid: u32) {
    eventually(what, || remaining_in_group(pgid).is_empty()).await;
}

/// A `sh` worker speaking lines: echoes each line, except commands:
/// `sleep` (sleeps 30 s), `exit N` (says "dying" on stderr, exits N), `garbage` (invalid
/// UTF-8), `big` (2 MB without a newline), `noisy` (1 MiB on stderr, then echoes),
/// `orphan` (leaves a grandchild holding stdout and exits), `slow` (0.3 s, then echoes),
/// `twice` (two lines in one write), `stray FILE` (answers, then 0.1 s later writes a line
/// nobody asked for and creates FILE), `quit FILE` (answers, closes stdout, creates FILE,
/// exits).
pub(crate) const SH_WORKER: &str = r#"
while IFS= read -r line; do
  case "$line" in
    sleep) sleep 30 ;;
    exit*) echo "dying on request" >&2; exit "${line#exit }" ;;
    garbage) printf '\377\376 not utf-8\n' ;;
    big) head -c 2000000 /dev/zero | tr '\0' 'a' ;;
    noisy) head -c 1048576 /dev/zero >&2; echo "$line" ;;
    orphan) sleep 30 & exit 0 ;;
    slow) sleep 0.3; echo "$line" ;;
    twice) printf 'twice\ntwice again\n' ;;
    "stray "*) echo stray; sleep 0.1; echo "unasked"; touch "${line#stray }" ;;
    "quit "*) echo quit; exec 1>&-; touch "${line#quit }"; exit 0 ;;
    *) echo "$line" ;;
  esac
done
"#;
