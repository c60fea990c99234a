//! Bazel's JSON persistent-worker protocol: one JSON object per line, each way.

use std::convert::Infallible;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::bazel::{self, BazelIncoming, WorkRequest, WorkResponse};
use super::lines::{DEFAULT_MAX_LINE, Lines, LinesFraming};
use super::{Cancellation, Protocol, ProtocolError};

/// Bazel's `--experimental_worker_protocol=json`: newline-delimited JSON `WorkRequest`s in,
/// `WorkResponse`s out (camelCase names, unknown fields tolerated, zero fields optional).
/// Singleplex: a response must carry its request's `requestId`.
///
/// # Example
///
/// ```
/// use bytes::BytesMut;
/// use subprocess_pool::Protocol;
/// use subprocess_pool::protocol::{BazelJson, WorkRequest, WorkResponse};
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = BazelJson::default().codec();
/// let mut wire = BytesMut::new();
/// let request = WorkRequest { arguments: vec!["a.ts".into()], ..Default::default() };
/// codec.encode(request, &mut wire).unwrap();
/// assert_eq!(&wire[..], b"{\"arguments\":[\"a.ts\"]}\n");
///
/// let mut answer = BytesMut::from(&b"{\"exitCode\":1,\"output\":\"bad\",\"extra\":true}\n"[..]);
/// let response: WorkResponse = codec.decode(&mut answer).unwrap().unwrap();
/// assert_eq!((response.exit_code, response.output.as_str()), (1, "bad"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BazelJson {
    lines: Lines,
    multiplex: bool,
}

impl Default for BazelJson {
    fn default() -> Self {
        Self::with_max_length(DEFAULT_MAX_LINE)
    }
}

impl BazelJson {
    /// Messages of at most `max_length` bytes of JSON each way.
    pub fn with_max_length(max_length: usize) -> Self {
        Self {
            lines: Lines::with_max_length(max_length),
            multiplex: false,
        }
    }

    /// For Bazel's multiplex workers (`supports-multiplex-workers`): several requests in
    /// flight per worker ([`MultiplexPool`](crate::MultiplexPool)), each numbered by the
    /// pool with a non-zero `requestId` (the caller's is replaced), and a request given up
    /// on is withdrawn with a `cancel` request.
    pub fn multiplex(mut self) -> Self {
        self.multiplex = true;
        self
    }
}

impl Protocol for BazelJson {
    type Request = WorkRequest;
    type Response = WorkResponse;
    type Message = Infallible;
    type Codec = BazelJsonFraming;

    fn codec(&self) -> BazelJsonFraming {
        BazelJsonFraming {
            lines: self.lines.codec(),
        }
    }

    fn classify(&self, response: WorkResponse) -> Result<BazelIncoming, ProtocolError> {
        Ok(bazel::classify(response))
    }

    /// Singleplex: the caller's `request_id` (0 by default). Multiplex: the sequence
    /// number, as for [`prepare_multiplexed`](Protocol::prepare_multiplexed).
    fn prepare(
        &self,
        request: &mut WorkRequest,
        sequence: u64,
    ) -> Result<Option<u64>, ProtocolError> {
        if self.multiplex {
            return Ok(Some(bazel::number(request, sequence)));
        }
        Ok(Some(bazel::id_of(request)))
    }

    fn multiplexes(&self) -> bool {
        self.multiplex
    }

    fn prepare_multiplexed(
        &self,
        request: &mut WorkRequest,
        sequence: u64,
    ) -> Result<u64, ProtocolError> {
        Ok(bazel::number(request, sequence))
    }

    /// A `cancel` request for `id`; the worker answers it with `wasCancelled` (or its
    /// answer, if it was done).
    fn cancel(&self, id: u64) -> Cancellation<WorkRequest> {
        bazel::cancel(id)
    }
}

/// The codec of [`BazelJson`]: JSON over [`Lines`] framing.
#[derive(Debug)]
pub struct BazelJsonFraming {
    lines: LinesFraming,
}

impl Encoder<WorkRequest> for BazelJsonFraming {
    type Error = ProtocolError;

    fn encode(&mut self, request: WorkRequest, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        // serde_json escapes control characters, so the JSON is always one line.
        let json = serde_json::to_string(&request).map_err(|error| {
            ProtocolError::InvalidRequest(format!("cannot encode as JSON: {error}"))
        })?;
        self.lines.encode(json, dst)
    }
}

impl Decoder for BazelJsonFraming {
    type Item = WorkResponse;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<WorkResponse>, ProtocolError> {
        let Some(line) = self.lines.decode(src)? else {
            return Ok(None);
        };
        serde_json::from_str(&line).map(Some).map_err(|error| {
            ProtocolError::Malformed(format!("not a JSON WorkResponse ({error}): {line:.200}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_with_camel_case_names_and_zero_fields_omitted() {
        let mut wire = BytesMut::new();
        let request = WorkRequest {
            arguments: vec!["--flag".into(), "line\nbreak".into()],
            request_id: 0,
            sandbox_dir: "/sb".into(),
            ..Default::default()
        };
        BazelJson::default()
            .codec()
            .encode(request.clone(), &mut wire)
            .unwrap();
        let text = std::str::from_utf8(&wire).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(
            text.contains("\"sandboxDir\":\"/sb\"") && !text.contains("requestId"),
            "{text}"
        );
        let parsed: WorkRequest = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(parsed, request);
    }

    #[test]
    fn garbage_is_a_malformed_response() {
        let mut wire = BytesMut::from(&b"this is not json\n"[..]);
        let error = BazelJson::default().codec().decode(&mut wire).unwrap_err();
        assert!(matches!(error, ProtocolError::Malformed(_)), "{error}");
    }

    #[test]
    fn a_response_carries_the_id_it_answers() {
        let response = WorkResponse {
            request_id: 7,
            ..Default::default()
        };
        let sorted = BazelJson::default().classify(response.clone()).unwrap();
        assert_eq!(
            sorted,
            super::super::Incoming::Response {
                id: Some(7),
                response
            }
        );
    }
}
