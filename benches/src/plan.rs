//! What the benches measure: bench ids, sizes and criterion settings, shared by the bench
//! files. The `report` binary names the same ids in its `TABLES` and fails on any it does not
//! find, so the two cannot drift apart unnoticed.

use std::time::Duration;

/// The pools side by side in `get_drop`, in table order. `semaphore+mutex` is the floor: a
/// tokio semaphore guarding a mutex-protected `Vec`, with no pool features at all.
pub const POOLS: [&str; 4] = ["pool-core", "deadpool", "bb8", "semaphore+mutex"];

/// Pool size of the uncontended benches.
pub const UNCONTENDED_SIZE: usize = 8;

/// `(tasks, objects)` of the contended benches: eight tasks per object.
pub const CONTENDED: [(usize, usize); 2] = [(64, 8), (1024, 128)];

/// Tasks and objects of the short-hold contended variant.
pub const SHORT_HOLD: (usize, usize) = (64, 8);

/// Pool sizes of the scaling benches (pool-core only).
pub const SCALING_SIZES: [usize; 3] = [8, 128, 1024];

/// Tasks per object in the contended scaling bench.
pub const TASKS_PER_OBJECT: usize = 8;

/// Fewest get+drop rounds each task of a contended bench runs per sample, so spawning and
/// joining the tasks (8,192 of them at 1,024 objects) stays a small share of a sample's time.
/// A sample of one iteration (criterion's test mode, and the first warm-up step) runs one
/// round per task instead, to stay quick.
pub const MIN_ROUNDS_PER_TASK: u64 = 32;

/// Rounds each of `tasks` tasks runs so that together they run at least `iters` rounds.
pub fn rounds_per_task(iters: u64, tasks: usize) -> u64 {
    let even = iters.div_ceil(tasks as u64);
    if iters <= 1 {
        even
    } else {
        even.max(MIN_ROUNDS_PER_TASK)
    }
}

/// Worker threads of the multi-thread runtime every get+drop bench runs on.
pub const WORKER_THREADS: usize = 2;

/// Criterion's warm-up time per bench.
pub const WARM_UP: Duration = Duration::from_secs(1);

/// Criterion's measurement time per bench.
pub const MEASUREMENT: Duration = Duration::from_secs(3);

/// Samples per bench (criterion's default is 100; fewer keeps the report short).
pub const SAMPLE_SIZE: usize = 50;

/// Samples per bench for the benches that spawn a process per iteration (criterion's
/// minimum; a python start costs tens of milliseconds).
pub const SLOW_SAMPLE_SIZE: usize = 10;

/// Bootstrap resamples per bench (criterion's default is 100,000).
pub const RESAMPLES: usize = 20_000;

/// `get_drop/uncontended`.
pub const GROUP_UNCONTENDED: &str = "get_drop/uncontended";

/// `get_drop/contended_<tasks>_tasks_<objects>_objects`: each task holds its object
/// across one `yield_now`.
pub fn group_contended(tasks: usize, objects: usize) -> String {
    format!("get_drop/contended_{tasks}_tasks_{objects}_objects")
}

/// `get_drop/contended_short_hold_<tasks>_tasks_<objects>_objects`: each task drops its
/// object at once and yields after the drop.
pub fn group_short_hold(tasks: usize, objects: usize) -> String {
    format!("get_drop/contended_short_hold_{tasks}_tasks_{objects}_objects")
}

/// `scaling/uncontended`, one bench per pool size.
pub const GROUP_SCALING_UNCONTENDED: &str = "scaling/uncontended";

/// `scaling/contended_8_tasks_per_object`, one bench per pool size.
pub const GROUP_SCALING_CONTENDED: &str = "scaling/contended_8_tasks_per_object";

/// `subprocess/<worker>`: `warm_call`, `raw_pipe`, `spawn_per_job`.
pub fn group_subprocess(worker: &str) -> String {
    format!("subprocess/{worker}")
}

/// `subprocess/one_shot_true`: `command_pool` and `bare_command`.
pub const GROUP_ONE_SHOT: &str = "subprocess/one_shot_true";
