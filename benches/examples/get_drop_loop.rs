//! Runs N uncontended get+drop rounds on one pool, for instruction counting:
//! `valgrind --tool=callgrind target/release/examples/get_drop_loop pool-core 100000`.
//! Run it twice with different N; the difference divided by the difference in N is the
//! cost of one get+drop in instructions, free of start-up and of timing noise.
//!
//! It also prints the fastest and the median of 50 batches of N/50 rounds in ns per
//! round: on a noisy machine the fastest batch is the steadiest timing. Pools:
//! `pool-core`, `pool-core-deadline` (with `wait_timeout` set, as most services run it)
//! and `deadpool`.
//!
//! The guard is dropped as it comes, not passed through `std::hint::black_box`: that forces
//! pool-core's two-word guard through the stack right after it was built in registers, and
//! the 16-byte reload then stalls on store forwarding, a cost of the measurement (8 ns a
//! round here) that a caller using the object does not pay.

use std::time::Duration;

use benches::{Deadpool, Ours};

/// Runs `rounds` get+drop in 50 batches and prints the fastest and the median batch's
/// time per round.
macro_rules! time_batches {
    ($which:expr, $rounds:expr, $pool:expr) => {{
        let pool = $pool;
        let mut batches = Vec::with_capacity(50);
        for _ in 0..50 {
            let start = std::time::Instant::now();
            for _ in 0..$rounds / 50 {
                let object = pool.get().await.unwrap();
                drop(object);
            }
            batches.push(start.elapsed().as_nanos() as f64 / ($rounds / 50) as f64);
        }
        batches.sort_by(f64::total_cmp);
        println!(
            "{}: {:.1} ns per get+drop (fastest batch), {:.1} ns (median batch)",
            $which, batches[0], batches[25]
        );
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
            "pool-core" => time_batches!(
                which,
                rounds,
                pool_core::Pool::builder(Ours).max_size(8).build().unwrap()
            ),
            "pool-core-deadline" => time_batches!(
                which,
                rounds,
                pool_core::Pool::builder(Ours)
                    .max_size(8)
                    .wait_timeout(Duration::from_secs(5))
                    .build()
                    .unwrap()
            ),
            "deadpool" => time_batches!(
                which,
                rounds,
                deadpool::managed::Pool::<Deadpool>::builder(Deadpool)
                    .max_size(8)
                    .build()
                    .unwrap()
            ),
            other => {
                panic!("unknown pool {other:?}: use pool-core, pool-core-deadline or deadpool")
            }
        }
    });
}
