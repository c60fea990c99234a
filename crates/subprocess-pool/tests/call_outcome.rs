//! How a call ends when its answer crosses its own write or the reader's work: an answer
//! that comes before the whole request is written leaves the runner poisoned (the rest of
//! the request is still to be written, so the worker's input is out of step), and a panic
//! in the protocol's code while the reader holds the call's outcome ends the call at once
//! instead of leaving it waiting.

mod support;

use std::convert::Infallible;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use subprocess_pool::protocol::{Incoming, Lines, LinesFraming};
use subprocess_pool::{Protocol, ProtocolError, Runner, RunnerError, WorkerSpec};
use support::{guarded, python};
use tokio_util::codec::{Decoder, Encoder};

/// Answers `early` as soon as a request's first byte arrives, then reads the rest of the
/// line 100 ms later (unbuffered, as fast as it comes).
const ANSWERS_EARLY: &str = r#"
import os, sys, time
while os.read(0, 1):
    os.write(1, b"early\n")
    time.sleep(0.1)
    while True:
        chunk = os.read(0, 65536)
        if not chunk:
            sys.exit(0)
        if chunk.endswith(b"\n"):
            break
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_before_the_whole_request_is_written_leaves_the_runner_poisoned() {
    let spec = WorkerSpec::new(python()).args(["-S", "-u", "-c", ANSWERS_EARLY]);
    let mut runner = guarded("spawning", Runner::spawn(&spec, Lines::default()))
        .await
        .unwrap();
    let answer = {
        // One and a half times what a pipe holds (64 KiB): the write cannot finish until
        // the worker reads on.
        let mut call = pin!(runner.call("y".repeat(100 * 1024)));
        let first = poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
        assert!(first.is_pending(), "the request fit in the pipe: {first:?}");
        // Meanwhile the answer arrives and the worker empties the pipe, so the rest of the
        // request would fit in one write when the call is polled again: the answer must
        // win.
        tokio::time::sleep(Duration::from_millis(600)).await;
        guarded("the call answered early", call).await
    };
    assert_eq!(answer.unwrap(), "early");
    assert!(
        runner.is_poisoned(),
        "the rest of the request was still unwritten, yet the runner stays usable"
    );
    runner.shutdown().await;
}

/// A line whose `Debug` panics when it is `boom` (a bug in a user's type).
#[derive(PartialEq, Eq)]
struct Touchy(String);

impl fmt::Debug for Touchy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        assert_ne!(self.0, "boom", "Touchy cannot show this line");
        f.write_str(&self.0)
    }
}

/// Lines, with responses as `Touchy`.
#[derive(Clone)]
struct TouchyLines;

/// The codec of [`TouchyLines`].
struct TouchyCodec(LinesFraming);

impl Encoder<String> for TouchyCodec {
    type Error = ProtocolError;

    fn encode(&mut self, line: String, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        self.0.encode(line, dst)
    }
}

impl Decoder for TouchyCodec {
    type Item = Touchy;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Touchy>, ProtocolError> {
        Ok(self.0.decode(src)?.map(Touchy))
    }
}

impl Protocol for TouchyLines {
    type Request = String;
    type Response = Touchy;
    type Message = Infallible;
    type Codec = TouchyCodec;

    fn codec(&self) -> TouchyCodec {
        TouchyCodec(Lines::default().codec())
    }

    fn classify(&self, line: Touchy) -> Result<Incoming<Touchy, Infallible>, ProtocolError> {
        Ok(Incoming::Response {
            id: None,
            response: line,
        })
    }
}

#[tokio::test]
async fn a_panic_while_the_reader_holds_the_calls_outcome_ends_the_call_at_once() {
    // Each answer comes with a second line in the same write: the reader quotes both in
    // the error for output nobody asked for, and showing `boom` panics, with the call's
    // request taken out of the link to be settled.
    let spec = WorkerSpec::new("sh")
        .args([
            "-c",
            r#"while IFS= read -r l; do printf '%s\nboom\n' "$l"; done"#,
        ])
        .request_timeout(Duration::from_secs(3600));
    let mut runner = guarded("spawning", Runner::spawn(&spec, TouchyLines))
        .await
        .unwrap();
    let outcome = guarded("the call answered twice", runner.call("hi".into())).await;
    match outcome {
        Err(RunnerError::Protocol(ProtocolError::Malformed(message))) => {
            assert!(message.contains("panicked"), "{message}")
        }
        other => panic!("expected the protocol's panic, got {other:?}"),
    }
    runner.shutdown().await;
}
