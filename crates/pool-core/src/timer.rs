//! Timeouts whose timer is armed only once the bounded future actually has to wait.
//!
//! Most `get`s find an idle object and recycle it without ever returning `Pending`.
//! `tokio::time::timeout` creates its `Sleep` up front, which costs a runtime handle
//! clone and a timer entry for every bounded step, waiting or not. Here the `Sleep` is
//! created on the first poll that would otherwise wait, in place (no allocation).

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

use tokio::time::{Instant, Sleep};

/// Runs `future` until `deadline`: `None` if the deadline passed first. Like
/// `tokio::time::timeout_at`, the future is polled before the deadline is checked, but the
/// timer is created only if the future does not finish on its first poll.
pub(crate) async fn bounded<F: Future>(deadline: Instant, future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut timer = pin!(None::<Sleep>);
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if timer.is_none() {
            timer.set(Some(tokio::time::sleep_until(deadline)));
        }
        let sleep = timer
            .as_mut()
            .as_pin_mut()
            .expect("the timer was armed above");
        sleep.poll(cx).map(|()| None)
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_ready_future_wins_even_past_its_deadline() {
        let past = Instant::now() - Duration::from_secs(1);
        assert_eq!(bounded(past, async { 7 }).await, Some(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pending_future_is_cut_off_at_its_deadline() {
        let deadline = Instant::now() + Duration::from_secs(2);
        let outcome = bounded(deadline, std::future::pending::<()>()).await;
        assert_eq!(outcome, None);
        assert_eq!(Instant::now(), deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn a_future_that_finishes_in_time_gives_its_output() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            "done"
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        assert_eq!(bounded(deadline, slow).await, Some("done"));
    }
}
