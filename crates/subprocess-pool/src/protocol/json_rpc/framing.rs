//! The `Content-Length` framing of JSON-RPC messages: the header section, the decoder's
//! state machine, and the encoder.

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::message::{Outgoing, RpcMessage, parse};
use super::quote;
use crate::protocol::{Direction, ProtocolError};

/// The longest header section (all header lines and the blank line after them). Real
/// headers are a few dozen bytes; the limit stops a worker that writes something else to
/// stdout from being buffered for ever while we wait for a blank line.
const MAX_HEADER: usize = 8 * 1024;

/// The codec of [`JsonRpc`](super::JsonRpc): encodes any [`RpcMessage`] (requests,
/// notifications, and replies to the worker's requests) and decodes one message per frame.
///
/// The decoder takes a message's header section from the buffer once it has read it
/// whole, and its body once that has arrived whole; it never reserves room for a body
/// before the bytes are there.
#[derive(Debug)]
pub struct JsonRpcFraming {
    max_message: usize,
    state: State,
}

impl JsonRpcFraming {
    /// A codec for message bodies of at most `max_message` bytes each way, at the start of
    /// a stream.
    pub(super) fn new(max_message: usize) -> Self {
        Self {
            max_message,
            state: State::default(),
        }
    }
}

/// Where the decoder is within the current message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the header section, which stays in the buffer until the blank line ends it.
    Header {
        /// Bytes of whole header lines already read, so each byte is looked at once even
        /// when the header arrives a byte at a time.
        read: usize,
        /// The `Content-Length` read so far.
        length: Option<usize>,
    },
    /// The header section is consumed; waiting for `length` bytes of body.
    Body { length: usize },
}

impl Default for State {
    fn default() -> Self {
        Self::Header {
            read: 0,
            length: None,
        }
    }
}

impl Encoder<RpcMessage> for JsonRpcFraming {
    type Error = ProtocolError;

    fn encode(&mut self, message: RpcMessage, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        let json = serde_json::to_vec(&Outgoing::from(&message)).map_err(|error| {
            ProtocolError::InvalidRequest(format!("cannot encode as JSON: {error}"))
        })?;
        if json.len() > self.max_message {
            return Err(ProtocolError::FrameTooLarge {
                direction: Direction::Request,
                size: json.len(),
                limit: self.max_message,
            });
        }
        let header = format!("Content-Length: {}\r\n\r\n", json.len());
        dst.reserve(header.len() + json.len());
        dst.extend_from_slice(header.as_bytes());
        dst.extend_from_slice(&json);
        Ok(())
    }
}

impl Decoder for JsonRpcFraming {
    type Item = RpcMessage;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<RpcMessage>, ProtocolError> {
        let length = match self.state {
            State::Body { length } => length,
            State::Header { read, length } => {
                let Some(length) = self.read_header(src, read, length)? else {
                    return Ok(None);
                };
                length
            }
        };
        // No `reserve(length)`: the buffer grows as bytes arrive, so a worker that
        // declares a large body and sends little of it costs only what it sent.
        if src.len() < length {
            return Ok(None);
        }
        let body = src.split_to(length);
        self.state = State::default();
        parse(&body).map(Some)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<RpcMessage>, ProtocolError> {
        match self.decode(src)? {
            Some(message) => Ok(Some(message)),
            // Header lines stay in `src` until the blank line, so an empty buffer in the
            // header state means the stream ended between messages.
            None if src.is_empty() && matches!(self.state, State::Header { .. }) => Ok(None),
            None => Err(ProtocolError::Malformed(format!(
                "the stream ended in the middle of a message ({} bytes of it unread)",
                src.len()
            ))),
        }
    }
}

impl JsonRpcFraming {
    /// Reads header lines from `src[read..]` until the blank line. Returns the body's
    /// length once the header section is whole (and consumed from `src`), `None` while it
    /// is not, keeping the progress in `self.state`.
    fn read_header(
        &mut self,
        src: &mut BytesMut,
        mut read: usize,
        mut length: Option<usize>,
    ) -> Result<Option<usize>, ProtocolError> {
        // `read` only counts bytes of this buffer, but a caller who emptied the buffer
        // between calls must not make it index out of range.
        if read > src.len() {
            (read, length) = (0, None);
        }
        loop {
            let rest = &src[read..src.len().min(MAX_HEADER)];
            let Some(newline) = rest.iter().position(|&byte| byte == b'\n') else {
                if src.len() >= MAX_HEADER {
                    return Err(ProtocolError::Malformed(format!(
                        "no end of the header section in its first {MAX_HEADER} bytes: {}",
                        quote(&src[..MAX_HEADER])
                    )));
                }
                self.state = State::Header { read, length };
                return Ok(None);
            };
            let line = &rest[..newline];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            read += newline + 1;
            if line.is_empty() {
                let Some(length) = length else {
                    return Err(ProtocolError::Malformed(format!(
                        "no Content-Length header in {}",
                        quote(&src[..read])
                    )));
                };
                src.advance(read);
                self.state = State::Body { length };
                return Ok(Some(length));
            }
            if let Some(declared) = self.header_line(line)? {
                if length.is_some_and(|length| length != declared) {
                    return Err(ProtocolError::Malformed(format!(
                        "two different Content-Length headers in {}",
                        quote(&src[..read])
                    )));
                }
                length = Some(declared);
            }
        }
    }

    /// Reads one header line: the declared length if it is `Content-Length`, `None` for
    /// any other header.
    fn header_line(&self, line: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let bad = |what: &str| ProtocolError::Malformed(format!("{what}: {}", quote(line)));
        if !line.is_ascii() {
            return Err(bad("header line is not ASCII"));
        }
        let Some(colon) = line.iter().position(|&byte| byte == b':') else {
            return Err(bad("header line is not `Name: value`"));
        };
        let name = line[..colon].trim_ascii();
        if !name.eq_ignore_ascii_case(b"content-length") {
            return Ok(None);
        }
        let value = line[colon + 1..].trim_ascii();
        // Digits only: `usize::from_str` would also take a sign.
        if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
            return Err(bad("Content-Length is not a number"));
        }
        // All ASCII, checked above.
        let digits = std::str::from_utf8(value).unwrap_or_default();
        let declared = digits
            .parse::<usize>()
            .map_err(|_| bad("Content-Length is too large to be a length"))?;
        // Refused from the header alone, before a byte of the body is buffered.
        if declared > self.max_message {
            return Err(ProtocolError::FrameTooLarge {
                direction: Direction::Response,
                size: declared,
                limit: self.max_message,
            });
        }
        Ok(Some(declared))
    }
}

/// The tests, and the helpers the other JSON-RPC tests share with them.
#[cfg(test)]
pub(super) mod tests {
    use serde_json::json;

    use super::*;
    use crate::protocol::Protocol;
    use crate::protocol::json_rpc::{DEFAULT_MAX_MESSAGE, JsonRpc, RpcError, RpcId};

    pub(in crate::protocol::json_rpc) fn codec(limit: usize) -> JsonRpcFraming {
        JsonRpc::with_max_message(limit).codec()
    }

    /// `body` framed with a `Content-Length` header.
    pub(in crate::protocol::json_rpc) fn framed(body: &str) -> BytesMut {
        BytesMut::from(format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes())
    }

    pub(in crate::protocol::json_rpc) fn encoded(message: RpcMessage) -> BytesMut {
        let mut wire = BytesMut::new();
        codec(1024).encode(message, &mut wire).unwrap();
        wire
    }

    pub(in crate::protocol::json_rpc) fn decode_one(
        mut wire: BytesMut,
    ) -> Result<Option<RpcMessage>, ProtocolError> {
        codec(1024).decode(&mut wire)
    }

    pub(in crate::protocol::json_rpc) fn malformed(wire: BytesMut) -> String {
        match decode_one(wire) {
            Err(ProtocolError::Malformed(message)) => message,
            other => panic!("expected a malformed response, got {other:?}"),
        }
    }

    #[test]
    fn messages_arriving_a_byte_at_a_time_are_decoded_once_whole() {
        let mut wire = encoded(RpcMessage::notification("one", json!({"n": 1})));
        wire.extend_from_slice(&encoded(RpcMessage::reply(
            RpcId::Number(2),
            Ok(json!("two")),
        )));
        let mut receiver = codec(1024);
        let mut arriving = BytesMut::new();
        let mut messages = Vec::new();
        for byte in wire {
            arriving.extend_from_slice(&[byte]);
            if let Some(message) = receiver.decode(&mut arriving).unwrap() {
                messages.push(message);
            }
        }
        assert_eq!(
            messages,
            [
                RpcMessage::notification("one", json!({"n": 1})),
                RpcMessage::reply(RpcId::Number(2), Ok(json!("two"))),
            ]
        );
        assert!(arriving.is_empty());
        assert_eq!(receiver.decode_eof(&mut arriving).unwrap(), None);
    }

    #[test]
    fn header_names_are_case_insensitive_and_other_headers_are_ignored() {
        let body = r#"{"jsonrpc":"2.0","id":1,"result":true}"#;
        let wire = format!(
            "content-type: application/vscode-jsonrpc; charset=utf-8\r\n\
             CONTENT-LENGTH:{}\nX-Unknown: ignored\r\n\r\n{body}",
            body.len()
        );
        assert_eq!(
            decode_one(BytesMut::from(wire.as_bytes())).unwrap(),
            Some(RpcMessage::reply(RpcId::Number(1), Ok(json!(true))))
        );
    }

    #[test]
    fn an_oversize_response_is_refused_from_its_header_alone() {
        let mut wire = BytesMut::from(&b"Content-Length: 1000\r\n"[..]);
        let error = codec(64).decode(&mut wire).unwrap_err();
        assert!(
            matches!(
                error,
                ProtocolError::FrameTooLarge {
                    direction: Direction::Response,
                    size: 1000,
                    limit: 64
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn huge_declared_lengths_neither_overflow_nor_allocate() {
        let mut wire = BytesMut::from(&b"Content-Length: 18446744073709551615\r\n\r\n{"[..]);
        let error = codec(DEFAULT_MAX_MESSAGE).decode(&mut wire).unwrap_err();
        if usize::BITS == 64 {
            assert!(
                matches!(
                    error,
                    ProtocolError::FrameTooLarge {
                        size: usize::MAX,
                        ..
                    }
                ),
                "{error}"
            );
        } else {
            assert!(matches!(error, ProtocolError::Malformed(_)), "{error}");
        }
        assert!(wire.capacity() < 1024);

        let mut wire = BytesMut::from(&b"Content-Length: 99999999999999999999999\r\n\r\n"[..]);
        let error = codec(DEFAULT_MAX_MESSAGE).decode(&mut wire).unwrap_err();
        assert!(
            error.to_string().contains("too large to be a length"),
            "{error}"
        );

        // A length under the limit, with the body still to come: nothing is reserved.
        let mut wire = BytesMut::from(&b"Content-Length: 16000000\r\n\r\n{"[..]);
        let mut receiver = codec(DEFAULT_MAX_MESSAGE);
        assert_eq!(receiver.decode(&mut wire).unwrap(), None);
        assert!(wire.capacity() < 1024, "{}", wire.capacity());
    }

    #[test]
    fn a_missing_or_unreadable_content_length_is_malformed() {
        let message = malformed(BytesMut::from(&b"Content-Type: x\r\n\r\n{}"[..]));
        assert!(message.contains("no Content-Length"), "{message}");
        for value in ["", "abc", "-1", "+5", "1.5"] {
            let wire = format!("Content-Length: {value}\r\n\r\n{{}}");
            let message = malformed(BytesMut::from(wire.as_bytes()));
            assert!(message.contains("not a number"), "{value}: {message}");
        }
        let message = malformed(BytesMut::from(
            &b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n"[..],
        ));
        assert!(message.contains("two different"), "{message}");
    }

    #[test]
    fn output_that_is_not_a_header_is_refused_at_once() {
        let message = malformed(BytesMut::from(&b"hello from a stray print\n"[..]));
        assert!(message.contains("stray print"), "{message}");
        let message = malformed(BytesMut::from(&b"N\xc3\xa4me: v\r\n"[..]));
        assert!(message.contains("not ASCII"), "{message}");
    }

    #[test]
    fn a_header_section_is_not_buffered_past_its_limit() {
        let mut wire = BytesMut::from(vec![b'x'; MAX_HEADER - 1].as_slice());
        let mut receiver = codec(1024);
        assert_eq!(receiver.decode(&mut wire).unwrap(), None);
        wire.extend_from_slice(b"x");
        let error = receiver.decode(&mut wire).unwrap_err();
        assert!(
            error.to_string().contains("no end of the header"),
            "{error}"
        );
        // The quote is short, however long the junk.
        assert!(error.to_string().len() < 400, "{error}");
    }

    #[test]
    fn the_stream_ending_inside_a_message_is_an_error() {
        let mut receiver = codec(1024);
        let mut wire = BytesMut::from(&b"Content-Length: 10\r\n\r\n{"[..]);
        assert_eq!(receiver.decode(&mut wire).unwrap(), None);
        assert!(receiver.decode_eof(&mut wire).is_err());
        let mut receiver = codec(1024);
        let mut wire = BytesMut::from(&b"Content-Len"[..]);
        assert!(receiver.decode_eof(&mut wire).is_err());
    }

    #[test]
    fn no_mangling_of_the_bytes_panics() {
        let mut wire = encoded(RpcMessage::request("m", json!({"k": [1, "é"]})));
        wire.extend_from_slice(&encoded(RpcMessage::reply(
            RpcId::Number(1),
            Err(RpcError::new(1, "e")),
        )));
        // Every truncation, and every byte replaced by a few telling values, in turn.
        let mut seed = 0x2545_f491_u32;
        for cut in 0..=wire.len() {
            for replacement in [None, Some(b'\n'), Some(b':'), Some(b'9'), Some(0xff)] {
                let mut mangled = BytesMut::from(&wire[..cut]);
                if let (Some(byte), Some(last)) = (replacement, mangled.last_mut()) {
                    *last = byte;
                }
                // Arbitrary chunking, so every decoder state sees the mangled byte.
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let step = 1 + seed as usize % 7;
                let mut receiver = codec(64);
                let mut arriving = BytesMut::new();
                for chunk in mangled.chunks(step) {
                    arriving.extend_from_slice(chunk);
                    while let Ok(Some(_)) = receiver.decode(&mut arriving) {}
                }
                let _ = receiver.decode_eof(&mut arriving);
            }
        }
    }

    #[test]
    fn an_oversize_request_is_refused_and_nothing_is_written() {
        let mut wire = BytesMut::new();
        let error = codec(16)
            .encode(
                RpcMessage::request("method", json!(["long params"])),
                &mut wire,
            )
            .unwrap_err();
        assert!(
            matches!(
                error,
                ProtocolError::FrameTooLarge {
                    direction: Direction::Request,
                    limit: 16,
                    ..
                }
            ),
            "{error}"
        );
        assert!(wire.is_empty());
    }
}
