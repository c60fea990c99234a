//! One captured output stream: the first bytes up to a cap kept, the rest drained.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// How much is read from a pipe at a time.
const CHUNK: usize = 16 * 1024;

/// Collects one output stream of a command: the first `cap` bytes are kept, the rest is
/// read and dropped (so the writer never blocks on a full pipe) and flagged.
///
/// It lives outside the future reading into it, so what was read is still there when that
/// future is abandoned (at a timeout, or when a leftover process holds the pipe).
#[derive(Debug)]
pub(super) struct Capture {
    kept: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl Capture {
    pub(super) fn new(cap: usize) -> Self {
        Self {
            kept: Vec::new(),
            cap,
            truncated: false,
        }
    }

    /// Reads `pipe` to its end.
    pub(super) async fn fill_from(&mut self, mut pipe: impl AsyncRead + Unpin) -> io::Result<()> {
        let mut chunk = vec![0; CHUNK];
        loop {
            let read = pipe.read(&mut chunk).await?;
            if read == 0 {
                return Ok(());
            }
            let keep = read.min(self.cap - self.kept.len());
            self.kept.extend_from_slice(&chunk[..keep]);
            self.truncated |= keep < read;
        }
    }

    /// The bytes kept, and whether more were dropped.
    pub(super) fn into_parts(self) -> (Vec<u8>, bool) {
        (self.kept, self.truncated)
    }
}
