//! The worker programs the subprocess benches and the report talk to, and the two ways to
//! reach them without a pool: a hand-written raw pipe round trip, and a spawn per job.
//!
//! Every variant runs the same command line: `cat`, or the real python interpreter with
//! `-u upper.py` (the worker of `crates/subprocess-pool/examples/workers/upper.py`), and a
//! job is one line on stdin answered by one line on stdout. Only the way of getting the line
//! there differs: a warm worker in a [`SubprocessPool`], a raw pipe to a process started by
//! hand, or a fresh process per job whose stdin is closed after the one line.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

use subprocess_pool::protocol::Lines;
use subprocess_pool::{SubprocessPool, WorkerSpec};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The one job every bench and measurement sends: one line, answered with one line.
pub const REQUEST: &str = "resize in.png 800x600";

/// A kind of worker program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Worker {
    /// `cat`: echoes each line; the cheapest possible worker, so the pool's own cost shows.
    Cat,
    /// The python interpreter running `upper.py`: answers each line upper-cased and reversed.
    Python,
}

impl Worker {
    /// Both kinds, in report order.
    pub const ALL: [Self; 2] = [Self::Cat, Self::Python];

    /// The short name used in bench ids and tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cat => "cat",
            Self::Python => "python",
        }
    }

    /// The command line this worker runs, with python resolved to its real interpreter.
    pub fn program(self) -> io::Result<Program> {
        Ok(match self {
            Self::Cat => Program {
                worker: self,
                program: PathBuf::from("cat"),
                args: Vec::new(),
            },
            Self::Python => Program {
                worker: self,
                program: python_interpreter()?.to_path_buf(),
                args: vec!["-u".into(), upper_script().into_os_string()],
            },
        })
    }

    /// The line this worker answers to `request`.
    pub fn expected_reply(self, request: &str) -> String {
        match self {
            Self::Cat => request.to_owned(),
            Self::Python => request.to_uppercase().chars().rev().collect(),
        }
    }
}

/// A resolved command line for one [`Worker`].
#[derive(Debug, Clone)]
pub struct Program {
    /// Which worker this is.
    pub worker: Worker,
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
}

impl Program {
    /// The same command line as a [`WorkerSpec`], for a [`SubprocessPool`].
    pub fn worker_spec(&self) -> WorkerSpec {
        WorkerSpec::new(&self.program).args(&self.args)
    }

    /// A pool of one warm worker running this program, speaking [`Lines`]. Its first call
    /// (the start-up) is made before it is returned. Needs a tokio runtime.
    pub async fn warm_pool(&self) -> Result<SubprocessPool<Lines>, Box<dyn std::error::Error>> {
        let pool = SubprocessPool::builder(self.worker_spec(), Lines::default())
            .max_size(1)
            .build()?;
        let reply = pool.call("warm up".to_owned()).await?;
        assert_eq!(reply, self.worker.expected_reply("warm up"));
        Ok(pool)
    }

    /// The process id of the (only) worker of a pool made by [`warm_pool`](Self::warm_pool).
    pub async fn worker_pid(
        pool: &SubprocessPool<Lines>,
    ) -> Result<u32, Box<dyn std::error::Error>> {
        Ok(pool.pool().get().await?.pid())
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs one job in a fresh process: spawn, write `request` and a newline, close stdin,
    /// wait for it to exit, and return its one line of output.
    pub async fn spawn_per_job(&self, request: &str) -> io::Result<String> {
        let mut child = self.command().spawn()?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("no stdin"))?;
        stdin.write_all(format!("{request}\n").as_bytes()).await?;
        drop(stdin);
        let output = child.wait_with_output().await?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "job exited with {}",
                output.status
            )));
        }
        let mut line = String::from_utf8(output.stdout).map_err(io::Error::other)?;
        line.truncate(line.trim_end_matches('\n').len());
        Ok(line)
    }
}

/// A worker spoken to by hand, with no pool, no codec and no checks: the floor a pool call
/// is held to.
pub struct RawPipe {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    line: String,
}

impl RawPipe {
    /// Starts `program` with piped stdin and stdout. Needs a tokio runtime.
    pub fn start(program: &Program) -> io::Result<Self> {
        let mut child = program.command().spawn()?;
        Ok(Self {
            stdin: child
                .stdin
                .take()
                .ok_or_else(|| io::Error::other("no stdin"))?,
            stdout: BufReader::new(
                child
                    .stdout
                    .take()
                    .ok_or_else(|| io::Error::other("no stdout"))?,
            ),
            child,
            line: String::new(),
        })
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Writes `request` and a newline, and reads one line back (returned without its newline).
    pub async fn round_trip(&mut self, request: &str) -> io::Result<&str> {
        let mut message = String::with_capacity(request.len() + 1);
        message.push_str(request);
        message.push('\n');
        self.stdin.write_all(message.as_bytes()).await?;
        self.line.clear();
        if self.stdout.read_line(&mut self.line).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "worker closed stdout",
            ));
        }
        Ok(self.line.trim_end_matches('\n'))
    }
}

/// The real interpreter behind `python3`, resolved once per process: on these machines
/// `python3` on PATH is a pyenv shim that costs more to start than the interpreter itself,
/// so spawning it per job would flatter the warm worker.
pub fn python_interpreter() -> io::Result<&'static Path> {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    if let Some(path) = PYTHON.get() {
        return Ok(path);
    }
    let output = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "python3 exited with {}",
            output.status
        )));
    }
    let path = String::from_utf8(output.stdout).map_err(io::Error::other)?;
    Ok(PYTHON.get_or_init(|| PathBuf::from(path.trim())))
}

/// The python worker script shared with subprocess-pool's `warm_vs_cold` example.
pub fn upper_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/subprocess-pool/examples/workers/upper.py")
}
