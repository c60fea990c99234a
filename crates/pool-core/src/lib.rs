//! A fast, fair, generic async object pool.
//!
//! `pool-core` keeps expensive objects (connections, clients, parsers, worker processes)
//! ready for reuse. You describe how to make, ready, check and dispose of an object by
//! implementing [`Manager`]; the [`Pool`] does the rest:
//!
//! - **Never more than `max_size`** objects are counted by the pool at once, and an object is
//!   never handed to two users: [`Object`] owns it until it is dropped or [taken](Object::take).
//! - **Fair**: callers that must wait are served first come, first served, and a returned
//!   object goes straight to the longest waiter.
//! - **Exact accounting**: every created object is destroyed exactly once (unless taken), a
//!   `get` cancelled at any point leaks nothing, and a panicking hook leaks no slot.
//! - **Cheap when idle**: an uncontended `get` + drop takes one lock each way and reads the
//!   clock only when a configured setting needs it.
//!
//! # Example
//!
//! ```
//! use pool_core::{Manager, Pool};
//! use std::convert::Infallible;
//!
//! struct Buffers;
//!
//! impl Manager for Buffers {
//!     type Object = Vec<u8>;
//!     type Error = Infallible;
//!
//!     async fn create(&self) -> Result<Vec<u8>, Infallible> {
//!         Ok(Vec::with_capacity(4096))
//!     }
//!
//!     async fn recycle(&self, buf: &mut Vec<u8>, _: &pool_core::ObjectMeta) -> Result<(), Infallible> {
//!         buf.clear();
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = Pool::builder(Buffers).max_size(8).build()?;
//! let mut buf = pool.get().await?;
//! buf.extend_from_slice(b"hello");
//! drop(buf); // back to the pool
//! assert_eq!(pool.status().idle, 1);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![deny(unsafe_code)]

mod backoff;
mod blocking;
mod builder;
mod cache_padded;
mod config;
mod deadline;
mod dyn_manager;
mod entry;
mod error;
mod fill;
mod get;
mod guards;
mod leak;
mod maintenance;
mod manager;
mod meta;
mod metrics;
mod object;
mod pool;
mod random;
#[cfg(feature = "serde")]
mod serde_duration;
mod shared;
mod shutdown;
mod state;
mod status;
mod striped;
mod timer;
mod waiters;

pub use blocking::BlockingError;
pub use builder::PoolBuilder;
pub use config::{DEFAULT_CREATE_BACKOFF_MAX, PoolConfig, QueueMode};
pub use dyn_manager::DynManager;
pub use error::{AddError, BuildError, PoolError, TimeoutKind};
pub use fill::{FillError, FillMode};
pub use manager::Manager;
pub use meta::ObjectMeta;
pub use metrics::{DestroyedBy, Metrics};
pub use object::Object;
pub use pool::Pool;
pub use shutdown::ShutdownReport;
pub use status::Status;
