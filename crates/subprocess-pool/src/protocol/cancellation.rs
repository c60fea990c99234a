//! How a multiplexed request that its caller gave up on is withdrawn.

/// What [`Protocol::cancel`](super::Protocol::cancel) asks for when the caller of a
/// multiplexed request gives up on it (its `request_timeout` passed, or the call was
/// dropped).
///
/// Unless the worker is killed, the request keeps its place among the worker's requests
/// in flight until the worker answers it (the answer is then dropped): the worker is busy
/// with it. A worker that has not answered within a further `request_timeout` is killed.
///
/// # Example
///
/// ```
/// use subprocess_pool::Protocol;
/// use subprocess_pool::protocol::{BazelJson, Cancellation};
///
/// // Bazel's multiplex workers are told to cancel, by a request with `cancel` set.
/// match BazelJson::default().multiplex().cancel(7) {
///     Cancellation::Send(request) => assert!(request.cancel && request.request_id == 7),
///     _ => unreachable!(),
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Cancellation<R> {
    /// Send this request (a Bazel `cancel`, an LSP `$/cancelRequest`); the worker goes on
    /// serving the other requests.
    Send(R),
    /// Send nothing; drop the answer when it comes.
    Forget,
    /// Kill the worker: the protocol cannot withdraw one request. Every other request in
    /// flight on it fails.
    Kill,
}
