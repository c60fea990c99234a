//! Configuring and building a pool.

use std::time::Duration;

use crate::config::{PoolConfig, QueueMode};
use crate::error::BuildError;
use crate::manager::Manager;
use crate::pool::Pool;
use crate::shared::Shared;

impl<M: Manager> Pool<M> {
    /// Starts configuring a pool of objects made by `manager`.
    pub fn builder(manager: M) -> PoolBuilder<M> {
        PoolBuilder::new(manager)
    }
}

/// Configures a [`Pool`]; made by [`Pool::builder`].
///
/// Setters take plain values and may come in any order; [`build`](PoolBuilder::build)
/// checks the whole configuration and names the first setting it refuses. Building needs
/// no runtime.
///
/// # Example
///
/// ```
/// # use pool_core::{Manager, Pool, QueueMode};
/// # use std::time::Duration;
/// # struct M;
/// # impl Manager for M {
/// #     type Object = ();
/// #     type Error = std::convert::Infallible;
/// #     async fn create(&self) -> Result<(), Self::Error> { Ok(()) }
/// # }
/// let pool = Pool::builder(M)
///     .max_size(16)
///     .wait_timeout(Duration::from_secs(5))
///     .max_lifetime(Duration::from_secs(30 * 60))
///     .queue_mode(QueueMode::Fifo)
///     .build()
///     .expect("a valid configuration");
/// assert_eq!(pool.status().max_size, 16);
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct PoolBuilder<M> {
    manager: M,
    config: PoolConfig,
    name: Option<String>,
}

/// Generates a setter that stores `Some(value)` in an optional setting.
macro_rules! optional_setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.config.$name = Some(value);
            self
        }
    };
}

impl<M: Manager> PoolBuilder<M> {
    pub(crate) fn new(manager: M) -> Self {
        Self {
            manager,
            config: PoolConfig::default(),
            name: None,
        }
    }

    /// The pool's name, in every event it logs (the `pool` field) and from
    /// [`Pool::name`]. The default: the manager's type name without its path or
    /// parameters (`Conns` for `my_app::db::Conns`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The longest pause between create attempts while creates keep failing (default
    /// 500 ms; see [`PoolConfig::create_backoff_max`]). More than zero.
    pub fn create_backoff_max(mut self, max: Duration) -> Self {
        self.config.create_backoff_max = max;
        self
    }

    /// Replaces every setting with `config`; later setters still apply on top.
    pub fn config(mut self, config: PoolConfig) -> Self {
        self.config = config;
        self
    }

    /// The most objects the pool holds or has handed out at once (at least 1).
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.config.max_size = max_size;
        self
    }

    /// How many idle objects to keep ready (at most `max_size`).
    pub fn min_idle(mut self, min_idle: usize) -> Self {
        self.config.min_idle = min_idle;
        self
    }

    /// The most creates in flight at once (at least 1).
    pub fn max_concurrent_creates(mut self, max: usize) -> Self {
        self.config.max_concurrent_creates = max;
        self
    }

    /// Which idle object is handed out next.
    pub fn queue_mode(mut self, mode: QueueMode) -> Self {
        self.config.queue_mode = mode;
        self
    }

    optional_setter!(
        /// The most callers allowed to wait at once; more get `Exhausted`. Zero means no
        /// caller ever waits.
        max_waiting: usize
    );
    optional_setter!(
        /// One deadline for a whole `get`: waiting, creating, recycling and checking.
        wait_timeout: Duration
    );
    optional_setter!(
        /// Bounds each create.
        create_timeout: Duration
    );
    optional_setter!(
        /// Bounds each recycle and health check, and every hook run in the background.
        recycle_timeout: Duration
    );
    optional_setter!(
        /// Idle objects unused for longer are destroyed, keeping `min_idle`.
        idle_timeout: Duration
    );
    optional_setter!(
        /// The longest an object may live, shortened per object by a random 0-5%.
        max_lifetime: Duration
    );
    optional_setter!(
        /// How many times an object may be handed out before it is destroyed (at least 1),
        /// shortened per object by a random 0-5% (whole uses: a limit under 20 is exact).
        max_uses: usize
    );
    optional_setter!(
        /// Objects idle longer than this are health-checked at checkout (zero: always).
        health_check_after: Duration
    );
    optional_setter!(
        /// How often idle objects are health-checked in the background.
        health_check_interval: Duration
    );
    optional_setter!(
        /// An object held longer than this is reported as a possible leak.
        leak_threshold: Duration
    );

    /// The settings so far.
    pub fn settings(&self) -> &PoolConfig {
        &self.config
    }

    /// The manager the pool will use.
    pub fn manager(&self) -> &M {
        &self.manager
    }

    /// Replaces the manager with what `change` makes of it, keeping every setting: for
    /// crates that wrap `PoolBuilder` and configure their manager step by step.
    ///
    /// # Example
    ///
    /// ```
    /// # use pool_core::{Manager, Pool};
    /// struct Conns { tls: bool }
    /// # impl Manager for Conns {
    /// #     type Object = ();
    /// #     type Error = std::convert::Infallible;
    /// #     async fn create(&self) -> Result<(), Self::Error> { Ok(()) }
    /// # }
    /// let builder = Pool::builder(Conns { tls: false }).max_size(4);
    /// let builder = builder.map_manager(|conns| Conns { tls: !conns.tls });
    /// assert!(builder.manager().tls);
    /// assert_eq!(builder.settings().max_size, 4);
    /// ```
    pub fn map_manager<N: Manager>(self, change: impl FnOnce(M) -> N) -> PoolBuilder<N> {
        PoolBuilder {
            manager: change(self.manager),
            config: self.config,
            name: self.name,
        }
    }

    /// Checks the configuration and builds the pool. Needs no runtime: background work
    /// (maintenance, `destroy`) starts on the runtime present now, or else on the first
    /// `get`'s. `min_idle` objects are created in the background; to wait for them, use
    /// [`build_filled`](PoolBuilder::build_filled).
    ///
    /// Refused, with an error naming the setting: `max_size` of 0, `min_idle` above
    /// `max_size`, `max_concurrent_creates` of 0, `max_uses` of 0, and a zero duration for
    /// any timeout, lifetime or interval (`health_check_after` may be zero).
    pub fn build(self) -> Result<Pool<M>, BuildError> {
        validate(&self.config)?;
        let name = self.name.unwrap_or_else(short_type_name::<M>);
        let shared = Shared::new(self.manager, self.config, name.into());
        Ok(Pool::from_shared(shared))
    }
}

/// `M`'s name without its path or type parameters.
pub(crate) fn short_type_name<M>() -> String {
    let full = std::any::type_name::<M>();
    let outer = full.split('<').next().unwrap_or(full);
    outer.rsplit("::").next().unwrap_or(outer).to_string()
}

pub(crate) fn validate(config: &PoolConfig) -> Result<(), BuildError> {
    if config.max_size == 0 {
        return Err(BuildError::new("max_size", "must be at least 1"));
    }
    if config.min_idle > config.max_size {
        return Err(BuildError::new(
            "min_idle",
            format!(
                "is {} but must not exceed max_size ({})",
                config.min_idle, config.max_size
            ),
        ));
    }
    if config.max_concurrent_creates == 0 {
        return Err(BuildError::new(
            "max_concurrent_creates",
            "must be at least 1",
        ));
    }
    if config.create_backoff_max.is_zero() {
        return Err(BuildError::new(
            "create_backoff_max",
            "must be greater than zero",
        ));
    }
    if config.max_uses == Some(0) {
        return Err(BuildError::new("max_uses", "must be at least 1"));
    }
    let durations = [
        ("wait_timeout", config.wait_timeout),
        ("create_timeout", config.create_timeout),
        ("recycle_timeout", config.recycle_timeout),
        ("idle_timeout", config.idle_timeout),
        ("max_lifetime", config.max_lifetime),
        ("health_check_interval", config.health_check_interval),
        ("leak_threshold", config.leak_threshold),
    ];
    for (field, value) in durations {
        if value == Some(Duration::ZERO) {
            return Err(BuildError::new(field, "must be greater than zero"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate;
    use crate::PoolConfig;
    use std::time::Duration;

    fn refused_field(config: PoolConfig) -> &'static str {
        validate(&config).unwrap_err().field()
    }

    #[test]
    fn defaults_are_valid() {
        assert!(validate(&PoolConfig::default()).is_ok());
    }

    #[test]
    fn each_bad_setting_is_named() {
        let base = PoolConfig::default;
        assert_eq!(
            refused_field(PoolConfig {
                max_size: 0,
                ..base()
            }),
            "max_size"
        );
        assert_eq!(
            refused_field(PoolConfig {
                min_idle: 11,
                ..base()
            }),
            "min_idle"
        );
        assert_eq!(
            refused_field(PoolConfig {
                max_concurrent_creates: 0,
                ..base()
            }),
            "max_concurrent_creates"
        );
        assert_eq!(
            refused_field(PoolConfig {
                max_uses: Some(0),
                ..base()
            }),
            "max_uses"
        );
        assert_eq!(
            refused_field(PoolConfig {
                wait_timeout: Some(Duration::ZERO),
                ..base()
            }),
            "wait_timeout"
        );
        assert_eq!(
            refused_field(PoolConfig {
                leak_threshold: Some(Duration::ZERO),
                ..base()
            }),
            "leak_threshold"
        );
    }

    #[test]
    fn zero_health_check_after_means_always() {
        let config = PoolConfig {
            health_check_after: Some(Duration::ZERO),
            ..PoolConfig::default()
        };
        assert!(validate(&config).is_ok());
    }
}
