//! The contended get+drop load of `get_drop/contended_64_tasks_8_objects` (64 tasks, 8
//! objects, each hold spanning one `yield_now`, 2-worker runtime) as a plain loop, for
//! profilers:
//!
//! ```text
//! cargo build --release -p benches --example contended_loop
//! perf record -g target/release/examples/contended_loop pool-core 20000
//! target/release/examples/contended_loop floor 20000
//! ```
//!
//! Prints the time per get+drop of five rounds of `ROUNDS` rounds per task.

use std::time::Instant;

use benches::{Floor, Ours, harness};

const TASKS: usize = 64;
const OBJECTS: usize = 8;

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "pool-core".into());
    let rounds: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let rt = harness::multi_thread_runtime();
    let pool = pool_core::Pool::builder(Ours)
        .max_size(OBJECTS)
        .build()
        .unwrap();
    let floor = Floor::new(OBJECTS);
    for round in 0..5 {
        let start = Instant::now();
        rt.block_on(async {
            let tasks: Vec<_> = (0..TASKS)
                .map(|_| {
                    let (pool, floor, which) = (pool.clone(), floor.clone(), which.clone());
                    tokio::spawn(async move {
                        for _ in 0..rounds {
                            match which.as_str() {
                                "pool-core" => {
                                    let object = pool.get().await.unwrap();
                                    tokio::task::yield_now().await;
                                    drop(object);
                                }
                                "floor" => floor.get_drop(tokio::task::yield_now()).await,
                                other => panic!("unknown pool {other:?}: use pool-core or floor"),
                            }
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        let ns = start.elapsed().as_nanos() as f64 / (TASKS as u64 * rounds) as f64;
        println!("{which} round {round}: {ns:.1} ns per get+drop");
    }
}
