//! Fills the numbers tables of `docs/benchmarks.md`:
//!
//! ```sh
//! cargo run -p benches --release --bin report            # the page's numbers (about 7 min)
//! cargo run -p benches --release --bin report -- --quick # short measurements, a smoke test
//! cargo run -p benches --release --bin report -- --pipes # only the pipe comparisons, printed
//! ```
//!
//! 1. Runs the criterion benches with `cargo bench`: `get_drop` and `scaling` in `--rounds N`
//!    rounds (default 3: their multi-thread benches are bimodal on a VM), `subprocess` in the
//!    first round only, and reads each round's medians from criterion's `new/estimates.json`.
//! 2. Compares a warm pool call with a raw pipe to the same program in CPU and wall time per
//!    call, five times, first unpinned, then pinned to one CPU ([`pipes`]).
//! 3. Rewrites, on the page, only the lines between `<!-- numbers:NAME:begin -->` and
//!    `<!-- numbers:NAME:end -->`: `run` (when, where, with what command) and one table per
//!    entry of [`TABLES`]. The prose and the goals around them are written by hand.
//!
//! `--quick` (one round unless `--rounds` is given, short measurements) checks that the tool
//! works; its numbers are not for the page.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use benches::workers::{Program, REQUEST, RawPipe, Worker};
use rustix::thread::{CpuSet, sched_getcpu, sched_setaffinity};
use rustix::time::{ClockId, clock_gettime};
use subprocess_pool::SubprocessPool;
use subprocess_pool::protocol::Lines;
use tokio::runtime::Builder;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// One round's results by id (`group/name`), in nanoseconds: criterion's median time per
/// iteration, or the pinned comparison's time per call.
type Numbers = BTreeMap<String, f64>;

/// The command that fills the page.
const COMMAND: &str = "cargo run -p benches --release --bin report";

/// A group of rows in a table: the group (see [`TABLES`]) and its rows.
type Group = (&'static str, &'static [&'static str]);

/// The page's tables: the marker's name, and groups of rows. The group `""` is the one named
/// by the marker, any other a group under it. A row is a result (`name`, the id
/// `group/name`), one result over another (`a / b`, per round), or `prefix: slowest / fastest`
/// (of the results `group/prefix/*`, per round). The columns are the rounds that have results
/// in the table's groups, and the median of the rounds.
#[rustfmt::skip]
const TABLES: &[(&str, &[Group])] = &[
    ("get_drop/uncontended", &[("", GET_DROP)]),
    ("get_drop/contended_64_tasks_8_objects", &[("", GET_DROP)]),
    ("get_drop/contended_1024_tasks_128_objects", &[("", GET_DROP)]),
    ("get_drop/contended_short_hold_64_tasks_8_objects", &[("", GET_DROP)]),
    ("scaling", &[
        ("uncontended", &["pool-core/8", "pool-core/128", "pool-core/1024",
            "pool-core: slowest / fastest"]),
        ("contended_8_tasks_per_object", &["pool-core/8", "pool-core/128", "pool-core/1024",
            "pool-core: slowest / fastest", "semaphore+mutex/8", "semaphore+mutex/128",
            "semaphore+mutex/1024", "pool-core/8 / semaphore+mutex/8",
            "pool-core/128 / semaphore+mutex/128", "pool-core/1024 / semaphore+mutex/1024"]),
    ]),
    ("subprocess", &[("cat", WORKER), ("python", WORKER)]),
    ("subprocess/one_shot_true", &[("", &["command_pool", "bare_command",
        "command_pool / bare_command"])]),
    ("pipe_cpu", &[("cat", PIPE), ("python", PIPE)]),
    ("pipe_unpinned", &[("cat", PIPE), ("python", PIPE)]),
];

/// The rows of each get+drop table.
#[rustfmt::skip]
const GET_DROP: &[&str] = &["pool-core", "deadpool", "bb8", "semaphore+mutex",
    "pool-core / deadpool", "pool-core / bb8", "semaphore+mutex / deadpool",
    "pool-core / semaphore+mutex"];

/// The rows of each worker in the `subprocess` table.
#[rustfmt::skip]
const WORKER: &[&str] = &["warm_call", "raw_pipe", "spawn_per_job",
    "warm_call / raw_pipe", "spawn_per_job / warm_call"];

/// The rows of each worker in the pinned comparison, per call: CPU time of this process and
/// the worker, of this process only (`own`), and wall time.
#[rustfmt::skip]
const PIPE: &[&str] = &["raw pipe", "pool call", "pool call / raw pipe",
    "pool call, own / raw pipe, own", "pool call, wall / raw pipe, wall"];

/// Runs the benches and fills the page's tables (see the crate docs).
fn main() -> Result<()> {
    if cfg!(debug_assertions) {
        return Err(format!("build the report with --release: `{COMMAND}`").into());
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|arg| arg == "--quick");
    let rounds = match args.iter().position(|arg| arg == "--rounds") {
        Some(i) => args.get(i + 1).ok_or("--rounds needs a number")?.parse()?,
        None if quick => 1,
        None => 3,
    };
    if args.iter().any(|arg| arg == "--pipes") {
        // Only the pipe comparisons, printed rather than written to the page.
        let mut results = pipes(Placement::Unpinned, quick)?;
        results.extend(pipes(Placement::Pinned, quick)?);
        for (name, table) in tables(String::new(), &results)? {
            if name.starts_with("pipe_") {
                println!("{name}\n{table}");
            }
        }
        return Ok(());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = root.join("docs/benchmarks.md");
    let page = std::fs::read_to_string(&doc)?;
    fill(&page, &tables(String::new(), &[])?)?; // Fails now if a marker is missing.
    let started = Instant::now();
    let mut results = Vec::new();
    for round in 1..=rounds {
        results.push(criterion_round(&root, round, rounds, quick)?);
    }
    let sh = |script: &str| sh(&root, script);
    let cpus = std::thread::available_parallelism()?; // Before pinning.
    results.extend(pipes(Placement::Unpinned, quick)?);
    results.extend(pipes(Placement::Pinned, quick)?);
    let extra: String = args.iter().map(|arg| format!(" {arg}")).collect();
    let run = format!(
        "|  |  |\n| --- | --- |\n| date | {} |\n| commit | {} |\n| command | `{COMMAND}{}` |\n\
         | CPUs | {cpus} ({}) |\n| compiler | {} |\n| run time | {:.1} min |\n",
        sh("date -u '+%Y-%m-%d %H:%M UTC'"),
        sh("git describe --always --dirty=' + uncommitted changes'"),
        extra.replacen(' ', " -- ", 1),
        sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"),
        sh("rustc --version"),
        started.elapsed().as_secs_f64() / 60.0
    );
    let tables = tables(run, &results)?;
    std::fs::write(&doc, fill(&page, &tables)?)?;
    println!("report: wrote docs/benchmarks.md");
    Ok(())
}

/// One criterion round: `cargo bench` (into this binary's target directory and profile, so
/// nothing is built twice), then the medians it wrote.
fn criterion_round(root: &Path, round: usize, rounds: usize, quick: bool) -> Result<Numbers> {
    let benches = ["get_drop", "scaling", "subprocess"];
    let benches = &benches[..2 + usize::from(round == 1)];
    eprintln!("report: criterion round {round} of {rounds}: {benches:?}");
    // This binary is `<target dir>/release/report`.
    let exe = std::env::current_exe()?;
    let target = exe.parent().and_then(Path::parent).ok_or("no target dir")?;
    let home = target.join("criterion");
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()));
    command.current_dir(root).env("CRITERION_HOME", &home);
    command.args("bench --profile release -p benches --target-dir".split(' '));
    command.arg(target);
    for bench in benches {
        command.args(["--bench", bench]);
    }
    command.arg("--");
    if quick {
        command.args("--warm-up-time 0.1 --measurement-time 0.3".split(' '));
    }
    let since = SystemTime::now();
    if !command.status()?.success() {
        return Err("cargo bench failed".into());
    }
    let mut numbers = Numbers::new();
    read_estimates(&home, since, &mut numbers)?;
    Ok(numbers)
}

/// Reads the median of every `new/estimates.json` under `dir` written since `since`, under
/// the bench id in the `benchmark.json` beside it.
fn read_estimates(dir: &Path, since: SystemTime, numbers: &mut Numbers) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let json = |file: &str| -> Result<serde_json::Value> {
            Ok(serde_json::from_slice(&std::fs::read(path.join(file))?)?)
        };
        let estimates = path.join("estimates.json");
        if path.ends_with("new") && estimates.exists() && estimates.metadata()?.modified()? >= since
        {
            let (benchmark, estimates) = (json("benchmark.json")?, json("estimates.json")?);
            let id = benchmark["full_id"].as_str().ok_or("no full_id")?;
            let median = estimates["median"]["point_estimate"].as_f64();
            numbers.insert(id.to_owned(), median.ok_or("no median")?);
        } else if path.is_dir() {
            read_estimates(&path, since, numbers)?;
        }
    }
    Ok(())
}

/// Where the pipe comparison's processes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Wherever the scheduler puts them, as users run it. Only one worker is alive at a
    /// time: with two, one tends to share the caller's vCPU and answer at once while the
    /// other pays a vCPU wake-up per round trip, and the ratio measured that, not the pool
    /// (from 0.3x to 5x between runs of the same binary). So the two sides take turns,
    /// each with a fresh worker per batch, the order swapped every batch.
    Unpinned,
    /// This process and both workers on one CPU (pinned before the runtime and the workers
    /// start, as they inherit it); both workers stay alive, in alternating batches with the
    /// order swapped every batch.
    Pinned,
}

/// A warm pool call against a raw pipe to the same program, in CPU and wall time per call
/// (see [`Placement`]), five times. CPU time is this process's (`CLOCK_PROCESS_CPUTIME_ID`,
/// all threads) plus the worker's (its threads' `/proc/<pid>/task/*/schedstat`), as
/// `getrusage` only counts children that exited. Both sides run on a task of their own, as
/// a server's handlers do (`block_on`'s own future pays an extra poll of the driver each
/// time another task wakes it).
fn pipes(placement: Placement, quick: bool) -> Result<Vec<Numbers>> {
    if placement == Placement::Pinned {
        let mut one = CpuSet::new();
        one.set(sched_getcpu());
        sched_setaffinity(None, &one)?;
    }
    eprintln!("report: pool call vs raw pipe in CPU time, {placement:?}");
    let runtime = Builder::new_current_thread().enable_all().build()?;
    let repeats = if quick { 2 } else { 5 };
    let mut results = vec![Numbers::new(); repeats];
    for worker in Worker::ALL {
        // Unpinned, each batch starts a fresh worker, and whether it lands on the caller's
        // vCPU makes a round trip cost about 8 or about 50 us: many short batches average
        // that lottery out (20 batches of 1,000 gave medians from 1.06x to 1.30x across
        // runs a few commits apart; 100 of 200, 1.12x and 1.13x for one build).
        let (batches, batch) = match (quick, worker) {
            (true, _) => (4, 50),
            (false, Worker::Cat) => (100, 200),
            (false, Worker::Python) => (50, 60),
        };
        let program = worker.program()?;
        let task = measure_pipes(placement, program, repeats, batches, batch);
        let measured = runtime.block_on(async { tokio::spawn(task).await })??;
        let table = match placement {
            Placement::Pinned => "pipe_cpu",
            Placement::Unpinned => "pipe_unpinned",
        };
        for (numbers, sides) in results.iter_mut().zip(measured) {
            for (side, times) in ["raw pipe", "pool call"].into_iter().zip(sides) {
                for (what, time) in ["", ", own", ", wall"].into_iter().zip(times) {
                    let ns = time.as_secs_f64() * 1e9 / (batches * batch) as f64;
                    let id = format!("{table}/{}/{side}{what}", worker.name());
                    numbers.insert(id, ns);
                }
            }
        }
    }
    Ok(results)
}

/// Per repeat, per side (raw pipe, pool call): CPU time of this process and the worker,
/// of this process only, and wall time, over `batches` batches of `batch` calls.
async fn measure_pipes(
    placement: Placement,
    program: Program,
    repeats: usize,
    batches: usize,
    batch: usize,
) -> std::result::Result<Vec<[[Duration; 3]; 2]>, String> {
    let error = |e: &dyn std::fmt::Display| e.to_string();
    let expected = program.worker.expected_reply(REQUEST);
    let clock = Instant::now();
    let spent = |pid: u32| -> std::result::Result<[Duration; 3], String> {
        let own = clock_gettime(ClockId::ProcessCPUTime);
        let own = Duration::new(own.tv_sec as u64, own.tv_nsec as u32);
        Ok([
            own + worker_cpu(pid).map_err(|e| error(&*e))?,
            own,
            clock.elapsed(),
        ])
    };
    let mut kept = match placement {
        Placement::Pinned => Some([
            Side::start(&program, 0).await?,
            Side::start(&program, 1).await?,
        ]),
        Placement::Unpinned => None,
    };
    let mut measured = Vec::new();
    for _ in 0..repeats {
        let mut sides = [[Duration::ZERO; 3]; 2];
        for side in (0..batches).flat_map(|n| [n % 2, 1 - n % 2]) {
            let mut fresh = None;
            let is_fresh = kept.is_none();
            let worker = match &mut kept {
                Some(both) => &mut both[side],
                None => fresh.insert(Side::start(&program, side).await?),
            };
            if is_fresh {
                for _ in 0..10 {
                    worker.call(&expected).await?; // past the start-up
                }
            }
            let before = spent(worker.pid())?;
            for _ in 0..batch {
                worker.call(&expected).await?;
            }
            let after = spent(worker.pid())?;
            (0..3).for_each(|i| sides[side][i] += after[i] - before[i]);
            if let Some(one) = fresh {
                one.stop().await;
            }
        }
        measured.push(sides);
    }
    for side in kept.into_iter().flatten() {
        side.stop().await;
    }
    Ok(measured)
}

/// One side of the pipe comparison: a raw pipe (0) or a pool of one warm worker (1).
enum Side {
    Raw(Box<RawPipe>),
    Pool(SubprocessPool<Lines>, u32),
}

impl Side {
    async fn start(program: &Program, side: usize) -> std::result::Result<Self, String> {
        let error = |e: &dyn std::fmt::Display| e.to_string();
        if side == 0 {
            let mut raw = RawPipe::start(program).map_err(|e| error(&e))?;
            raw.round_trip(REQUEST).await.map_err(|e| error(&e))?;
            return Ok(Side::Raw(Box::new(raw)));
        }
        let pool = program.warm_pool().await.map_err(|e| error(&*e))?;
        let pid = Program::worker_pid(&pool).await.map_err(|e| error(&*e))?;
        Ok(Side::Pool(pool, pid))
    }

    fn pid(&self) -> u32 {
        match self {
            Side::Raw(raw) => raw.pid(),
            Side::Pool(_, pid) => *pid,
        }
    }

    async fn call(&mut self, expected: &str) -> std::result::Result<(), String> {
        let reply = match self {
            Side::Raw(raw) => raw
                .round_trip(REQUEST)
                .await
                .map_err(|e| e.to_string())?
                .to_owned(),
            Side::Pool(pool, _) => pool
                .call(REQUEST.to_owned())
                .await
                .map_err(|e| e.to_string())?,
        };
        match reply == expected {
            true => Ok(()),
            false => Err(format!("expected {expected:?}, got {reply:?}")),
        }
    }

    async fn stop(self) {
        match self {
            Side::Raw(raw) => drop(raw),
            Side::Pool(pool, _) => {
                pool.shutdown(Duration::from_secs(1)).await;
            }
        }
    }
}

/// CPU time used so far by the live process `pid`, all threads together.
fn worker_cpu(pid: u32) -> Result<Duration> {
    let mut nanos = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let schedstat = std::fs::read_to_string(task?.path().join("schedstat"))?;
        let (on_cpu, _) = schedstat.split_once(' ').unwrap_or_default();
        nanos += on_cpu.parse::<u64>()?;
    }
    Ok(Duration::from_nanos(nanos))
}

/// Every table of the page by marker name: `run`, then those of [`TABLES`].
fn tables(run: String, results: &[Numbers]) -> Result<Vec<(String, String)>> {
    let mut tables = vec![("run".to_owned(), run)];
    for (marker, groups) in TABLES {
        let prefix = |group: &str| format!("{marker}/{group}/").replace("//", "/");
        let has_results = |numbers: &&Numbers| numbers.keys().any(|id| id.starts_with(&prefix("")));
        let rounds: Vec<&Numbers> = results.iter().filter(has_results).collect();
        let mut head: Vec<String> = (1..=rounds.len()).map(|n| format!("round {n}")).collect();
        head.extend((rounds.len() > 1).then(|| "median".into()));
        let rule = " --- |".repeat(head.len() + 1);
        let mut table = format!("|  | {} |\n|{rule}\n", head.join(" | "));
        for (group, row) in groups
            .iter()
            .flat_map(|(g, rows)| rows.iter().map(move |r| (g, r)))
        {
            let show: fn(f64) -> String = if row.contains(" / ") { ratio } else { time };
            let values = rounds
                .iter()
                .map(|numbers| value(&prefix(group), row, numbers));
            let values = values.collect::<Result<Vec<f64>>>()?;
            let mut line: Vec<String> = values.iter().map(|value| show(*value)).collect();
            line.extend((values.len() > 1).then(|| show(median(values))));
            let label = if group.is_empty() {
                row.to_string()
            } else {
                format!("{group}: {row}")
            };
            table.push_str(&format!("| {label} | {} |\n", line.join(" | ")));
        }
        tables.push((marker.to_string(), table));
    }
    Ok(tables)
}

/// What `row` (see [`TABLES`]) of the group `prefix` says in one round.
fn value(prefix: &str, row: &str, numbers: &Numbers) -> Result<f64> {
    if let Some(name) = row.strip_suffix(": slowest / fastest") {
        let prefix = format!("{prefix}{name}/");
        let times = numbers.iter().filter(|(id, _)| id.starts_with(&prefix));
        let times: Vec<f64> = times.map(|(_, ns)| *ns).collect();
        let (min, max) = times
            .iter()
            .fold((f64::MAX, 0.0), |(a, b), &ns| (ns.min(a), ns.max(b)));
        let spread = (!times.is_empty()).then(|| max / min);
        return spread.ok_or_else(|| format!("no results {prefix}*").into());
    }
    let get = |name| {
        numbers
            .get(&format!("{prefix}{name}"))
            .ok_or(format!("no {name}"))
    };
    Ok(match row.split_once(" / ") {
        Some((a, b)) => get(a)? / get(b)?,
        None => *get(row)?,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    (values[(values.len() - 1) / 2] + values[values.len() / 2]) / 2.0
}

/// A time given in nanoseconds, in a unit that keeps three significant digits.
fn time(ns: f64) -> String {
    match ns {
        ..1e3 => format!("{ns:.1} ns"),
        ..1e6 => format!("{:.2} µs", ns / 1e3),
        _ => format!("{:.2} ms", ns / 1e6),
    }
}

/// `0.27x`, `812x`.
fn ratio(value: f64) -> String {
    format!("{:.*}x", if value < 100.0 { 2 } else { 0 }, value)
}

/// `page` with the lines between each table's markers replaced by the table.
fn fill(page: &str, tables: &[(String, String)]) -> Result<String> {
    let mut page = page.to_owned();
    for (name, table) in tables {
        let begin = format!("<!-- numbers:{name}:begin -->\n");
        let end = format!("<!-- numbers:{name}:end -->");
        let missing = || format!("no {begin:?} ... {end:?} on the page");
        let (before, rest) = page.split_once(&begin).ok_or_else(missing)?;
        let (_, after) = rest.split_once(&end).ok_or_else(missing)?;
        page = format!("{before}{begin}\n{table}\n{end}{after}");
    }
    Ok(page)
}

/// The trimmed output of `script` run by `sh` in `dir`, or `unknown`.
fn sh(dir: &Path, script: &str) -> String {
    let mut sh = Command::new("sh");
    match sh.args(["-c", script]).current_dir(dir).output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().into(),
        _ => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fill_rewrites_only_between_markers() {
        let page = "a\n<!-- numbers:x:begin -->\nold\n<!-- numbers:x:end -->\nb\n";
        let tables = [("x".to_owned(), "| new |\n".to_owned())];
        let filled = super::fill(page, &tables).unwrap();
        assert_eq!(
            filled,
            "a\n<!-- numbers:x:begin -->\n\n| new |\n\n<!-- numbers:x:end -->\nb\n"
        );
        assert_eq!(super::fill(&filled, &tables).unwrap(), filled);
        assert!(super::fill("a\n", &tables).is_err());
    }
}
