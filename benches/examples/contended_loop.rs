//! The contended get+drop load of `get_drop/contended_64_tasks_8_objects` (64 tasks, 8
//! objects, each hold spanning one `yield_now`, 2-worker runtime) as a plain loop, for
//! profilers and for quick side-by-side ratios:
//!
//! ```text
//! cargo build --release -p benches --example contended_loop
//! perf record -g target/release/examples/contended_loop pool-core 20000
//! target/release/examples/contended_loop compare 2000
//! target/release/examples/contended_loop compare 2000 short
//! ```
//!
//! With a pool's name (`pool-core`, `deadpool`, `semaphore+mutex`, `semaphore`) it prints
//! the time per get+drop of five rounds of `ROUNDS` rounds per task. With `compare` it
//! runs 15 short rounds of each pool interleaved and prints the median time of each and
//! the median of the per-round ratios to deadpool: on a VM the cost of the same load
//! moves by 3x with where the host puts the two vCPUs, and interleaving keeps each ratio
//! within one such phase. A third argument `short` runs the load of
//! `get_drop/contended_short_hold_64_tasks_8_objects` instead: each task drops its object at
//! once and yields after the drop, so the two worker threads contend on the pool itself.

use std::time::Instant;

use benches::harness;
use benches::subject::Subject;
use tokio::runtime::Runtime;

const TASKS: usize = 64;
const OBJECTS: usize = 8;
const POOLS: [&str; 4] = ["pool-core", "deadpool", "semaphore+mutex", "semaphore"];

/// Nanoseconds per get+drop of one round of `rounds` get+drops in each of `TASKS` tasks.
fn round(rt: &Runtime, subject: &Subject, rounds: u64, short_hold: bool) -> f64 {
    let start = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let subject = subject.clone();
                tokio::spawn(async move {
                    for _ in 0..rounds {
                        if short_hold {
                            subject.get_drop(async {}).await;
                            tokio::task::yield_now().await;
                        } else {
                            subject.get_drop(tokio::task::yield_now()).await;
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    start.elapsed().as_nanos() as f64 / (TASKS as u64 * rounds) as f64
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "pool-core".into());
    let rounds: Option<u64> = args.next().and_then(|n| n.parse().ok());
    let short_hold = args.next().is_some_and(|hold| hold == "short");
    let rt = harness::multi_thread_runtime();
    if which == "compare" {
        let rounds = rounds.unwrap_or(2_000);
        let subjects: Vec<_> = POOLS
            .iter()
            .map(|pool| Subject::build(pool, OBJECTS, &rt))
            .collect();
        let mut times = vec![Vec::new(); POOLS.len()];
        for _ in 0..15 {
            for (subject, times) in subjects.iter().zip(&mut times) {
                times.push(round(&rt, subject, rounds, short_hold));
            }
        }
        let deadpool = &times[1];
        for (pool, times) in POOLS.iter().zip(&times) {
            let mut ratios: Vec<f64> = times.iter().zip(deadpool).map(|(t, d)| t / d).collect();
            let mut own = times.clone();
            println!(
                "{pool:>16}: median {:6.1} ns per get+drop, {:.2}x deadpool (median of round ratios)",
                median(&mut own),
                median(&mut ratios),
            );
        }
        return;
    }
    let pool = POOLS
        .into_iter()
        .find(|pool| *pool == which)
        .unwrap_or_else(|| panic!("unknown pool {which:?}: use one of {POOLS:?} or compare"));
    let rounds = rounds.unwrap_or(20_000);
    let subject = Subject::build(pool, OBJECTS, &rt);
    for n in 0..5 {
        let ns = round(&rt, &subject, rounds, short_hold);
        println!("{pool} round {n}: {ns:.1} ns per get+drop");
    }
}
