//! Bazel's default persistent-worker protocol: varint-length-delimited protobuf.

use std::convert::Infallible;

use bytes::{Buf, BytesMut};
use prost::Message;
use tokio_util::codec::{Decoder, Encoder};

use super::bazel::{self, BazelIncoming, WorkRequest, WorkResponse};
use super::{Cancellation, Direction, Protocol, ProtocolError};

/// The default largest message, each way: 16 MiB.
const DEFAULT_MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Bazel's default worker protocol: each `WorkRequest` / `WorkResponse` is a protobuf
/// message preceded by its length as a varint. A worker written for Bazel, started with
/// `--persistent_worker`, works unchanged. Singleplex: a response must carry its request's
/// `request_id`. Oversize messages are refused as soon as their length is read.
///
/// # Example
///
/// ```
/// use bytes::BytesMut;
/// use prost::Message;
/// use subprocess_pool::Protocol;
/// use subprocess_pool::protocol::{BazelProto, WorkRequest, WorkResponse};
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = BazelProto::default().codec();
/// let mut wire = BytesMut::new();
/// codec.encode(WorkRequest { arguments: vec!["x".into()], ..Default::default() }, &mut wire).unwrap();
///
/// let answer = WorkResponse { output: "done".into(), ..Default::default() };
/// let mut from_worker = BytesMut::from(&answer.encode_length_delimited_to_vec()[..]);
/// assert_eq!(codec.decode(&mut from_worker).unwrap(), Some(answer));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BazelProto {
    max_message: usize,
    multiplex: bool,
}

impl Default for BazelProto {
    fn default() -> Self {
        Self::with_max_message(DEFAULT_MAX_MESSAGE)
    }
}

impl BazelProto {
    /// Messages of at most `max_message` bytes each way (not counting the length).
    pub fn with_max_message(max_message: usize) -> Self {
        Self {
            max_message,
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

impl Protocol for BazelProto {
    type Request = WorkRequest;
    type Response = WorkResponse;
    type Message = Infallible;
    type Codec = BazelProtoFraming;

    fn codec(&self) -> BazelProtoFraming {
        BazelProtoFraming {
            max_message: self.max_message,
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

/// The codec of [`BazelProto`].
#[derive(Debug)]
pub struct BazelProtoFraming {
    max_message: usize,
}

impl Encoder<WorkRequest> for BazelProtoFraming {
    type Error = ProtocolError;

    fn encode(&mut self, request: WorkRequest, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        let size = request.encoded_len();
        if size > self.max_message {
            return Err(ProtocolError::FrameTooLarge {
                direction: Direction::Request,
                size,
                limit: self.max_message,
            });
        }
        request
            .encode_length_delimited(dst)
            .map_err(|error| ProtocolError::InvalidRequest(error.to_string()))
    }
}

impl Decoder for BazelProtoFraming {
    type Item = WorkResponse;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<WorkResponse>, ProtocolError> {
        // A varint is at most 10 bytes; until one is complete, wait for more.
        let header_end = src.iter().take(10).position(|&byte| byte & 0x80 == 0);
        let Some(header_end) = header_end else {
            if src.len() >= 10 {
                return Err(ProtocolError::Malformed("invalid length varint".into()));
            }
            return Ok(None);
        };
        let length = prost::decode_length_delimiter(&src[..=header_end])
            .map_err(|error| ProtocolError::Malformed(format!("invalid length: {error}")))?;
        if length > self.max_message {
            return Err(ProtocolError::FrameTooLarge {
                direction: Direction::Response,
                size: length,
                limit: self.max_message,
            });
        }
        // Checked: with a limit of `usize::MAX`, a declared length near it would wrap.
        let Some(frame_end) = (header_end + 1).checked_add(length) else {
            return Err(ProtocolError::Malformed(format!(
                "declared length {length} does not fit in this machine's address space"
            )));
        };
        if src.len() < frame_end {
            // No `reserve` for the declared length: the buffer grows as the bytes come.
            return Ok(None);
        }
        src.advance(header_end + 1);
        let body = src.split_to(length);
        WorkResponse::decode(body).map(Some).map_err(|error| {
            ProtocolError::Malformed(format!("not a protobuf WorkResponse: {error}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_arriving_a_byte_at_a_time_is_decoded_once_whole() {
        let answer = WorkResponse {
            exit_code: 1,
            output: "x".repeat(300),
            request_id: 0,
            was_cancelled: false,
        };
        let wire = answer.encode_length_delimited_to_vec();
        let mut codec = BazelProto::default().codec();
        let mut arriving = BytesMut::new();
        let mut decoded = None;
        for byte in wire {
            assert!(decoded.is_none());
            arriving.extend_from_slice(&[byte]);
            decoded = codec.decode(&mut arriving).unwrap();
        }
        assert_eq!(decoded, Some(answer));
    }

    #[test]
    fn an_oversize_response_is_refused_from_its_length() {
        let mut wire = BytesMut::new();
        prost::encoding::encode_varint(1 << 30, &mut wire);
        let error = BazelProto::with_max_message(1024)
            .codec()
            .decode(&mut wire)
            .unwrap_err();
        assert!(
            matches!(error, ProtocolError::FrameTooLarge { limit: 1024, .. }),
            "{error}"
        );
    }

    #[test]
    fn garbage_is_a_malformed_response() {
        let mut wire = BytesMut::from(&[3u8, 0xff, 0xff, 0xff][..]);
        let error = BazelProto::default().codec().decode(&mut wire).unwrap_err();
        assert!(matches!(error, ProtocolError::Malformed(_)), "{error}");
    }
}
