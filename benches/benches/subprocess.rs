//! A warm worker in a `SubprocessPool` against the two ways to do without one, for the same
//! program and the same one-line jobs; and a one-shot `CommandPool::run` against a bare
//! `tokio::process::Command`.
//!
//! - `subprocess/<worker>/warm_call`: `SubprocessPool::call` (the `Lines` protocol) to a warm
//!   worker in a pool of one.
//! - `subprocess/<worker>/raw_pipe`: a hand-written round trip (write a line, read a line) to
//!   the same program started by hand: no pool, no codec, no checks.
//! - `subprocess/<worker>/spawn_per_job`: start the same program per job, write the line,
//!   close stdin, wait for it to exit.
//! - `subprocess/one_shot_true/command_pool` and `.../bare_command`: `true` through
//!   `CommandPool::run(CommandSpec::new("true"))` and through
//!   `tokio::process::Command::new("true").output()`.
//!
//! `<worker>` is `cat` or `python` (the real interpreter behind `python3`, resolved once,
//! running `crates/subprocess-pool/examples/workers/upper.py`). Everything runs on one
//! current-thread tokio runtime. Times are wall time per job; the report adds a CPU-time
//! comparison of warm call and raw pipe, pinned to one CPU. Run:
//! `cargo bench -p benches --bench subprocess`.

use benches::workers::{Program, REQUEST, RawPipe, Worker};
use benches::{harness, plan};
use criterion::{Criterion, criterion_group, criterion_main};
use subprocess_pool::{CommandPool, CommandSpec};
use tokio::runtime::{Builder, Runtime};

/// The current-thread runtime every subprocess bench runs on.
fn runtime() -> Runtime {
    Builder::new_current_thread().enable_all().build().unwrap()
}

/// `subprocess/<worker>/{warm_call,raw_pipe,spawn_per_job}` for `cat` and python.
fn workers(c: &mut Criterion) {
    let rt = runtime();
    for worker in Worker::ALL {
        let program = worker.program().unwrap();
        let expected = worker.expected_reply(REQUEST);
        let pool = rt.block_on(program.warm_pool()).unwrap();
        let mut raw = {
            let _in_runtime = rt.enter();
            RawPipe::start(&program).unwrap()
        };
        rt.block_on(raw.round_trip(REQUEST)).unwrap();

        let mut group = c.benchmark_group(plan::group_subprocess(worker.name()));
        group.bench_function("warm_call", |b| {
            b.iter_custom(|iters| {
                harness::time_iters(&rt, iters, async || {
                    let reply = pool.call(REQUEST.to_owned()).await.unwrap();
                    assert_eq!(reply, expected);
                })
            })
        });
        group.bench_function("raw_pipe", |b| {
            b.iter_custom(|iters| {
                harness::time_iters(&rt, iters, async || {
                    let reply = raw.round_trip(REQUEST).await.unwrap();
                    assert_eq!(reply, expected);
                })
            })
        });
        // A python start costs tens of milliseconds: few samples, one iteration count each.
        harness::spawn_sampling(&mut group);
        group.bench_function("spawn_per_job", |b| {
            b.iter_custom(|iters| spawn_per_job(&rt, &program, &expected, iters))
        });
        group.finish();
        rt.block_on(pool.shutdown(std::time::Duration::from_secs(1)));
    }
}

/// Times `iters` jobs, each in a fresh process.
fn spawn_per_job(
    rt: &Runtime,
    program: &Program,
    expected: &str,
    iters: u64,
) -> std::time::Duration {
    harness::time_iters(rt, iters, async || {
        let reply = program.spawn_per_job(REQUEST).await.unwrap();
        assert_eq!(reply, expected);
    })
}

/// `subprocess/one_shot_true/{command_pool,bare_command}`.
fn one_shot(c: &mut Criterion) {
    let rt = runtime();
    let commands = CommandPool::builder().max_size(1).build().unwrap();
    let mut group = c.benchmark_group(plan::GROUP_ONE_SHOT);
    harness::spawn_sampling(&mut group);
    group.bench_function("command_pool", |b| {
        b.iter_custom(|iters| {
            harness::time_iters(&rt, iters, async || {
                let output = commands.run(CommandSpec::new("true")).await.unwrap();
                assert!(output.status.success());
            })
        })
    });
    group.bench_function("bare_command", |b| {
        b.iter_custom(|iters| {
            harness::time_iters(&rt, iters, async || {
                let output = tokio::process::Command::new("true").output().await.unwrap();
                assert!(output.status.success());
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = harness::criterion_config();
    targets = workers, one_shot
}
criterion_main!(benches);
