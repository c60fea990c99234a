//! The futures and guards a pool hands out are `Send` and `Sync`, so they can be spawned,
//! held across `.await` in spawned tasks, and shared. Checked at compile time: the waiting
//! `get` future holds its queue node, and a `!Sync` node would make the future `!Sync`.

use std::convert::Infallible;

use pool_core::{Manager, Object, Pool};

struct Nothing;

impl Manager for Nothing {
    type Object = u64;
    type Error = Infallible;

    async fn create(&self) -> Result<u64, Infallible> {
        Ok(0)
    }
}

fn send_and_sync<T: Send + Sync>(_: &T) {}

#[test]
fn get_futures_and_objects_are_send_and_sync() {
    let pool = Pool::builder(Nothing).max_size(1).build().unwrap();
    send_and_sync(&pool);
    send_and_sync(&pool.get());
    send_and_sync(&pool.try_get());
    send_and_sync(&pool.get_timeout(std::time::Duration::from_secs(1)));
    let _: fn(&Object<Nothing>) = send_and_sync::<Object<Nothing>>;
}
