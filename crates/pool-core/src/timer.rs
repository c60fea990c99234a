//! Timeouts whose timer is armed only once the bounded future actually has to wait.
//!
//! Most `get`s find an idle object and recycle it without ever returning `Pending`.
//! `tokio::time::timeout` creates its `Sleep` up front, which costs a runtime handle
//! clone and a timer entry for every bounded step, waiting or not. Here the `Sleep` is
//! created on the first poll that would otherwise wait, in place (no allocation).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

/// Runs `future` until `deadline` (`None`: no deadline); the output is `None` if the
/// deadline passed first. Like `tokio::time::timeout_at`, the future is polled before the
/// deadline is checked, but the timer is created only if the future does not finish on
/// its first poll.
pub(crate) fn bounded<F: Future>(deadline: Option<Instant>, future: F) -> Bounded<F> {
    Bounded {
        future,
        deadline,
        timer: None,
    }
}

pin_project! {
    /// The future [`bounded`] returns. A named type rather than an `async fn`: an async
    /// fn would keep its argument and the pinned copy it polls side by side, doubling the
    /// space every bounded step takes in a `get` future (and the bytes moved with it).
    pub(crate) struct Bounded<F> {
        #[pin]
        future: F,
        deadline: Option<Instant>,
        #[pin]
        timer: Option<Sleep>,
    }
}

impl<F: Future> Future for Bounded<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Some(output));
        }
        let Some(deadline) = *this.deadline else {
            return Poll::Pending;
        };
        if this.timer.is_none() {
            this.timer.set(Some(tokio::time::sleep_until(deadline)));
        }
        let sleep = this.timer.as_pin_mut().expect("the timer was armed above");
        sleep.poll(cx).map(|()| None)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_ready_future_wins_even_past_its_deadline() {
        let past = Instant::now() - Duration::from_secs(1);
        assert_eq!(bounded(Some(past), async { 7 }).await, Some(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pending_future_is_cut_off_at_its_deadline() {
        let deadline = Instant::now() + Duration::from_secs(2);
        let outcome = bounded(Some(deadline), std::future::pending::<()>()).await;
        assert_eq!(outcome, None);
        assert_eq!(Instant::now(), deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_deadline_a_pending_future_is_never_cut_off() {
        let mut unbounded = std::pin::pin!(bounded(None, std::future::pending::<()>()));
        tokio::time::advance(Duration::from_secs(86_400 * 365)).await;
        assert!(poll_once(unbounded.as_mut()).await.is_pending());
    }

    /// Polls `future` once, as a task would.
    async fn poll_once<F: Future + Unpin>(mut future: F) -> Poll<F::Output> {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut future).poll(cx))).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_future_that_finishes_in_time_gives_its_output() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            "done"
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        assert_eq!(bounded(Some(deadline), slow).await, Some("done"));
    }
}
