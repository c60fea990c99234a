//! Reading an error's chain as a report walks it. Shared with subprocess-pool's tests by
//! `#[path]`.
#![allow(dead_code)]

use std::error::Error;

/// The messages of `error` and of its sources, outermost first.
pub(crate) fn chain(error: &dyn Error) -> Vec<String> {
    let mut messages = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        messages.push(cause.to_string());
        source = cause.source();
    }
    messages
}

/// An error and its sources, joined as a log line that walks the chain would show them.
pub(crate) fn report(error: &dyn Error) -> String {
    chain(error).join(": ")
}

/// Checks the Rust API guidelines' rule on `error`'s chain: no message repeats the text of
/// the error below it (a wrapper shows its cause or returns it from `source()`, not both);
/// returns the chain's messages.
pub(crate) fn chain_said_once(error: &dyn Error) -> Vec<String> {
    let messages = chain(error);
    for pair in messages.windows(2) {
        assert!(
            !pair[0].contains(&pair[1]),
            "{:?} repeats its source {:?}",
            pair[0],
            pair[1]
        );
    }
    messages
}
