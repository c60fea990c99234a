//! Frames of bytes, each preceded by its length.

use std::convert::Infallible;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::{Direction, Incoming, Protocol, ProtocolError};

/// The default largest frame, each way: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Requests and responses are frames of bytes, each preceded by its length as a 32-bit
/// big-endian integer. An oversize frame is refused on either side, on the way in as soon
/// as its length header is read (the claimed size is never allocated).
///
/// # Example
///
/// ```
/// use bytes::{Buf, BufMut, Bytes, BytesMut};
/// use subprocess_pool::Protocol;
/// use subprocess_pool::protocol::LengthPrefixed;
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = LengthPrefixed::with_max_frame(1024).codec();
/// let mut wire = BytesMut::new();
/// codec.encode(Bytes::from_static(b"\x00binary\xff"), &mut wire).unwrap();
/// assert_eq!(&wire[..4], &[0, 0, 0, 8]);
/// assert_eq!(codec.decode(&mut wire).unwrap().unwrap(), &b"\x00binary\xff"[..]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthPrefixed {
    max_frame: usize,
}

impl Default for LengthPrefixed {
    fn default() -> Self {
        Self::with_max_frame(DEFAULT_MAX_FRAME)
    }
}

impl LengthPrefixed {
    /// Frames of at most `max_frame` bytes each way (not counting the 4-byte header).
    pub fn with_max_frame(max_frame: usize) -> Self {
        Self { max_frame }
    }
}

impl Protocol for LengthPrefixed {
    type Request = Bytes;
    type Response = Bytes;
    type Message = Infallible;
    type Codec = LengthPrefixedFraming;

    fn classify(&self, frame: Bytes) -> Result<Incoming<Bytes, Infallible>, ProtocolError> {
        Ok(Incoming::Response {
            id: None,
            response: frame,
        })
    }

    fn codec(&self) -> LengthPrefixedFraming {
        LengthPrefixedFraming {
            max_frame: self.max_frame,
        }
    }
}

/// The codec of [`LengthPrefixed`].
///
/// Written out rather than tokio-util's `LengthDelimitedCodec`, whose decoder reserves room
/// for the length a header declares as soon as it reads it: a worker (or anything on the
/// pipe) declaring 16 MiB would cost 16 MiB before sending a byte of it. Here the buffer
/// grows only with the bytes that arrive.
#[derive(Debug)]
pub struct LengthPrefixedFraming {
    max_frame: usize,
}

/// The length header: a 32-bit big-endian integer.
const HEADER: usize = 4;

impl LengthPrefixedFraming {
    fn too_large(&self, direction: Direction, size: usize) -> ProtocolError {
        ProtocolError::FrameTooLarge {
            direction,
            size,
            limit: self.max_frame,
        }
    }
}

impl Encoder<Bytes> for LengthPrefixedFraming {
    type Error = ProtocolError;

    fn encode(&mut self, frame: Bytes, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        let length = match u32::try_from(frame.len()) {
            Ok(length) if frame.len() <= self.max_frame => length,
            // Over the limit, or over what the header can say.
            _ => return Err(self.too_large(Direction::Request, frame.len())),
        };
        dst.reserve(HEADER + frame.len());
        dst.put_u32(length);
        dst.extend_from_slice(&frame);
        Ok(())
    }
}

impl Decoder for LengthPrefixedFraming {
    type Item = Bytes;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, ProtocolError> {
        let Some(header) = src.get(..HEADER) else {
            return Ok(None);
        };
        let declared = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        // A u32 fits in the usize of every platform tokio supports; saturate regardless.
        let length = usize::try_from(declared).unwrap_or(usize::MAX);
        if length > self.max_frame {
            return Err(self.too_large(Direction::Response, length));
        }
        // `length <= max_frame` and the header is 4 bytes: `checked_add` only fails for a
        // limit within 4 of `usize::MAX`, which no buffer could reach.
        let Some(frame_end) = HEADER.checked_add(length) else {
            return Err(self.too_large(Direction::Response, length));
        };
        if src.len() < frame_end {
            // No `reserve(length)`: the buffer grows as the bytes come.
            return Ok(None);
        }
        src.advance(HEADER);
        Ok(Some(src.split_to(length).freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(limit: usize) -> LengthPrefixedFraming {
        LengthPrefixed::with_max_frame(limit).codec()
    }

    #[test]
    fn frames_round_trip_even_a_byte_at_a_time() {
        let mut sender = codec(64);
        let mut wire = BytesMut::new();
        sender
            .encode(Bytes::from_static(b"one"), &mut wire)
            .unwrap();
        sender.encode(Bytes::new(), &mut wire).unwrap();
        let mut receiver = codec(64);
        let mut arriving = BytesMut::new();
        let mut frames = Vec::new();
        for byte in wire {
            arriving.extend_from_slice(&[byte]);
            if let Some(frame) = receiver.decode(&mut arriving).unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(frames, [Bytes::from_static(b"one"), Bytes::new()]);
    }

    #[test]
    fn an_oversize_request_is_refused_and_nothing_is_written() {
        let mut wire = BytesMut::new();
        let error = codec(4)
            .encode(Bytes::from_static(b"12345"), &mut wire)
            .unwrap_err();
        assert!(error.to_string().contains("limit of 4 bytes"), "{error}");
        assert!(wire.is_empty());
    }

    #[test]
    fn an_oversize_response_is_refused_from_its_header_alone() {
        let mut wire = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        let error = codec(1024).decode(&mut wire).unwrap_err();
        assert!(
            matches!(
                error,
                ProtocolError::FrameTooLarge {
                    direction: Direction::Response,
                    size: 4_294_967_295,
                    limit: 1024
                }
            ),
            "{error}"
        );
    }
}
