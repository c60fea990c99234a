//! Running the measurements: criterion rounds through `cargo bench`, each started on a quiet
//! machine and repeated while other processes disturbed it, and the plan of the pinned
//! CPU-time comparison.

use std::error::Error;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use benches::load::{self, Load};
use benches::pipe_cpu::Plan;
use benches::workers::Worker;

/// Calls of the pinned CPU-time comparison, per worker.
pub(crate) fn pipe_plan(worker: Worker) -> Plan {
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

/// Tries for a quiet machine before a measurement.
pub(crate) const QUIET_WINDOW: Duration = Duration::from_secs(3);

/// How long to wait for a quiet machine before measuring anyway.
pub(crate) const PATIENCE: Duration = Duration::from_secs(180);

/// Attempts at a measurement that other processes disturbed.
pub(crate) const ATTEMPTS: usize = 3;

/// One measurement and the other load on the machine while it ran.
pub(crate) struct Measured {
    pub(crate) what: String,
    pub(crate) load: Load,
    pub(crate) attempts: usize,
}

/// Waits for a quiet machine, runs `measure` (which returns its result and the load while
/// it ran), and runs it again, up to [`ATTEMPTS`] times in all, while other processes
/// disturbed it.
pub(crate) fn until_undisturbed<T>(
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
pub(crate) fn baseline(round: usize) -> String {
    format!("report-{round}")
}

/// `cargo bench` on `benches`, saving under `baseline`, in the same target directory and
/// profile as this binary (so nothing is compiled twice).
pub(crate) fn run_benches(
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
