//! Every error's chain, walked as a report would walk it: each wrapper either shows its
//! cause's text or returns the cause from `source()`, never both, and never loses it.

#[path = "support/capture.rs"]
mod capture;
#[path = "support/chain.rs"]
mod chain;
mod support;

use std::error::Error;
use std::time::Duration;

use pool_core::{FillError, FillMode, PoolError};
use support::{Fault, Hook, builder, pool};

#[tokio::test(start_paused = true)]
async fn backend_returns_the_managers_error_as_its_source() {
    let (pool, probe) = pool(1);
    probe.fail_next(Hook::Create, Fault::Fail);
    let error = pool.get().await.unwrap_err();
    let messages = chain::chain_said_once(&error);
    assert_eq!(
        messages,
        [
            "the manager could not create an object",
            "Create call 1 failed on purpose"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_timeout_returns_its_last_error_as_its_source_and_names_the_phase() {
    let (builder, probe) = builder();
    let pool = builder
        .max_size(1)
        .wait_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    probe.set_always(Hook::Create, Some(Fault::Fail));
    let error = pool.get().await.unwrap_err();
    let messages = chain::chain_said_once(&error);
    assert!(matches!(error, PoolError::Timeout { .. }), "{messages:?}");
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].starts_with("timed out "), "{messages:?}");
    assert!(messages[1].ends_with("failed on purpose"), "{messages:?}");
}

#[tokio::test(start_paused = true)]
async fn errors_without_a_cause_have_no_source() {
    let (pool, _probe) = pool(1);
    let held = pool.get().await.unwrap();
    let busy = pool.try_get().await.unwrap_err();
    assert!(matches!(busy, PoolError::Exhausted));
    assert!(busy.source().is_none());
    let waiting = pool
        .get_timeout(Duration::from_millis(10))
        .await
        .unwrap_err();
    assert_eq!(chain::chain(&waiting), ["timed out waiting for an object"]);
    drop(held);
    pool.close();
    let closed = pool.get().await.unwrap_err();
    assert_eq!(chain::chain(&closed), ["the pool is closed"]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_fill_returns_the_create_error_as_its_source() {
    let (builder, probe) = builder();
    probe.set_always(Hook::Create, Some(Fault::Fail));
    let error = builder
        .max_size(2)
        .min_idle(2)
        .build_filled(FillMode::FailFast)
        .await
        .unwrap_err();
    let messages = chain::chain_said_once(&error);
    assert!(matches!(error, FillError::Create { .. }), "{messages:?}");
    assert_eq!(messages[0], "filling min_idle failed");
    assert!(messages[1].ends_with("failed on purpose"), "{messages:?}");
}

/// A connect failure whose cause is the operating system's error.
#[derive(Debug, thiserror::Error)]
#[error("connect failed")]
struct ConnectError(#[source] std::io::Error);

struct Refused;

impl pool_core::Manager for Refused {
    type Object = ();
    type Error = ConnectError;

    async fn create(&self) -> Result<(), ConnectError> {
        let refused =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        Err(ConnectError(refused))
    }
}

#[tokio::test(start_paused = true)]
async fn the_pools_own_log_line_shows_the_whole_chain() {
    let (capture, _subscriber) = capture::capture_events();
    let pool = pool_core::Pool::builder(Refused).build().unwrap();
    assert!(pool.get().await.is_err());
    let lines = capture.matching("create failed");
    assert!(
        lines
            .iter()
            .any(|line| line.contains("connect failed: connection refused")),
        "{lines:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn every_event_names_its_pool_and_a_failed_create_warns_once() {
    let (capture, _subscriber) = capture::capture_events();
    let pool = pool_core::Pool::builder(Refused)
        .name("db")
        .build()
        .unwrap();
    assert_eq!(pool.name(), "db");
    assert!(pool.get().await.is_err());
    let lines = capture.lines();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            line.contains("pool=db"),
            "an event without its pool: {line}"
        );
    }
    let warnings: Vec<_> = lines
        .iter()
        .filter(|l| l.starts_with("level=WARN"))
        .collect();
    assert_eq!(warnings.len(), 1, "one WARN per failed create: {lines:?}");
}

#[test]
fn a_pool_is_named_after_its_manager_by_default() {
    let pool = pool_core::Pool::builder(Refused).build().unwrap();
    assert_eq!(pool.name(), "Refused");
}
