//! Every setting of a pool, as one plain struct.

use std::time::Duration;

/// The order in which idle objects are handed out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
#[non_exhaustive]
pub enum QueueMode {
    /// Last in, first out (the default): the most recently returned object is reused, so a
    /// few objects stay warm and the surplus ages out through `idle_timeout`.
    #[default]
    Lifo,
    /// First in, first out: load is spread evenly over every idle object.
    Fifo,
}

/// The default [`PoolConfig::create_backoff_max`].
pub const DEFAULT_CREATE_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// All the settings of a [`Pool`](crate::Pool), with [`Default`] values.
///
/// The [`PoolBuilder`](crate::PoolBuilder) setters write these fields; pass a whole struct
/// with [`PoolBuilder::config`](crate::PoolBuilder::config), e.g. one read from a file.
/// `None` means "off" for every optional setting.
///
/// With the `serde` feature, `PoolConfig` (de)serializes with durations written like
/// `"30s"` or `"500ms"`, `queue_mode` as `"lifo"` or `"fifo"`; omitted fields keep their
/// defaults and an unknown field is an error naming it:
///
/// ```
/// # #[cfg(feature = "serde")] {
/// let config: pool_core::PoolConfig = serde_json::from_str(
///     r#"{ "max_size": 32, "wait_timeout": "5s", "idle_timeout": "10m", "queue_mode": "fifo" }"#,
/// ).unwrap();
/// assert_eq!(config.wait_timeout, Some(std::time::Duration::from_secs(5)));
/// # }
/// ```
///
/// # Example
///
/// ```
/// use pool_core::{PoolConfig, QueueMode};
/// use std::time::Duration;
///
/// let config = PoolConfig {
///     max_size: 32,
///     wait_timeout: Some(Duration::from_secs(5)),
///     queue_mode: QueueMode::Fifo,
///     ..PoolConfig::default()
/// };
/// assert_eq!(config.max_concurrent_creates, 4);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct PoolConfig {
    /// The most objects the pool holds or has handed out at once (default 10).
    pub max_size: usize,
    /// How many idle objects to keep ready, within `max_size` (default 0).
    pub min_idle: usize,
    /// The most callers allowed to wait at once; more get
    /// [`PoolError::Exhausted`](crate::PoolError::Exhausted) (default: unbounded).
    pub max_waiting: Option<usize>,
    /// One deadline for a whole `get`: waiting, creating, recycling and checking (default:
    /// none). With a deadline, failed creates are retried until it passes.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_duration"))]
    pub wait_timeout: Option<Duration>,
    /// Bounds each call to [`Manager::create`](crate::Manager::create) (default: none).
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_duration"))]
    pub create_timeout: Option<Duration>,
    /// Bounds each call to [`Manager::recycle`](crate::Manager::recycle) and
    /// [`Manager::health_check`](crate::Manager::health_check) (default: none). It also
    /// bounds every hook run in the background (background health checks, `destroy`, and
    /// creates for `min_idle` when `create_timeout` is unset), which are bounded by 30 s
    /// when this is unset; a `destroy` cut off this way drops its object.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_duration"))]
    pub recycle_timeout: Option<Duration>,
    /// Idle objects unused for longer are destroyed, keeping `min_idle` (default: none).
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_duration"))]
    pub idle_timeout: Option<Duration>,
    /// The longest an object may live; each object's own limit is shortened by a random
    /// 0-5% so objects created together do not expire together (default: none).
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_duration"))]
    pub max_lifetime: Option<Duration>,
    /// How many times an object may be handed out before it is destroyed; each object's own
    /// limit is shortened by a random 0-5%, in whole uses, so objects created together are
    /// not retired together (a limit under 20 is exact) (default: none).
    pub max_uses: Option<usize>,
    /// Objects idle for longer than this are health-checked at checkout (default: none, so
    /// checkouts never run [`Manager::health_check`](crate::Manager::health_check)).
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_duration"))]
    pub health_check_after: Option<Duration>,
    /// How often idle objects are health-checked in the background (default: none).
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_duration"))]
    pub health_check_interval: Option<Duration>,
    /// The most creates in flight at once (default 4).
    pub max_concurrent_creates: usize,
    /// The longest pause between create attempts while creates keep failing (default
    /// 500 ms). After a failed create the pool pauses creates for 10 ms, doubling per
    /// consecutive failure up to this cap (each pause cut by a random 0-50%), then one
    /// create probes the backend. So a down backend sees at most a few attempts per second
    /// from the whole pool (2-4 at the default), and callers are served within this long
    /// of its return. Must be more than zero.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_duration::exact"))]
    pub create_backoff_max: Duration,
    /// An object held longer than this is reported as a possible leak (default: none).
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_duration"))]
    pub leak_threshold: Option<Duration>,
    /// Which idle object is handed out next (default [`QueueMode::Lifo`]).
    pub queue_mode: QueueMode,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_size: 10,
            min_idle: 0,
            max_waiting: None,
            wait_timeout: None,
            create_timeout: None,
            recycle_timeout: None,
            idle_timeout: None,
            max_lifetime: None,
            max_uses: None,
            health_check_after: None,
            health_check_interval: None,
            max_concurrent_creates: 4,
            create_backoff_max: DEFAULT_CREATE_BACKOFF_MAX,
            leak_threshold: None,
            queue_mode: QueueMode::Lifo,
        }
    }
}

impl PoolConfig {
    /// Whether returning an object must stamp `last_used` (a clock read).
    /// Whether any setting needs the background maintenance task.
    pub(crate) fn needs_maintenance(&self) -> bool {
        self.min_idle > 0
            || self.idle_timeout.is_some()
            || self.max_lifetime.is_some()
            || self.health_check_interval.is_some()
            || self.leak_threshold.is_some()
    }

    pub(crate) fn tracks_last_used(&self) -> bool {
        self.idle_timeout.is_some()
            || self.health_check_after.is_some()
            || self.health_check_interval.is_some()
    }
}
