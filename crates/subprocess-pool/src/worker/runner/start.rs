//! Starting a worker: spawn it, wait for its ready line and greeting, and start the tasks
//! that watch it; and failing a start cleanly.

use std::os::fd::AsFd;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdout};
use tokio::time::{Duration, Instant};

use super::link::{Link, Waiter};
use super::reader::{self, Reader, stderr_text};
use super::{MAX_STARTUP_LINE, MessageHandler, REAP_BOUND, Runner, SharedStdin, quote};
use crate::process_group::kill_group;
use crate::protocol::Protocol;
use crate::stderr::StderrTail;
use crate::worker::error::{ExitDescription, RunnerError};
use crate::worker::metrics::Counters;
use crate::worker::spec::{ReadyLine, WorkerSpec};

impl<P: Protocol> Runner<P> {
    pub(crate) async fn start(
        spec: &WorkerSpec,
        protocol: P,
        handler: Option<MessageHandler<P>>,
        counters: Arc<Counters>,
    ) -> Result<Self, RunnerError> {
        let spawned = Instant::now();
        let deadline = spawned + spec.startup_timeout;
        let mut child = spec
            .launch
            .command(spec.stderr.stdio())
            .spawn()
            .map_err(|error| spec.launch.spawn_error(error))?;
        let pid = child.id().unwrap_or_default();
        // Until the runner exists (its drop kills the group), a create cancelled while the
        // worker gets ready must not leave what it started behind.
        let group = GroupGuard(Some(pid));
        let (Some(stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
            unreachable!("the command pipes stdin and stdout");
        };
        let stderr = match spec.stderr {
            crate::StderrMode::Tail(limit) => child
                .stderr
                .take()
                .map(|stderr| StderrTail::drain(stderr, limit)),
            _ => None,
        };
        let greets = spec.greeting || protocol.greets_first();
        let mut buf = BytesMut::with_capacity(8 * 1024);
        if let Some(ready) = &spec.ready_line {
            let waited = tokio::time::timeout_at(
                deadline,
                wait_ready(&mut child, &mut stdout, &mut buf, ready, spec.kill_grace),
            )
            .await;
            let failure = match waited {
                Ok(Ok(())) if buf.is_empty() || greets => None,
                Ok(Ok(())) => Some(format!(
                    "it wrote {:?} after its ready line, before any request",
                    quote(&buf)
                )),
                Ok(Err(reason)) => Some(reason),
                Err(_) => Some(format!(
                    "no ready line {ready} on stdout within {:?}",
                    spec.startup_timeout
                )),
            };
            if let Some(reason) = failure {
                drop(group);
                let _ = tokio::time::timeout(REAP_BOUND, child.wait()).await;
                if let Some(tail) = &stderr {
                    // Whatever arrived by now is all the error gets; stop reading after it.
                    let text = stderr_text(Some(tail.clone())).await;
                    tail.stop();
                    return Err(RunnerError::Startup {
                        reason,
                        stderr: text,
                    });
                }
                return Err(RunnerError::Startup {
                    reason,
                    stderr: String::new(),
                });
            }
        }
        let link = Arc::new(Link::new());
        if greets {
            link.lock().register(Waiter::new(None, None, 0));
        }
        let stdin: SharedStdin = Arc::new(tokio::sync::Mutex::new(Some(stdin)));
        let reader = Reader {
            link: link.clone(),
            codec: protocol.codec(),
            protocol: protocol.clone(),
            buf,
            stdin: stdin.clone(),
            handler,
            counters: counters.clone(),
            stderr: stderr.clone(),
            pid,
            kill_grace: spec.kill_grace,
            request_timeout: spec.request_timeout,
            finished: false,
            fresh: 0,
            fresh_tag: 0,
            older_tag: 0,
            replies: None,
            responses: Vec::new(),
        };
        // Close-on-exec, as std makes it: no other child may inherit this worker's stdout.
        let stdout_probe = stdout
            .as_fd()
            .try_clone_to_owned()
            .map_err(RunnerError::Io)?;
        link.lock().stdout_probe = Some(stdout_probe);
        let exit = link.exit_watch();
        let waiter = tokio::spawn(reader::wait_for_exit(child, link.clone(), pid, counters));
        let reader = tokio::spawn(reader.run(stdout, exit));
        group.disarm();
        let runner = Runner {
            pid,
            stdin,
            link,
            reader,
            waiter,
            codec: protocol.codec(),
            protocol,
            write_buf: BytesMut::with_capacity(8 * 1024),
            stderr,
            calls: 0,
            sent: 0,
            started: spawned,
            request_timeout: spec.request_timeout,
            kill_grace: spec.kill_grace,
            poisoned: false,
        };
        if greets {
            let failure = match tokio::time::timeout_at(deadline, runner.link.outcome()).await {
                Ok(Some(Ok(_))) => return Ok(runner),
                Ok(Some(Err(error))) => StartFailure::Error("no greeting", error),
                Ok(None) => StartFailure::Reason("no greeting: its reader stopped".into()),
                Err(_) => {
                    StartFailure::Reason(format!("no greeting within {:?}", spec.startup_timeout))
                }
            };
            return Err(runner.fail_start(failure).await);
        }
        Ok(runner)
    }

    /// Kills a runner that could not finish starting, and says why, with its stderr tail
    /// once.
    pub(crate) async fn fail_start(mut self, failure: StartFailure) -> RunnerError {
        self.kill().await;
        let (reason, stderr) = match failure {
            StartFailure::Reason(reason) => (reason, None),
            StartFailure::Error(context, RunnerError::Startup { reason, stderr }) => {
                (format!("{context}: {reason}"), Some(stderr))
            }
            StartFailure::Error(context, RunnerError::Exited { status, stderr, .. }) => (
                format!("{context}: it exited {}", ExitDescription(&status)),
                Some(stderr),
            ),
            StartFailure::Error(context, RunnerError::Timeout { after, stderr }) => (
                format!("{context}: timed out after {after:?}"),
                Some(stderr),
            ),
            StartFailure::Error(context, error) => (format!("{context}: {error}"), None),
        };
        let stderr = match stderr {
            Some(stderr) => stderr,
            None => stderr_text(self.stderr.clone()).await,
        };
        RunnerError::Startup { reason, stderr }
    }
}

/// Reads stdout until the ready line; what follows it stays in `buf`.
async fn wait_ready(
    child: &mut Child,
    stdout: &mut ChildStdout,
    buf: &mut BytesMut,
    ready: &ReadyLine,
    kill_grace: Duration,
) -> Result<(), String> {
    loop {
        while let Some(end) = buf.iter().position(|&byte| byte == b'\n') {
            let got = buf.split_to(end + 1);
            let got = got.strip_suffix(b"\n").unwrap_or(&got);
            let got = got.strip_suffix(b"\r").unwrap_or(got);
            if ready.matches(got) {
                return Ok(());
            }
        }
        if buf.len() > MAX_STARTUP_LINE {
            return Err(format!(
                "a stdout line longer than {MAX_STARTUP_LINE} bytes before the ready line"
            ));
        }
        buf.reserve(8 * 1024);
        tokio::select! {
            biased;
            read = stdout.read_buf(buf) => match read {
                Ok(0) => {
                    let status = tokio::time::timeout(kill_grace, child.wait()).await;
                    return Err(match status {
                        Ok(Ok(status)) => format!(
                            "it exited {} before printing {ready}",
                            ExitDescription(&status)
                        ),
                        _ => format!("it closed its stdout before printing {ready}"),
                    });
                }
                Ok(_) => {}
                Err(error) => return Err(format!("reading its stdout failed: {error}")),
            },
            status = child.wait() => {
                return Err(match status {
                    Ok(status) => format!("it exited {} before printing {ready}", ExitDescription(&status)),
                    Err(error) => format!("waiting for it failed: {error}"),
                });
            }
        }
    }
}

/// Why a start failed: a reason, or an error with what was being done.
pub(crate) enum StartFailure {
    Reason(String),
    Error(&'static str, RunnerError),
}

/// Kills a process group when dropped, unless disarmed.
struct GroupGuard(Option<u32>);

impl GroupGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            kill_group(pid);
        }
    }
}
