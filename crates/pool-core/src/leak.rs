//! Leak detection: who holds which object since when, kept only when `leak_threshold` is
//! set, so the hot path pays nothing otherwise.

use std::collections::HashMap;
use std::panic::Location;
use std::time::Duration;

use tokio::time::Instant;

struct Loan {
    since: Instant,
    location: &'static Location<'static>,
    reported: bool,
}

/// The checked-out objects, by id.
#[derive(Default)]
pub(crate) struct Loans {
    out: HashMap<u64, Loan>,
}

/// An object held past `leak_threshold`, or such an object coming back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeakReport {
    pub(crate) id: u64,
    pub(crate) held_for: Duration,
    pub(crate) location: &'static Location<'static>,
}

impl Loans {
    pub(crate) fn lend(&mut self, id: u64, since: Instant, location: &'static Location<'static>) {
        self.out.insert(
            id,
            Loan {
                since,
                location,
                reported: false,
            },
        );
    }

    /// Ends a loan; returns a report if this loan had been reported as a leak.
    pub(crate) fn give_back(&mut self, id: u64, now: Instant) -> Option<LeakReport> {
        let loan = self.out.remove(&id)?;
        loan.reported.then(|| LeakReport {
            id,
            held_for: now.saturating_duration_since(loan.since),
            location: loan.location,
        })
    }

    /// Loans held for `threshold` or longer and not reported yet, each reported once.
    pub(crate) fn overdue(&mut self, now: Instant, threshold: Duration) -> Vec<LeakReport> {
        self.out
            .iter_mut()
            .filter(|(_, loan)| {
                !loan.reported && now.saturating_duration_since(loan.since) >= threshold
            })
            .map(|(&id, loan)| {
                loan.reported = true;
                LeakReport {
                    id,
                    held_for: now.saturating_duration_since(loan.since),
                    location: loan.location,
                }
            })
            .collect()
    }

    /// When the next unreported loan passes `threshold`.
    pub(crate) fn next_due(&self, threshold: Duration) -> Option<Instant> {
        self.out
            .values()
            .filter(|loan| !loan.reported)
            .map(|loan| crate::deadline::after(loan.since, threshold))
            .min()
    }
}

pub(crate) fn report_held(pool: &str, report: &LeakReport) {
    tracing::warn!(
        target: "pool_core",
        pool = %pool,
        id = report.id,
        held_for = ?report.held_for,
        checked_out_at = %report.location,
        "object held past leak_threshold: possible leak (checked out at {})",
        report.location
    );
}

pub(crate) fn report_returned(pool: &str, report: &LeakReport) {
    tracing::info!(
        target: "pool_core",
        pool = %pool,
        id = report.id,
        held_for = ?report.held_for,
        checked_out_at = %report.location,
        "object reported as a possible leak came back"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loan_is_reported_once_then_again_when_it_comes_back() {
        let start = Instant::now();
        let here = Location::caller();
        let mut loans = Loans::default();
        loans.lend(7, start, here);
        let threshold = Duration::from_secs(10);
        assert_eq!(loans.next_due(threshold), Some(start + threshold));
        assert!(
            loans
                .overdue(start + Duration::from_secs(9), threshold)
                .is_empty()
        );
        let reports = loans.overdue(start + threshold, threshold);
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].id, 7);
        assert!(loans.overdue(start + threshold * 2, threshold).is_empty());
        assert_eq!(loans.next_due(threshold), None);
        let back = loans.give_back(7, start + threshold * 3).unwrap();
        assert_eq!(back.held_for, threshold * 3);
    }

    #[test]
    fn a_loan_returned_in_time_is_not_reported() {
        let start = Instant::now();
        let mut loans = Loans::default();
        loans.lend(1, start, Location::caller());
        assert!(loans.give_back(1, start).is_none());
    }
}
