//! One line each request; answers of several lines, each ending with a delimiter.

use std::convert::Infallible;
use std::fmt;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::{DEFAULT_MAX_LINE, Direction, Incoming, Protocol, ProtocolError};

/// How much of an unfinished answer an error message quotes, in bytes.
const QUOTED: usize = 80;

/// Requests are single lines of UTF-8 text; each answer is any number of lines ending
/// with a delimiter, for line tools and REPLs whose answers span several lines.
///
/// The delimiter is one of:
///
/// - an empty line ([`blank_line`](Delimited::blank_line)), as `aspell -a` and
///   `ispell -a` end their answers;
/// - a line equal to a marker ([`line`](Delimited::line)), such as `END` or `.`;
/// - a prompt at the start of a line, with nothing after it
///   ([`prompt`](Delimited::prompt)), such as a REPL's `> `.
///
/// A request is a `String` without its newline: the codec appends `\n`, and refuses a
/// request containing a newline before anything is written (it would be taken for two
/// requests). An answer is a `String` holding everything the worker wrote before the
/// delimiter, without the newline that ends its last line, with `\r\n` line ends turned
/// into `\n`; it must be valid UTF-8. Requests and answers longer than the limit
/// ([`DEFAULT_MAX_LINE`] by default, see [`with_max_length`](Delimited::with_max_length))
/// are errors; a worker that writes more than that without a delimiter is stopped as soon
/// as no delimiter can end its answer within the limit, never buffered whole.
///
/// # Example
///
/// ```
/// use bytes::BytesMut;
/// use subprocess_pool::Protocol;
/// use subprocess_pool::protocol::Delimited;
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = Delimited::blank_line().with_max_length(1024).codec();
/// let mut wire = BytesMut::new();
/// codec.encode("helo wrld".to_string(), &mut wire).unwrap();
/// assert_eq!(&wire[..], b"helo wrld\n");
/// assert!(codec.encode("two\nlines".to_string(), &mut wire).is_err());
///
/// // What `aspell -a` answers: a line per word, then a blank line.
/// let mut wire = BytesMut::from(&b"& helo 2 0: hello, halo\n& wrld 1 5: world\n\n"[..]);
/// assert_eq!(
///     codec.decode(&mut wire).unwrap().as_deref(),
///     Some("& helo 2 0: hello, halo\n& wrld 1 5: world")
/// );
/// assert!(wire.is_empty());
/// ```
///
/// # Example: a pool of line tools with multi-line answers
///
/// A worker that answers each line with the line, its length, then a blank line (as
/// `aspell -a` does, with `WorkerSpec::ready_line_starting_with("@(#)")` for its banner):
///
/// ```
/// use subprocess_pool::protocol::Delimited;
/// use subprocess_pool::{SubprocessPool, WorkerSpec};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tool = WorkerSpec::new("sh").args([
///     "-c",
///     r#"while IFS= read -r line; do echo "$line"; echo "${#line} chars"; echo; done"#,
/// ]);
/// let tools = SubprocessPool::builder(tool, Delimited::blank_line()).max_size(2).build()?;
/// assert_eq!(tools.call("hello".to_string()).await?, "hello\n5 chars");
/// assert_eq!(tools.call("pool".to_string()).await?, "pool\n4 chars");
/// tools.shutdown(std::time::Duration::from_secs(1)).await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delimited {
    delimiter: Delimiter,
    max_length: usize,
}

impl Delimited {
    /// Answers end with an empty line: each answer is zero or more lines, then a line with
    /// nothing on it (`\n`, or `\r\n`). An answer may be empty: a blank line alone is the
    /// answer `""`.
    ///
    /// A line of spaces is not blank: it belongs to the answer.
    pub fn blank_line() -> Self {
        Self::new(Delimiter::BlankLine)
    }

    /// Answers end with a line exactly equal to `marker` (`"END"`, `"."`), apart from a
    /// `\r` before its newline. A line that merely contains the marker (`"THE END"`,
    /// `"ENDING"`) belongs to the answer; a marker line alone is the answer `""`.
    ///
    /// Requests may contain the marker: only the worker's output is searched for it.
    ///
    /// A marker is matched against single lines, so one containing `\n` never matches:
    /// every answer would then run on until it exceeds the limit, or the worker's output
    /// ends.
    pub fn line(marker: impl Into<String>) -> Self {
        Self::new(Delimiter::Line(marker.into()))
    }

    /// Answers end where the worker prints `prompt` at the start of a line: at the very
    /// start of the answer, or right after a `\n`. Nothing need follow it: a REPL prints
    /// `"> "` and waits for the next request, so the answer is complete as soon as the
    /// prompt's last byte is read. The answer is the text before the prompt, without the
    /// newline that ends its last line; a prompt alone is the answer `""`. The prompt's
    /// text elsewhere in a line (`if x > 0` under the prompt `"> "`) does not end an
    /// answer.
    ///
    /// A REPL prints its banner and a first prompt as soon as it starts, before the first
    /// request, so under this delimiter a worker [greets first](Protocol::greets_first):
    /// that first frame is read and dropped while the worker starts (within
    /// `startup_timeout`), and never taken for an answer (see [which answer belongs to
    /// which request](super#which-answer-belongs-to-which-request)). A program that prints
    /// no prompt before its first request does not start under it.
    ///
    /// An empty prompt never matches (it would end every answer before its first byte).
    ///
    /// # Example
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use subprocess_pool::Protocol;
    /// use subprocess_pool::protocol::Delimited;
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = Delimited::prompt(">>> ").codec();
    /// // `2 + 2`, then the prompt for the next request, with no newline after it.
    /// let mut wire = BytesMut::from(&b"4\n>>> "[..]);
    /// assert_eq!(codec.decode(&mut wire).unwrap().as_deref(), Some("4"));
    /// assert!(wire.is_empty());
    /// ```
    pub fn prompt(prompt: impl Into<String>) -> Self {
        Self::new(Delimiter::Prompt(prompt.into()))
    }

    /// Limits requests and answers to `max_length` bytes each (default:
    /// [`DEFAULT_MAX_LINE`]), not counting a request's newline, nor an answer's delimiter
    /// and the line end before it. An answer counts as the worker wrote it, before `\r\n`
    /// becomes `\n`.
    ///
    /// A worker that writes more without a delimiter fails the read with
    /// [`ProtocolError::FrameTooLarge`] once the bytes buffered exceed `max_length` plus
    /// the longest delimiter (the delimiter's own length and up to four bytes of line
    /// ends), that is as soon as no delimiter can still end the answer within the limit.
    pub fn with_max_length(self, max_length: usize) -> Self {
        Self { max_length, ..self }
    }

    fn new(delimiter: Delimiter) -> Self {
        Self {
            delimiter,
            max_length: DEFAULT_MAX_LINE,
        }
    }
}

impl Protocol for Delimited {
    type Request = String;
    type Response = String;
    type Message = Infallible;
    type Codec = DelimitedFraming;

    fn codec(&self) -> DelimitedFraming {
        let mut codec = DelimitedFraming {
            delimiter: self.delimiter.clone(),
            max_length: self.max_length,
            line_start: 0,
            searched: 0,
            prompt_pending: false,
        };
        codec.restart();
        codec
    }

    fn greets_first(&self) -> bool {
        matches!(self.delimiter, Delimiter::Prompt(_))
    }

    fn classify(&self, answer: String) -> Result<Incoming<String, Infallible>, ProtocolError> {
        Ok(Incoming::Response {
            id: None,
            response: answer,
        })
    }
}

/// What ends an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Delimiter {
    /// A line with nothing on it.
    BlankLine,
    /// A line equal to this marker.
    Line(String),
    /// This text at the start of a line.
    Prompt(String),
}

/// Whether the prompt starts at a line start.
enum PromptCheck {
    /// It does, and is this many bytes long.
    Found(usize),
    /// What follows the line start so far is the start of the prompt: more bytes decide.
    Undecided,
    /// It does not (or this delimiter is no prompt).
    Absent,
}

impl Delimiter {
    /// The most bytes that can follow an answer up to the end of its delimiter: the line
    /// end before the delimiter (at most `\r\n`), the delimiter, and a delimiter line's own
    /// line end.
    fn longest(&self) -> usize {
        match self {
            Delimiter::BlankLine => 4,
            Delimiter::Line(marker) => marker.len().saturating_add(4),
            Delimiter::Prompt(prompt) => prompt.len().saturating_add(2),
        }
    }

    /// Whether a whole line (without its `\n`, nor a `\r` before it) ends an answer.
    fn ends_with_line(&self, line: &[u8]) -> bool {
        match self {
            Delimiter::BlankLine => line.is_empty(),
            Delimiter::Line(marker) => line == marker.as_bytes(),
            Delimiter::Prompt(_) => false,
        }
    }

    /// Whether `rest`, the buffer from a line start on, starts with the prompt.
    fn prompt_at(&self, rest: &[u8]) -> PromptCheck {
        let Delimiter::Prompt(prompt) = self else {
            return PromptCheck::Absent;
        };
        let prompt = prompt.as_bytes();
        if prompt.is_empty() {
            // It would end every answer before its first byte, and end the next one at
            // the same place: no bytes would ever be taken.
            PromptCheck::Absent
        } else if rest.starts_with(prompt) {
            PromptCheck::Found(prompt.len())
        } else if prompt.starts_with(rest) {
            PromptCheck::Undecided
        } else {
            PromptCheck::Absent
        }
    }
}

impl fmt::Display for Delimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Delimiter::BlankLine => f.write_str("a blank line"),
            Delimiter::Line(marker) => write!(f, "the line {marker:?}"),
            Delimiter::Prompt(prompt) => write!(f, "the prompt {prompt:?}"),
        }
    }
}

/// The codec of [`Delimited`]: writes each request as a line, and reads the worker's
/// output one answer at a time, taking each answer's bytes and its delimiter from the
/// buffer and leaving what follows.
///
/// It looks at each byte once: between calls it remembers how far it has searched the
/// answer being read, so an answer arriving in many small reads costs time in proportion
/// to its length, not to the square of it. That is why one codec reads one stream: the
/// buffer it is given must be the one it was given before, with bytes appended.
#[derive(Debug)]
pub struct DelimitedFraming {
    delimiter: Delimiter,
    max_length: usize,
    /// Where, in the buffer, the first line not yet ruled out as the delimiter starts: the
    /// lines before it belong to the answer.
    line_start: usize,
    /// How far the buffer has been searched for the `\n` that ends the line at
    /// `line_start` (at least `line_start`).
    searched: usize,
    /// Whether the prompt may still start at `line_start` (always false for delimiters
    /// that are not prompts).
    prompt_pending: bool,
}

impl DelimitedFraming {
    /// Forgets the search: the next answer starts at the start of the buffer.
    fn restart(&mut self) {
        self.line_start = 0;
        self.searched = 0;
        self.prompt_pending = matches!(self.delimiter, Delimiter::Prompt(_));
    }

    /// Takes an answer and its delimiter (`..frame_end`, with the delimiter starting at
    /// `delimiter_start`, which is 0 or just after a `\n`) from the buffer.
    fn take(
        &mut self,
        src: &mut BytesMut,
        delimiter_start: usize,
        frame_end: usize,
    ) -> Result<String, ProtocolError> {
        // Taken even when it turns out to be bad, so that the search state (reset here)
        // always describes the buffer.
        let frame = src.split_to(frame_end.min(src.len()));
        self.restart();
        let answer = frame.get(..delimiter_start).unwrap_or(&frame[..]);
        // The newline that ends the answer's last line belongs to the delimiter.
        let answer = match answer.strip_suffix(b"\n") {
            Some(answer) => answer.strip_suffix(b"\r").unwrap_or(answer),
            None => answer,
        };
        if answer.len() > self.max_length {
            return Err(ProtocolError::FrameTooLarge {
                direction: Direction::Response,
                size: answer.len(),
                limit: self.max_length,
            });
        }
        let answer = std::str::from_utf8(answer).map_err(|error| {
            ProtocolError::Malformed(format!("response is not valid UTF-8 ({error})"))
        })?;
        Ok(answer.replace("\r\n", "\n"))
    }
}

impl Encoder<String> for DelimitedFraming {
    type Error = ProtocolError;

    fn encode(&mut self, request: String, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        super::lines::encode_line(&request, self.max_length, dst)
    }
}

impl Decoder for DelimitedFraming {
    type Item = String;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<String>, ProtocolError> {
        if self.searched > src.len() {
            // Not the buffer searched before, which only grows between calls: search this
            // one from its start rather than trust offsets into another.
            self.restart();
        }
        loop {
            if self.prompt_pending {
                let rest = src.get(self.line_start..).unwrap_or_default();
                match self.delimiter.prompt_at(rest) {
                    PromptCheck::Found(length) => {
                        let start = self.line_start;
                        return self
                            .take(src, start, start.saturating_add(length))
                            .map(Some);
                    }
                    PromptCheck::Undecided => break,
                    PromptCheck::Absent => self.prompt_pending = false,
                }
            }
            let unsearched = src.get(self.searched..).unwrap_or_default();
            let Some(offset) = unsearched.iter().position(|&byte| byte == b'\n') else {
                self.searched = src.len();
                break;
            };
            let newline = self.searched + offset;
            let line = src.get(self.line_start..newline).unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if self.delimiter.ends_with_line(line) {
                let start = self.line_start;
                return self.take(src, start, newline + 1).map(Some);
            }
            self.line_start = newline + 1;
            self.searched = newline + 1;
            self.prompt_pending = matches!(self.delimiter, Delimiter::Prompt(_));
        }
        // No delimiter yet. Past this size, none can still end the answer within the
        // limit: stop here rather than buffer a runaway answer whole.
        if src.len() > self.max_length.saturating_add(self.delimiter.longest()) {
            return Err(ProtocolError::FrameTooLarge {
                direction: Direction::Response,
                size: src.len(),
                limit: self.max_length,
            });
        }
        Ok(None)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<String>, ProtocolError> {
        if let Some(answer) = self.decode(src)? {
            return Ok(Some(answer));
        }
        if src.is_empty() {
            return Ok(None);
        }
        // An unfinished answer is not an answer: the worker stopped (or crashed) midway.
        let quoted = String::from_utf8_lossy(&src[..src.len().min(QUOTED)]);
        let error = ProtocolError::Malformed(format!(
            "the worker's output ended without its delimiter ({}): {} bytes of an \
             unfinished answer, starting {quoted:?}",
            self.delimiter,
            src.len(),
        ));
        src.clear();
        self.restart();
        Err(error)
    }
}

#[cfg(test)]
mod tests;
