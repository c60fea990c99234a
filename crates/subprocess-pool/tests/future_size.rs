//! The futures of a warm call stay small: each call moves them a few times (into the
//! caller's future, into a spawned task), so every byte is copied per call. A `get`
//! future that held its `recycle` future three times over made `SubprocessPool::call`'s
//! future 3,296 bytes. `-- --nocapture` prints the sizes.

use std::mem::size_of_val;

use subprocess_pool::protocol::Lines;
use subprocess_pool::{SubprocessPool, WorkerSpec};

#[tokio::test]
async fn a_warm_calls_futures_stay_under_two_kilobytes() {
    // Nothing is started: the futures are made, measured and dropped unpolled.
    let pool = SubprocessPool::builder(WorkerSpec::new("cat"), Lines::default())
        .build()
        .unwrap();
    let get = size_of_val(&pool.pool().get());
    let call = size_of_val(&pool.call("x".into()));
    eprintln!("get future: {get} bytes; call future: {call} bytes");
    assert!(call < 2048, "a call future of {call} bytes (get: {get})");
}
