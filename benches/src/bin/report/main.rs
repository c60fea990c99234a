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
//!    the date, the command, the tables, and the fixed explanatory text kept in `page.rs`.
//!
//! Options: `--rounds N` (default 3) rounds of `get_drop` and `scaling`; `--reuse` skips
//! step 1 and reads the results the last run saved (for working on this file; the page then
//! says so).

use std::error::Error;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use benches::cpu;
use benches::estimates::Estimates;
use benches::load::Snapshot;
use benches::machine::{self, Machine};
use benches::pipe_cpu;
use benches::workers::{self, Worker};

use measure::{baseline, pipe_plan, run_benches, until_undisturbed};
use options::options;
use run::Run;

mod format;
mod measure;
mod options;
mod page;
mod run;

/// The command that regenerates the page; written into it.
pub(crate) const COMMAND: &str = "cargo run -p benches --release --bin report";

/// Where the page goes, relative to the workspace root.
pub(crate) const DOC: &str = "docs/benchmarks.md";

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
