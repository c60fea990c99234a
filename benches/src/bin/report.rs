//! Regenerates `docs/benchmarks.md` from one run:
//!
//! ```sh
//! cargo run -p benches --release --bin report
//! ```
//!
//! 1. Runs the criterion benches (`get_drop`, `scaling`, `subprocess`) with `cargo bench`,
//!    saving each run under a baseline of its own (`report-1`, `report-2`, ...): `get_drop`
//!    and `scaling` in several rounds (their multi-thread benches are bimodal on a VM, so
//!    one run cannot be trusted), `subprocess` once. Criterion's results are read back from
//!    `<target dir>/criterion/**/report-N/estimates.json`.
//! 2. Pins itself to one CPU and compares a warm pool call with a hand-written raw pipe
//!    round trip in CPU time per call (this process plus the worker), wall time beside it.
//! 3. Checks each goal, prints the tables, and rewrites `docs/benchmarks.md`: the machine,
//!    the date, the command, the tables, and the fixed explanatory text kept in this file.
//!
//! Options: `--rounds N` (default 3) rounds of `get_drop` and `scaling`; `--reuse` skips
//! step 1 and reads the results the last run saved (for working on this file; the page then
//! says so).

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use benches::estimates::Estimates;
use benches::load::{self, Load, Snapshot};
use benches::machine::{self, Machine};
use benches::pipe_cpu::{self, Repeat};
use benches::plan::{self, POOLS};
use benches::workers::{self, Worker};
use benches::{cpu, pipe_cpu::Plan};

/// The command that regenerates the page; written into it.
const COMMAND: &str = "cargo run -p benches --release --bin report";

/// Where the page goes, relative to the workspace root.
const DOC: &str = "docs/benchmarks.md";

/// Calls of the pinned CPU-time comparison, per worker.
fn pipe_plan(worker: Worker) -> Plan {
    match worker {
        Worker::Cat => Plan {
            repeats: 5,
            batches: 20,
            batch: 1_000,
        },
        Worker::Python => Plan {
            repeats: 5,
            batches: 10,
            batch: 300,
        },
    }
}

/// Command-line options.
struct Options {
    rounds: usize,
    reuse: bool,
}

/// Parses `--rounds N` and `--reuse`.
fn options() -> Result<Options, Box<dyn Error>> {
    let mut options = Options {
        rounds: 3,
        reuse: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => {
                options.rounds = args.next().ok_or("--rounds needs a number")?.parse()?;
                if options.rounds == 0 {
                    return Err("--rounds must be at least 1".into());
                }
            }
            "--reuse" => options.reuse = true,
            other => {
                return Err(format!("unknown argument {other:?} (use --rounds N, --reuse)").into());
            }
        }
    }
    Ok(options)
}

/// Runs the benches, measures, and writes the page (see the crate docs).
fn main() -> Result<(), Box<dyn Error>> {
    if cfg!(debug_assertions) {
        return Err(format!("build the report with --release: `{COMMAND}`").into());
    }
    let options = options()?;
    let started = Instant::now();
    let run_started = SystemTime::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace root")?
        .to_path_buf();
    // This binary is `<target dir>/release/report`.
    let target_dir = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot tell the target directory from this binary's path")?
        .to_path_buf();
    let criterion_home = target_dir.join("criterion");

    let mut loads = Vec::new();
    if !options.reuse {
        for round in 1..=options.rounds {
            let mut benches = vec!["get_drop", "scaling"];
            if round == 1 {
                benches.push("subprocess");
            }
            let what = format!("criterion round {round}");
            let measured = until_undisturbed(&what, || {
                eprintln!(
                    "report: criterion round {round} of {}: {benches:?}",
                    options.rounds
                );
                let start = Snapshot::take()?;
                run_benches(
                    &root,
                    &target_dir,
                    &criterion_home,
                    &benches,
                    &baseline(round),
                )?;
                Ok(((), start.load_since(Duration::ZERO)?))
            })?;
            loads.push(measured.0);
        }
    }
    let since = if options.reuse {
        UNIX_EPOCH
    } else {
        run_started
    };
    let rounds = (1..=options.rounds)
        .map(|round| Estimates::load(&criterion_home, &baseline(round), since))
        .collect::<Result<Vec<_>, _>>()?;

    // Before pinning: available_parallelism counts the CPUs this thread may use.
    let machine = Machine::detect();
    eprintln!("report: raw pipe vs pool call, CPU time, pinned to one CPU");
    let python = workers::python_interpreter()?.to_path_buf();
    let pinned_cpu = cpu::pin_to_one_cpu()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut pipes = Vec::new();
    for worker in Worker::ALL {
        let what = format!("pinned comparison, {}", worker.name());
        let (measured, repeats) = until_undisturbed(&what, || {
            let comparison = runtime.block_on(pipe_cpu::compare(worker, pipe_plan(worker)))?;
            Ok((comparison.repeats, comparison.load))
        })?;
        loads.push(measured);
        pipes.push((worker, repeats));
    }

    let run = Run {
        options,
        machine,
        commit: machine::git_commit(&root),
        date: machine::utc_now(),
        minutes: started.elapsed().as_secs_f64() / 60.0,
        python,
        pinned_cpu,
        rounds,
        pipes,
        loads,
    };
    let page = run.page()?;
    print!("{}", run.summary()?);
    std::fs::write(root.join(DOC), page)?;
    println!("\nwrote {DOC}");
    Ok(())
}

/// Tries for a quiet machine before a measurement.
const QUIET_WINDOW: Duration = Duration::from_secs(3);

/// How long to wait for a quiet machine before measuring anyway.
const PATIENCE: Duration = Duration::from_secs(180);

/// Attempts at a measurement that other processes disturbed.
const ATTEMPTS: usize = 3;

/// One measurement and the other load on the machine while it ran.
struct Measured {
    what: String,
    load: Load,
    attempts: usize,
}

/// Waits for a quiet machine, runs `measure` (which returns its result and the load while
/// it ran), and runs it again, up to [`ATTEMPTS`] times in all, while other processes
/// disturbed it.
fn until_undisturbed<T>(
    what: &str,
    mut measure: impl FnMut() -> Result<(T, Load), Box<dyn Error>>,
) -> Result<(Measured, T), Box<dyn Error>> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        load::wait_for_quiet(QUIET_WINDOW, PATIENCE)?;
        let (result, load) = measure()?;
        if load.disturbed() && attempts < ATTEMPTS {
            eprintln!(
                "report: {what}: other processes kept {:.2} CPUs busy; measuring it again",
                load.other_cpus
            );
            continue;
        }
        let measured = Measured {
            what: what.to_owned(),
            load,
            attempts,
        };
        return Ok((measured, result));
    }
}

/// The criterion baseline a round's results are saved under.
fn baseline(round: usize) -> String {
    format!("report-{round}")
}

/// `cargo bench` on `benches`, saving under `baseline`, in the same target directory and
/// profile as this binary (so nothing is compiled twice).
fn run_benches(
    root: &Path,
    target_dir: &Path,
    criterion_home: &Path,
    benches: &[&str],
    baseline: &str,
) -> Result<(), Box<dyn Error>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args([
            "bench",
            "--profile",
            "release",
            "-p",
            "benches",
            "--target-dir",
        ])
        .arg(target_dir);
    for bench in benches {
        command.args(["--bench", bench]);
    }
    command
        .args(["--", "--save-baseline", baseline])
        .env("CRITERION_HOME", criterion_home);
    let status = command.status()?;
    if !status.success() {
        return Err(format!("cargo bench exited with {status}").into());
    }
    Ok(())
}

/// Everything one run measured.
struct Run {
    options: Options,
    machine: Machine,
    commit: Option<String>,
    date: String,
    minutes: f64,
    python: PathBuf,
    pinned_cpu: usize,
    rounds: Vec<Estimates>,
    pipes: Vec<(Worker, Vec<Repeat>)>,
    loads: Vec<Measured>,
}

/// A number across rounds: its median, lowest and highest.
#[derive(Debug, Clone, Copy)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        Self {
            median,
            min: values[0],
            max: values[n - 1],
        }
    }

    /// `0.27x (0.25-0.29x)`, or just `0.27x` for a single value.
    fn ratio(&self) -> String {
        if self.min == self.max {
            ratio(self.median)
        } else {
            format!(
                "{} ({}-{})",
                ratio(self.median),
                ratio_number(self.min),
                ratio(self.max)
            )
        }
    }
}

/// One goal and how this run did.
struct Goal {
    what: String,
    target: String,
    measured: String,
    pass: bool,
}

impl Run {
    /// Criterion's median time per iteration (ns) for `id` in `round` (0-based).
    fn ns(&self, round: usize, id: &str) -> Result<f64, Box<dyn Error>> {
        self.rounds[round]
            .get(id)
            .map(|estimate| estimate.median_ns)
            .ok_or_else(|| {
                format!(
                    "no result for {id} in {} (did the bench run?)",
                    baseline(round + 1)
                )
                .into()
            })
    }

    /// `f(round)` for every round.
    fn per_round(
        &self,
        f: impl Fn(usize) -> Result<f64, Box<dyn Error>>,
    ) -> Result<Vec<f64>, Box<dyn Error>> {
        (0..self.rounds.len()).map(f).collect()
    }

    /// pool-core's time over `rival`'s in `group`, per round.
    fn versus(&self, group: &str, rival: &str) -> Result<Vec<f64>, Box<dyn Error>> {
        self.per_round(|r| {
            Ok(self.ns(r, &format!("{group}/pool-core"))?
                / self.ns(r, &format!("{group}/{rival}"))?)
        })
    }

    /// `subject`'s time at each scaling size in `round`.
    fn scaling_times(
        &self,
        round: usize,
        group: &str,
        subject: &str,
    ) -> Result<Vec<f64>, Box<dyn Error>> {
        plan::SCALING_SIZES
            .iter()
            .map(|size| self.ns(round, &format!("{group}/{subject}/{size}")))
            .collect()
    }

    /// pool-core's slowest over its fastest pool size in a scaling group, per round.
    fn scaling_spread(&self, group: &str) -> Result<Vec<f64>, Box<dyn Error>> {
        self.per_round(|r| {
            Ok(slowest_over_fastest(&self.scaling_times(
                r,
                group,
                "pool-core",
            )?))
        })
    }

    /// Which pool sizes were slowest and fastest for pool-core in a scaling group, by the
    /// median over rounds: `"slowest at 8 objects, fastest at 1,024"`.
    fn scaling_extremes(&self, group: &str) -> Result<String, Box<dyn Error>> {
        let mut medians = Vec::new();
        for (i, size) in plan::SCALING_SIZES.iter().enumerate() {
            let times = self.per_round(|r| Ok(self.scaling_times(r, group, "pool-core")?[i]))?;
            medians.push((Spread::of(times).median, *size));
        }
        medians.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(format!(
            "slowest at {} objects, fastest at {}",
            thousands(medians[medians.len() - 1].1),
            thousands(medians[0].1)
        ))
    }

    fn worker_ns(&self, worker: Worker, path: &str) -> Result<f64, Box<dyn Error>> {
        self.ns(
            0,
            &format!("{}/{path}", plan::group_subprocess(worker.name())),
        )
    }

    fn goals(&self) -> Result<Vec<Goal>, Box<dyn Error>> {
        let mut goals = Vec::new();
        let rounds = self.rounds.len();
        let vs_deadpool = |group: &str, label: &str, target: f64| -> Result<Goal, Box<dyn Error>> {
            let spread = Spread::of(self.versus(group, "deadpool")?);
            Ok(Goal {
                what: format!("get+drop, pool-core / deadpool, {label}"),
                target: format!("<= {}", ratio(target)),
                measured: format!("{} over {}", spread.ratio(), plural(rounds, "round")),
                pass: spread.median <= target,
            })
        };
        goals.push(vs_deadpool(plan::GROUP_UNCONTENDED, "uncontended", 0.3)?);
        for (tasks, objects) in plan::CONTENDED {
            goals.push(vs_deadpool(
                &plan::group_contended(tasks, objects),
                &format!("contended, {tasks} tasks / {objects} objects"),
                0.6,
            )?);
        }
        for (group, label) in [
            (plan::GROUP_SCALING_UNCONTENDED, "uncontended"),
            (
                plan::GROUP_SCALING_CONTENDED,
                "contended, 8 tasks per object",
            ),
        ] {
            let spread = Spread::of(self.scaling_spread(group)?);
            goals.push(Goal {
                what: format!(
                    "pool-core at 8, 128 and 1,024 objects, {label}: slowest size / fastest"
                ),
                target: "<= 1.50x".into(),
                measured: format!(
                    "{} over {}; {}",
                    spread.ratio(),
                    plural(rounds, "round"),
                    self.scaling_extremes(group)?
                ),
                pass: spread.median <= 1.5,
            });
        }
        for (worker, repeats) in &self.pipes {
            let cpu = Spread::of(repeats.iter().map(Repeat::cpu_ratio).collect());
            let wall = Spread::of(repeats.iter().map(Repeat::wall_ratio).collect());
            goals.push(Goal {
                what: format!(
                    "warm pool call / raw pipe, {}: CPU time per call (pinned)",
                    worker.name()
                ),
                target: "<= 1.20x".into(),
                measured: format!(
                    "{} CPU, {} wall, over {}",
                    cpu.ratio(),
                    wall.ratio(),
                    plural(repeats.len(), "repeat")
                ),
                pass: cpu.median <= 1.2,
            });
        }
        let speedup = self.worker_ns(Worker::Python, "spawn_per_job")?
            / self.worker_ns(Worker::Python, "warm_call")?;
        goals.push(Goal {
            what: "warm python call vs spawning the same interpreter per job (wall)".into(),
            target: ">= 100x faster".into(),
            measured: format!("{} faster, in one run", ratio(speedup)),
            pass: speedup >= 100.0,
        });
        Ok(goals)
    }

    fn goals_table(&self) -> Result<String, Box<dyn Error>> {
        let goals = self.goals()?;
        let met = goals.iter().filter(|goal| goal.pass).count();
        let rows = goals
            .iter()
            .map(|goal| {
                vec![
                    goal.what.clone(),
                    goal.target.clone(),
                    goal.measured.clone(),
                    if goal.pass { "**PASS**" } else { "**MISS**" }.into(),
                ]
            })
            .collect();
        Ok(format!(
            "{}\n{met} of {} goals met. A ratio across rounds is the median of the rounds' \
             ratios, with the lowest and highest in brackets; PASS or MISS is decided on the \
             median.\n",
            table(&["goal", "target", "measured", "result"], rows),
            goals.len()
        ))
    }

    fn get_drop_table(&self, group: &str) -> Result<String, Box<dyn Error>> {
        let mut rows = Vec::new();
        let mut per_pool: Vec<Vec<f64>> = vec![Vec::new(); POOLS.len()];
        for round in 0..self.rounds.len() {
            let mut row = vec![format!("round {}", round + 1)];
            for (i, pool) in POOLS.iter().enumerate() {
                let ns = self.ns(round, &format!("{group}/{pool}"))?;
                per_pool[i].push(ns);
                row.push(time(ns));
            }
            row.push(ratio(per_pool[0][round] / per_pool[1][round]));
            row.push(ratio(per_pool[0][round] / per_pool[2][round]));
            row.push(ratio(per_pool[3][round] / per_pool[1][round]));
            rows.push(row);
        }
        if self.rounds.len() > 1 {
            let mut row = vec!["median".to_owned()];
            for times in &per_pool {
                row.push(time(Spread::of(times.clone()).median));
            }
            row.push(bold(ratio(
                Spread::of(self.versus(group, "deadpool")?).median,
            )));
            row.push(ratio(Spread::of(self.versus(group, "bb8")?).median));
            let floor = self.per_round(|r| {
                Ok(self.ns(r, &format!("{group}/semaphore+mutex"))?
                    / self.ns(r, &format!("{group}/deadpool"))?)
            })?;
            row.push(ratio(Spread::of(floor).median));
            rows.push(row);
        }
        Ok(table(
            &[
                "",
                "pool-core",
                "deadpool",
                "bb8",
                "floor",
                "pool-core / deadpool",
                "pool-core / bb8",
                "floor / deadpool",
            ],
            rows,
        ))
    }

    fn scaling_table(&self) -> Result<String, Box<dyn Error>> {
        let uncontended = plan::GROUP_SCALING_UNCONTENDED;
        let contended = plan::GROUP_SCALING_CONTENDED;
        let mut rows = Vec::new();
        for round in 0..self.rounds.len() {
            let n = round + 1;
            let times = |group: &str, subject: &str| self.scaling_times(round, group, subject);
            let ours = times(uncontended, "pool-core")?;
            rows.push(time_row(
                format!("uncontended, pool-core, round {n}"),
                &ours,
            ));
            let ours = times(contended, "pool-core")?;
            rows.push(time_row(format!("contended, pool-core, round {n}"), &ours));
            let floor = times(contended, "semaphore+mutex")?;
            rows.push(time_row(format!("contended, floor, round {n}"), &floor));
            let mut row = vec![format!("contended, pool-core / floor, round {n}")];
            row.extend(ours.iter().zip(&floor).map(|(o, f)| ratio(o / f)));
            row.push(String::new());
            rows.push(row);
        }
        let mut headers = vec![String::new()];
        headers.extend(
            plan::SCALING_SIZES
                .iter()
                .map(|size| format!("{} objects", thousands(*size))),
        );
        headers.push("slowest / fastest".into());
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        Ok(table(&headers, rows))
    }

    /// What the contended scaling numbers of this run say, in words that follow the data.
    fn scaling_comment(&self) -> Result<String, Box<dyn Error>> {
        let group = plan::GROUP_SCALING_CONTENDED;
        let sizes = plan::SCALING_SIZES;
        let last = sizes.len() - 1;
        let median_at = |subject: &str, i: usize| -> Result<f64, Box<dyn Error>> {
            let times = self.per_round(|r| Ok(self.scaling_times(r, group, subject)?[i]))?;
            Ok(Spread::of(times).median)
        };
        let ours = (median_at("pool-core", 0)?, median_at("pool-core", last)?);
        let floor = (
            median_at("semaphore+mutex", 0)?,
            median_at("semaphore+mutex", last)?,
        );
        let mut versus_floor = Vec::new();
        for i in 0..sizes.len() {
            let per_round = self.per_round(|r| {
                Ok(self.scaling_times(r, group, "pool-core")?[i]
                    / self.scaling_times(r, group, "semaphore+mutex")?[i])
            })?;
            versus_floor.push(Spread::of(per_round).median);
        }
        let ratios = versus_floor
            .iter()
            .map(|r| ratio(*r))
            .collect::<Vec<_>>()
            .join(", ");
        let mut text = format!(
            "Contended, from {} to {} objects (medians of the rounds), pool-core's time per \
             get+drop goes from {} to {} and the floor's from {} to {} under the same load; \
             pool-core / floor is {ratios} at the three sizes. ",
            thousands(sizes[0]),
            thousands(sizes[last]),
            time(ours.0),
            time(ours.1),
            time(floor.0),
            time(floor.1),
        );
        if ours.1 <= ours.0 && versus_floor[last] <= versus_floor[0] {
            text.push_str(&format!(
                "So pool-core gets cheaper per get+drop as it grows, not dearer, and no cost \
                 that grows with the pool's size shows here; where the 1.5x band is missed, it \
                 is because the small pool is the slow one. Part of the fall is the \
                 scheduler's: with eight times as many tasks as objects (64 to 8,192 tasks on \
                 two worker threads) the floor falls {} too. The rest is pool-core's own: its \
                 time over the floor's goes from {} to {}.",
                ratio(floor.0 / floor.1),
                ratio(versus_floor[0]),
                ratio(versus_floor[last]),
            ));
        } else if ours.1 <= ours.0 {
            text.push_str(&format!(
                "pool-core gets cheaper as it grows, but less than the floor under the same \
                 load (which falls {}): its time over the floor's goes from {} to {}.",
                ratio(floor.0 / floor.1),
                ratio(versus_floor[0]),
                ratio(versus_floor[last]),
            ));
        } else {
            text.push_str(&format!(
                "pool-core gets dearer as it grows: {} from {} to {} objects, with its time \
                 over the floor's going from {} to {}.",
                ratio(ours.1 / ours.0),
                thousands(sizes[0]),
                thousands(sizes[last]),
                ratio(versus_floor[0]),
                ratio(versus_floor[last]),
            ));
        }
        text.push('\n');
        Ok(text)
    }

    fn workers_table(&self) -> Result<String, Box<dyn Error>> {
        let mut rows = Vec::new();
        for worker in Worker::ALL {
            let warm = self.worker_ns(worker, "warm_call")?;
            let raw = self.worker_ns(worker, "raw_pipe")?;
            let spawn = self.worker_ns(worker, "spawn_per_job")?;
            rows.push(vec![
                worker.name().to_owned(),
                time(warm),
                time(raw),
                time(spawn),
                ratio(warm / raw),
                bold(format!("{} faster", ratio(spawn / warm))),
            ]);
        }
        Ok(table(
            &[
                "worker",
                "warm pool call",
                "raw pipe",
                "spawn per job",
                "warm / raw pipe (wall)",
                "warm vs spawn per job",
            ],
            rows,
        ))
    }

    fn one_shot_table(&self) -> Result<String, Box<dyn Error>> {
        let pooled = self.ns(0, &format!("{}/command_pool", plan::GROUP_ONE_SHOT))?;
        let bare = self.ns(0, &format!("{}/bare_command", plan::GROUP_ONE_SHOT))?;
        Ok(table(
            &["`true` via", "time per command", "CommandPool / bare"],
            vec![
                vec![
                    "`CommandPool::run(CommandSpec::new(\"true\"))`".into(),
                    time(pooled),
                    ratio(pooled / bare),
                ],
                vec![
                    "`tokio::process::Command::new(\"true\").output()`".into(),
                    time(bare),
                    String::new(),
                ],
            ],
        ))
    }

    /// What the one-shot numbers say, in words that follow the data.
    fn one_shot_comment(&self) -> Result<String, Box<dyn Error>> {
        let pooled = self.ns(0, &format!("{}/command_pool", plan::GROUP_ONE_SHOT))?;
        let bare = self.ns(0, &format!("{}/bare_command", plan::GROUP_ONE_SHOT))?;
        Ok(if pooled <= bare {
            "`CommandPool` came out no slower than the bare spawn: its overhead is below \
             this bench's noise (a spawn's time varies by tens of percent between runs on \
             this VM), so this is not a speedup.\n"
                .to_owned()
        } else {
            format!(
                "`CommandPool` added {} per command ({} of a bare spawn) in this run; {}\n",
                time(pooled - bare),
                ratio(pooled / bare),
                if pooled / bare <= 1.3 {
                    "a spawn's time varies by tens of percent between runs on this VM, so \
                     that is within noise."
                } else {
                    "that is more than a spawn's run-to-run noise on this VM."
                }
            )
        })
    }

    fn pipe_table(&self) -> String {
        let mut rows = Vec::new();
        for (worker, repeats) in &self.pipes {
            let calls = pipe_plan(*worker).calls_per_repeat() as f64;
            let per_call = |d: std::time::Duration| time(d.as_secs_f64() * 1e9 / calls);
            for (i, repeat) in repeats.iter().enumerate() {
                rows.push(vec![
                    format!("{}, repeat {}", worker.name(), i + 1),
                    format!(
                        "{} ({})",
                        per_call(repeat.raw.cpu()),
                        per_call(repeat.raw.wall)
                    ),
                    format!(
                        "{} ({})",
                        per_call(repeat.pool.cpu()),
                        per_call(repeat.pool.wall)
                    ),
                    ratio(repeat.cpu_ratio()),
                    ratio(repeat.own_cpu_ratio()),
                    ratio(repeat.wall_ratio()),
                ]);
            }
            let median = |f: fn(&Repeat) -> f64| Spread::of(repeats.iter().map(f).collect()).median;
            rows.push(vec![
                format!("{}, median", worker.name()),
                String::new(),
                String::new(),
                bold(ratio(median(Repeat::cpu_ratio))),
                ratio(median(Repeat::own_cpu_ratio)),
                ratio(median(Repeat::wall_ratio)),
            ]);
        }
        table(
            &[
                "",
                "raw pipe: CPU (wall) per call",
                "pool call: CPU (wall) per call",
                "pool / raw, CPU",
                "pool / raw, CPU of this process only",
                "pool / raw, wall",
            ],
            rows,
        )
    }

    fn machine_table(&self) -> String {
        let m = &self.machine;
        let mut rows = vec![
            vec![
                "CPUs".to_owned(),
                format!(
                    "{} (`std::thread::available_parallelism`, as `nproc` counts)",
                    m.cores
                ),
            ],
            vec![
                "CPU model".into(),
                format!(
                    "{}{}",
                    m.cpu_model,
                    if m.virtual_machine {
                        " (a virtual machine: `hypervisor` flag in /proc/cpuinfo)"
                    } else {
                        ""
                    }
                ),
            ],
        ];
        if let Some(gib) = m.memory_gib {
            rows.push(vec!["memory".into(), format!("{gib:.0} GiB")]);
        }
        rows.push(vec!["kernel".into(), m.kernel.clone()]);
        rows.push(vec!["compiler".into(), m.rustc.clone()]);
        rows.push(vec![
            "build".into(),
            "`release` profile (`opt-level = 3`), criterion 0.8, tokio runtime as each table says"
                .into(),
        ]);
        rows.push(vec!["date".into(), self.date.clone()]);
        if let Some(commit) = &self.commit {
            rows.push(vec!["commit".into(), commit.clone()]);
        }
        rows.push(vec!["command".into(), format!("`{COMMAND}`")]);
        rows.push(vec![
            "run time".into(),
            if self.options.reuse {
                format!(
                    "{:.1} min for the pinned comparison; the criterion results were reused from the previous run (`--reuse`)",
                    self.minutes
                )
            } else {
                format!(
                    "{:.1} min ({} of `get_drop` and `scaling`, one of `subprocess`, then the pinned comparison)",
                    self.minutes,
                    plural(self.options.rounds, "round")
                )
            },
        ]);
        rows.push(vec![
            "other load".into(),
            format!(
                "average CPUs kept busy by other processes while measuring (steal beside it \
                 when any): {}",
                self.load_summary()
            ),
        ]);
        table(&["", ""], rows)
    }

    /// `criterion round 1: 0.01, ...` for the loads measured in this run.
    fn load_summary(&self) -> String {
        if self.loads.is_empty() {
            return "not measured for the reused criterion results".into();
        }
        self.loads
            .iter()
            .map(|m| {
                let mut text = format!("{} {:.2}", m.what, m.load.other_cpus);
                if m.load.steal_cpus >= 0.005 {
                    text.push_str(&format!(" (steal {:.2})", m.load.steal_cpus));
                }
                if m.attempts > 1 {
                    text.push_str(&format!(
                        " (attempt {}, earlier ones disturbed)",
                        m.attempts
                    ));
                }
                text
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// A warning for the top of the page when other load disturbed a measurement.
    fn load_warning(&self) -> String {
        let disturbed: Vec<&Measured> = self.loads.iter().filter(|m| m.load.disturbed()).collect();
        if disturbed.is_empty() {
            return String::new();
        }
        format!(
            "**Warning: other processes kept more than {} CPUs busy during {} even after {} \
             attempts; those numbers are disturbed. Run the command again on a quiet \
             machine.**\n\n",
            load::DISTURBED,
            disturbed
                .iter()
                .map(|m| m.what.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            ATTEMPTS
        )
    }

    /// The short version for the terminal: goals and the main tables.
    fn summary(&self) -> Result<String, Box<dyn Error>> {
        let mut out = String::new();
        writeln!(
            out,
            "\n{}## The run\n\n{}",
            self.load_warning(),
            self.machine_table()
        )?;
        writeln!(out, "## Goals\n\n{}", self.goals_table()?)?;
        writeln!(
            out,
            "## get+drop, uncontended\n\n{}",
            self.get_drop_table(plan::GROUP_UNCONTENDED)?
        )?;
        for (tasks, objects) in plan::CONTENDED {
            writeln!(
                out,
                "## get+drop, contended, {tasks} tasks / {objects} objects\n\n{}",
                self.get_drop_table(&plan::group_contended(tasks, objects))?
            )?;
        }
        let (tasks, objects) = plan::SHORT_HOLD;
        writeln!(
            out,
            "## get+drop, contended, short hold, {tasks} tasks / {objects} objects\n\n{}",
            self.get_drop_table(&plan::group_short_hold(tasks, objects))?
        )?;
        writeln!(out, "## scaling\n\n{}", self.scaling_table()?)?;
        writeln!(out, "## workers (wall)\n\n{}", self.workers_table()?)?;
        writeln!(out, "## one-shot commands\n\n{}", self.one_shot_table()?)?;
        writeln!(
            out,
            "## pool call vs raw pipe, pinned to CPU {}\n\n{}",
            self.pinned_cpu,
            self.pipe_table()
        )?;
        Ok(out)
    }

    /// The whole page.
    fn page(&self) -> Result<String, Box<dyn Error>> {
        let mut page = String::new();
        let rounds = self.rounds.len();
        let (short_tasks, short_objects) = plan::SHORT_HOLD;
        let contended_64 = plan::group_contended(plan::CONTENDED[0].0, plan::CONTENDED[0].1);
        let floor_vs_deadpool = Spread::of(self.per_round(|r| {
            Ok(self.ns(r, &format!("{contended_64}/semaphore+mutex"))?
                / self.ns(r, &format!("{contended_64}/deadpool"))?)
        })?);
        let ours_vs_floor = Spread::of(self.per_round(|r| {
            Ok(self.ns(r, &format!("{contended_64}/pool-core"))?
                / self.ns(r, &format!("{contended_64}/semaphore+mutex"))?)
        })?);
        let floor_sentence = if floor_vs_deadpool.median > 0.6 {
            format!(
                "in this run the floor itself is {} of deadpool's time at 64 tasks / 8 \
                 objects (median of the rounds), so reaching 0.6x needs a waiter path cheaper \
                 than a tokio semaphore.",
                ratio(floor_vs_deadpool.median)
            )
        } else {
            format!(
                "in this run the floor is {} of deadpool's time at 64 tasks / 8 objects \
                 (median of the rounds), so 0.6x leaves pool-core at most {} of the floor's \
                 time, and it takes {}.",
                ratio(floor_vs_deadpool.median),
                ratio(0.6 / floor_vs_deadpool.median),
                ratio(ours_vs_floor.median)
            )
        };
        let cat_plan = pipe_plan(Worker::Cat);
        let python_plan = pipe_plan(Worker::Python);

        writeln!(
            page,
            "# Benchmarks\n\n\
             <!-- Generated by `{COMMAND}` (benches/src/bin/report.rs). Do not edit by hand: \
             the next run rewrites this whole page, including the notes at the end. -->\n\n\
             Every number on this page comes from one command, `{COMMAND}`, run on {date}. \
             It runs the criterion benches in `benches/benches/` (pool-core side by side with \
             deadpool 0.13 and bb8 0.9 on the same no-op manager and sizes; pool-core at three \
             pool sizes; warm workers against a raw pipe and a spawn per job), measures a pool \
             call against a raw pipe in CPU time pinned to one CPU, checks each goal, and \
             rewrites this page. Timings on these VMs swing from one run to the next (by up to \
             1.5x for most benches, more for those that wait on another vCPU to wake up; \
             neighbours, vCPU wake-up latency): compare ratios measured in the same run, not \
             absolute times across runs.\n",
            date = self.date
        )?;
        page.push_str(&self.load_warning());
        writeln!(page, "## The run\n\n{}", self.machine_table())?;
        writeln!(page, "## Goals\n\n{}", self.goals_table()?)?;

        writeln!(
            page,
            "## get + drop: pool-core vs deadpool 0.13 and bb8 0.9\n\n\
             Bench: `benches/benches/get_drop.rs` (`cargo bench -p benches --bench get_drop`). \
             The same no-op manager for every pool (`benches/src/lib.rs`); `floor` is a tokio \
             semaphore guarding a mutex-protected `Vec`, with no pool features at all. Every \
             bench runs on one {threads}-worker multi-thread tokio runtime. Median time per \
             get+drop (criterion's median), {rounds} in this run.\n\n\
             Uncontended: one task (spawned on the runtime, so it runs on a worker thread), \
             get then drop, pool of {size}.\n\n{}",
            self.get_drop_table(plan::GROUP_UNCONTENDED)?,
            threads = plan::WORKER_THREADS,
            size = plan::UNCONTENDED_SIZE,
            rounds = plural(rounds, "round"),
        )?;
        for (tasks, objects) in plan::CONTENDED {
            writeln!(
                page,
                "Contended, {} tasks sharing {objects} objects; each task holds its object \
                 across one `yield_now`, so callers really queue:\n\n{}",
                thousands(tasks),
                self.get_drop_table(&plan::group_contended(tasks, objects))?
            )?;
        }
        writeln!(
            page,
            "A second contended variant, not one of the goals: the same {short_tasks} tasks \
             and {short_objects} objects, but each task drops its object at once and yields \
             after the drop, so the two worker threads contend on the pool itself rather than \
             queue behind held objects:\n\n{}",
            self.get_drop_table(&plan::group_short_hold(short_tasks, short_objects))?
        )?;

        writeln!(
            page,
            "## Scaling: pool-core at 8, 128 and 1,024 objects\n\n\
             Bench: `benches/benches/scaling.rs` (`cargo bench -p benches --bench scaling`). \
             Each pool is filled to its size (every object created and idle) before it is \
             measured, on the same {threads}-worker runtime. Uncontended: one task, get then \
             drop. Contended: {per} tasks per object ({} tasks for 1,024 objects), each \
             holding its object across one `yield_now`; the floor (the same semaphore and \
             mutex-protected `Vec` as above) runs the same load for reference. Median time \
             per get+drop; the goal is a flat line for pool-core, its slowest size within \
             1.5x of its fastest.\n\n{}\n{}",
            thousands(1024 * plan::TASKS_PER_OBJECT),
            self.scaling_table()?,
            self.scaling_comment()?,
            threads = plan::WORKER_THREADS,
            per = plan::TASKS_PER_OBJECT,
        )?;

        writeln!(
            page,
            "## Warm workers vs a raw pipe vs a spawn per job\n\n\
             Bench: `benches/benches/subprocess.rs` (`cargo bench -p benches --bench \
             subprocess`), one current-thread tokio runtime, wall time per job (criterion's \
             median). Each job is one line, `{request}`, answered with one line. Every \
             variant runs the same command line: `cat`, or `{python} -u upper.py` \
             (`crates/subprocess-pool/examples/workers/upper.py`, which answers the line \
             upper-cased and reversed; the interpreter is resolved once from \
             `python3 -c 'import sys; print(sys.executable)'`, because `python3` on PATH is a \
             pyenv shim that costs more to start than the interpreter). Warm pool call: \
             `SubprocessPool::call` with the `Lines` protocol, pool of one warm worker. Raw \
             pipe: a hand-written round trip (write the line, read a line) to the same \
             program started by hand. Spawn per job: start the program, write the line, close \
             its stdin, wait for it to exit.\n\n{}",
            self.workers_table()?,
            request = workers::REQUEST,
            python = self.python.display(),
        )?;
        writeln!(
            page,
            "Unpinned, the wall time of a round trip is bimodal on this VM: a few µs when the \
             worker answers from a vCPU that is still awake, tens of µs when every round trip \
             has to wake a sleeping one, and which mode each of the two processes lands in \
             changes from run to run. So the warm / raw pipe column above says more about \
             that than about the pool; the pinned comparison below measures the pool's \
             overhead. The speedup over a spawn per job is far above 100x in either mode.\n"
        )?;
        writeln!(
            page,
            "One-shot commands (no goal; the cost of `CommandPool`'s slot, timeout, \
             process group and capped capture around a spawn), in one run with \
             {} samples each:\n\n{}\n{}",
            plan::SLOW_SAMPLE_SIZE,
            self.one_shot_table()?,
            self.one_shot_comment()?
        )?;

        writeln!(
            page,
            "## Pool call vs raw pipe in CPU time, pinned to one CPU\n\n\
             Measured by the report itself (`benches/src/pipe_cpu.rs`), after pinning itself \
             to CPU {cpu} (`sched_setaffinity`) before starting its runtime and the workers, \
             so the report, the pool's worker and the raw pipe's worker all share that one \
             CPU. Unpinned, the two workers land in different scheduling situations on this \
             VM (one answering from a hot vCPU, the other paying a vCPU wake-up per round \
             trip): in earlier runs the ratio swung from 0.3x to 5x between runs of the same \
             binary, and the unpinned criterion table above shows the same effect. A \
             pool of one warm worker and a raw pipe to a second copy of the same program run \
             side by side, in alternating batches with the order swapped every batch ({} \
             batches of {} calls per side per repeat for `cat`, {} of {} for python). CPU time \
             is this process's (`CLOCK_PROCESS_CPUTIME_ID`, all threads) plus the worker's \
             (`/proc/<pid>/task/*/schedstat`, nanoseconds on CPU): `getrusage(RUSAGE_CHILDREN)` \
             only counts children that have exited, and the workers are alive. The column \
             \"this process only\" leaves the workers out (that is how earlier versions of \
             this page measured it). Pinned, one of the three processes is on the CPU for the \
             whole round trip, so CPU time and wall time nearly coincide, and both are far \
             below the unpinned wall times of the criterion table above: no round trip waits \
             for another vCPU to wake up.\n\n{}",
            cat_plan.batches,
            thousands(cat_plan.batch),
            python_plan.batches,
            thousands(python_plan.batch),
            self.pipe_table(),
            cpu = self.pinned_cpu,
        )?;

        writeln!(
            page,
            "## How the criterion benches are run\n\n\
             - Criterion 0.8, {warm} s warm-up and {measure} s measurement per bench, {samples} \
             samples ({slow} with flat sampling for the benches that spawn a process per \
             iteration), {resamples} bootstrap resamples; the figure used is the median.\n\
             - `get_drop` and `scaling` ran in {rounds_text} (`--rounds`, default 3), each \
             round saved as a criterion baseline of its own (`report-1` ...), because the multi-thread benches \
             are bimodal on this VM (in earlier runs the contended floor alone ranged from \
             134 ns to 960 ns from one run to the next). A ratio is computed within each round and the median of the rounds' \
             ratios is what the goals are judged on.\n\
             - In the contended benches each task runs at least {min_rounds} get+drop rounds per \
             sample, so spawning and joining the tasks stays a small share of the time; the \
             time is scaled back to the requested iteration count.\n\
             - Before each criterion round and each pinned comparison the report waits \
             (up to {patience} s) until other processes keep fewer than {disturbed} CPUs busy, \
             and measures again (up to {attempts} attempts) when they kept more busy during the \
             measurement: on 2 CPUs one compiler next door halves what a multi-thread bench \
             gets. \"other load\" in the table at the top says what each measurement saw.\n\
             - `cargo test -p benches` runs every bench once in criterion's test mode (no \
             timing), so CI checks that they work.\n",
            warm = plan::WARM_UP.as_secs_f64(),
            measure = plan::MEASUREMENT.as_secs_f64(),
            samples = plan::SAMPLE_SIZE,
            slow = plan::SLOW_SAMPLE_SIZE,
            resamples = thousands(plan::RESAMPLES),
            min_rounds = plan::MIN_ROUNDS_PER_TASK,
            rounds_text = plural(rounds, "round"),
            patience = PATIENCE.as_secs(),
            disturbed = load::DISTURBED,
            attempts = ATTEMPTS,
        )?;

        writeln!(
            page,
            "## Notes\n\n\
             This section is fixed text kept in `benches/src/bin/report.rs`; figures said to \
             be from this run are filled in from the tables above, the others were measured \
             by hand with the commands given.\n\n\
             ### What limits the contended goal\n\n\
             In the hold-across-yield benches every get+drop includes a task switch \
             (`yield_now`) and, for most gets, a queue, a wake-up and a reschedule on tokio's \
             scheduler, which the floor pays too: {floor_sentence} pool-core takes its lock three \
             times per waited get (to queue, to hand the returned object to the longest \
             waiter, and for the waiter to collect it) and reads the clock twice (for \
             `metrics.wait_time`). The next step is an intrusive waiter list that receives \
             the hand-off without the collecting lock, which needs `unsafe` in one small \
             module with loom tests.\n\n\
             ### The uncontended hot path\n\n\
             With every setting at its default, a get+drop is: one lock to take an idle \
             object, the no-op `recycle`, one atomic add for `metrics.recycled`, one `Arc` \
             clone for the guard; on drop one lock to put it back and the `Arc` drop. No clock \
             read, no allocation, no timer.\n\n\
             For a steadier figure than criterion's, `cargo build --release -p benches \
             --example get_drop_loop`, then `target/release/examples/get_drop_loop pool-core \
             2000000` (and `deadpool`), prints the fastest of 50 batches. Measured by hand on \
             2026-11-23 over ten interleaved runs: pool-core 34.7 ns fastest / 36.0 ns median \
             run, deadpool 136.8 / 140.5 ns (0.26x); the engine of the first issue (commit \
             9a8b126) 27.2 / 33.8 ns, so the features added since (maintenance, backoff, leak \
             tracking) cost 1.06x on the median run. Not in instructions: \
             `valgrind --tool=callgrind target/release/examples/get_drop_loop pool-core N` \
             for N = 100000 and 200000 gave 418 instructions per get+drop before and 408 \
             after (907 for deadpool); the difference is moves of the 16-byte guard and a \
             larger `get` future (376 to 416 bytes), which `perf` shows as store-forwarding \
             stalls.\n\n\
             ### Pool call vs raw pipe\n\n\
             The first version of the pool call measured 1.20-1.21x a raw pipe in CPU time \
             (this process only, pinned). The difference was one `waitpid` system call per \
             call: the recycle step asking whether the worker was still alive. A worker that \
             answered within the last 250 ms is now trusted without asking \
             (`Runner::is_probably_alive`); the background and `health_check_after` checks \
             still ask. Framing responses by hand instead of with `LinesCodec` made no \
             measurable difference, so it was not kept. Counting the workers' CPU time as \
             well (the \"CPU\" column) adds the same work to both sides, so that ratio tends to \
             sit closer to 1 than the \"this process only\" one.\n\n\
             ### Warm vs cold\n\n\
             A spawn per job pays the process start every time: for `cat` that is fork, exec \
             and the dynamic loader; for python the interpreter's start-up and imports, tens \
             of milliseconds. A warm call pays one pipe round trip. \
             `cargo run --release -p subprocess-pool --example warm_vs_cold` shows the same \
             comparison outside criterion.\n",
        )?;
        Ok(page)
    }
}

/// A table row: a label, a time per size, and the slowest over the fastest.
fn time_row(label: String, times: &[f64]) -> Vec<String> {
    let mut row = vec![label];
    row.extend(times.iter().map(|ns| time(*ns)));
    row.push(ratio(slowest_over_fastest(times)));
    row
}

/// The largest of `times` over the smallest.
fn slowest_over_fastest(times: &[f64]) -> f64 {
    let max = times.iter().copied().fold(f64::MIN, f64::max);
    let min = times.iter().copied().fold(f64::MAX, f64::min);
    max / min
}

/// `1 round`, `3 rounds`.
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A markdown table.
fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut out = String::new();
    out.push_str(&format!("| {} |\n", headers.join(" | ")));
    out.push_str(&format!(
        "|{}\n",
        headers.iter().map(|_| " --- |").collect::<String>()
    ));
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// A duration given in nanoseconds, with a unit that keeps three significant digits.
fn time(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.1} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

/// `0.27x`, `1.05x`, `812x`.
fn ratio(value: f64) -> String {
    format!("{}x", ratio_number(value))
}

/// A ratio without its `x`: two decimals, none from 100 up.
fn ratio_number(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// Markdown bold.
fn bold(text: String) -> String {
    format!("**{text}**")
}

/// `1,024`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
