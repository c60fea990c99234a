//! What the pools log: every event names its pool, and a worker's end is one WARN when it
//! failed (crashed, killed by the pool) and none when it was retired as planned.

#[path = "../../pool-core/tests/support/capture.rs"]
mod capture;

use std::time::Duration;

use subprocess_pool::protocol::Lines;
use subprocess_pool::{SubprocessPool, WorkerSpec};

/// Runs `calls` on a pool named `name` of workers started from `spec`, waits until the
/// pool has stopped every worker, and returns the events logged meanwhile.
fn events(spec: WorkerSpec, requests: usize) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (capture, _subscriber) = capture::capture_events();
    runtime.block_on(async {
        let pool = SubprocessPool::builder(spec, Lines::default())
            .name("echo")
            .max_size(1)
            .build()
            .unwrap();
        assert_eq!(pool.name(), "echo");
        for n in 0..requests {
            let _ = pool.call(format!("request {n}")).await;
        }
        let report = pool.shutdown(Duration::from_secs(5)).await;
        assert!(report.is_clean(), "{report:?}");
    });
    capture.lines()
}

fn warnings(lines: &[String]) -> Vec<&String> {
    lines
        .iter()
        .filter(|line| line.starts_with("level=WARN"))
        .collect()
}

#[test]
fn a_crash_is_one_warning_naming_the_pool() {
    let lines = events(WorkerSpec::new("sh").args(["-c", "read line; exit 3"]), 1);
    let warnings = warnings(&lines);
    assert_eq!(warnings.len(), 1, "{lines:?}");
    assert!(warnings[0].contains("ended=\"exited\""), "{lines:?}");
    for line in &lines {
        assert!(
            line.contains("pool=echo"),
            "an event without its pool: {line}"
        );
    }
}

#[test]
fn a_timeout_kill_is_one_warning_saying_so() {
    let spec = WorkerSpec::new("sh")
        .args(["-c", "read line; sleep 30"])
        .request_timeout(Duration::from_millis(200));
    let lines = events(spec, 1);
    let warnings = warnings(&lines);
    assert_eq!(warnings.len(), 1, "{lines:?}");
    assert!(warnings[0].contains("killed by the pool"), "{lines:?}");
}

#[test]
fn a_planned_retirement_warns_nothing() {
    let lines = events(WorkerSpec::new("cat").max_requests(1), 3);
    assert!(warnings(&lines).is_empty(), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|line| line.contains("worker stopped") && line.contains("pool=echo")),
        "{lines:?}"
    );
}
