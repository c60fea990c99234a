//! A worker held past `leak_threshold` is reported naming the line that called
//! `SubprocessPool::call`, not a line inside this crate.

#[path = "../../pool-core/tests/support/capture.rs"]
mod capture;

use std::time::Duration;

use capture::capture_events;
use subprocess_pool::protocol::Lines;
use subprocess_pool::{SubprocessPool, WorkerSpec};

#[tokio::test]
async fn a_slow_call_is_reported_at_the_callers_line() {
    let (capture, _subscriber) = capture_events();
    // Answers each line half a second later.
    let spec = WorkerSpec::new("sh").args(["-c", "while read l; do sleep 0.5; echo \"$l\"; done"]);
    let pool = SubprocessPool::builder(spec, Lines::default())
        .max_size(1)
        .leak_threshold(Duration::from_millis(100))
        .build()
        .unwrap();
    let line = line!() + 1;
    let reply = pool.call("slow".to_string()).await.unwrap();
    assert_eq!(reply, "slow");
    let here = format!("{}:{line}", file!());
    let reports = capture.matching("held past leak_threshold");
    assert_eq!(reports.len(), 1, "{:?}", capture.lines());
    assert!(
        reports[0].contains(&here),
        "{} does not name {here}",
        reports[0]
    );
    let returns = capture.matching("came back");
    assert_eq!(returns.len(), 1, "{:?}", capture.lines());
    assert!(returns[0].contains(&here), "{}", returns[0]);
}
