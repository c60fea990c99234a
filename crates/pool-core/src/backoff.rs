//! The pool-wide create backoff: after a failed create, creates pause for a capped,
//! jittered, exponentially growing delay, then a single create probes the backend. A
//! success reopens creation; another failure doubles the delay.
//!
//! One state for the whole pool means a down backend sees a trickle of probes, not a
//! storm of retries from every waiting caller.

use std::time::Duration;

use tokio::time::Instant;

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
    /// While a delay runs: when it ends (no create can start before).
    paused_until: Option<Instant>,
    /// Numbers the delays, so the timer of an earlier delay (ended early by a success)
    /// cannot end a later one.
    delays: u64,
}

impl Backoff {
    pub(crate) fn new(cap: Duration) -> Self {
        Self {
            phase: Phase::Open,
            consecutive_failures: 0,
            cap,
            paused_until: None,
            delays: 0,
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
        self.paused_until = None;
        self.consecutive_failures = 0;
    }

    /// Records a failure at `now`. Returns the delay to wait before the next probe and the
    /// delay's number (for [`delay_elapsed`](Self::delay_elapsed)), unless a delay is
    /// already running (a create started before the backoff began failed too).
    pub(crate) fn create_failed(&mut self, now: Instant) -> Option<(Duration, u64)> {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.phase == Phase::Waiting {
            return None;
        }
        self.phase = Phase::Waiting;
        let delay = delay_after(self.consecutive_failures, self.cap);
        self.paused_until = Some(now + delay);
        self.delays += 1;
        Some((delay, self.delays))
    }

    /// While creates are paused: when the pause ends.
    pub(crate) fn paused_until(&self) -> Option<Instant> {
        self.paused_until.filter(|_| self.phase == Phase::Waiting)
    }

    /// Delay number `delay` is over: let one create probe the backend. The timer of an
    /// earlier delay, which a success ended before it fired, changes nothing.
    pub(crate) fn delay_elapsed(&mut self, delay: u64) {
        if self.phase == Phase::Waiting && delay == self.delays {
            self.phase = Phase::ProbeReady;
            self.paused_until = None;
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
        let (_, delay) = backoff.create_failed(Instant::now()).unwrap();
        assert!(!backoff.allows_create());
        backoff.delay_elapsed(delay);
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
        assert!(backoff.create_failed(Instant::now()).is_some());
        assert!(backoff.create_failed(Instant::now()).is_none());
        assert_eq!(backoff.consecutive_failures(), 2);
    }

    #[test]
    fn an_abandoned_probe_can_be_retried() {
        let mut backoff = Backoff::new(CAP);
        let (_, delay) = backoff.create_failed(Instant::now()).unwrap();
        backoff.delay_elapsed(delay);
        backoff.create_started();
        backoff.create_abandoned();
        assert!(backoff.allows_create());
    }

    #[test]
    fn the_timer_of_an_earlier_delay_does_not_end_a_later_one() {
        let mut backoff = Backoff::new(CAP);
        let (_, first) = backoff.create_failed(Instant::now()).unwrap();
        // A create started before the failure succeeds: the delay is over early.
        backoff.create_succeeded();
        let (_, second) = backoff.create_failed(Instant::now()).unwrap();
        backoff.delay_elapsed(first);
        assert!(
            !backoff.allows_create(),
            "the first delay's timer ended the second"
        );
        backoff.delay_elapsed(second);
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
