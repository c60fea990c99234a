//! The pool-wide create backoff: after a failed create, creates pause for a capped,
//! jittered, exponentially growing delay, then a single create probes the backend. A
//! success reopens creation; another failure doubles the delay.
//!
//! One state for the whole pool means a down backend sees a trickle of probes, not a
//! storm of retries from every waiting caller.

use std::time::Duration;

use crate::random;

const FIRST_DELAY: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Creates flow, bounded only by `max_concurrent_creates`.
    Open,
    /// A delay is running; no create may start.
    Waiting,
    /// The delay is over; the next create to start is the probe.
    ProbeReady,
    /// The probe is in flight; no other create may start.
    Probing,
}

#[derive(Debug)]
pub(crate) struct Backoff {
    phase: Phase,
    consecutive_failures: u32,
    /// The longest delay (`create_backoff_max`).
    cap: Duration,
}

impl Backoff {
    pub(crate) fn new(cap: Duration) -> Self {
        Self {
            phase: Phase::Open,
            consecutive_failures: 0,
            cap,
        }
    }

    /// Whether a create may start now.
    pub(crate) fn allows_create(&self) -> bool {
        matches!(self.phase, Phase::Open | Phase::ProbeReady)
    }

    pub(crate) fn create_started(&mut self) {
        if self.phase == Phase::ProbeReady {
            self.phase = Phase::Probing;
        }
    }

    /// A create ended without an outcome (cancelled, or its caller panicked).
    pub(crate) fn create_abandoned(&mut self) {
        if self.phase == Phase::Probing {
            self.phase = Phase::ProbeReady;
        }
    }

    pub(crate) fn create_succeeded(&mut self) {
        self.phase = Phase::Open;
        self.consecutive_failures = 0;
    }

    /// Records a failure. Returns the delay to wait before the next probe, unless a delay
    /// is already running (a create started before the backoff began failed too).
    pub(crate) fn create_failed(&mut self) -> Option<Duration> {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.phase == Phase::Waiting {
            return None;
        }
        self.phase = Phase::Waiting;
        Some(delay_after(self.consecutive_failures, self.cap))
    }

    /// The delay is over: let one create probe the backend.
    pub(crate) fn delay_elapsed(&mut self) {
        if self.phase == Phase::Waiting {
            self.phase = Phase::ProbeReady;
        }
    }

    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }
}

/// 10 ms doubling per failure, capped at `cap`, then jittered down by up to half so pools
/// that failed together do not probe together.
fn delay_after(failures: u32, cap: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(30);
    let ceiling = FIRST_DELAY.saturating_mul(1 << exponent).min(cap);
    ceiling.mul_f64(1.0 - 0.5 * random::fraction())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Duration = Duration::from_millis(500);

    #[test]
    fn a_failure_pauses_creates_until_the_delay_then_allows_one_probe() {
        let mut backoff = Backoff::new(CAP);
        assert!(backoff.allows_create());
        assert!(backoff.create_failed().is_some());
        assert!(!backoff.allows_create());
        backoff.delay_elapsed();
        assert!(backoff.allows_create());
        backoff.create_started();
        assert!(!backoff.allows_create(), "only one probe at a time");
        backoff.create_succeeded();
        assert!(backoff.allows_create());
        assert_eq!(backoff.consecutive_failures(), 0);
    }

    #[test]
    fn failures_while_waiting_do_not_start_another_delay() {
        let mut backoff = Backoff::new(CAP);
        assert!(backoff.create_failed().is_some());
        assert!(backoff.create_failed().is_none());
        assert_eq!(backoff.consecutive_failures(), 2);
    }

    #[test]
    fn an_abandoned_probe_can_be_retried() {
        let mut backoff = Backoff::new(CAP);
        backoff.create_failed();
        backoff.delay_elapsed();
        backoff.create_started();
        backoff.create_abandoned();
        assert!(backoff.allows_create());
    }

    #[test]
    fn delays_grow_and_stay_capped() {
        for failures in 1..40 {
            let delay = delay_after(failures, CAP);
            assert!(delay <= CAP);
            let exponent = (failures - 1).min(30);
            let ceiling = FIRST_DELAY.saturating_mul(1 << exponent).min(CAP);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{failures}: {delay:?}"
            );
        }
    }
}
