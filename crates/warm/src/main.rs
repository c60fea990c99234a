//! `warm`: streams jobs through warm worker processes (see `warm --help`).

mod args;
mod input;
mod job;
mod progress;
mod run;

use std::process::ExitCode;

use clap::Parser;
use subprocess_pool::protocol::{BazelJson, BazelProto, JsonRpc, LengthPrefixed, Lines};

use crate::args::{Args, ProtocolName};
use crate::run::{Fatal, Outcome, run};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let summary = args.summary.clone();
    let outcome = match args.protocol {
        ProtocolName::Lines => run(args, Lines::default()).await,
        ProtocolName::LengthPrefixed => run(args, LengthPrefixed::default()).await,
        ProtocolName::JsonRpc => run(args, JsonRpc::default()).await,
        ProtocolName::BazelJson => run(args, BazelJson::default()).await,
        ProtocolName::BazelProto => run(args, BazelProto::default()).await,
    };
    match outcome {
        Err(Fatal(reason)) => {
            eprintln!("warm: {reason}");
            ExitCode::from(2)
        }
        Ok(outcome) => {
            if let Some(path) = summary {
                if let Err(error) = write_summary(&path, &outcome) {
                    eprintln!(
                        "warm: cannot write the summary to {}: {error}",
                        path.display()
                    );
                }
            }
            if outcome.interrupted {
                ExitCode::from(130)
            } else if outcome.failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

/// The run's counts, timings and pool metrics as JSON, to `path` (`-`: stderr).
fn write_summary(path: &std::path::Path, outcome: &Outcome) -> std::io::Result<()> {
    let jobs = outcome.succeeded + outcome.failed;
    let seconds = outcome.elapsed.as_secs_f64();
    let summary = serde_json::json!({
        "jobs": jobs,
        "succeeded": outcome.succeeded,
        "failed": outcome.failed,
        "retried": outcome.retried,
        "interrupted": outcome.interrupted,
        "elapsed_ms": outcome.elapsed.as_millis() as u64,
        "jobs_per_second": if seconds > 0.0 { jobs as f64 / seconds } else { 0.0 },
        "pool": outcome.pool,
    });
    let text = serde_json::to_string_pretty(&summary)? + "\n";
    if path.as_os_str() == "-" {
        eprint!("{text}");
        Ok(())
    } else {
        std::fs::write(path, text)
    }
}
