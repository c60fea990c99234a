// The engine's only randomness on this path is the jitter of its create backoff. It logs
// each delay it starts (`create failed; creates paused before the next probe`, field
// `delay`); this subscriber reads them back, in order, for the model.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
pub(crate) struct BackoffLog(Arc<Mutex<VecDeque<Duration>>>);

impl BackoffLog {
    pub(crate) fn drain(&self) -> Vec<Duration> {
        self.0.lock().unwrap().drain(..).collect()
    }
}

impl tracing::Subscriber for BackoffLog {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.is_event() && metadata.fields().field("delay").is_some()
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        struct Delay(Option<String>);
        impl tracing::field::Visit for Delay {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
                if field.name() == "delay" {
                    self.0 = Some(format!("{value:?}"));
                }
            }
        }
        let mut delay = Delay(None);
        event.record(&mut delay);
        if let Some(text) = delay.0 {
            self.0
                .lock()
                .unwrap()
                .push_back(parse_debug_duration(&text));
        }
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// Parses `Duration`'s `Debug` output ("7.234567ms", "1.5s", "850µs"), which is exact.
fn parse_debug_duration(text: &str) -> Duration {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or_else(|| panic!("no unit in {text:?}"));
    let (number, unit) = text.split_at(split);
    let unit_nanos: u128 = match unit {
        "s" => 1_000_000_000,
        "ms" => 1_000_000,
        "µs" => 1_000,
        "ns" => 1,
        _ => panic!("unknown unit in {text:?}"),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let mut nanos = whole.parse::<u128>().unwrap() * unit_nanos;
    if !fraction.is_empty() {
        let digits = u32::try_from(fraction.len()).unwrap();
        nanos += fraction.parse::<u128>().unwrap() * unit_nanos / 10u128.pow(digits);
    }
    Duration::from_nanos(u64::try_from(nanos).unwrap())
}

/// Whole milliseconds, rounded up: when a timer set for `delay` fires on the paused clock
/// (tokio's timer wheel ticks in milliseconds, and every step moves the clock by whole ones).
pub(crate) fn ceil_ms(delay: Duration) -> u64 {
    u64::try_from(delay.as_nanos().div_ceil(1_000_000)).unwrap()
}
