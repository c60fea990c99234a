//! The Rust snippets of the workspace's `README.md` and `docs/guide.md`, compiled (and,
//! unless marked `no_run`, run) by `cargo test` as doctests of this crate, so the
//! documentation cannot drift from the API. Snippets that need a program or a server this
//! machine may not have (a database, a language server) are `no_run`: compiled, not run.

#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct Readme;

#[cfg(doctest)]
#[doc = include_str!("../../../docs/guide.md")]
pub struct Guide;
