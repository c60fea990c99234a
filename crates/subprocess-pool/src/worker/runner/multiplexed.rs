//! A runner with several requests in flight at once, matched to their answers by id.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::codec::Encoder;

use super::Runner;
use super::link::Link;
use super::reader::stderr_text;
use crate::process_group::kill_group;
use crate::protocol::{Cancellation, Protocol, ProtocolError};
use crate::stderr::StderrTail;
use crate::worker::error::RunnerError;

/// A worker that serves several requests at once: calls take `&self`, each request gets
/// the id [`Protocol::prepare_multiplexed`] gives it, and the reader task hands each
/// response to the request with its id. Requests are written whole, in order, by a task
/// of their own, so a caller that gives up half-way never leaves half a request on the
/// pipe.
///
/// A request that times out (the spec's `request_timeout`) or whose call is dropped is
/// withdrawn as [`Protocol::cancel`] says; unless the worker is killed, it counts as in
/// flight until the worker answers it. When the worker dies or breaks the protocol,
/// exactly the requests in flight on it fail.
pub(crate) struct MuxRunner<P: Protocol> {
    /// For its lifecycle only (behind a lock because its request codec is not `Sync`).
    runner: Mutex<Runner<P>>,
    link: Arc<Link<P>>,
    protocol: P,
    pid: u32,
    request_timeout: Option<Duration>,
    stderr: Option<StderrTail>,
    started: Instant,
    /// Whole encoded requests, for the writing task.
    frames: mpsc::UnboundedSender<BytesMut>,
    writer: AbortOnDrop,
    encoder: Mutex<P::Codec>,
    sent: AtomicU64,
}

/// Aborts the writing task when the runner goes.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<P: Protocol> MuxRunner<P> {
    /// Takes over a started runner that no call has used.
    pub(crate) fn new(runner: Runner<P>) -> Self {
        runner.link.lock().multiplexed = true;
        let (frames, queue) = mpsc::unbounded_channel();
        let writer = AbortOnDrop(tokio::spawn(write_frames(runner.stdin.clone(), queue)));
        Self {
            encoder: Mutex::new(runner.protocol.codec()),
            sent: AtomicU64::new(runner.sent),
            link: runner.link.clone(),
            protocol: runner.protocol.clone(),
            pid: runner.pid,
            request_timeout: runner.request_timeout,
            stderr: runner.stderr.clone(),
            started: runner.started,
            runner: Mutex::new(runner),
            frames,
            writer,
        }
    }

    /// Sends one request and waits for its answer, while other calls do the same.
    pub(crate) async fn call(&self, mut request: P::Request) -> Result<P::Response, RunnerError> {
        let sequence = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        let id = self.protocol.prepare_multiplexed(&mut request, sequence)?;
        let frame = self.encode(request)?;
        let (reply, answer) = oneshot::channel();
        {
            let mut state = self.link.lock();
            if state.faulted || state.exited_at.is_some() {
                return Err(self.link.refusal(&mut state));
            }
            if state.in_flight.contains_key(&id) || state.abandoned.contains_key(&id) {
                return Err(ProtocolError::InvalidRequest(format!(
                    "request id {id} is already in flight on this worker"
                ))
                .into());
            }
            state.asked = true;
            state.in_flight.insert(id, reply);
        }
        let mut in_flight = InFlight {
            runner: self,
            id: Some(id),
        };
        // A closed queue means the worker's stdin is gone: the reader reports its end to
        // this request.
        let _ = self.frames.send(frame);
        let answer = match self.request_timeout {
            None => answer.await,
            Some(limit) => match tokio::time::timeout(limit, answer).await {
                Ok(answer) => answer,
                Err(_) => {
                    let killed = in_flight.give_up();
                    return Err(match killed {
                        false => RunnerError::RequestTimeout { after: limit },
                        true => RunnerError::Timeout {
                            after: limit,
                            stderr: stderr_text(self.stderr.clone()).await,
                        },
                    });
                }
            },
        };
        in_flight.id = None;
        answer.unwrap_or(Err(RunnerError::Poisoned))
    }

    fn encode(&self, request: P::Request) -> Result<BytesMut, RunnerError> {
        let mut frame = BytesMut::new();
        let mut encoder = self.encoder.lock().unwrap_or_else(PoisonError::into_inner);
        encoder.encode(request, &mut frame)?;
        Ok(frame)
    }

    /// Withdraws request `id`, whose caller gave up, as the protocol says; whether the
    /// worker was killed for it.
    fn withdraw(&self, id: u64) -> bool {
        let mut state = self.link.lock();
        if state.in_flight.remove(&id).is_none() {
            return false; // answered (or failed) meanwhile
        }
        match self.protocol.cancel(id) {
            Cancellation::Kill => {
                state.killed_by_pool = Some("a request on it timed out or was dropped".into());
                drop(state);
                kill_group(self.pid);
                return true;
            }
            Cancellation::Send(request) => {
                if let Ok(frame) = self.encode(request) {
                    let _ = self.frames.send(frame);
                }
            }
            Cancellation::Forget => {}
        }
        let overdue = self.request_timeout.map(|limit| Instant::now() + limit);
        state.abandoned.insert(id, overdue);
        false
    }

    /// Requests in flight, those given up on and not answered yet included.
    pub(crate) fn load(&self) -> usize {
        let state = self.link.lock();
        state.in_flight.len() + state.abandoned.len()
    }

    /// [`load`](Self::load) if the worker [is usable](Self::is_usable), in one lock.
    pub(crate) fn usable_load(&self) -> Option<usize> {
        let state = self.link.lock();
        let usable = !(state.faulted || state.exited_at.is_some());
        usable.then(|| state.in_flight.len() + state.abandoned.len())
    }

    /// Whether the worker can take requests: not faulted, not exited.
    pub(crate) fn is_usable(&self) -> bool {
        self.usable_load().is_some()
    }

    /// Requests sent so far.
    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// When the worker started.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// The worker's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// How the worker's life ended, as far as is known now.
    pub(crate) fn fate(&self) -> super::Fate {
        self.runner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .fate()
    }

    /// The runner, to stop it; requests still in flight fail when it stops.
    pub(crate) fn into_runner(self) -> Runner<P> {
        let Self { runner, writer, .. } = self;
        drop(writer);
        runner.into_inner().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<P: Protocol> std::fmt::Debug for MuxRunner<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxRunner")
            .field("pid", &self.pid)
            .field("load", &self.load())
            .field("sent", &self.sent())
            .finish_non_exhaustive()
    }
}

/// A request in flight; dropped before its answer came, it is withdrawn.
struct InFlight<'a, P: Protocol> {
    runner: &'a MuxRunner<P>,
    id: Option<u64>,
}

impl<P: Protocol> InFlight<'_, P> {
    /// Withdraws the request now; whether the worker was killed for it.
    fn give_up(&mut self) -> bool {
        self.id.take().is_some_and(|id| self.runner.withdraw(id))
    }
}

impl<P: Protocol> Drop for InFlight<'_, P> {
    fn drop(&mut self) {
        self.give_up();
    }
}

/// Writes whole requests in order, several at a time when they queue up.
async fn write_frames(stdin: super::SharedStdin, mut queue: mpsc::UnboundedReceiver<BytesMut>) {
    while let Some(mut batch) = queue.recv().await {
        // A lone request is written as it is; queued ones are appended to it.
        while let Ok(more) = queue.try_recv() {
            batch.extend_from_slice(&more);
        }
        let mut stdin = stdin.lock().await;
        let Some(pipe) = stdin.as_mut() else { return };
        // A worker that stopped reading is found dead or faulty by its reader.
        if pipe.write_all(&batch).await.is_err() {
            return;
        }
    }
}
