//! A worker's stderr: kept as a bounded tail for error messages, discarded, or inherited.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::AsyncReadExt;
use tokio::process::ChildStderr;

/// What happens to a worker's stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StderrMode {
    /// Keep the last this-many bytes, read as they come (so a chatty worker never blocks
    /// on a full pipe), and put them in error messages.
    Tail(usize),
    /// Throw it away.
    Discard,
    /// Let it go to this process's stderr.
    Inherit,
}

impl Default for StderrMode {
    fn default() -> Self {
        StderrMode::Tail(8 * 1024)
    }
}

impl StderrMode {
    pub(crate) fn stdio(self) -> Stdio {
        match self {
            StderrMode::Tail(_) => Stdio::piped(),
            StderrMode::Discard => Stdio::null(),
            StderrMode::Inherit => Stdio::inherit(),
        }
    }
}

/// The last bytes a worker wrote to stderr, filled by a task of its own.
#[derive(Debug, Clone, Default)]
pub(crate) struct StderrTail {
    bytes: Arc<Mutex<VecDeque<u8>>>,
    /// Closed when the pipe reaches its end.
    done: Arc<tokio::sync::Notify>,
    finished: Arc<std::sync::atomic::AtomicBool>,
    /// The task reading the pipe: stopped with the worker (see [`StderrTail::stop`]).
    reading: Option<tokio::task::AbortHandle>,
}

impl StderrTail {
    /// Starts draining `stderr` into a tail of at most `limit` bytes. The task ends when
    /// the worker's process group closes the pipe.
    pub(crate) fn drain(mut stderr: ChildStderr, limit: usize) -> Self {
        let mut tail = StderrTail::default();
        let filler = tail.clone();
        let reading = tokio::spawn(async move {
            let mut chunk = vec![0; 4096];
            while let Ok(read @ 1..) = stderr.read(&mut chunk).await {
                let mut kept = filler.bytes.lock().unwrap_or_else(PoisonError::into_inner);
                kept.extend(&chunk[..read]);
                let excess = kept.len().saturating_sub(limit);
                kept.drain(..excess);
            }
            filler
                .finished
                .store(true, std::sync::atomic::Ordering::Release);
            filler.done.notify_waiters();
        });
        tail.reading = Some(reading.abort_handle());
        tail
    }

    /// Stops reading the pipe and closes this end of it. The task ends by itself when the
    /// worker's process group closes the pipe, but a process that left the group (a
    /// daemon) may hold it open for ever: without this, the task and its fd would stay as
    /// long as the daemon.
    pub(crate) fn stop(&self) {
        if let Some(reading) = &self.reading {
            reading.abort();
        }
    }

    /// Waits until the pipe has been read to its end, or `bound` passes (a grandchild may
    /// hold it open), so an error message gets everything the worker said.
    pub(crate) async fn settle(&self, bound: std::time::Duration) {
        let done = self.done.notified();
        if !self.finished.load(std::sync::atomic::Ordering::Acquire) {
            let _ = tokio::time::timeout(bound, done).await;
        }
    }

    /// The tail as text, for an error message.
    pub(crate) fn text(&self) -> String {
        let kept = self.bytes.lock().unwrap_or_else(PoisonError::into_inner);
        let (front, back) = kept.as_slices();
        let mut text = String::from_utf8_lossy(front).into_owned();
        text.push_str(&String::from_utf8_lossy(back));
        text.trim_end().to_owned()
    }
}
