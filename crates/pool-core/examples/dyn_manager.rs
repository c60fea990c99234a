//! Picking a pool's manager at run time from a config value:
//! `cargo run -p pool-core --example dyn_manager -- memory` (or `-- counting`).
//!
//! Both managers hand out `String` buffers; which one the pool uses is decided by the
//! command-line argument, as it would be by a config file. The pool's type does not change:
//! it is `Pool<Box<dyn DynManager<Object = String, Error = Infallible>>>` either way.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};

use pool_core::{DynManager, Manager, ObjectMeta, Pool};

type AnyManager = Box<dyn DynManager<Object = String, Error = Infallible>>;

/// Plain buffers, cleared between users.
struct Memory;

impl Manager for Memory {
    type Object = String;
    type Error = Infallible;

    async fn create(&self) -> Result<String, Infallible> {
        Ok(String::with_capacity(64))
    }

    async fn recycle(&self, buffer: &mut String, _: &ObjectMeta) -> Result<(), Infallible> {
        buffer.clear();
        Ok(())
    }
}

/// Buffers that say which one they are, numbered as created.
struct Counting {
    created: AtomicU64,
}

impl Manager for Counting {
    type Object = String;
    type Error = Infallible;

    async fn create(&self) -> Result<String, Infallible> {
        let n = self.created.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(format!("buffer #{n}: "))
    }
}

fn manager_from_config(name: &str) -> Option<AnyManager> {
    match name {
        "memory" => Some(Box::new(Memory)),
        "counting" => Some(Box::new(Counting {
            created: AtomicU64::new(0),
        })),
        _ => None,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let choice = std::env::args().nth(1).unwrap_or_else(|| "counting".into());
    let Some(manager) = manager_from_config(&choice) else {
        return Err(format!("unknown manager {choice:?}: use `memory` or `counting`").into());
    };
    let pool = Pool::builder(manager).max_size(2).build()?;
    for round in 1..=3 {
        let mut buffer = pool.get().await?;
        buffer.push_str(&format!("round {round}"));
        println!("{choice}: {}", *buffer);
    }
    println!("{:?}", pool.status());
    Ok(())
}
