//! The task that reads a worker's stdout for as long as it runs: it hands each response to
//! the request it answers, passes messages to the handler (writing any reply), and notices
//! at once when the worker writes what nobody asked for, breaks the protocol, closes its
//! stdout or exits.

use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdout};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Sleep};
use tokio_util::codec::{Decoder, Encoder};

use super::link::Link;
use super::{Counters, MessageHandler, SharedStdin, quote};
use crate::process_group::kill_group;
use crate::protocol::{Incoming, Protocol, ProtocolError};
use crate::stderr::StderrTail;
use crate::worker::error::RunnerError;

/// After the worker exits, how long its stdout is still read for its last words (an answer
/// written just before exiting). A descendant that left the process group may hold the
/// pipe open for ever; the worker's end is reported after this at the latest.
const EXIT_DRAIN: Duration = Duration::from_millis(100);
/// How many batches of replies to a worker's own requests may wait to be written.
const REPLY_QUEUE: usize = 64;
/// How long to wait for the last of a dead worker's stderr.
const STDERR_SETTLE: Duration = Duration::from_millis(200);

/// How the reading ended.
enum End {
    /// The worker exited (and was reaped) while its stdout was open.
    Exited(ExitStatus),
    /// Its stdout reached end of file.
    StdoutClosed,
    /// It broke the protocol, wrote output nobody asked for, or the pipe failed.
    Broken(RunnerError),
}

/// A response as read: the tag of the read it came in (see `Waiter::sequence`), the id it
/// carries, and the response.
pub(crate) type Decoded<P> = (u64, Option<u64>, <P as Protocol>::Response);

pub(crate) struct Reader<P: Protocol> {
    pub(crate) link: Arc<Link<P>>,
    pub(crate) protocol: P,
    pub(crate) codec: P::Codec,
    /// Bytes read and not yet decoded (what followed the ready line, to start with).
    pub(crate) buf: BytesMut,
    pub(crate) stdin: SharedStdin,
    pub(crate) handler: Option<MessageHandler<P>>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) stderr: Option<StderrTail>,
    pub(crate) pid: u32,
    pub(crate) kill_grace: Duration,
    /// Enforced here, by a watchdog timer armed once per period rather than once per call.
    pub(crate) request_timeout: Option<Duration>,
    /// Set when `run` ends normally; see `Drop`.
    pub(crate) finished: bool,
    /// How many bytes at the end of `buf` the latest read brought, and the latest
    /// registered request when it returned; `older_tag` is that of the bytes before them.
    /// A frame is as old as its first byte (see `Waiter::sequence`).
    pub(crate) fresh: usize,
    pub(crate) fresh_tag: u64,
    pub(crate) older_tag: u64,
    /// Replies to the worker's own requests, for the task that writes them (made when
    /// the first reply is due).
    pub(crate) replies: Option<mpsc::Sender<BytesMut>>,
    /// The responses of the latest read, kept to reuse the allocation.
    pub(crate) responses: Vec<Decoded<P>>,
}

impl<P: Protocol> Drop for Reader<P> {
    /// A panic in the protocol's code (its decoder, `classify`) ends this task: the worker
    /// is faulted and killed, so the waiting call gets an error instead of waiting for an
    /// answer nothing will deliver. (Aborted with its runner, there is nobody to tell.)
    fn drop(&mut self) {
        self.link.lock().stdout_probe = None;
        if !self.finished && std::thread::panicking() {
            self.link
                .fault(RunnerError::Protocol(ProtocolError::Malformed(
                    "the protocol's code panicked while reading the worker's output".into(),
                )));
            kill_group(self.pid);
        }
    }
}

impl<P: Protocol> Reader<P> {
    /// Reads until the worker is gone. `exit` is the worker's exit status, published by
    /// the task that waits for it ([`wait_for_exit`]): polling a waiting `Child` asks the
    /// system (`waitpid`) each time, which is more than a call's whole overhead here.
    pub(crate) async fn run(
        mut self,
        mut stdout: ChildStdout,
        mut exit: watch::Receiver<Option<ExitStatus>>,
    ) {
        match self.read_until_end(&mut stdout, &mut exit).await {
            End::Exited(status) => {
                let _ = tokio::time::timeout(EXIT_DRAIN, self.drain(&mut stdout)).await;
                drop(stdout);
                // Whatever it started goes with it.
                kill_group(self.pid);
                let error = self.ended(status).await;
                self.link.fault(error);
            }
            End::StdoutClosed => {
                let status = match tokio::time::timeout(self.kill_grace, exited(&mut exit)).await {
                    Ok(status) => status,
                    Err(_) => {
                        self.link.lock().killed_by_pool = Some(format!(
                            "it closed its stdout but did not exit within {:?}",
                            self.kill_grace
                        ));
                        kill_group(self.pid);
                        exited(&mut exit).await
                    }
                };
                kill_group(self.pid);
                let error = self.ended(status).await;
                self.link.fault(error);
            }
            End::Broken(error) => {
                // Nothing it says can be trusted any more; the runner's owner stops it.
                self.link.fault(error);
            }
        }
        self.link.lock().stdout_probe = None;
        self.finished = true;
    }

    async fn read_until_end(
        &mut self,
        stdout: &mut ChildStdout,
        exit: &mut watch::Receiver<Option<ExitStatus>>,
    ) -> End {
        // Fires at least once per `request_timeout` (and never without one), then re-arms
        // for the outstanding request's deadline: a request sent after the last arming has
        // a deadline after the next firing, so it is never missed, and costs no timer.
        let period = self.request_timeout.unwrap_or(Duration::from_secs(86_400));
        let mut watchdog = pin!(tokio::time::sleep(period));
        let mut exit_seen = pin!(exited(exit));
        // Each is polled to leave this task's waker with it (the timer again after each
        // re-arm), and otherwise only when it may be ready: once the exit is published,
        // once the timer has fired. Polled on every pass, the two cost about as much as
        // the rest of the pass.
        let (mut exit_polled, mut watchdog_polled) = (false, false);
        loop {
            if let Err(error) = self.route().await {
                return End::Broken(error);
            }
            self.buf.reserve(8 * 1024);
            let before = self.buf.len();
            tokio::select! {
                biased;
                read = stdout.read_buf(&mut self.buf) => match read {
                    Ok(0) => return End::StdoutClosed,
                    Ok(_) => self.tag_read(before),
                    Err(error) => return End::Broken(RunnerError::Io(error)),
                },
                status = when_due(exit_seen.as_mut(), &mut exit_polled, |_| self.link.exit_published()) => {
                    return End::Exited(status);
                }
                () = when_due(watchdog.as_mut(), &mut watchdog_polled, Sleep::is_elapsed),
                    if self.request_timeout.is_some() =>
                {
                    let now = Instant::now();
                    let (deadline, multiplexed) = {
                        let state = self.link.lock();
                        (state.next_deadline(), state.multiplexed)
                    };
                    match deadline {
                        Some(deadline) if deadline <= now && multiplexed => {
                            return End::Broken(self.overdue(period).await);
                        }
                        Some(deadline) if deadline <= now => {
                            return End::Broken(self.timed_out(period).await);
                        }
                        Some(deadline) => watchdog.as_mut().reset(deadline),
                        None => watchdog.as_mut().reset(now + period),
                    }
                    // A timer re-armed after it fired must be polled to hold a waker again.
                    watchdog_polled = false;
                }
            }
        }
    }

    /// Kills a worker whose request ran out of time; the error for that request.
    async fn timed_out(&mut self, after: Duration) -> RunnerError {
        self.link.lock().killed_by_pool = Some(format!("its request timed out after {after:?}"));
        kill_group(self.pid);
        let stderr = stderr_text(self.stderr.clone()).await;
        RunnerError::Timeout { after, stderr }
    }

    /// Kills a multiplexed worker that left a request its caller gave up on unanswered
    /// for a further `request_timeout`.
    async fn overdue(&mut self, after: Duration) -> RunnerError {
        let reason =
            format!("it left a request its caller gave up on unanswered for a further {after:?}");
        self.link.lock().killed_by_pool = Some(reason.clone());
        kill_group(self.pid);
        let stderr = stderr_text(self.stderr.clone()).await;
        RunnerError::Killed { reason, stderr }
    }

    /// Reads what an exited worker left in the pipe, delivering any answer in it.
    async fn drain(&mut self, stdout: &mut ChildStdout) {
        loop {
            if let Err(error) = self.route().await {
                self.link.fault(error);
                return;
            }
            self.buf.reserve(8 * 1024);
            let before = self.buf.len();
            match stdout.read_buf(&mut self.buf).await {
                Ok(1..) => self.tag_read(before),
                Ok(0) | Err(_) => return,
            }
        }
    }

    /// Notes what the read that grew the buffer from `before` bytes brought, and which
    /// request was the latest registered when it returned.
    fn tag_read(&mut self, before: usize) {
        if self.fresh > 0 {
            // Bytes of an earlier read still undecoded: the older part.
            self.older_tag = self.fresh_tag;
        }
        self.fresh = self.buf.len() - before;
        self.fresh_tag = self.link.registered.load(Ordering::SeqCst);
    }

    /// Decodes every whole frame in the buffer, passes messages to the handler, has any
    /// replies written, and delivers the responses; then wakes a call waiting for the
    /// reader to catch up.
    async fn route(&mut self) -> Result<(), RunnerError> {
        let routed = self.route_frames();
        if self.link.catching_up.load(Ordering::SeqCst) {
            self.link.routed.notify_waiters();
        }
        routed
    }

    fn route_frames(&mut self) -> Result<(), RunnerError> {
        // Kept between reads: one allocation per worker, not one per answer.
        let mut responses = std::mem::take(&mut self.responses);
        let mut replies = BytesMut::new();
        let decoded = loop {
            let tag = if self.buf.len() <= self.fresh {
                self.fresh_tag
            } else {
                self.older_tag
            };
            match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => match self.protocol.classify(frame) {
                    Ok(Incoming::Response { id, response }) => {
                        responses.push((tag, id, response));
                    }
                    Ok(Incoming::Message(message)) => self.handle(message, &mut replies),
                    Err(error) => break Err(error.into()),
                },
                Ok(None) => break Ok(()),
                Err(error) => break Err(error.into()),
            }
        };
        if self.buf.len() <= self.fresh {
            self.older_tag = self.fresh_tag;
        }
        self.fresh = 0;
        if !replies.is_empty() {
            self.write_replies(replies)?;
        }
        let delivered = match responses.is_empty() {
            true => Ok(()),
            false => self.deliver(&mut responses),
        };
        responses.clear();
        self.responses = responses;
        delivered?;
        decoded
    }

    /// Hands replies to the task that writes them, in order: a worker that writes to its
    /// stdout without reading its stdin must not stop this reader (whose watchdog would
    /// stop with it), nor must a caller in the middle of writing a long request. A worker
    /// that sends requests much faster than it reads the answers is a fault, not a reason
    /// to buffer without bound.
    fn write_replies(&mut self, replies: BytesMut) -> Result<(), RunnerError> {
        let sender = self.replies.get_or_insert_with(|| {
            let (sender, mut queue) = mpsc::channel::<BytesMut>(REPLY_QUEUE);
            let stdin = self.stdin.clone();
            tokio::spawn(async move {
                while let Some(replies) = queue.recv().await {
                    let mut stdin = stdin.lock().await;
                    let Some(stdin) = stdin.as_mut() else { return };
                    // A worker that stopped reading is found dead or faulty by other means.
                    if stdin.write_all(&replies).await.is_err() {
                        return;
                    }
                }
            });
            sender
        });
        match sender.try_send(replies) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(ProtocolError::Malformed(format!(
                "the worker sent more than {REPLY_QUEUE} batches of requests to the host \
                 without reading the answers"
            ))
            .into()),
        }
    }

    /// Hands the response to the request waiting for it. A response with no request
    /// waiting, or for another request, is an error (the waiting request, if any, gets it).
    /// So are responses that arrive together with it, since no request can be waiting for
    /// them (the lock is held from the first to the last), and, under a protocol without
    /// ids, any output right after it: which one answers this request cannot be told.
    fn deliver(&mut self, responses: &mut Vec<Decoded<P>>) -> Result<(), RunnerError> {
        let mut state = self.link.lock();
        if state.multiplexed {
            return self.deliver_by_id(state, responses);
        }
        let mut responses = responses.drain(..);
        let Some((tag, id, response)) = responses.next() else {
            return Ok(());
        };
        let Some(waiter) = state.waiter.take() else {
            drop(state);
            return Err(self.unasked("while no request was outstanding", &response, None));
        };
        let error = match (waiter.id, id) {
            // Read before this request was sent: an answer to nothing it asked.
            _ if tag < waiter.sequence => {
                Some(self.unasked("before the outstanding request was sent", &response, None))
            }
            (Some(expected), Some(got)) if expected != got => {
                Some(ProtocolError::Mismatch { expected, got }.into())
            }
            (Some(expected), None) => Some(
                ProtocolError::Malformed(format!(
                    "a response without an id, expected id {expected}"
                ))
                .into(),
            ),
            (None, _) if responses.len() > 0 || !self.buf.is_empty() => Some(self.unasked(
                "right after its response to this request",
                &response,
                responses.as_slice().first().map(|(_, _, next)| next),
            )),
            _ => None,
        };
        if let Some(error) = error {
            state.waiter = Some(waiter);
            return Err(error);
        }
        state.answered = true;
        let caller = state.settle(waiter, Ok(response));
        drop(state);
        if let Some(caller) = caller {
            caller.wake();
        }
        match responses.next() {
            Some((_, _, extra)) => {
                Err(self.unasked("while no request was outstanding", &extra, None))
            }
            None => Ok(()),
        }
    }

    /// Hands each response of a multiplexed worker to the request in flight with its id.
    /// The answer to a request given up on is dropped; one without an id, or for an id not
    /// in flight, is an error (every request in flight then fails).
    fn deliver_by_id(
        &self,
        mut state: std::sync::MutexGuard<'_, super::link::LinkState<P>>,
        responses: &mut Vec<Decoded<P>>,
    ) -> Result<(), RunnerError> {
        for (_, id, response) in responses.drain(..) {
            let Some(id) = id else {
                return Err(ProtocolError::Malformed(format!(
                    "a response without a request id from a multiplexed worker: {}",
                    quote(format!("{response:?}").as_bytes())
                ))
                .into());
            };
            if let Some(reply) = state.in_flight.remove(&id) {
                state.answered = true;
                let _ = reply.send(Ok(response));
            } else if state.abandoned.remove(&id).is_some() {
                tracing::debug!(target: "subprocess_pool", pool = %self.counters.name(), pid = self.pid, id, "answer to a request given up on dropped");
            } else {
                drop(state);
                let when = format!("for request {id}, which is not in flight");
                return Err(self.unasked(&when, &response, None));
            }
        }
        Ok(())
    }

    /// Passes a message to the handler; encodes the handler's reply, or the protocol's
    /// default one, into `replies`.
    fn handle(&mut self, message: P::Message, replies: &mut BytesMut) {
        let reply = match &self.handler {
            Some(handler) => {
                let pid = self.pid;
                catch_unwind(AssertUnwindSafe(|| handler(pid, &message))).unwrap_or_else(|_| {
                    tracing::warn!(target: "subprocess_pool", pool = %self.counters.name(), pid, "the message handler panicked");
                    None
                })
            }
            None => {
                tracing::debug!(target: "subprocess_pool", pool = %self.counters.name(), pid = self.pid, ?message, "message from a worker dropped: no handler");
                None
            }
        };
        self.counters.message(self.handler.is_some());
        if let Some(reply) = reply.or_else(|| self.protocol.default_reply(&message)) {
            if let Err(error) = self.codec.encode(reply, replies) {
                tracing::warn!(target: "subprocess_pool", pool = %self.counters.name(), pid = self.pid, %error, "could not encode the reply to a worker's message");
            }
        }
    }

    /// The error for output nobody asked for.
    /// The error for output nobody asked for: `response`, then `next` (another response
    /// that came with it) or the bytes still in the buffer.
    fn unasked(
        &self,
        when: &str,
        response: &P::Response,
        next: Option<&P::Response>,
    ) -> RunnerError {
        let pending = match next {
            Some(next) => format!(", then another: {}", quote(format!("{next:?}").as_bytes())),
            None if self.buf.is_empty() => String::new(),
            None => format!(
                ", then {} more bytes starting {:?}",
                self.buf.len(),
                quote(&self.buf)
            ),
        };
        ProtocolError::Unasked(format!(
            "the worker sent a response {when}: {}{pending}; its answers can no longer be \
             matched to requests, so it is not used again",
            quote(format!("{response:?}").as_bytes()),
        ))
        .into()
    }

    /// The error that reports the worker's end.
    async fn ended(&mut self, status: ExitStatus) -> RunnerError {
        let stderr = stderr_text(self.stderr.clone()).await;
        let output = quote(&self.buf).into_owned();
        let state = self.link.lock();
        if let Some(reason) = state.killed_by_pool.clone() {
            return RunnerError::Killed { reason, stderr };
        }
        if !state.asked {
            return RunnerError::Startup {
                reason: format!(
                    "it exited {} before its first request",
                    crate::worker::error::ExitDescription(&status)
                ),
                stderr,
            };
        }
        RunnerError::Exited {
            status,
            stderr,
            output,
        }
    }
}

/// The tail of the worker's stderr, after giving its last lines a moment to arrive.
pub(crate) async fn stderr_text(tail: Option<StderrTail>) -> String {
    match tail {
        Some(tail) => {
            tail.settle(STDERR_SETTLE).await;
            tail.text()
        }
        None => String::new(),
    }
}

/// Waits for the worker to exit and publishes its status (the reader and the runner watch
/// it). The child's `kill_on_drop` still kills it if this task is aborted first.
pub(crate) async fn wait_for_exit<P: Protocol>(
    mut child: Child,
    link: Arc<Link<P>>,
    pid: u32,
    counters: Arc<Counters>,
) {
    let status = child.wait().await.unwrap_or_else(|error| {
        tracing::warn!(target: "subprocess_pool", pool = %counters.name(), pid, %error, "waiting for a worker failed");
        unknown_status()
    });
    link.set_exit(status);
    // Whatever it started goes with it, now: once the group is empty its id may be reused,
    // so nobody kills it later.
    kill_group(pid);
}

/// Polls `future` the first time it is asked, which leaves the task's waker with it, and
/// afterwards only when `due` says it may be ready. `due` must already hold when that
/// waker is woken: the exit flag is set before the watch sends, and a timer is marked
/// elapsed before its waker is taken. `polled` outlives this future (a `select!` makes a
/// new one per pass), so a future made for a later pass does not poll again. The poll runs
/// outside the task's cooperative budget: one the budget turned away would leave no waker
/// behind. (Under `tokio_unstable` task dumps, a traced first poll may also return before
/// registering; this crate does not build with those.)
fn when_due<'a, F: Future>(
    mut future: Pin<&'a mut F>,
    polled: &'a mut bool,
    due: impl Fn(&F) -> bool + 'a,
) -> impl Future<Output = F::Output> + 'a {
    poll_fn(move |cx| {
        if *polled && !due(future.as_ref().get_ref()) {
            return Poll::Pending;
        }
        *polled = true;
        pin!(tokio::task::unconstrained(future.as_mut())).poll(cx)
    })
}

/// The exit status, once published.
async fn exited(exit: &mut watch::Receiver<Option<ExitStatus>>) -> ExitStatus {
    match exit.wait_for(Option::is_some).await {
        Ok(status) => status.expect("waited for Some"),
        // The sender lives in the link, which this task holds.
        Err(_) => unknown_status(),
    }
}

/// Stands in for a status the system would not tell (`wait` failed).
fn unknown_status() -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    ExitStatus::from_raw(0)
}
