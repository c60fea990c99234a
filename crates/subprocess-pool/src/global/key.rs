//! `WorkersKey`: a worker pool's name with its protocol type, so that a lookup is
//! checked by the compiler.

use std::fmt;
use std::marker::PhantomData;

use crate::protocol::Protocol;

/// Names a worker pool of [`Pools`](super::Pools) together with its protocol.
///
/// Declare one per pool, register the pool under it with
/// [`GlobalConfig::register`](super::GlobalConfig::register) (which only accepts a builder
/// of the same protocol) and look it up with [`Pools::pool`](super::Pools::pool), which
/// returns a `SubprocessPool<P>` of the key's protocol: asking for a pool with the wrong
/// protocol does not compile, and a typo in a name is one constant to fix rather than a
/// string in every handler. (The string lookup, [`Pools::workers`](super::Pools::workers),
/// stays for names only known at run time.)
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use subprocess_pool::global::{GlobalConfig, WorkersKey};
/// use subprocess_pool::protocol::Lines;
/// use subprocess_pool::{SubprocessPool, WorkerSpec};
///
/// const ECHO: WorkersKey<Lines> = WorkersKey::new("echo");
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pools = GlobalConfig::new()
///     .register(ECHO, SubprocessPool::builder(WorkerSpec::new("cat"), Lines::default()))
///     .build()?;
/// assert_eq!(pools.pool(ECHO)?.call("hi".to_string()).await?, "hi");
/// pools.shutdown(Duration::from_secs(1)).await;
/// # Ok(())
/// # }
/// ```
///
/// A pool of one protocol cannot be registered, nor looked up, as another:
///
/// ```compile_fail
/// use subprocess_pool::global::{GlobalConfig, WorkersKey};
/// use subprocess_pool::protocol::{BazelJson, Lines};
/// use subprocess_pool::{SubprocessPool, WorkerSpec};
///
/// const ECHO: WorkersKey<Lines> = WorkersKey::new("echo");
/// let builder = SubprocessPool::builder(WorkerSpec::new("cat"), BazelJson::default());
/// let config = GlobalConfig::new().register(ECHO, builder); // a BazelJson builder for a Lines key
/// ```
pub struct WorkersKey<P> {
    name: &'static str,
    protocol: PhantomData<fn() -> P>,
}

impl<P: Protocol> WorkersKey<P> {
    /// The key of the worker pool named `name`, speaking `P`.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            protocol: PhantomData,
        }
    }

    /// The pool's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<P> Clone for WorkersKey<P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P> Copy for WorkersKey<P> {}

impl<P> fmt::Debug for WorkersKey<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkersKey")
            .field("name", &self.name)
            .field("protocol", &std::any::type_name::<P>())
            .finish()
    }
}
