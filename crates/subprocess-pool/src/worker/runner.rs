//! One live worker process.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::task::Poll;

use rustix::event::{PollFd, PollFlags, Timespec};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::codec::Encoder;

use self::link::{Link, LinkState, Waiter};
use self::reader::stderr_text;
use super::error::RunnerError;
use super::metrics::Counters;
use super::spec::WorkerSpec;
use crate::process_group::kill_group;
use crate::protocol::{Protocol, ProtocolError};
use crate::stderr::StderrTail;

mod link;
mod multiplexed;
mod reader;
mod start;

pub(crate) use self::multiplexed::MuxRunner;
pub(crate) use self::start::StartFailure;

/// The longest line skipped while waiting for the ready line.
const MAX_STARTUP_LINE: usize = 1024 * 1024;
/// How much of an output an error quotes.
const QUOTED_OUTPUT: usize = 80;
/// A worker that exits sooner than this after it started, before answering, may not be
/// able to start at all.
const YOUNG: Duration = Duration::from_secs(1);
/// How long a call waits, at most, for the reader to read bytes already in the pipe.
const CATCH_UP_BOUND: Duration = Duration::from_secs(1);
/// How long a killed worker may take to be reaped before the runner stops waiting (the
/// reader task reaps it in any case).
const REAP_BOUND: Duration = Duration::from_secs(1);

/// Called with a worker's pid and each message (a frame that answers no request) it sends;
/// returns the reply to write back, if any.
pub(crate) type MessageHandler<P> =
    Arc<dyn Fn(u32, &<P as Protocol>::Message) -> Option<<P as Protocol>::Request> + Send + Sync>;

/// A worker's stdin, written by callers (requests) and by the reader task (replies to the
/// worker's own requests); `None` once closed.
pub(crate) type SharedStdin = Arc<tokio::sync::Mutex<Option<ChildStdin>>>;

/// One live worker process in its own process group, spoken to with protocol `P`.
///
/// A task reads the worker's stdout for as long as it runs, so the runner knows at once
/// when the worker exits, closes its stdout, breaks the protocol or writes a response
/// nobody asked for: the worker is then *faulted*, and the next call (or the pool's next
/// checkout) reports why instead of sending it anything. Frames the protocol sorts as
/// messages (notifications, log lines, requests from the worker) go to the message
/// handler, if one was given, and never to a caller.
///
/// A call that fails or is cancelled half-way leaves the runner *poisoned*: its streams
/// may hold half a message, so it refuses further calls and a pool destroys it. Shutting
/// a runner down closes its stdin, waits up to `kill_grace` for it to exit, then kills its
/// whole process group and reaps it; dropping one kills the group at once.
///
/// A runner has no request or age limit of its own: one used without a pool serves calls
/// until it is shut down, dropped or broken, whatever the spec's
/// [`max_requests`](WorkerSpec::max_requests) and [`max_age`](WorkerSpec::max_age) say.
/// Those are a pool's `max_uses` and `max_lifetime`, which a
/// [`SubprocessPool`](crate::SubprocessPool) sets from the spec.
///
/// A runner needs a tokio runtime with the time and process drivers enabled.
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
    pid: u32,
    stdin: SharedStdin,
    link: Arc<Link<P>>,
    reader: JoinHandle<()>,
    /// Owns the child and waits for its exit.
    waiter: JoinHandle<()>,
    protocol: P,
    /// Encodes requests (the reader task has a codec of its own for decoding).
    codec: P::Codec,
    write_buf: BytesMut,
    stderr: Option<StderrTail>,
    calls: u64,
    /// Requests sent so far (the next one's sequence number, less one).
    sent: u64,
    started: Instant,
    request_timeout: Option<Duration>,
    kill_grace: Duration,
    poisoned: bool,
}

impl<P: Protocol> Runner<P> {
    /// Starts a worker and waits until it is ready: its ready line, if the spec sets one,
    /// then its greeting, if the spec says it greets, within `startup_timeout`. Messages
    /// it sends are dropped (counted by a pool's metrics when it has one); use
    /// [`spawn_with`](Runner::spawn_with) to handle them.
    pub async fn spawn(spec: &WorkerSpec, protocol: P) -> Result<Self, RunnerError> {
        Self::start(
            spec,
            protocol,
            None,
            Arc::new(Counters::named(&spec.short_program_name())),
        )
        .await
    }

    /// Like [`spawn`](Runner::spawn), with `handler` called (on the task that reads the
    /// worker's stdout, so it should be quick) with the worker's pid and each message it
    /// sends; what the handler returns is written back to the worker as the reply. When it
    /// returns `None`, the protocol's [default reply](Protocol::default_reply), if any, is
    /// written (JSON-RPC answers a request from the worker with "method not found").
    pub async fn spawn_with(
        spec: &WorkerSpec,
        protocol: P,
        handler: impl Fn(u32, &P::Message) -> Option<P::Request> + Send + Sync + 'static,
    ) -> Result<Self, RunnerError> {
        let counters = Arc::new(Counters::named(&spec.short_program_name()));
        Self::start(spec, protocol, Some(Arc::new(handler)), counters).await
    }

    /// Sends one request and waits for its response.
    ///
    /// A request the protocol refuses (a newline under `Lines`, an oversize frame, a
    /// notification under `JsonRpc`) fails before anything is written and leaves the
    /// runner usable. Any other failure poisons the runner: a timeout (the worker is
    /// killed), the worker exiting (the error has its exit status, stderr tail and any
    /// output it left unfinished), garbage on stdout, a response for another request, and
    /// output nobody asked for ([`ProtocolError::Unasked`](crate::ProtocolError::Unasked)).
    /// So does dropping this future before it completes.
    pub async fn call(&mut self, request: P::Request) -> Result<P::Response, RunnerError> {
        self.catch_up().await;
        self.call_caught_up(request).await
    }

    /// [`call`](Runner::call) for a runner its pool has just checked: the check caught up
    /// with the worker's output a moment ago (`check_idle`), so the call does not ask the
    /// pipe again (one `poll` per pooled call, not two).
    pub(crate) async fn call_caught_up(
        &mut self,
        mut request: P::Request,
    ) -> Result<P::Response, RunnerError> {
        if self.poisoned {
            return Err(self.link.refusal(&mut self.link.lock()));
        }
        let sequence = self.sent + 1;
        let id = self.protocol.prepare(&mut request, sequence)?;
        self.encode(request)?;
        // The reader task enforces the deadline: a timer armed per call would cost more
        // than the rest of the call's overhead together.
        let deadline = self.request_timeout.map(|limit| Instant::now() + limit);
        {
            // A worker that faulted or exited since it was last used is refused here, in
            // the lock that registers the request.
            let mut state = self.link.lock();
            refuse_unusable(&mut self.poisoned, &self.link, &mut state)?;
            state.asked = true;
            state.register(Waiter::new(id, deadline, sequence));
            self.link.registered.store(sequence, Ordering::SeqCst);
        }
        self.sent = sequence;
        self.poisoned = true; // until the answer is in
        let (outcome, written) = self.exchange().await;
        // An answer that came before the whole request was written leaves the rest of it
        // in the pipe: the runner stays poisoned.
        if outcome.is_ok() && written {
            self.poisoned = false;
            self.calls += 1;
        }
        outcome
    }

    /// Sends a request that gets no answer (a JSON-RPC notification, say), bounded by the
    /// request timeout. A request the protocol numbers for an answer (a JSON-RPC request,
    /// any Bazel request) is refused: its answer would arrive with nobody waiting and
    /// retire the worker. Refused requests leave the runner usable; a failed or cancelled
    /// write poisons it.
    pub async fn send(&mut self, mut request: P::Request) -> Result<(), RunnerError> {
        self.usable()?;
        // `prepare` readies what gets an answer (and may refuse what does not, which is
        // just what `send` is for).
        if let Ok(Some(_)) = self.protocol.prepare(&mut request, self.sent + 1) {
            // Its answer would arrive with no request waiting, and retire the worker.
            return Err(ProtocolError::InvalidRequest(
                "this request gets an answer: send it with `call`".into(),
            )
            .into());
        }
        self.encode(request)?;
        self.link.lock().asked = true;
        self.poisoned = true; // until the whole frame is written
        let write = write_frame(&self.stdin, &self.write_buf);
        let written = match self.request_timeout {
            None => write.await,
            Some(limit) => match tokio::time::timeout(limit, write).await {
                Ok(written) => written,
                Err(_) => return Err(self.timed_out(limit).await),
            },
        };
        match written {
            Ok(()) => {
                self.poisoned = false;
                Ok(())
            }
            Err(error) => Err(self
                .link
                .lock()
                .fault
                .take()
                .unwrap_or(RunnerError::Io(error))),
        }
    }

    /// Refuses a poisoned, faulted or exited runner, with the reason if it was not
    /// reported yet.
    fn usable(&mut self) -> Result<(), RunnerError> {
        let mut state = self.link.lock();
        refuse_unusable(&mut self.poisoned, &self.link, &mut state)
    }

    /// Lets the reader task deal with what the worker wrote before this request. Output
    /// still in the pipe when the request's waiter is registered would be read after it,
    /// and taken for the answer; so a call asks the pipe (one `poll` system call) and,
    /// when bytes are waiting, waits until the reader has read them (up to
    /// `CATCH_UP_BOUND`; past it, the request goes ahead). What the reader took off the
    /// pipe before the registration needs no wait: it is tagged as older than the request,
    /// and a response among it is refused (see `Waiter::sequence`).
    async fn catch_up(&mut self) {
        if self.output_waiting() {
            // Boxed: rare, and inline its timer and notification would grow every call's
            // future (and a pool's checkout) by their size.
            Box::pin(self.wait_for_reader()).await;
        }
    }

    /// Refuses a runner that is no longer usable (see [`usable`](Runner::usable)), and
    /// otherwise says whether the worker's stdout holds bytes the reader has not read yet
    /// (one `poll`): both in one lock.
    fn look(&mut self) -> Result<bool, RunnerError> {
        let mut state = self.link.lock();
        refuse_unusable(&mut self.poisoned, &self.link, &mut state)?;
        Ok(unread_output(&state))
    }

    /// Whether the worker's stdout holds bytes the reader has not read yet (one `poll`);
    /// not for a worker already faulted or gone.
    fn output_waiting(&self) -> bool {
        let state = self.link.lock();
        !state.faulted && state.exited_at.is_none() && unread_output(&state)
    }

    /// Waits (up to `CATCH_UP_BOUND`) until the reader has read what is waiting.
    async fn wait_for_reader(&mut self) {
        let deadline = Instant::now() + CATCH_UP_BOUND;
        loop {
            let routed = self.link.routed.notified();
            self.link.catching_up.store(true, Ordering::SeqCst);
            // Asked again once the reader will wake us: it may have read and routed the
            // bytes since the first look, and would not have said so.
            let waited = match self.output_waiting() {
                true => tokio::time::timeout_at(deadline, routed).await.is_ok(),
                false => false,
            };
            self.link.catching_up.store(false, Ordering::SeqCst);
            if !waited {
                return;
            }
        }
    }

    fn encode(&mut self, request: P::Request) -> Result<(), RunnerError> {
        self.write_buf.clear();
        self.codec
            .encode(request, &mut self.write_buf)
            .map_err(|error| {
                self.write_buf.clear();
                error.into()
            })
    }

    /// Writes the registered request and awaits its outcome; says whether the whole
    /// request was written.
    async fn exchange(&mut self) -> (Result<P::Response, RunnerError>, bool) {
        // The reader may settle the call (a timeout, the worker's death) while the write is
        // stuck: a worker that stopped reading, or a stdin held open by a process that left
        // its group. A write that finishes at its first poll (nearly all do) needs no race
        // with the outcome; one that waits races it, the outcome first, so that an answer
        // that comes before the whole request is written leaves the runner poisoned.
        let mut write = pin!(write_frame(&self.stdin, &self.write_buf));
        let written = match poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await {
            Poll::Ready(written) => written,
            Poll::Pending => tokio::select! {
                biased;
                settled = self.link.outcome() => {
                    return (settled.unwrap_or(Err(RunnerError::Poisoned)), false);
                }
                written = &mut write => written,
            },
        };
        match written {
            Ok(()) => {}
            // The worker is exiting or stopped reading: its reader reports how, promptly.
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {}
            Err(error) => return (Err(RunnerError::Io(error)), false),
        }
        let outcome = self.link.outcome().await;
        (outcome.unwrap_or(Err(RunnerError::Poisoned)), true)
    }

    /// Kills a worker whose request ran out of time.
    async fn timed_out(&mut self, after: Duration) -> RunnerError {
        self.link.lock().killed_by_pool = Some(format!("its request timed out after {after:?}"));
        kill_group(self.pid);
        let stderr = stderr_text(self.stderr.clone()).await;
        RunnerError::Timeout { after, stderr }
    }

    /// Checks an idle worker before it is lent: it must not have faulted (written output
    /// nobody asked for, broken the protocol, closed its stdout, exited) since its last
    /// call. The reader task has been watching; this lets it catch up with what arrived
    /// just now (one `poll`), and the call that follows does not ask again.
    pub(crate) async fn check_idle(&mut self) -> Result<(), RunnerError> {
        // Output already in the pipe must retire the worker here, where the pool can hand
        // the caller another, rather than fail the call it is lent for.
        if self.look()? {
            Box::pin(self.wait_for_reader()).await;
            return self.usable();
        }
        Ok(())
    }

    /// The worker's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Calls answered so far (health-check pings and a session's handshake included: this
    /// counts what the worker answered, not the pool's checkouts).
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// Whether the runner refuses calls: an earlier call failed or was cancelled
    /// half-way, or the worker faulted since (exited, closed its stdout, broke the
    /// protocol, wrote output nobody asked for).
    pub fn is_poisoned(&self) -> bool {
        let state = self.link.lock();
        self.poisoned || state.faulted || state.exited_at.is_some()
    }

    /// Whether the worker process is still running. No system call: the task reading
    /// the worker learns of its exit as it happens.
    pub fn is_alive(&self) -> bool {
        self.link.exit_status().is_none()
    }

    /// How the worker ended, as far as the runner knows now.
    pub(crate) fn fate(&self) -> Fate {
        let state = self.link.lock();
        if state.killed_by_pool.is_some() {
            Fate::Killed
        } else if let Some(fate) = state.first_fault {
            fate
        } else if state.exited_at.is_some() {
            Fate::Exited
        } else if self.poisoned || state.faulted {
            Fate::Faulted
        } else {
            Fate::Stopped
        }
    }

    /// How long the worker lived, if it exited on its own soon after it started (within
    /// a second), before it ever answered: it may not be able to start at all. A worker
    /// that ran longer, or answered, was able to start.
    pub(crate) fn died_young(&self) -> Option<Duration> {
        let state = self.link.lock();
        let lived = state.exited_at?.saturating_duration_since(self.started);
        (!state.answered && state.killed_by_pool.is_none() && lived < YOUNG).then_some(lived)
    }

    /// Waits up to `bound` for the worker to exit; its status if it did.
    pub(crate) async fn wait_exit(&mut self, bound: Duration) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(bound, self.link.exited()).await.ok()
    }

    /// Stops the worker: closes its stdin (so it sees end of input), waits up to
    /// `kill_grace` for it to exit, then kills its whole process group and reaps it.
    pub async fn shutdown(self) {
        self.stop().await;
    }

    /// Stops a worker its pool retires and counts (and logs) how it ended, `fate` as seen
    /// before it was stopped: one in good order that would not exit once told to counts
    /// as killed.
    pub(crate) async fn retire(self, fate: Fate, counters: &Counters) {
        let pid = self.pid;
        let killed = self.stop().await;
        let fate = if fate == Fate::Stopped && killed {
            Fate::Killed
        } else {
            fate
        };
        counters.worker_ended(pid, fate);
    }

    /// [`shutdown`](Runner::shutdown), saying whether the worker had to be killed (it did
    /// not exit within `kill_grace` of its stdin being closed).
    pub(crate) async fn stop(mut self) -> bool {
        // A reply stuck in a write to a worker that stops reading holds the lock: the kill
        // below frees it.
        let closed = match tokio::time::timeout(self.kill_grace, self.stdin.lock()).await {
            Ok(mut stdin) => {
                drop(stdin.take());
                true
            }
            Err(_) => false,
        };
        let killed = !closed || self.wait_exit(self.kill_grace).await.is_none();
        if killed {
            let reason = format!(
                "it did not exit within {:?} of its stdin being closed",
                self.kill_grace
            );
            self.link.lock().killed_by_pool.get_or_insert(reason);
        }
        self.kill().await;
        killed
    }

    /// Kills the worker's process group and waits (briefly) until the worker is reaped.
    async fn kill(&mut self) {
        // Grandchildren may outlive the leader; the group goes in any case (once the leader
        // is reaped, the task that reaped it has killed the group).
        if self.is_alive() {
            kill_group(self.pid);
        }
        let _ = self.wait_exit(REAP_BOUND).await;
    }
}

impl<P: Protocol> Drop for Runner<P> {
    fn drop(&mut self) {
        if self.is_alive() {
            // The waiting task owns the child, whose `kill_on_drop` kills the leader when
            // the task is dropped (tokio reaps it); the group goes too. Once the leader is
            // reaped, that task has killed the group already (and its id may be reused).
            kill_group(self.pid);
        }
        self.reader.abort();
        self.waiter.abort();
        if let Some(stderr) = &self.stderr {
            stderr.stop();
        }
    }
}

impl<P: Protocol> std::fmt::Debug for Runner<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("pid", &self.pid)
            .field("calls", &self.calls)
            .field("poisoned", &self.is_poisoned())
            .finish_non_exhaustive()
    }
}

/// How a worker's life ended, for the pool's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Exited or closed its stdout on its own.
    Exited,
    /// Killed by the pool (a request timed out, it would not exit).
    Killed,
    /// Broke the protocol, wrote output nobody asked for, or a call on it failed or was
    /// cancelled half-way.
    Faulted,
    /// Stopped while healthy: retired by the pool (its `max_uses` or `max_lifetime`, which
    /// [`WorkerSpec::max_requests`] and [`WorkerSpec::max_age`] set), idle timeout,
    /// shrinking, shutdown.
    Stopped,
}

impl Fate {
    /// What a log line says: `exited`, `killed by the pool`, `faulted`, `stopped`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Fate::Exited => "exited",
            Fate::Killed => "killed by the pool",
            Fate::Faulted => "faulted",
            Fate::Stopped => "stopped",
        }
    }
}

/// Refuses (and marks `poisoned`) a runner that is poisoned, faulted or exited, with the
/// reason if it was not reported yet. Takes the state its caller locked, so that the check
/// and what the caller does next are one lock section.
fn refuse_unusable<P: Protocol>(
    poisoned: &mut bool,
    link: &Link<P>,
    state: &mut LinkState<P>,
) -> Result<(), RunnerError> {
    if *poisoned || state.faulted || state.exited_at.is_some() {
        *poisoned = true;
        return Err(link.refusal(state));
    }
    Ok(())
}

/// Whether the worker's stdout holds bytes its reader has not read yet: one `poll`.
fn unread_output<P: Protocol>(state: &LinkState<P>) -> bool {
    state.stdout_probe.as_ref().is_some_and(|probe| {
        let mut fds = [PollFd::new(probe, PollFlags::IN)];
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(rustix::event::poll(&mut fds, Some(&now)), Ok(1..))
    })
}

/// Writes one whole frame to a worker's stdin.
async fn write_frame(stdin: &SharedStdin, frame: &[u8]) -> io::Result<()> {
    // Nobody else writes, nearly always: taking the lock at once skips its queueing future.
    let mut stdin = match stdin.try_lock() {
        Ok(stdin) => stdin,
        Err(_) => stdin.lock().await,
    };
    match stdin.as_mut() {
        Some(stdin) => stdin.write_all(frame).await,
        None => Err(io::ErrorKind::BrokenPipe.into()),
    }
}

/// The start of `bytes`, for an error message.
pub(crate) fn quote(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(&bytes[..bytes.len().min(QUOTED_OUTPUT)])
}
