//! Leak reports: an object held past `leak_threshold` is reported once, naming the file and
//! line of the `get` that checked it out, and again when it comes back.

#[path = "support/capture.rs"]
mod capture;
mod support;

use std::time::Duration;

use capture::capture_events;
use support::settle;

/// A pool reporting objects held for 10 s or more.
fn watched_pool() -> support::TestPool {
    let (builder, _probe) = support::builder();
    builder
        .max_size(2)
        .leak_threshold(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The one "possible leak" report logged so far.
fn the_one_leak_report(capture: &capture::Capture) -> String {
    let mut reports = capture.matching("possible leak");
    assert_eq!(reports.len(), 1, "{:?}", capture.lines());
    reports.remove(0)
}

#[tokio::test(start_paused = true)]
async fn leak_report_names_the_file_and_line_of_the_get() {
    let (capture, _subscriber) = capture_events();
    let pool = watched_pool();
    let line = line!() + 1;
    let leaked = pool.get().await.unwrap();
    let here = format!("{}:{line}", file!());

    tokio::time::advance(Duration::from_secs(9)).await;
    settle().await;
    assert!(
        capture.matching("possible leak").is_empty(),
        "reported too early"
    );

    tokio::time::advance(Duration::from_secs(2)).await;
    settle().await;
    let report = the_one_leak_report(&capture);
    assert!(report.contains(&here), "{report} does not name {here}");
    assert!(report.contains("id=1"), "{report}");
    assert_eq!(pool.metrics().leaks, 1);

    tokio::time::advance(Duration::from_secs(60)).await;
    settle().await;
    assert_eq!(
        capture.matching("possible leak").len(),
        1,
        "reported once only"
    );

    drop(leaked);
    let returns = capture.matching("came back");
    assert_eq!(returns.len(), 1, "{:?}", capture.lines());
    assert!(returns[0].contains(&here), "{}", returns[0]);
}

#[tokio::test(start_paused = true)]
async fn objects_returned_in_time_are_never_reported() {
    let (capture, _subscriber) = capture_events();
    let pool = watched_pool();
    for _ in 0..5 {
        let object = pool.get().await.unwrap();
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(object);
    }
    tokio::time::advance(Duration::from_secs(60)).await;
    settle().await;
    assert!(capture.matching("possible leak").is_empty());
    assert_eq!(pool.metrics().leaks, 0);
}

#[tokio::test(start_paused = true)]
async fn a_taken_object_is_no_longer_watched() {
    let (capture, _subscriber) = capture_events();
    let pool = watched_pool();
    let mine = pool_core::Object::take(pool.get().await.unwrap());
    tokio::time::advance(Duration::from_secs(60)).await;
    settle().await;
    assert!(capture.matching("possible leak").is_empty());
    drop(mine);
}

#[tokio::test(start_paused = true)]
async fn creates_failures_and_destroys_are_traced_with_their_reason() {
    let (capture, _subscriber) = capture_events();
    let (builder, probe) = support::builder();
    let pool = builder.max_size(2).build().unwrap();
    let mut object = pool.get().await.unwrap();
    object.broken = true;
    drop(object);
    probe.fail_next(support::Hook::Create, support::Fault::Fail);
    assert!(pool.get().await.is_err());
    settle().await;
    assert_eq!(capture.matching("object created").len(), 1);
    assert_eq!(
        capture.matching("reason=Broken").len(),
        1,
        "{:?}",
        capture.lines()
    );
    // One line says the create failed (a WARN); the pause it starts is a DEBUG detail.
    assert_eq!(
        capture.matching("create failed").len(),
        1,
        "{:?}",
        capture.lines()
    );
    let paused = capture.matching("creates paused");
    assert_eq!(paused.len(), 1, "{:?}", capture.lines());
    assert!(paused[0].starts_with("level=DEBUG"), "{paused:?}");
}

/// Keys are tenants; objects cost nothing.
struct Tenants;

impl pool_core::KeyedManager for Tenants {
    type Key = u8;
    type Object = u8;
    type Error = std::convert::Infallible;

    async fn create(&self, key: &u8) -> Result<u8, Self::Error> {
        Ok(*key)
    }
}

#[tokio::test(start_paused = true)]
async fn a_keyed_leak_report_names_the_users_get_too() {
    let (capture, _subscriber) = capture_events();
    let config = pool_core::PoolConfig {
        leak_threshold: Some(Duration::from_secs(10)),
        ..pool_core::PoolConfig::default()
    };
    let pool = pool_core::KeyedPool::builder(Tenants)
        .config(config)
        .build()
        .unwrap();
    let line = line!() + 1;
    let _leaked = pool.get(&7).await.unwrap();
    let here = format!("{}:{line}", file!());
    tokio::time::advance(Duration::from_secs(11)).await;
    settle().await;
    let report = the_one_leak_report(&capture);
    assert!(report.contains(&here), "{report} does not name {here}");
}
