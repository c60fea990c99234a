//! The same jobs through a pool of warm python workers, and by spawning the interpreter
//! per job: `cargo run --release -p subprocess-pool --example warm_vs_cold`.
//!
//! With a second argument, `raw` or `pool`, it makes only that many round trips to `cat`,
//! by a hand-written raw pipe or through a pool, and prints their CPU and wall time per
//! call: a single subject for `strace -c` and `perf`. The side-by-side comparison of the
//! two is `cargo run -p benches --release --bin report -- --pipes`.
//!
//! The interpreter is resolved once (`python3` on PATH may be a slow shim) and named in the
//! output. Arguments: `[jobs] [raw|pool]` (default 50 jobs).

use std::error::Error;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use subprocess_pool::protocol::Lines;
use subprocess_pool::{SubprocessPool, WorkerSpec};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// CPU time this process has used (all threads), from the kernel: the nanoseconds on CPU
/// of each thread (`/proc/self/task/*/schedstat`). Read from files rather than with
/// `clock_gettime`, whose vDSO lookup crashes under valgrind, so that
/// `valgrind --tool=callgrind` can count this example's instructions per call.
fn cpu_time() -> Duration {
    let threads = std::fs::read_dir("/proc/self/task").into_iter().flatten();
    let nanos = threads
        .filter_map(|thread| std::fs::read_to_string(thread.ok()?.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// The real interpreter behind `python3`, so each cold start is not also paying for a shim.
async fn python() -> Result<PathBuf, Box<dyn Error>> {
    let output = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .await?;
    Ok(PathBuf::from(String::from_utf8(output.stdout)?.trim()))
}

fn worker_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/workers/upper.py")
}

async fn cold(python: &PathBuf, jobs: usize) -> Result<Duration, Box<dyn Error>> {
    let start = Instant::now();
    for i in 0..jobs {
        let output = Command::new(python)
            .arg(worker_script())
            .arg(format!("job {i}"))
            .output()
            .await?;
        assert!(output.status.success());
    }
    Ok(start.elapsed())
}

async fn warm(python: &PathBuf, jobs: usize) -> Result<Duration, Box<dyn Error>> {
    let spec = WorkerSpec::new(python).arg("-u").arg(worker_script());
    let pool = SubprocessPool::builder(spec, Lines::default())
        .max_size(1)
        .build()?;
    pool.call("warm up".to_string()).await?; // the one start-up, not counted
    let start = Instant::now();
    for i in 0..jobs {
        let reply = pool.call(format!("job {i}")).await?;
        let expected: String = format!("job {i}").to_uppercase().chars().rev().collect();
        assert_eq!(reply, expected);
    }
    let elapsed = start.elapsed();
    pool.shutdown(Duration::from_secs(1)).await;
    Ok(elapsed)
}

/// A `cat` spoken to by hand: the floor a pool call is held to.
struct RawPipe {
    _child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: BufReader<tokio::process::ChildStdout>,
    line: String,
}

impl RawPipe {
    fn start() -> Result<Self, Box<dyn Error>> {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        Ok(Self {
            stdin: child.stdin.take().ok_or("no stdin")?,
            stdout: BufReader::new(child.stdout.take().ok_or("no stdout")?),
            _child: child,
            line: String::new(),
        })
    }

    async fn round_trip(&mut self, n: usize) -> Result<(), Box<dyn Error>> {
        let request = format!("request {n}\n");
        self.stdin.write_all(request.as_bytes()).await?;
        self.line.clear();
        self.stdout.read_line(&mut self.line).await?;
        assert!(self.line.strip_prefix("request ").map(str::trim_end) == Some(&n.to_string()[..]));
        Ok(())
    }
}

/// `calls` round trips of one kind only (`raw` or `pool`), nothing else, for profilers.
async fn only_round_trips(kind: &str, calls: usize) -> Result<(), Box<dyn Error>> {
    let (wall, cpu) = (Instant::now(), cpu_time());
    match kind {
        "raw" => {
            let mut raw = RawPipe::start()?;
            for n in 0..calls {
                raw.round_trip(n).await?;
            }
        }
        "pool" => {
            let pool = SubprocessPool::builder(WorkerSpec::new("cat"), Lines::default())
                .max_size(1)
                .build()?;
            for n in 0..calls {
                let reply = pool.call(format!("request {n}")).await?;
                assert!(reply.strip_prefix("request ") == Some(&n.to_string()[..]));
            }
            pool.shutdown(Duration::from_secs(1)).await;
        }
        other => return Err(format!("unknown kind {other:?}: raw or pool").into()),
    }
    println!(
        "{calls} {kind} round trips: {:.1} us CPU, {:.1} us wall per call",
        per(cpu_time() - cpu, calls),
        per(wall.elapsed(), calls)
    );
    Ok(())
}

fn per(total: Duration, n: usize) -> f64 {
    total.as_secs_f64() * 1e6 / n as f64
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let jobs: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    if let Some(only) = std::env::args().nth(2) {
        // `warm_vs_cold N raw|pool`: only N round trips of one kind, for strace and perf.
        // On a task of its own, as a server's handler runs: `block_on`'s own future pays an
        // extra poll of the driver each time another task wakes it.
        let trips = tokio::spawn(async move {
            only_round_trips(&only, jobs)
                .await
                .map_err(|error| error.to_string())
        });
        return Ok(trips.await??);
    }
    let python = python().await?;
    println!("interpreter: {}", python.display());

    let cold = cold(&python, jobs).await?;
    let warm = warm(&python, jobs).await?;
    println!(
        "{jobs} jobs, spawning the interpreter per job: {:>9.1} us per job",
        per(cold, jobs)
    );
    println!(
        "{jobs} jobs, one warm worker in a pool:      {:>9.1} us per job",
        per(warm, jobs)
    );
    println!(
        "warm is {:.0}x faster",
        cold.as_secs_f64() / warm.as_secs_f64()
    );

    Ok(())
}
