//! Runs N uncontended get+drop rounds on one pool, for instruction counting:
//! `valgrind --tool=callgrind target/release/examples/get_drop_loop pool-core 100000`.
//! Run it twice with different N; the difference divided by the difference in N is the
//! cost of one get+drop in instructions, free of start-up and of timing noise.
//!
//! It also prints the fastest of 50 batches of N/50 rounds in ns per round: on a noisy
//! machine the minimum is the steadiest timing.

use benches::{Deadpool, Ours};

/// Runs `rounds` get+drop in 50 batches and prints the fastest batch's time per round.
macro_rules! time_fastest_batch {
    ($which:expr, $rounds:expr, $pool:expr) => {{
        let pool = $pool;
        let mut best = f64::MAX;
        for _ in 0..50 {
            let start = std::time::Instant::now();
            for _ in 0..$rounds / 50 {
                drop(std::hint::black_box(pool.get().await.unwrap()));
            }
            best = best.min(start.elapsed().as_nanos() as f64 / ($rounds / 50) as f64);
        }
        println!("{}: {best:.1} ns per get+drop (fastest batch)", $which);
    }};
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "pool-core".into());
    let rounds: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        match which.as_str() {
            "pool-core" => time_fastest_batch!(
                which,
                rounds,
                pool_core::Pool::builder(Ours).max_size(8).build().unwrap()
            ),
            "deadpool" => time_fastest_batch!(
                which,
                rounds,
                deadpool::managed::Pool::<Deadpool>::builder(Deadpool)
                    .max_size(8)
                    .build()
                    .unwrap()
            ),
            other => panic!("unknown pool {other:?}: use pool-core or deadpool"),
        }
    });
}
