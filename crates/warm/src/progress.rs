//! A progress line on stderr (done, failed, rate), redrawn a few times a second when
//! stderr is a terminal.
//!
//! Written by hand rather than with a progress-bar crate: one line of counters, redrawn
//! with a carriage return, is all it shows.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::args::When;

/// How often the line is redrawn.
const EVERY: Duration = Duration::from_millis(200);

/// The progress line, if shown.
pub(crate) struct Progress(Option<Arc<Shown>>);

struct Shown {
    started: Instant,
    succeeded: AtomicU64,
    failed: AtomicU64,
    /// Held while writing to stderr, so other messages do not cut the line.
    stderr: Mutex<()>,
    stopped: AtomicBool,
}

impl Progress {
    /// Starts redrawing the line, if `when` says it is wanted here.
    pub(crate) fn start(when: When) -> Self {
        let wanted = match when {
            When::Always => true,
            When::Never => false,
            When::Auto => std::io::stderr().is_terminal(),
        };
        if !wanted {
            return Self(None);
        }
        let shown = Arc::new(Shown {
            started: Instant::now(),
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            stderr: Mutex::new(()),
            stopped: AtomicBool::new(false),
        });
        let redraw = Arc::clone(&shown);
        tokio::spawn(async move {
            while !redraw.stopped.load(Ordering::SeqCst) {
                tokio::time::sleep(EVERY).await;
                redraw.draw();
            }
        });
        Self(Some(shown))
    }

    /// Counts what is done so far.
    pub(crate) fn update(&self, succeeded: u64, failed: u64) {
        if let Some(shown) = &self.0 {
            shown.succeeded.store(succeeded, Ordering::Relaxed);
            shown.failed.store(failed, Ordering::Relaxed);
        }
    }

    /// Runs `write` (a message on stderr) with the line cleared, and draws it again after.
    pub(crate) fn suspend(&self, write: impl FnOnce()) {
        match &self.0 {
            None => write(),
            Some(shown) => {
                let _guard = shown.stderr.lock().unwrap_or_else(|e| e.into_inner());
                eprint!("\r\x1b[K");
                write();
            }
        }
    }

    /// Draws the final counts and ends the line.
    pub(crate) fn finish(&self, succeeded: u64, failed: u64) {
        if let Some(shown) = &self.0 {
            shown.stopped.store(true, Ordering::SeqCst);
            self.update(succeeded, failed);
            shown.draw();
            eprintln!();
        }
    }
}

impl Shown {
    fn draw(&self) {
        let _guard = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        let succeeded = self.succeeded.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = (succeeded + failed) as f64 / seconds.max(1e-3);
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\r\x1b[K{} done, {failed} failed, {rate:.0} jobs/s, {seconds:.1} s",
            succeeded + failed
        );
        let _ = stderr.flush();
    }
}
