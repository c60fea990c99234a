//! How to start a worker and how long to keep it.

use std::path::PathBuf;
use std::time::Duration;

use pool_core::BuildError;

use crate::launch::Launch;
use crate::stderr::StderrMode;

/// How to start a worker process, and the limits it runs under. A builder: every method
/// takes and returns the spec.
///
/// Arguments never pass through a shell. The worker starts in a process group of its own,
/// so it is killed together with anything it starts.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use subprocess_pool::WorkerSpec;
///
/// let spec = WorkerSpec::new("python3")
///     .args(["-u", "worker.py"])
///     .env("PYTHONHASHSEED", "0")
///     .ready_line("READY")
///     .startup_timeout(Duration::from_secs(5))
///     .request_timeout(Duration::from_secs(10))
///     .max_requests(1_000);
/// # let _ = spec;
/// ```
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    pub(crate) launch: Launch,
    pub(crate) ready_line: Option<String>,
    pub(crate) startup_timeout: Duration,
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) max_requests: Option<u64>,
    pub(crate) max_age: Option<Duration>,
    pub(crate) stderr: StderrMode,
    pub(crate) kill_grace: Duration,
}

impl WorkerSpec {
    /// A worker running `program` (looked up on `PATH` unless it contains a `/`).
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            launch: Launch::new(program),
            ready_line: None,
            startup_timeout: Duration::from_secs(30),
            request_timeout: None,
            max_requests: None,
            max_age: None,
            stderr: StderrMode::default(),
            kill_grace: Duration::from_secs(1),
        }
    }

    crate::launch::launch_setters!();

    /// Refuses settings under which no worker could ever serve a call, naming the setting.
    pub(crate) fn validate(&self) -> Result<(), BuildError> {
        let zero = |field, value: Option<Duration>| match value {
            Some(Duration::ZERO) => Err(BuildError::new(field, "must be more than zero")),
            _ => Ok(()),
        };
        zero("WorkerSpec::startup_timeout", Some(self.startup_timeout))?;
        zero("WorkerSpec::request_timeout", self.request_timeout)?;
        zero("WorkerSpec::max_age", self.max_age)?;
        if self.max_requests == Some(0) {
            return Err(BuildError::new(
                "WorkerSpec::max_requests",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// The worker is ready once it prints this line on stdout (default: ready once
    /// spawned). Lines before it are skipped.
    pub fn ready_line(mut self, line: impl Into<String>) -> Self {
        self.ready_line = Some(line.into());
        self
    }

    /// Bounds how long a worker may take to become ready (default 30 s).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Bounds each request; a request that takes longer kills the worker (default: none).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Retires a worker after this many requests, shortened per worker by a random 0-5% so
    /// workers started together do not all restart together (default: none).
    pub fn max_requests(mut self, requests: u64) -> Self {
        self.max_requests = Some(requests);
        self
    }

    /// Retires a worker once it is this old (default: none).
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// What happens to the worker's stderr (default: the last 8 KiB kept for error
    /// messages).
    pub fn stderr(mut self, mode: StderrMode) -> Self {
        self.stderr = mode;
        self
    }

    /// How long a worker whose stdin was closed may take to exit before its process group
    /// is killed (default 1 s).
    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }

    /// The program this spec runs.
    pub fn program(&self) -> &std::path::Path {
        self.launch.program()
    }
}
