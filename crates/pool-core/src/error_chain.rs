//! An error shown with its causes.

use std::error::Error;
use std::fmt;

/// Shows an error followed by its causes, "outer: cause: root cause".
///
/// The errors of this crate and of `subprocess-pool` keep a wrapped cause in
/// [`source()`](Error::source) rather than repeating it in their own message (the Rust API
/// guidelines' rule), so `{error}` alone shows only the outermost step. Use this where one
/// line must say everything: a log field, a command-line tool's message. The pool's own
/// log events use it.
///
/// # Example
///
/// ```
/// use pool_core::ErrorChain;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("connect failed")]
/// struct Connect(#[source] std::io::Error);
///
/// let error = Connect(std::io::Error::other("connection refused"));
/// assert_eq!(ErrorChain(&error).to_string(), "connect failed: connection refused");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
