//! Sends the jobs through the pool and writes the answers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use subprocess_pool::pool_core::{ErrorChain, PoolError};
use subprocess_pool::{CallError, RunnerError, SubprocessPool, WorkerSpec};
use tokio::io::AsyncWriteExt;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::args::{Args, OnInterrupt};
use crate::input::{Job, read_jobs};
use crate::job::JobProtocol;
use crate::progress::Progress;

/// How long the workers get to stop at the end.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How a run ended.
pub(crate) struct Outcome {
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) retried: u64,
    pub(crate) interrupted: bool,
    pub(crate) elapsed: Duration,
    /// The pool's counters and its workers' at the end, for the summary.
    pub(crate) pool: serde_json::Value,
}

/// Why a run could not go on at all (not one job's failure).
pub(crate) struct Fatal(pub(crate) String);

/// A job's result: its number (its place in the input, from 1), and its answer or why it
/// failed.
struct Done {
    number: u64,
    answer: Result<Vec<u8>, String>,
    retries: u64,
    /// It failed because no worker can be started at all.
    cannot_start: bool,
}

/// Runs every job through a pool of warm workers speaking `protocol`.
pub(crate) async fn run<P: JobProtocol>(args: Args, protocol: P) -> Result<Outcome, Fatal> {
    let started = Instant::now();
    let workers = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let pool = build_pool(&args, protocol.clone(), workers)?;
    let separator = if args.null { 0 } else { b'\n' };
    let window = workers.saturating_mul(4).max(1);

    let (job_sender, mut job_receiver) = mpsc::channel::<Job>(window);
    let reader = tokio::spawn(read_jobs(args.files.clone(), separator, job_sender));
    let progress = Progress::start(args.progress);
    let method: Arc<str> = args.method.clone().into();

    let mut stdout = tokio::io::BufWriter::new(tokio::io::stdout());
    let mut in_flight = JoinSet::new();
    let mut waiting_output = BTreeMap::new();
    // Jobs are numbered from 1 without gaps (`input.rs`), in the order they are read.
    let mut next_output = 1u64;
    let (mut succeeded, mut failed, mut retried) = (0u64, 0u64, 0u64);
    let mut interrupts = Interrupts::new();
    let mut interrupted = false;
    let mut reading = true;
    let mut fatal = None;

    while reading || !in_flight.is_empty() {
        tokio::select! {
            biased;
            () = interrupts.next() => {
                if !interrupted {
                    interrupted = true;
                    reading = false;
                    job_receiver.close();
                    if args.on_interrupt == OnInterrupt::Cancel {
                        in_flight.abort_all();
                    }
                } else {
                    in_flight.abort_all(); // a second Ctrl-C: cancel what is left
                }
            }
            done = in_flight.join_next(), if !in_flight.is_empty() => {
                let Some(Ok(done)) = done else { continue }; // cancelled
                let done: Done = done;
                retried += done.retries;
                if let (true, Err(error)) = (done.cannot_start, &done.answer) {
                    // Every job would fail the same way: stop, and say it once.
                    fatal = Some(Fatal(format!("cannot start the workers: {error}")));
                    in_flight.abort_all();
                    reading = false;
                    continue;
                }
                match &done.answer {
                    Ok(_) => succeeded += 1,
                    Err(error) => {
                        failed += 1;
                        progress.suspend(|| eprintln!("warm: line {}: {error}", done.number));
                    }
                }
                progress.update(succeeded, failed);
                if let Err(error) = write(&mut stdout, done, args.keep_order, separator, &mut waiting_output, &mut next_output).await {
                    fatal = Some(Fatal(format!("cannot write to stdout: {error}")));
                    in_flight.abort_all();
                    reading = false;
                }
            }
            job = job_receiver.recv(), if reading && in_flight.len() < window => {
                let Some(job) = job else {
                    reading = false;
                    continue;
                };
                let (pool, protocol) = (pool.clone(), protocol.clone());
                let (method, retries) = (method.clone(), args.retries);
                in_flight.spawn(async move {
                    call(&pool, &protocol, job, &method, retries).await
                });
            }
        }
    }
    let _ = stdout.flush().await;
    progress.finish(succeeded, failed);
    if let Ok(Err(error)) = reader.await {
        fatal.get_or_insert(Fatal(error));
    }
    pool.shutdown(STOP_GRACE).await;
    if let Some(fatal) = fatal {
        return Err(fatal);
    }
    let pool_report = serde_json::json!({
        "workers_started": pool.metrics().created,
        "metrics": pool.metrics(),
        "workers": pool.worker_metrics(),
    });
    Ok(Outcome {
        succeeded,
        failed,
        retried,
        interrupted,
        elapsed: started.elapsed(),
        pool: pool_report,
    })
}

fn build_pool<P: JobProtocol>(
    args: &Args,
    protocol: P,
    workers: usize,
) -> Result<SubprocessPool<P>, Fatal> {
    let (program, arguments) = args.command.split_first().expect("clap requires a command");
    let mut spec = WorkerSpec::new(program)
        .args(arguments)
        .startup_timeout(args.startup_timeout);
    if let Some(timeout) = args.timeout {
        spec = spec.request_timeout(timeout);
    }
    if let Some(line) = &args.ready_line {
        spec = spec.ready_line(line.clone());
    }
    if let Some(requests) = args.max_requests {
        spec = spec.max_requests(requests);
    }
    SubprocessPool::builder(spec, protocol)
        .name("warm")
        .max_size(workers)
        .build()
        .map_err(|error| Fatal(format!("invalid settings: {error}")))
}

/// Sends one job, again on another worker (up to `retries` times) when its worker
/// crashed.
async fn call<P: JobProtocol>(
    pool: &SubprocessPool<P>,
    protocol: &P,
    job: Job,
    method: &str,
    retries: u32,
) -> Done {
    let mut tries = 0;
    let mut cannot_start = false;
    let answer = loop {
        let request = match protocol.request(&job.bytes, method) {
            Ok(request) => request,
            Err(error) => break Err(error),
        };
        match pool.call(request).await {
            Ok(response) => break protocol.answer(response),
            Err(error) if tries < retries && crashed(&error) => tries += 1,
            Err(CallError::Pool(PoolError::Backend(error @ RunnerError::Spawn(_)))) => {
                cannot_start = true;
                break Err(ErrorChain(&error).to_string());
            }
            Err(error) => break Err(ErrorChain(&error).to_string()),
        }
    };
    Done {
        number: job.number,
        answer,
        retries: u64::from(tries),
        cannot_start,
    }
}

/// Whether the worker died under the job (worth trying on another), rather than the job
/// timing out or being refused.
fn crashed(error: &CallError) -> bool {
    matches!(
        error,
        CallError::Worker(RunnerError::Exited { .. } | RunnerError::Killed { .. })
    )
}

/// Writes a job's answer: now, or once the jobs before it are written (`keep_order`).
async fn write(
    stdout: &mut (impl AsyncWriteExt + Unpin),
    done: Done,
    keep_order: bool,
    separator: u8,
    waiting: &mut BTreeMap<u64, Option<Vec<u8>>>,
    next: &mut u64,
) -> std::io::Result<()> {
    let answer = done.answer.ok();
    if !keep_order {
        return write_answer(stdout, answer, separator).await;
    }
    waiting.insert(done.number, answer);
    while let Some(answer) = waiting.remove(next) {
        *next += 1;
        write_answer(stdout, answer, separator).await?;
    }
    Ok(())
}

/// Writes one answer and its separator (nothing for a job that failed).
async fn write_answer(
    stdout: &mut (impl AsyncWriteExt + Unpin),
    answer: Option<Vec<u8>>,
    separator: u8,
) -> std::io::Result<()> {
    if let Some(answer) = answer {
        stdout.write_all(&answer).await?;
        stdout.write_all(&[separator]).await?;
    }
    Ok(())
}

/// Ctrl-C (SIGINT) and SIGTERM, as a stream of interruptions. The handlers are
/// installed once, up front, so a signal that arrives between two polls is not lost.
struct Interrupts {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
}

impl Interrupts {
    fn new() -> Self {
        Self {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    /// The next interruption (never, if no handler could be installed).
    async fn next(&mut self) {
        async fn on(signal: &mut Option<Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = on(&mut self.interrupt) => {}
            () = on(&mut self.terminate) => {}
        }
    }
}
