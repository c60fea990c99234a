//! `GlobalConfig`: what [`global::init`](crate::global::init) builds.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::pools::{AnyWorkers, COMMANDS};
use super::{GlobalError, Pools};
use crate::protocol::Protocol;
use crate::{CommandPool, CommandPoolBuilder, SubprocessPoolBuilder};

type BuildWorkers = Box<dyn FnOnce() -> Result<Box<dyn AnyWorkers>, pool_core::BuildError> + Send>;

/// The pools the default facade runs: a command pool (as many slots as CPUs unless set)
/// and any number of named worker pools, each configured with its own builder.
///
/// Nothing starts until [`build`](GlobalConfig::build) (or
/// [`global::init`](crate::global::init)), which checks every pool's settings and names
/// first.
///
/// ```
/// use std::time::Duration;
/// use subprocess_pool::global::GlobalConfig;
/// use subprocess_pool::protocol::{BazelJson, Lines};
/// use subprocess_pool::{CommandPool, SubprocessPool, WorkerSpec};
///
/// let config = GlobalConfig::new()
///     .commands(CommandPool::builder().max_size(8))
///     .workers(
///         "upper",
///         SubprocessPool::builder(WorkerSpec::new("tr").args(["a-z", "A-Z"]), Lines::default())
///             .max_size(4)
///             .wait_timeout(Duration::from_secs(5)),
///     );
/// # let _ = config;
/// ```
#[must_use = "a GlobalConfig does nothing until it is built or passed to global::init"]
pub struct GlobalConfig {
    commands: CommandPoolBuilder,
    workers: Vec<(String, BuildWorkers)>,
}

impl GlobalConfig {
    /// A command pool with its defaults and no worker pools.
    pub fn new() -> Self {
        Self {
            commands: CommandPool::builder(),
            workers: Vec::new(),
        }
    }

    /// Configures the command pool.
    pub fn commands(mut self, builder: CommandPoolBuilder) -> Self {
        self.commands = builder;
        self
    }

    /// Adds the worker pool of `key`, built from `builder`, which must speak the key's
    /// protocol (see [`WorkersKey`](super::WorkersKey)).
    pub fn register<P: Protocol>(
        self,
        key: super::WorkersKey<P>,
        builder: SubprocessPoolBuilder<P>,
    ) -> Self {
        self.workers(key.name(), builder)
    }

    /// Adds a worker pool under `name`, built from `builder` (any protocol). Prefer
    /// [`register`](Self::register) with a [`WorkersKey`](super::WorkersKey) for pools
    /// known at compile time.
    pub fn workers<P: Protocol>(
        mut self,
        name: impl Into<String>,
        builder: SubprocessPoolBuilder<P>,
    ) -> Self {
        let name = name.into();
        let builder = builder.name(name.clone());
        let build: BuildWorkers = Box::new(move || {
            builder
                .build()
                .map(|pool| Box::new(pool) as Box<dyn AnyWorkers>)
        });
        self.workers.push((name, build));
        self
    }

    /// Builds every pool. Errors with [`GlobalError::DuplicateName`] or
    /// [`GlobalError::Build`] naming the pool; pools already built are then closed again.
    pub fn build(self) -> Result<Pools, GlobalError> {
        let mut names = BTreeSet::from([COMMANDS]);
        for (name, _) in &self.workers {
            if !names.insert(name.as_str()) {
                return Err(GlobalError::DuplicateName { name: name.clone() });
            }
        }
        let commands = self.commands.build().map_err(|source| GlobalError::Build {
            pool: COMMANDS.to_owned(),
            source,
        })?;
        let mut workers = BTreeMap::new();
        for (name, build) in self.workers {
            match build() {
                Ok(pool) => {
                    workers.insert(name, pool);
                }
                // Dropping the pools built so far (their last handles) closes them.
                Err(source) => return Err(GlobalError::Build { pool: name, source }),
            }
        }
        Ok(Pools { commands, workers })
    }
}

impl Default for GlobalConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for GlobalConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlobalConfig")
            .field(
                "workers",
                &self
                    .workers
                    .iter()
                    .map(|(name, _)| name)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}
