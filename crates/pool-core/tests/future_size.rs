//! A `get` future holds the manager's `recycle` future once, and never its `health_check`
//! or `create` futures (those run boxed: they are rare and slow). Every `get` moves its
//! future a few times (into the caller's own future, into the runtime's task), so a hook
//! future held twice over costs its size in copied bytes on every checkout.

use std::convert::Infallible;
use std::hint::black_box;

use pool_core::{Manager, ObjectMeta, Pool};

/// Bytes each hook keeps across an `.await`.
const HELD: usize = 4096;

async fn hold_bytes() {
    let bytes = [7u8; HELD];
    tokio::task::yield_now().await;
    black_box(&bytes);
}

/// Managers whose `create` holds `HELD` bytes while it waits, and, for `HeavyRecycle`
/// and `HeavyCheck`, one hook more that does.
macro_rules! manager {
    ($name:ident $(, $hook:ident)?) => {
        struct $name;

        impl Manager for $name {
            type Object = u64;
            type Error = Infallible;

            async fn create(&self) -> Result<u64, Infallible> {
                hold_bytes().await;
                Ok(0)
            }

            $(
                async fn $hook(&self, _: &mut u64, _: &ObjectMeta) -> Result<(), Infallible> {
                    hold_bytes().await;
                    Ok(())
                }
            )?
        }
    };
}

manager!(Light);
manager!(HeavyRecycle, recycle);
manager!(HeavyCheck, health_check);

/// The size of a `get` future for `manager`'s pool, printed (`-- --nocapture` shows it).
fn get_future_size<M: Manager>(manager: M) -> usize {
    let pool = Pool::builder(manager).max_size(1).build().unwrap();
    let get = pool.get();
    let size = std::mem::size_of_val(&get);
    eprintln!("{}: get future of {size} bytes", std::any::type_name::<M>());
    size
}

#[test]
fn a_get_future_holds_the_recycle_future_once() {
    let light = get_future_size(Light);
    let heavy = get_future_size(HeavyRecycle);
    assert!(
        heavy >= HELD && heavy < light + HELD + HELD / 2,
        "a recycle holding {HELD} bytes grew the get future from {light} to {heavy} bytes"
    );
}

#[test]
fn a_get_future_holds_neither_the_health_check_nor_the_create_future() {
    let light = get_future_size(Light);
    assert!(
        light < HELD,
        "the get future ({light} bytes) holds the create future"
    );
    let checked = get_future_size(HeavyCheck);
    assert_eq!(
        light, checked,
        "a health check holding {HELD} bytes grew the get future"
    );
}
