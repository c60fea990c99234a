//! Bazel's persistent-worker messages, shared by [`BazelJson`](super::BazelJson) and
//! [`BazelProto`](super::BazelProto).
//!
//! Field numbers and names follow Bazel's `worker_protocol.proto`; the Rust fields use Rust
//! names, the JSON wire camelCase names. Unknown JSON fields are tolerated and zero-valued
//! fields may be omitted, both ways.

use serde::{Deserialize, Serialize};

/// An input file of a [`WorkRequest`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, prost::Message)]
#[serde(rename_all = "camelCase", default)]
pub struct Input {
    /// The path of the input, relative to the execution root.
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// A digest of the file's content.
    #[prost(bytes = "vec", tag = "2")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub digest: Vec<u8>,
}

/// One unit of work for a persistent worker.
///
/// # Example
///
/// ```
/// use subprocess_pool::protocol::WorkRequest;
///
/// let request = WorkRequest { arguments: vec!["a.ts".into()], ..Default::default() };
/// assert_eq!(request.request_id, 0); // singleplex
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, prost::Message)]
#[serde(rename_all = "camelCase", default)]
pub struct WorkRequest {
    /// The command-line arguments of this unit of work.
    #[prost(string, repeated, tag = "1")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<String>,
    /// The inputs it may read.
    #[prost(message, repeated, tag = "2")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Input>,
    /// 0 for a singleplex worker (the default), else an id the response must repeat.
    #[prost(int32, tag = "3")]
    #[serde(skip_serializing_if = "is_zero")]
    pub request_id: i32,
    /// Whether this asks to cancel an earlier request.
    #[prost(bool, tag = "4")]
    #[serde(skip_serializing_if = "is_false")]
    pub cancel: bool,
    /// How verbose the worker should be.
    #[prost(int32, tag = "5")]
    #[serde(skip_serializing_if = "is_zero")]
    pub verbosity: i32,
    /// The sandbox directory, when sandboxed.
    #[prost(string, tag = "6")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sandbox_dir: String,
}

/// A persistent worker's answer. A non-zero `exit_code` is a normal response: the worker
/// ran the request and says it failed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, prost::Message)]
#[serde(rename_all = "camelCase", default)]
pub struct WorkResponse {
    /// 0 for success.
    #[prost(int32, tag = "1")]
    pub exit_code: i32,
    /// What the worker has to say (compiler messages, say).
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub output: String,
    /// The `request_id` of the request this answers.
    #[prost(int32, tag = "3")]
    #[serde(skip_serializing_if = "is_zero")]
    pub request_id: i32,
    /// Whether the request was cancelled.
    #[prost(bool, tag = "4")]
    #[serde(skip_serializing_if = "is_false")]
    pub was_cancelled: bool,
}

fn is_zero(value: &i32) -> bool {
    *value == 0
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// What a Bazel worker sends: only responses, each with the id of its request.
pub(super) type BazelIncoming = super::Incoming<WorkResponse, std::convert::Infallible>;

/// A response, with the id it answers (singleplex workers echo their request's id; the
/// runner checks it).
pub(super) fn classify(response: WorkResponse) -> BazelIncoming {
    super::Incoming::Response {
        id: Some(response.request_id as u32 as u64),
        response,
    }
}

/// The id a request carries, as the `Protocol` trait passes it around.
pub(super) fn id_of(request: &WorkRequest) -> u64 {
    request.request_id as u32 as u64
}

/// Numbers a request for a multiplex worker: `request_id` becomes its sequence number,
/// wrapped into `1..=i32::MAX` (never 0, which means singleplex).
pub(super) fn number(request: &mut WorkRequest, sequence: u64) -> u64 {
    let id = (sequence.saturating_sub(1) % i32::MAX as u64) + 1;
    request.request_id = id as i32;
    id
}

/// The request that asks a multiplex worker to cancel request `id`.
pub(super) fn cancel(id: u64) -> super::Cancellation<WorkRequest> {
    super::Cancellation::Send(WorkRequest {
        request_id: id as i32,
        cancel: true,
        ..WorkRequest::default()
    })
}

#[cfg(test)]
mod numbering_tests {
    use super::*;

    #[test]
    fn multiplex_ids_are_never_zero_and_wrap_within_i32() {
        let mut request = WorkRequest::default();
        assert_eq!(number(&mut request, 1), 1);
        assert_eq!(request.request_id, 1);
        assert_eq!(number(&mut request, i32::MAX as u64), i32::MAX as u64);
        assert_eq!(number(&mut request, i32::MAX as u64 + 1), 1);
        assert_eq!(request.request_id, 1);
    }
}
