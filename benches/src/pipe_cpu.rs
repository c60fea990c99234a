//! CPU time per call of a warm pool call against a hand-written raw pipe round trip to the
//! same program, with wall time beside it.
//!
//! Both workers run side by side and are driven in alternating batches (the order swapped
//! every batch), so machine noise hits both alike. The CPU time of a batch is this process's
//! (all threads) plus the worker's, both read from the kernel (see [`crate::cpu`]). Run it
//! pinned to one CPU ([`crate::cpu::pin_to_one_cpu`], before the runtime and the workers
//! start): unpinned, each round trip's cost depends on which vCPU the worker wakes on, and on
//! a VM the ratio swings several-fold from run to run.

use std::error::Error;
use std::ops::AddAssign;
use std::time::{Duration, Instant};

use crate::cpu::{child_cpu_time, process_cpu_time};
use crate::load::{Load, Snapshot};
use crate::workers::{Program, REQUEST, RawPipe, Worker};

/// How many calls to make.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Independent repeats; each gives one ratio.
    pub repeats: usize,
    /// Batches per side per repeat.
    pub batches: usize,
    /// Calls per batch.
    pub batch: usize,
}

impl Plan {
    /// Calls per side in one repeat.
    pub fn calls_per_repeat(&self) -> usize {
        self.batches * self.batch
    }
}

/// Time spent by one side over a number of calls.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spent {
    /// Wall time.
    pub wall: Duration,
    /// CPU time of this process.
    pub own_cpu: Duration,
    /// CPU time of the worker process.
    pub worker_cpu: Duration,
}

impl Spent {
    /// This process's and the worker's CPU time together.
    pub fn cpu(&self) -> Duration {
        self.own_cpu + self.worker_cpu
    }
}

impl AddAssign for Spent {
    fn add_assign(&mut self, other: Self) {
        self.wall += other.wall;
        self.own_cpu += other.own_cpu;
        self.worker_cpu += other.worker_cpu;
    }
}

/// One repeat: raw pipe and pool call over the same number of calls.
#[derive(Debug, Clone, Copy)]
pub struct Repeat {
    /// The raw pipe's time.
    pub raw: Spent,
    /// The pool call's time.
    pub pool: Spent,
}

impl Repeat {
    /// Pool CPU (this process and the worker) over raw pipe CPU.
    pub fn cpu_ratio(&self) -> f64 {
        self.pool.cpu().as_secs_f64() / self.raw.cpu().as_secs_f64()
    }

    /// Pool CPU over raw pipe CPU, counting this process only.
    pub fn own_cpu_ratio(&self) -> f64 {
        self.pool.own_cpu.as_secs_f64() / self.raw.own_cpu.as_secs_f64()
    }

    /// Pool wall time over raw pipe wall time.
    pub fn wall_ratio(&self) -> f64 {
        self.pool.wall.as_secs_f64() / self.raw.wall.as_secs_f64()
    }
}

/// The result of [`compare`].
#[derive(Debug, Clone)]
pub struct Comparison {
    /// One entry per repeat.
    pub repeats: Vec<Repeat>,
    /// Other load on the machine while the repeats ran.
    pub load: Load,
}

/// Runs `plan` against `worker`; needs a tokio runtime (current-thread, on the pinned
/// thread, so every thread involved shares the one CPU).
pub async fn compare(worker: Worker, plan: Plan) -> Result<Comparison, Box<dyn Error>> {
    let program = worker.program()?;
    let expected = worker.expected_reply(REQUEST);
    let pool = program.warm_pool().await?;
    let pool_pid = Program::worker_pid(&pool).await?;
    let mut raw = RawPipe::start(&program)?;
    assert_eq!(raw.round_trip(REQUEST).await?, expected);
    let raw_pid = raw.pid();

    let mut repeats = Vec::with_capacity(plan.repeats);
    let start = Snapshot::take()?;
    for _ in 0..plan.repeats {
        let mut repeat = Repeat {
            raw: Spent::default(),
            pool: Spent::default(),
        };
        for batch in 0..plan.batches {
            for raw_side in [batch % 2 == 0, batch % 2 == 1] {
                if raw_side {
                    repeat.raw += measure(raw_pid, async {
                        for _ in 0..plan.batch {
                            let reply = raw.round_trip(REQUEST).await?;
                            assert_eq!(reply, expected);
                        }
                        Ok(())
                    })
                    .await?;
                } else {
                    repeat.pool += measure(pool_pid, async {
                        for _ in 0..plan.batch {
                            let reply = pool.call(REQUEST.to_owned()).await?;
                            assert_eq!(reply, expected);
                        }
                        Ok(())
                    })
                    .await?;
                }
            }
        }
        repeats.push(repeat);
    }
    // The workers are alive, so their CPU time is not in this process's children's yet.
    let workers = repeats
        .iter()
        .map(|r| r.raw.worker_cpu + r.pool.worker_cpu)
        .sum();
    let load = start.load_since(workers)?;
    // The same worker served every pool call: no restart was measured.
    assert_eq!(Program::worker_pid(&pool).await?, pool_pid);
    pool.shutdown(Duration::from_secs(1)).await;
    Ok(Comparison { repeats, load })
}

/// Wall time, this process's CPU time and `pid`'s CPU time spent while `work` runs.
async fn measure(
    pid: u32,
    work: impl Future<Output = Result<(), Box<dyn Error>>>,
) -> Result<Spent, Box<dyn Error>> {
    let worker_before = child_cpu_time(pid)?;
    let own_before = process_cpu_time();
    let wall = Instant::now();
    work.await?;
    let wall = wall.elapsed();
    let own_cpu = process_cpu_time() - own_before;
    let worker_cpu = child_cpu_time(pid)? - worker_before;
    Ok(Spent {
        wall,
        own_cpu,
        worker_cpu,
    })
}
