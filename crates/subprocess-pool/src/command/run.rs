//! Running one command to its end: spawn it, feed its stdin while draining its stdout and
//! stderr, wait for it to exit with every wait bounded, and leave nothing of it behind.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout};
use tokio::time::{Instant, timeout, timeout_at};

use super::capture::Capture;
use super::{CommandError, CommandOutput, CommandSpec};
use crate::process_group::kill_group;

/// After the command exits, how long processes it started may keep its stdout or stderr
/// open before its group is killed; and after that kill, how long we go on reading what
/// is left before giving up on a holder outside the group.
const PIPE_GRACE: Duration = Duration::from_millis(100);

/// How long reaping a command killed at its timeout may take before it is left to tokio
/// (which reaps dropped children in the background).
const REAP_GRACE: Duration = Duration::from_secs(2);

/// How the command's pipes and process ended, before the output is put together.
enum Ended {
    Exited {
        status: io::Result<ExitStatus>,
        /// `None` when something outside the command's group still held a pipe.
        pipes: Option<io::Result<()>>,
    },
    TimedOut,
}

/// Runs `spec` in a fresh process group; the caller holds a slot.
pub(super) async fn run(spec: &CommandSpec, pool: &str) -> Result<CommandOutput, CommandError> {
    let started = Instant::now();
    let deadline = spec.timeout.and_then(|limit| started.checked_add(limit));
    let mut child = spec
        .launch
        .command(Stdio::piped())
        .spawn()
        .map_err(|error| spec.launch.spawn_error(error))?;
    // Declared after `child`, so dropped before it: the group is killed while the leader's
    // pid still names it.
    let mut group = GroupKill(child.id());
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        unreachable!("the command's stdin, stdout and stderr are piped");
    };
    let mut out = Capture::new(spec.max_output);
    let mut err = Capture::new(spec.max_output);
    let input = spec.stdin.as_deref().unwrap_or_default();

    let ended = {
        let mut pipes = pin!(pump(stdin, input, stdout, &mut out, stderr, &mut err));
        let mut pipes_ended = None;
        let exited = within(
            deadline,
            until_exit(&mut child, pipes.as_mut(), &mut pipes_ended),
        )
        .await;
        match exited {
            Some(status) => {
                // The command exited (and was reaped); processes it started may still
                // hold its pipes. Give them a moment, then kill the group and read what
                // they left, briefly: a holder outside the group cannot hang us.
                if pipes_ended.is_none() {
                    let grace = deadline.map_or(PIPE_GRACE, |deadline| {
                        deadline
                            .saturating_duration_since(Instant::now())
                            .min(PIPE_GRACE)
                    });
                    pipes_ended = timeout(grace, pipes.as_mut()).await.ok();
                }
                group.kill();
                if pipes_ended.is_none() {
                    pipes_ended = timeout(PIPE_GRACE, pipes.as_mut()).await.ok();
                }
                Ended::Exited {
                    status,
                    pipes: pipes_ended,
                }
            }
            None => {
                // Not reaped yet, so the pid still names the group.
                group.kill();
                let reap = timeout(REAP_GRACE, child.wait());
                let drain = async {
                    if pipes_ended.is_none() {
                        let _ = timeout(PIPE_GRACE, pipes.as_mut()).await;
                    }
                };
                let (reaped, ()) = tokio::join!(reap, drain);
                if !matches!(reaped, Ok(Ok(_))) {
                    tracing::debug!(target: "subprocess_pool", pool = %pool, "a timed-out command was not reaped in time; tokio reaps it");
                }
                Ended::TimedOut
            }
        }
    };
    let (stdout, stdout_truncated) = out.into_parts();
    let (stderr, stderr_truncated) = err.into_parts();
    match ended {
        Ended::TimedOut => Err(CommandError::Timeout {
            program: spec.launch.program().display().to_string(),
            after: spec.timeout.unwrap_or_default(),
            stdout,
            stderr,
        }),
        Ended::Exited { status, pipes } => {
            let status = status.map_err(CommandError::Io)?;
            match pipes {
                Some(result) => result.map_err(CommandError::Io)?,
                None => tracing::debug!(
                    target: "subprocess_pool",
                    pool = %pool,
                    "a process outside the command's group held its pipes; stopped reading"
                ),
            }
            Ok(CommandOutput {
                status,
                stdout,
                stderr,
                stdout_truncated,
                stderr_truncated,
                elapsed: started.elapsed(),
            })
        }
    }
}

/// Writes `input` to the command's stdin and closes it, while reading its stdout and
/// stderr to their ends, all at once: a command blocked writing one pipe never waits on
/// us writing another.
async fn pump(
    mut stdin: ChildStdin,
    input: &[u8],
    stdout: ChildStdout,
    out: &mut Capture,
    stderr: ChildStderr,
    err: &mut Capture,
) -> io::Result<()> {
    let feed = async move {
        // A command may exit, or close its stdin, without reading it all: not an error.
        let _ = stdin.write_all(input).await;
        drop(stdin);
    };
    let ((), stdout, stderr) = tokio::join!(feed, out.fill_from(stdout), err.fill_from(stderr));
    stdout.and(stderr)
}

/// Waits for the command to exit, moving its pipe traffic along meanwhile; when the
/// traffic ends first, its result is kept in `pipes_ended` (so it is never polled again).
async fn until_exit<F: Future<Output = io::Result<()>>>(
    child: &mut Child,
    mut pipes: Pin<&mut F>,
    pipes_ended: &mut Option<io::Result<()>>,
) -> io::Result<ExitStatus> {
    loop {
        tokio::select! {
            status = child.wait() => return status,
            result = pipes.as_mut(), if pipes_ended.is_none() => *pipes_ended = Some(result),
        }
    }
}

/// `future`'s output, or `None` if `deadline` passed first.
async fn within<F: Future>(deadline: Option<Instant>, future: F) -> Option<F::Output> {
    match deadline {
        Some(deadline) => timeout_at(deadline, future).await.ok(),
        None => Some(future.await),
    }
}

/// Kills the command's process group once: explicitly, or when dropped (the run future
/// was dropped, or an error ended the run early).
struct GroupKill(Option<u32>);

impl GroupKill {
    fn kill(&mut self) {
        if let Some(pid) = self.0.take() {
            kill_group(pid);
        }
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill();
    }
}
