//! Throughput of 2 workers whose requests each wait 1 ms (an asyncio Bazel multiplex
//! worker, `examples/workers/multiplex_worker.py`), 64 concurrent callers: one request
//! per worker at a time (`SubprocessPool`), 32 per worker (`MultiplexPool`), and Python's
//! `concurrent.futures.ProcessPoolExecutor` with 2 processes running a function that
//! sleeps 1 ms, all in one run:
//!
//! ```text
//! cargo run --release -p subprocess-pool --example multiplex [requests]
//! ```
//!
//! `requests` (default 4000) is the number of requests of each kind. The interpreter is
//! resolved once (`python3` on PATH may be a slow shim) and named in the output.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use subprocess_pool::protocol::{BazelJson, WorkRequest};
use subprocess_pool::{MultiplexPool, SubprocessPool, WorkerSpec};
use tokio::process::Command;

const CALLERS: usize = 64;
const WORKERS: usize = 2;
const IN_FLIGHT: usize = 32;

/// The function each executor process runs, and how the executor is timed.
const EXECUTOR: &str = r#"
import concurrent.futures, sys, time
def work(_):
    time.sleep(0.001)
if __name__ == "__main__":
    n = int(sys.argv[1])
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        list(pool.map(work, range(4)))  # both processes started
        start = time.perf_counter()
        list(pool.map(work, range(n), chunksize=1))
        print(time.perf_counter() - start)
"#;

async fn python() -> Result<PathBuf, Box<dyn Error>> {
    let output = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .await?;
    Ok(PathBuf::from(String::from_utf8(output.stdout)?.trim()))
}

fn spec(python: &Path) -> WorkerSpec {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/workers/multiplex_worker.py");
    WorkerSpec::new(python).arg("-u").arg(script)
}

fn sleep_request() -> WorkRequest {
    WorkRequest {
        arguments: vec!["sleep".into(), "1".into()],
        ..Default::default()
    }
}

/// Runs `requests` calls from `CALLERS` tasks; the time they took.
async fn drive<F, Fut>(requests: usize, call: F) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let call = call.clone();
            let share = requests / CALLERS + usize::from(caller < requests % CALLERS);
            tokio::spawn(async move {
                for _ in 0..share {
                    call().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("caller task");
    }
    start.elapsed()
}

async fn singleplex(python: &Path, requests: usize) -> Result<Duration, Box<dyn Error>> {
    let pool = SubprocessPool::builder(spec(python), BazelJson::default())
        .max_size(WORKERS)
        .min_idle(WORKERS)
        .wait_timeout(Duration::from_secs(60))
        .build()?;
    drive(WORKERS * 4, {
        let pool = pool.clone();
        move || {
            let pool = pool.clone();
            async move {
                pool.call(sleep_request()).await.expect("warm-up call");
            }
        }
    })
    .await;
    let took = drive(requests, {
        let pool = pool.clone();
        move || {
            let pool = pool.clone();
            async move {
                pool.call(sleep_request()).await.expect("singleplex call");
            }
        }
    })
    .await;
    pool.shutdown(Duration::from_secs(2)).await;
    Ok(took)
}

async fn multiplex(python: &Path, requests: usize) -> Result<Duration, Box<dyn Error>> {
    let pool = MultiplexPool::builder(spec(python), BazelJson::default().multiplex())
        .max_size(WORKERS)
        .max_in_flight(IN_FLIGHT)
        .wait_timeout(Duration::from_secs(60))
        .build()?;
    let call = {
        let pool = pool.clone();
        move || {
            let pool = pool.clone();
            async move {
                pool.call(sleep_request()).await.expect("multiplex call");
            }
        }
    };
    drive(CALLERS * 4, call.clone()).await; // both workers started
    let took = drive(requests, call).await;
    pool.shutdown(Duration::from_secs(2)).await;
    Ok(took)
}

async fn executor(python: &Path, requests: usize) -> Result<Duration, Box<dyn Error>> {
    let output = Command::new(python)
        .args(["-c", EXECUTOR, &requests.to_string()])
        .output()
        .await?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned().into());
    }
    let seconds: f64 = String::from_utf8(output.stdout)?.trim().parse()?;
    Ok(Duration::from_secs_f64(seconds))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let requests: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(4_000);
    let python = python().await?;
    println!(
        "interpreter: {}; {requests} requests of 1 ms each, {CALLERS} callers, {WORKERS} workers",
        python.display()
    );
    let single = singleplex(&python, requests).await?;
    let multi = multiplex(&python, requests).await?;
    let executor = executor(&python, requests).await?;
    let rate = |took: Duration| requests as f64 / took.as_secs_f64();
    println!("| subject | requests per second | vs singleplex |");
    println!("|---|---:|---:|");
    for (subject, took) in [
        ("SubprocessPool, 1 request per worker", single),
        ("MultiplexPool, max_in_flight 32", multi),
        ("ProcessPoolExecutor(2)", executor),
    ] {
        println!(
            "| {subject} | {:.0} | {:.1}x |",
            rate(took),
            single.as_secs_f64() / took.as_secs_f64()
        );
    }
    Ok(())
}
