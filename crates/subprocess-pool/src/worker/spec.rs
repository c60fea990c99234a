//! How to start a worker and how long to keep it.

use std::path::PathBuf;
use std::time::Duration;

use pool_core::{BuildError, PoolConfig};

use crate::launch::Launch;
use crate::stderr::StderrMode;

/// How long a request may take unless [`WorkerSpec::request_timeout`] says otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How to start a worker process, and the limits it runs under. A builder: every method
/// takes and returns the spec.
///
/// Arguments never pass through a shell. The worker starts in a process group of its own,
/// so it is killed together with anything it starts.
///
/// What it inherits unless told otherwise: this process's whole environment (secrets
/// included) and its working directory. A server should start from
/// [`env_clear`](Self::env_clear) and set only what the program needs with `env`, and
/// give the program as an absolute path (`PATH` is gone too).
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
    pub(crate) ready_line: Option<ReadyLine>,
    pub(crate) greeting: bool,
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
            greeting: false,
            startup_timeout: Duration::from_secs(30),
            request_timeout: Some(DEFAULT_REQUEST_TIMEOUT),
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

    /// Applies `max_requests` and `max_age` to a pool's settings, as its `max_uses` and
    /// `max_lifetime`: one policy, enforced by pool-core. Where both set a limit, the
    /// smaller wins.
    pub(crate) fn limit_pool(&self, config: &mut PoolConfig) {
        if let Some(requests) = self.max_requests {
            let uses = usize::try_from(requests).unwrap_or(usize::MAX);
            config.max_uses = Some(config.max_uses.map_or(uses, |set| set.min(uses)));
        }
        if let Some(age) = self.max_age {
            config.max_lifetime = Some(config.max_lifetime.map_or(age, |set| set.min(age)));
        }
    }

    /// The worker is ready once it prints this line on stdout (default: ready once
    /// spawned). Lines before it are skipped; output after it, before any request, is a
    /// failed start (unless the worker [greets](WorkerSpec::skip_greeting)).
    pub fn ready_line(mut self, line: impl Into<String>) -> Self {
        self.ready_line = Some(ReadyLine::Exact(line.into()));
        self
    }

    /// The worker is ready once it prints a line starting with `prefix` (a banner that
    /// names a version, such as `aspell -a`'s `@(#) International Ispell Version ...`).
    /// Replaces [`ready_line`](WorkerSpec::ready_line).
    pub fn ready_line_starting_with(mut self, prefix: impl Into<String>) -> Self {
        self.ready_line = Some(ReadyLine::Prefix(prefix.into()));
        self
    }

    /// The worker speaks first: its first frame, in the protocol's framing (a banner line
    /// under `Lines`), is read as part of starting it, within `startup_timeout`, and
    /// dropped; it must be a frame the protocol sorts as a response (a message is passed
    /// to the handler instead, and the start waits for a response until
    /// `startup_timeout`). Without this, such a frame is output nobody asked for: read while the
    /// worker is idle, it retires the worker; read while the first request is on its way,
    /// it is taken for that request's answer. Protocols whose workers always greet
    /// ([`Delimited::prompt`](crate::protocol::Delimited::prompt)) do this by themselves.
    pub fn skip_greeting(mut self) -> Self {
        self.greeting = true;
        self
    }

    /// Bounds how long a worker may take to become ready (default 30 s).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Bounds each request; a request that takes longer kills the worker's process group
    /// and fails with [`RunnerError::Timeout`](crate::RunnerError::Timeout) (default:
    /// [`DEFAULT_REQUEST_TIMEOUT`], 60 s). Tests on tokio's paused clock that talk to real
    /// workers: the runtime jumps the clock to the deadline while the worker works, so
    /// every call times out; use [`no_request_timeout`](WorkerSpec::no_request_timeout)
    /// there.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Lets requests run as long as they take. A worker that exits still fails its call
    /// at once, but one that hangs holds its caller until the caller gives up (drops the
    /// call, or a `wait_timeout` it set elsewhere passes): set this only on purpose.
    pub fn no_request_timeout(mut self) -> Self {
        self.request_timeout = None;
        self
    }

    /// Retires a worker after it has been lent this many times (default: none).
    ///
    /// This is the pool's [`max_uses`](pool_core::PoolBuilder::max_uses), set by
    /// [`SubprocessPoolBuilder::build`](crate::SubprocessPoolBuilder::build): each worker's
    /// own limit is shortened by a random 0-5%, in whole requests (a limit under 20 is
    /// exact), so workers started together do not all restart together. A use is one
    /// checkout: one [`SubprocessPool::call`](crate::SubprocessPool::call), or one
    /// `pool().get()` however many calls are made on the runner it lends. Health-check
    /// pings and a [`Session`](crate::Session)'s handshake and goodbye do not count. When
    /// the pool's builder sets `max_uses` too, the smaller limit wins.
    ///
    /// Only a pool enforces it: a [`Runner`](crate::Runner) on its own has no request
    /// limit, and a `pool_core::Pool` built on a [`RunnerManager`](crate::RunnerManager) by
    /// hand needs `max_uses` set on its own builder.
    pub fn max_requests(mut self, requests: u64) -> Self {
        self.max_requests = Some(requests);
        self
    }

    /// Retires a worker once it is this old (default: none).
    ///
    /// This is the pool's [`max_lifetime`](pool_core::PoolBuilder::max_lifetime), set by
    /// [`SubprocessPoolBuilder::build`](crate::SubprocessPoolBuilder::build): each worker's
    /// own limit is shortened by a random 0-5%, so workers started together do not all
    /// restart together; an idle worker past it is stopped by the pool's maintenance, a
    /// busy one when its caller gives it back. When the pool's builder sets `max_lifetime`
    /// too, the shorter wins.
    ///
    /// Only a pool enforces it: a [`Runner`](crate::Runner) on its own has no age limit,
    /// and a `pool_core::Pool` built on a [`RunnerManager`](crate::RunnerManager) by hand
    /// needs `max_lifetime` set on its own builder.
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

    /// The program's file name, for a pool's default name (`python3` for
    /// `/usr/bin/python3`).
    pub(crate) fn short_program_name(&self) -> String {
        let program = self.program();
        program
            .file_name()
            .unwrap_or(program.as_os_str())
            .to_string_lossy()
            .into_owned()
    }

    /// The program this spec runs.
    pub fn program(&self) -> &std::path::Path {
        self.launch.program()
    }
}

/// The line that says a worker is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadyLine {
    Exact(String),
    Prefix(String),
}

impl ReadyLine {
    pub(crate) fn matches(&self, line: &[u8]) -> bool {
        match self {
            ReadyLine::Exact(ready) => line == ready.as_bytes(),
            ReadyLine::Prefix(prefix) => line.starts_with(prefix.as_bytes()),
        }
    }
}

impl std::fmt::Display for ReadyLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadyLine::Exact(line) => write!(f, "{line:?}"),
            ReadyLine::Prefix(prefix) => write!(f, "a line starting with {prefix:?}"),
        }
    }
}
