//! Leak reports: an object held past `leak_threshold` is reported once, naming the file and
//! line of the `get` that checked it out, and again when it comes back.

mod support;

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::settle;
use tracing::field::{Field, Visit};
use tracing::span;

/// A subscriber that keeps each event's fields as one line of text.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

impl Capture {
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    fn matching(&self, needle: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|line| line.contains(needle))
            .collect()
    }
}

struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = String::new();
        event.record(&mut Line(&mut line));
        self.0.lock().unwrap().push(line);
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

/// Captures this thread's events until the guard drops.
fn capture_events() -> (Capture, tracing::subscriber::DefaultGuard) {
    let capture = Capture::default();
    let guard = tracing::subscriber::set_default(capture.clone());
    (capture, guard)
}

/// A pool reporting objects held for 10 s or more.
fn watched_pool() -> support::TestPool {
    let (builder, _probe) = support::builder();
    builder
        .max_size(2)
        .leak_threshold(Duration::from_secs(10))
        .build()
        .unwrap()
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
    let reports = capture.matching("possible leak");
    assert_eq!(reports.len(), 1, "{:?}", capture.lines());
    assert!(
        reports[0].contains(&here),
        "{} does not name {here}",
        reports[0]
    );
    assert!(reports[0].contains("id=1"), "{}", reports[0]);
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
    let capture = Capture::default();
    let _subscriber = tracing::subscriber::set_default(capture.clone());
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
    assert_eq!(
        capture.matching("create failed").len(),
        2,
        "{:?}",
        capture.lines()
    );
}
