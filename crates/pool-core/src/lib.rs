#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
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
mod error_chain;
mod fill;
mod get;
mod guards;
mod keyed;
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
pub use error_chain::ErrorChain;
pub use fill::{FillError, FillMode};
pub use keyed::{KeyedManager, KeyedObject, KeyedPool, KeyedPoolBuilder, KeyedStatus};
pub use manager::Manager;
pub use meta::ObjectMeta;
pub use metrics::{DestroyedBy, Metrics};
pub use object::Object;
pub use pool::Pool;
pub use shutdown::ShutdownReport;
pub use status::Status;
