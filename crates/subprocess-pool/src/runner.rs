//! One live worker process.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use bytes::BytesMut;
use rustix::io::Errno;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::time::Instant;
use tokio_util::codec::{Decoder, Encoder};

use crate::error::RunnerError;
use crate::process_group::kill_group;
use crate::protocol::{Protocol, ProtocolError};
use crate::spec::WorkerSpec;
use crate::stderr::StderrTail;

/// The longest line skipped while waiting for the ready line.
const MAX_STARTUP_LINE: usize = 1024 * 1024;
/// How long to wait for the last of a dead worker's stderr.
const STDERR_SETTLE: Duration = Duration::from_millis(200);
/// How much of an unasked-for output an error quotes.
const QUOTED_OUTPUT: usize = 80;
/// A worker seen alive this recently (an answered call, a check) is not asked again: asking
/// costs a `waitpid` system call, as much as the rest of a call's overhead.
const ALIVE_BYPASS: Duration = Duration::from_millis(250);

/// One live worker process in its own process group, spoken to with protocol `P`.
///
/// A call that fails or is cancelled half-way leaves the runner *poisoned*: its streams
/// may hold half a message, so it refuses further calls and a pool destroys it. Shutting
/// a runner down closes its stdin, waits up to `kill_grace` for it to exit, then kills its
/// whole process group and reaps it; dropping one kills the group at once.
///
/// # Example
///
/// ```
/// use subprocess_pool::{Runner, WorkerSpec};
/// use subprocess_pool::protocol::Lines;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut cat = Runner::spawn(&WorkerSpec::new("cat"), Lines::default()).await?;
/// assert_eq!(cat.call("hello".to_string()).await?, "hello");
/// cat.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct Runner<P: Protocol> {
    child: Child,
    pid: u32,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    protocol: P,
    codec: P::Codec,
    write_buf: BytesMut,
    read_buf: BytesMut,
    stderr: Option<StderrTail>,
    calls: u64,
    call_limit: Option<u64>,
    started: Instant,
    /// When the worker last proved alive.
    seen_alive: Instant,
    max_age: Option<Duration>,
    request_timeout: Option<Duration>,
    kill_grace: Duration,
    poisoned: bool,
    reaped: bool,
    /// `check_idle_output` found stdout silent and no call has been made since.
    just_checked: bool,
}

impl<P: Protocol> Runner<P> {
    /// Starts a worker and waits until it is ready (its ready line, if the spec sets one,
    /// within `startup_timeout`).
    pub async fn spawn(spec: &WorkerSpec, protocol: P) -> Result<Self, RunnerError> {
        let mut child = spec
            .launch
            .command(spec.stderr.stdio())
            .spawn()
            .map_err(|error| spec.launch.spawn_error(error))?;
        let pid = child.id().unwrap_or_default();
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            unreachable!("the command pipes stdin and stdout");
        };
        let stderr = match spec.stderr {
            crate::StderrMode::Tail(limit) => child
                .stderr
                .take()
                .map(|stderr| StderrTail::drain(stderr, limit)),
            _ => None,
        };
        let mut runner = Runner {
            child,
            pid,
            stdin: Some(stdin),
            stdout,
            codec: protocol.codec(),
            protocol,
            write_buf: BytesMut::with_capacity(8 * 1024),
            read_buf: BytesMut::with_capacity(8 * 1024),
            stderr,
            calls: 0,
            call_limit: spec.max_requests.map(jittered),
            started: Instant::now(),
            seen_alive: Instant::now(),
            max_age: spec.max_age,
            request_timeout: spec.request_timeout,
            kill_grace: spec.kill_grace,
            poisoned: false,
            reaped: false,
            just_checked: false,
        };
        if let Some(line) = &spec.ready_line {
            let ready = tokio::time::timeout(spec.startup_timeout, runner.skip_to_line(line)).await;
            let reason = match ready {
                Ok(Ok(())) if runner.read_buf.is_empty() => return Ok(runner),
                Ok(Ok(())) => format!(
                    "it wrote {:?} after its ready line, before any request",
                    runner.quoted_output()
                ),
                Ok(Err(reason)) => reason,
                Err(_) => format!(
                    "no ready line {line:?} on stdout within {:?}",
                    spec.startup_timeout
                ),
            };
            kill_group(runner.pid);
            let stderr = runner.stderr_text().await;
            runner.shutdown().await;
            return Err(RunnerError::Startup { reason, stderr });
        }
        Ok(runner)
    }

    /// Sends one request and reads its response.
    ///
    /// A request the protocol refuses (a newline under `Lines`, an oversize frame) fails
    /// before anything is written and leaves the runner usable. Any other failure (a
    /// timeout, the worker exiting, garbage on stdout) poisons the runner; so does
    /// dropping this future before it completes. So does output nobody asked for: bytes
    /// the worker wrote after its last response and before this request, or after this
    /// request's response (a second line, say), fail the call with
    /// [`ProtocolError::Malformed`] quoting them, because which answer belongs to which
    /// request can no longer be told.
    pub async fn call(&mut self, request: P::Request) -> Result<P::Response, RunnerError> {
        self.just_checked = false;
        self.call_just_checked(request).await
    }

    /// [`call`](Runner::call) for a runner its pool has just lent: the recycle looked at
    /// its stdout (`check_idle_output`) microseconds ago, so the call does not look again
    /// (a read system call is about 4% of a pinned `cat` round trip here).
    pub(crate) async fn call_just_checked(
        &mut self,
        request: P::Request,
    ) -> Result<P::Response, RunnerError> {
        if self.poisoned {
            return Err(RunnerError::Poisoned);
        }
        if !std::mem::take(&mut self.just_checked) {
            // A closed stdout is the worker dying: the exchange below reports how.
            self.listen("before this request")?;
        }
        let request_id = self.protocol.request_id(&request);
        self.write_buf.clear();
        if let Err(error) = self.codec.encode(request, &mut self.write_buf) {
            self.write_buf.clear();
            return Err(error.into());
        }
        self.poisoned = true; // until the whole response is read
        let outcome = match self.request_timeout {
            None => self.exchange(request_id).await,
            Some(limit) => match tokio::time::timeout(limit, self.exchange(request_id)).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    kill_group(self.pid);
                    Err(RunnerError::Timeout { after: limit })
                }
            },
        };
        if outcome.is_ok() {
            self.poisoned = false;
            self.calls += 1;
            self.seen_alive = Instant::now();
        }
        outcome
    }

    async fn exchange(&mut self, request_id: u64) -> Result<P::Response, RunnerError> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(RunnerError::Poisoned);
        };
        if let Err(error) = stdin.write_all(&self.write_buf).await {
            return Err(match error.kind() {
                io::ErrorKind::BrokenPipe => self.died().await,
                _ => RunnerError::Io(error),
            });
        }
        loop {
            if let Some(response) = self.codec.decode(&mut self.read_buf)? {
                self.protocol.check_response(request_id, &response)?;
                if !self.read_buf.is_empty() {
                    // Which of the two is this request's answer cannot be told.
                    return Err(self.unasked_output("after its response to this request"));
                }
                return Ok(response);
            }
            self.read_buf.reserve(8 * 1024);
            match self.stdout.read_buf(&mut self.read_buf).await {
                Ok(0) => return Err(self.died().await),
                Ok(_) => {}
                Err(error) => return Err(RunnerError::Io(error)),
            }
        }
    }

    /// Reads, without waiting, whatever the worker wrote since its last response. A worker
    /// answering one request with one response is silent until it gets the next request,
    /// so output now (a second line, a stray print) would be taken for the next caller's
    /// answer.
    ///
    /// It asks the pipe itself (tokio makes it non-blocking) rather than going through
    /// tokio, whose cached readiness says "nothing" for bytes its event loop has not seen
    /// yet; a read behind tokio's back only leaves it a stale "readable" that costs one
    /// empty read later.
    ///
    /// Output, or a pipe that cannot be read, poisons the runner and is the error (`when`
    /// says when it was found).
    fn listen(&mut self, when: &str) -> Result<Stdout, RunnerError> {
        let mut scratch = [0u8; 512];
        while self.read_buf.is_empty() {
            match rustix::io::read(self.stdout.as_fd(), &mut scratch) {
                Ok(0) => return Ok(Stdout::Closed),
                Ok(read) => self.read_buf.extend_from_slice(&scratch[..read]),
                Err(Errno::AGAIN) => return Ok(Stdout::Silent),
                Err(Errno::INTR) => {}
                Err(error) => {
                    self.poisoned = true;
                    return Err(RunnerError::Io(error.into()));
                }
            }
        }
        self.poisoned = true;
        Err(self.unasked_output(when))
    }

    /// The error for output nobody asked for (now in `read_buf`), quoting its start.
    fn unasked_output(&self, when: &str) -> RunnerError {
        ProtocolError::Malformed(format!(
            "the worker wrote output nobody asked for {when} ({} bytes read so far, \
             starting {:?}); its answers can no longer be matched to requests, so it is \
             not used again",
            self.read_buf.len(),
            self.quoted_output(),
        ))
        .into()
    }

    /// The start of what is in the read buffer, for an error message.
    fn quoted_output(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.read_buf[..self.read_buf.len().min(QUOTED_OUTPUT)])
    }

    /// Checks an idle worker before it is lent or pinged: it must not have written anything
    /// since its last response, nor closed its stdout (it is exiting). Output poisons it.
    pub(crate) fn check_idle_output(&mut self) -> Result<(), RunnerError> {
        match self.listen("while idle")? {
            Stdout::Silent => {
                self.just_checked = true;
                Ok(())
            }
            Stdout::Closed => Err(RunnerError::idle_worker_gone("closed its stdout")),
        }
    }

    /// Reads stdout lines until `line`; anything after it stays in the read buffer (which
    /// the caller refuses: a worker says nothing between its ready line and a request).
    async fn skip_to_line(&mut self, line: &str) -> Result<(), String> {
        loop {
            while let Some(end) = self.read_buf.iter().position(|&byte| byte == b'\n') {
                let got = self.read_buf.split_to(end + 1);
                let got = got.strip_suffix(b"\n").unwrap_or(&got);
                let got = got.strip_suffix(b"\r").unwrap_or(got);
                if got == line.as_bytes() {
                    return Ok(());
                }
            }
            if self.read_buf.len() > MAX_STARTUP_LINE {
                return Err(format!(
                    "a stdout line longer than {MAX_STARTUP_LINE} bytes before the ready line"
                ));
            }
            self.read_buf.reserve(8 * 1024);
            match self.stdout.read_buf(&mut self.read_buf).await {
                Ok(0) => {
                    return Err(match self.exit_status(self.kill_grace).await {
                        Some(status) => format!("exited ({status}) before printing {line:?}"),
                        None => format!("closed stdout before printing {line:?}"),
                    });
                }
                Ok(_) => {}
                Err(error) => return Err(format!("reading stdout failed: {error}")),
            }
        }
    }

    /// The error for a worker found dead (stdout closed, stdin broken): its exit status
    /// and stderr tail, after making sure its group is gone.
    async fn died(&mut self) -> RunnerError {
        let status = self.exit_status(self.kill_grace).await;
        kill_group(self.pid);
        let status = match status {
            Some(status) => status,
            None => match self.child.wait().await {
                Ok(status) => status,
                Err(error) => return RunnerError::Io(error),
            },
        };
        self.reaped = true;
        let stderr = self.stderr_text().await;
        RunnerError::Exited { status, stderr }
    }

    /// Waits up to `bound` for the worker to exit, reaping it.
    async fn exit_status(&mut self, bound: Duration) -> Option<std::process::ExitStatus> {
        let status = tokio::time::timeout(bound, self.child.wait())
            .await
            .ok()?
            .ok()?;
        self.reaped = true;
        Some(status)
    }

    /// The tail of the worker's stderr (owned, so no borrow of the runner is held across
    /// the wait and its future stays `Send`).
    fn stderr_text(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let tail = self.stderr.clone();
        async move {
            match tail {
                Some(tail) => {
                    tail.settle(STDERR_SETTLE).await;
                    tail.text()
                }
                None => String::new(),
            }
        }
    }

    /// The worker's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Calls answered so far.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// Whether an earlier call failed or was cancelled half-way.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Whether the worker reached its request limit or its age limit.
    pub fn is_spent(&self) -> bool {
        self.call_limit.is_some_and(|limit| self.calls >= limit)
            || self
                .max_age
                .is_some_and(|age| self.started.elapsed() >= age)
    }

    /// Whether the worker process is still running (reaping it if it exited).
    pub fn is_alive(&mut self) -> bool {
        if self.reaped {
            return false;
        }
        match self.child.try_wait() {
            Ok(None) => {
                self.seen_alive = Instant::now();
                true
            }
            Ok(Some(_)) | Err(_) => {
                self.reaped = true;
                false
            }
        }
    }

    /// Like [`is_alive`](Runner::is_alive), but trusts a worker that proved alive (answered
    /// a call, passed a check) within the last 250 ms without asking the system again.
    pub fn is_probably_alive(&mut self) -> bool {
        if !self.reaped && self.seen_alive.elapsed() < ALIVE_BYPASS {
            return true;
        }
        self.is_alive()
    }

    /// Stops the worker: closes its stdin (so it sees end of input), waits up to
    /// `kill_grace` for it to exit, then kills its whole process group and reaps it.
    pub async fn shutdown(mut self) {
        drop(self.stdin.take());
        if !self.reaped {
            let _ = self.exit_status(self.kill_grace).await;
        }
        // Grandchildren may outlive the leader; the group goes in any case.
        kill_group(self.pid);
        if !self.reaped && self.child.wait().await.is_ok() {
            self.reaped = true;
        }
    }
}

impl<P: Protocol> Drop for Runner<P> {
    fn drop(&mut self) {
        if !self.reaped {
            // `kill_on_drop` kills the leader and tokio reaps it; the group goes too.
            kill_group(self.pid);
        }
    }
}

impl<P: Protocol> std::fmt::Debug for Runner<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("pid", &self.pid)
            .field("calls", &self.calls)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

/// What a look at an idle worker's stdout found, output nobody asked for aside (an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stdout {
    /// Nothing to read: as it should be.
    Silent,
    /// End of file: the worker closed its stdout, so it is exiting.
    Closed,
}

/// `limit` shortened by a random 0-5%, at least 1.
fn jittered(limit: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let fraction = (random >> 11) as f64 / (1u64 << 53) as f64;
    let cut = (limit as f64 * 0.05 * fraction) as u64;
    (limit - cut).max(1)
}
