//! Uncontended get+drop of pool-core with a manager defined right here, so the very same
//! source builds against any commit of the engine. `benches/compare_engines.sh` uses it to
//! compare two engines: get+drop timings move with the code layout of the binary they are
//! in (the same engine measures 25 ns here and 39 ns in the three-pool `get_drop_loop`),
//! so only the same loop built against each engine says whether a change cost anything.
//!
//! `target/release/examples/same_source_get_drop [deadline] [ROUNDS]` prints the fastest
//! and the median of 50 batches of ROUNDS/50 rounds; `deadline` sets `wait_timeout` (5 s).

use std::convert::Infallible;
use std::time::{Duration, Instant};

/// A manager whose objects cost nothing, so only the pool is timed.
struct Nothing;

impl pool_core::Manager for Nothing {
    type Object = u64;
    type Error = Infallible;

    async fn create(&self) -> Result<u64, Infallible> {
        Ok(0)
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let deadline = args.first().is_some_and(|arg| arg == "deadline");
    if deadline {
        args.remove(0);
    }
    let rounds: u64 = args
        .first()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut builder = pool_core::Pool::builder(Nothing).max_size(8);
        if deadline {
            builder = builder.wait_timeout(Duration::from_secs(5));
        }
        let pool = builder.build().unwrap();
        let mut batches = Vec::with_capacity(50);
        for _ in 0..50 {
            let start = Instant::now();
            for _ in 0..rounds / 50 {
                let object = pool.get().await.unwrap();
                drop(object);
            }
            batches.push(start.elapsed().as_nanos() as f64 / (rounds / 50) as f64);
        }
        batches.sort_by(f64::total_cmp);
        println!("fastest {:.1} median {:.1}", batches[0], batches[25]);
    });
}
