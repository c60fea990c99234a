//! Instant arithmetic that never panics: a deadline too far away to represent (a setting of
//! `Duration::MAX`, say) becomes "in about thirty years", which no pool will reach.

use std::time::Duration;

use tokio::time::Instant;

/// Later than any deadline a pool needs, and representable (tokio uses the same horizon).
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// `now + delay`, saturating at [`FAR_FUTURE`] from now.
pub(crate) fn after(now: Instant, delay: Duration) -> Instant {
    now.checked_add(delay.min(FAR_FUTURE)).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_delays_saturate_instead_of_panicking() {
        let now = Instant::now();
        assert_eq!(after(now, Duration::MAX), after(now, FAR_FUTURE));
        assert!(after(now, Duration::MAX) > now);
        assert_eq!(
            after(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
    }
}
