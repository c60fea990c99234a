//! The command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Streams jobs through warm worker processes.
///
/// Reads jobs (one per line, or NUL-separated with -0) from stdin or from files, sends each
/// to one of a pool of warm workers started from COMMAND, and writes each answer to
/// stdout: as they finish, or in input order with --keep-order. Unlike `xargs -P` or GNU
/// parallel, a worker is started once and answers many jobs, over its stdin and stdout, so
/// no job pays for a process start.
///
/// A failed job is reported on stderr with its line number and why; the others go on. The
/// exit status is 0 when every job succeeded, 1 when some failed, 2 for a usage error and
/// 130 when interrupted.
///
/// Example: `seq 1000 | warm -j 4 -k -- python3 -u square.py` with a worker that reads a
/// number per line and prints its square.
#[derive(Debug, Parser)]
#[command(name = "warm", version, verbatim_doc_comment)]
pub(crate) struct Args {
    /// Workers to keep running [default: the number of CPUs].
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub(crate) jobs: Option<usize>,

    /// Write answers in the order of the jobs, not as they finish.
    #[arg(short = 'k', long)]
    pub(crate) keep_order: bool,

    /// Jobs are separated by NUL bytes instead of newlines (input and output).
    #[arg(short = '0', long = "null")]
    pub(crate) null: bool,

    /// Read jobs from FILE instead of stdin (repeatable, read in order).
    #[arg(short = 'a', long = "arg-file", value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,

    /// How jobs and answers cross the workers' pipes.
    #[arg(short, long, value_enum, default_value_t = ProtocolName::Lines)]
    pub(crate) protocol: ProtocolName,

    /// JSON-RPC method each job calls (the job's line is its JSON params).
    #[arg(long, default_value = "run", value_name = "NAME")]
    pub(crate) method: String,

    /// Per-job timeout; a worker past it is killed and the job fails (e.g. 30s, 500ms).
    #[arg(short, long, value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) timeout: Option<Duration>,

    /// How many times a job is tried again on another worker when its worker crashes.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub(crate) retries: u32,

    /// Requests a worker serves before it is replaced.
    #[arg(long, value_name = "N")]
    pub(crate) max_requests: Option<u64>,

    /// How long a worker may take to start (and print --ready-line, if set).
    #[arg(long, value_parser = parse_duration, default_value = "30s", value_name = "DURATION")]
    pub(crate) startup_timeout: Duration,

    /// A worker is ready once it prints this line.
    #[arg(long, value_name = "LINE")]
    pub(crate) ready_line: Option<String>,

    /// On Ctrl-C: `finish` the jobs in flight (a second Ctrl-C cancels them), or `cancel`
    /// them at once. Either way no new job starts and every worker is stopped.
    #[arg(long, value_enum, default_value_t = OnInterrupt::Finish)]
    pub(crate) on_interrupt: OnInterrupt,

    /// Show a progress line on stderr: `auto` when stderr is a terminal.
    #[arg(long, value_enum, default_value_t = When::Auto)]
    pub(crate) progress: When,

    /// Write a JSON summary (counts, timings, workers started, pool metrics) to FILE, or
    /// to stderr with `-`.
    #[arg(long, value_name = "FILE")]
    pub(crate) summary: Option<PathBuf>,

    /// The worker program and its arguments (after `--`).
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub(crate) command: Vec<String>,
}

/// The protocols a job can be sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProtocolName {
    /// A job is one line to the worker; its answer is one line back.
    Lines,
    /// A job is one frame (u32 big-endian length, then the bytes); so is its answer.
    LengthPrefixed,
    /// A job's line is the JSON params of a JSON-RPC request (`--method`); the answer is
    /// the result's JSON (an error response fails the job).
    JsonRpc,
    /// Bazel's JSON worker protocol: a job's line is split on whitespace into a
    /// WorkRequest's arguments; the answer is the WorkResponse's output (a non-zero
    /// exitCode fails the job).
    BazelJson,
    /// Bazel's protobuf worker protocol, as `bazel-json`.
    BazelProto,
}

/// What Ctrl-C does to the jobs in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OnInterrupt {
    /// Let them finish.
    Finish,
    /// Cancel them.
    Cancel,
}

/// When to do something that only makes sense on a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum When {
    /// When stderr is a terminal.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// `30s`, `500ms`, `2m`, `1h`, or plain seconds (`1.5`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try 30s, 500ms, 2m)"))?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => {
            return Err(format!(
                "`{unit}` is not a unit of time (use ms, s, m or h)"
            ));
        }
    };
    if !(seconds.is_finite() && seconds > 0.0 && seconds < 1e9) {
        return Err(format!("`{text}` must be more than zero"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn the_command_comes_after_a_double_dash() {
        let args = Args::try_parse_from(["warm", "-j", "2", "-k", "--", "cat", "-u"]).unwrap();
        assert_eq!(args.command, ["cat", "-u"]);
        assert_eq!(args.jobs, Some(2));
        assert!(args.keep_order);
        assert!(Args::try_parse_from(["warm", "-j", "2"]).is_err());
    }
}
