//! The `warm` binary on real inputs with real workers (`tests/workers/job_worker.py`):
//! order kept, a crashing worker retried, a timeout, an empty input, invalid UTF-8 under
//! lines, a missing program, and Ctrl-C.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The real python interpreter (`python3` on PATH may be a slow shim), resolved once.
fn python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let output = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 runs");
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    })
}

fn worker() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/workers/job_worker.py")
        .display()
        .to_string()
}

/// Runs `warm ARGS -- python -u job_worker.py WORKER_ARGS` with `input` on stdin.
fn warm(args: &[&str], worker_args: &[&str], input: &[u8]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warm"));
    command
        .args(args)
        .args(["--", python(), "-u", &worker()])
        .args(worker_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn answers_keep_the_order_of_the_jobs() {
    let input: String = (1..=200).map(|n| format!("{n}\n")).collect();
    let expected: Vec<String> = (1..=200).map(|n| (n * 2).to_string()).collect();
    let output = warm(&["-j", "4", "-k"], &["--jitter"], input.as_bytes());
    assert!(output.status.success(), "{output:?}");
    assert_eq!(lines(&output.stdout), expected);
    // Without -k every answer is there, in whatever order the workers finished.
    let output = warm(&["-j", "4"], &["--jitter"], input.as_bytes());
    let mut answers = lines(&output.stdout);
    answers.sort_by_key(|answer| answer.parse::<u64>().unwrap());
    assert_eq!(answers, expected);
}

#[test]
fn a_crashing_worker_is_replaced_and_its_job_tried_again() {
    let input: String = (1..=30).map(|n| format!("{n}\n")).collect();
    let summary = std::env::temp_dir().join(format!("warm-summary-{}.json", std::process::id()));
    let summary_arg = summary.display().to_string();
    let output = warm(
        &["-j", "2", "-k", "--retries", "3", "--summary", &summary_arg],
        &["--crash-every", "4"],
        input.as_bytes(),
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(lines(&output.stdout).len(), 30);
    let text = std::fs::read_to_string(&summary).unwrap();
    std::fs::remove_file(&summary).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(summary["succeeded"], 30);
    assert_eq!(summary["failed"], 0);
    assert!(summary["retried"].as_u64().unwrap() >= 5, "{summary}");
    assert!(
        summary["pool"]["workers_started"].as_u64().unwrap() > 2,
        "{summary}"
    );
    assert!(
        summary["pool"]["workers"]["exited"].as_u64().unwrap() >= 5,
        "{summary}"
    );
}

#[test]
fn a_job_past_its_timeout_fails_with_its_line_number_and_the_rest_go_on() {
    let started = Instant::now();
    let output = warm(
        &["-j", "2", "-k", "--timeout", "300ms"],
        &[],
        b"a\nslow\nb\n",
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the slow job was not cut short"
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(lines(&output.stdout), ["a", "b"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("warm: line 2:"), "{stderr}");
    assert!(stderr.contains("timed out"), "{stderr}");
}

#[test]
fn an_empty_input_is_a_success_with_no_output() {
    let output = warm(&[], &[], b"");
    assert!(output.status.success(), "{output:?}");
    assert!(output.stdout.is_empty());
}

#[test]
fn a_job_that_is_not_utf8_under_lines_fails_clearly_and_the_rest_go_on() {
    let output = warm(&["-k"], &[], b"one\n\xff\xfe\ntwo\n");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(lines(&output.stdout), ["one", "two"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 2") && stderr.contains("not valid UTF-8"),
        "{stderr}"
    );
}

#[test]
fn a_missing_program_stops_the_run_naming_it() {
    let output = Command::new(env!("CARGO_BIN_EXE_warm"))
        .args(["--", "/nonexistent/worker"])
        .stdin(Stdio::piped())
        .output()
        .unwrap();
    // stdin closed at once: no jobs, so nothing starts a worker; give it one.
    assert!(output.status.success(), "{output:?}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_warm"))
        .args(["--", "/nonexistent/worker"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"x\ny\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/worker"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "said once: {stderr}");
}

/// Processes whose command line mentions `marker`.
fn processes_mentioning(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            String::from_utf8_lossy(&cmdline)
                .contains(marker)
                .then_some(pid)
        })
        .collect()
}

#[test]
fn ctrl_c_stops_taking_jobs_and_leaves_no_worker_behind() {
    // A marker in the workers' command lines, so this test finds its own.
    let marker = format!("--marker-{}", std::process::id());
    let input: String = (0..100).map(|_| "nap\n").collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_warm"))
        .args(["-j", "2", "--", python(), "-u", &worker(), &marker])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    // The tool's own command line has the marker too.
    let workers: Vec<_> = processes_mentioning(&marker)
        .into_iter()
        .filter(|&pid| pid != child.id())
        .collect();
    assert_eq!(workers.len(), 2, "two workers ran");
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let started = Instant::now();
    let output = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "it stopped promptly"
    );
    assert_eq!(output.status.code(), Some(130), "{output:?}");
    let answered = lines(&output.stdout).len();
    assert!(
        (2..100).contains(&answered),
        "stopped part-way: {answered} answered"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_mentioning(&marker).is_empty() {
        assert!(Instant::now() < deadline, "workers left behind");
        std::thread::sleep(Duration::from_millis(20));
    }
}
