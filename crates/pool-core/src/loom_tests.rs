//! Loom model tests of the pool's state transitions under concurrency (filled in below).
