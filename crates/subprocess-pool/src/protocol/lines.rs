//! One UTF-8 line each way.

use std::convert::Infallible;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder, LinesCodec, LinesCodecError};

use super::{Direction, Incoming, Protocol, ProtocolError};

/// The default longest line, each way: 16 MiB.
pub const DEFAULT_MAX_LINE: usize = 16 * 1024 * 1024;

/// Requests and responses are single lines of UTF-8 text (`String` each way, without the
/// newline). A request containing a newline is refused before it reaches the worker; a
/// line longer than the limit is an error on either side (a worker that writes a huge line
/// is stopped at the limit, never buffered whole). A `\r` before the newline is dropped.
///
/// # Example
///
/// ```
/// use bytes::BytesMut;
/// use subprocess_pool::Protocol;
/// use subprocess_pool::protocol::Lines;
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = Lines::with_max_length(1024).codec();
/// let mut wire = BytesMut::new();
/// codec.encode("hello".to_string(), &mut wire).unwrap();
/// assert_eq!(&wire[..], b"hello\n");
/// assert!(codec.encode("two\nlines".to_string(), &mut wire).is_err());
/// assert_eq!(codec.decode(&mut wire).unwrap().as_deref(), Some("hello"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lines {
    max_length: usize,
}

impl Default for Lines {
    fn default() -> Self {
        Self::with_max_length(DEFAULT_MAX_LINE)
    }
}

impl Lines {
    /// Lines of at most `max_length` bytes each way (not counting the newline).
    pub fn with_max_length(max_length: usize) -> Self {
        Self { max_length }
    }
}

impl Protocol for Lines {
    type Request = String;
    type Response = String;
    type Message = Infallible;
    type Codec = LinesFraming;

    fn codec(&self) -> LinesFraming {
        LinesFraming {
            max_length: self.max_length,
            inner: LinesCodec::new_with_max_length(self.max_length),
        }
    }

    fn classify(&self, line: String) -> Result<Incoming<String, Infallible>, ProtocolError> {
        Ok(Incoming::Response {
            id: None,
            response: line,
        })
    }
}

/// The codec of [`Lines`]: tokio-util's `LinesCodec` with the limit enforced both ways
/// and newlines refused in requests.
#[derive(Debug)]
pub struct LinesFraming {
    max_length: usize,
    inner: LinesCodec,
}

impl Encoder<String> for LinesFraming {
    type Error = ProtocolError;

    fn encode(&mut self, line: String, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        encode_line(&line, self.max_length, dst)
    }
}

/// Writes `line` and a newline, refusing (before writing anything) a line that contains a
/// newline, which would be taken for two requests, or is longer than `max_length`.
pub(super) fn encode_line(
    line: &str,
    max_length: usize,
    dst: &mut BytesMut,
) -> Result<(), ProtocolError> {
    if line.contains('\n') {
        return Err(ProtocolError::InvalidRequest(
            "a request must be a single line, but it contains a newline".into(),
        ));
    }
    if line.len() > max_length {
        return Err(ProtocolError::FrameTooLarge {
            direction: Direction::Request,
            size: line.len(),
            limit: max_length,
        });
    }
    dst.reserve(line.len() + 1);
    dst.extend_from_slice(line.as_bytes());
    dst.extend_from_slice(b"\n");
    Ok(())
}

impl Decoder for LinesFraming {
    type Item = String;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<String>, ProtocolError> {
        let buffered = src.len();
        self.inner
            .decode(src)
            .map_err(|error| self.error(error, buffered))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<String>, ProtocolError> {
        let buffered = src.len();
        self.inner
            .decode_eof(src)
            .map_err(|error| self.error(error, buffered))
    }
}

impl LinesFraming {
    fn error(&self, error: LinesCodecError, buffered: usize) -> ProtocolError {
        match error {
            LinesCodecError::MaxLineLengthExceeded => ProtocolError::FrameTooLarge {
                direction: Direction::Response,
                size: buffered,
                limit: self.max_length,
            },
            LinesCodecError::Io(error) if error.kind() == std::io::ErrorKind::InvalidData => {
                ProtocolError::Malformed(format!("response line is not valid UTF-8 ({error})"))
            }
            LinesCodecError::Io(error) => ProtocolError::Io(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(limit: usize) -> LinesFraming {
        Lines::with_max_length(limit).codec()
    }

    #[test]
    fn a_line_round_trips_and_a_carriage_return_is_dropped() {
        let mut codec = codec(64);
        let mut wire = BytesMut::from(&b"first\r\nsecond\n"[..]);
        assert_eq!(codec.decode(&mut wire).unwrap().as_deref(), Some("first"));
        assert_eq!(codec.decode(&mut wire).unwrap().as_deref(), Some("second"));
        assert_eq!(codec.decode(&mut wire).unwrap(), None);
    }

    #[test]
    fn a_line_arriving_a_byte_at_a_time_is_decoded_once_whole() {
        let mut codec = codec(64);
        let mut wire = BytesMut::new();
        for &byte in b"partial line" {
            wire.extend_from_slice(&[byte]);
            assert_eq!(codec.decode(&mut wire).unwrap(), None);
        }
        wire.extend_from_slice(b"\n");
        assert_eq!(
            codec.decode(&mut wire).unwrap().as_deref(),
            Some("partial line")
        );
    }

    #[test]
    fn a_request_with_a_newline_is_refused_and_nothing_is_written() {
        let mut wire = BytesMut::new();
        let error = codec(64).encode("a\nb".into(), &mut wire).unwrap_err();
        assert!(matches!(error, ProtocolError::InvalidRequest(_)), "{error}");
        assert!(wire.is_empty());
    }

    #[test]
    fn oversize_lines_are_refused_both_ways_naming_the_limit() {
        let mut wire = BytesMut::new();
        let error = codec(8).encode("123456789".into(), &mut wire).unwrap_err();
        assert!(error.to_string().contains("limit of 8 bytes"), "{error}");
        assert!(wire.is_empty());
        let mut wire = BytesMut::from(&b"0123456789 and no newline yet"[..]);
        let error = codec(8).decode(&mut wire).unwrap_err();
        assert!(
            matches!(
                error,
                ProtocolError::FrameTooLarge {
                    direction: Direction::Response,
                    limit: 8,
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn invalid_utf8_is_a_malformed_response() {
        let mut wire = BytesMut::from(&b"\xff\xfe\n"[..]);
        let error = codec(64).decode(&mut wire).unwrap_err();
        assert!(matches!(error, ProtocolError::Malformed(_)), "{error}");
    }
}
