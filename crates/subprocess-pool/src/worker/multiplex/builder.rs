//! Configuring and building a `MultiplexPool`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pool_core::{BuildError, Pool, PoolBuilder};
use tokio::sync::{Notify, Semaphore};

use super::manager::MuxManager;
use super::{DEFAULT_MAX_IN_FLIGHT, Lent, MultiplexPool, Shared};
use crate::protocol::Protocol;
use crate::worker::manager::RunnerManager;
use crate::worker::spec::WorkerSpec;

/// Configures a [`MultiplexPool`]: `max_size` workers, `max_in_flight` requests each,
/// `wait_timeout`, then [`build`](MultiplexPoolBuilder::build).
#[must_use = "a builder does nothing until build() is called"]
pub struct MultiplexPoolBuilder<P: Protocol> {
    pool: PoolBuilder<MuxManager<P>>,
    max_in_flight: usize,
}

impl<P: Protocol> std::fmt::Debug for MultiplexPoolBuilder<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiplexPoolBuilder")
            .field("spec", self.pool.manager().0.spec())
            .field("max_in_flight", &self.max_in_flight)
            .field("config", self.pool.settings())
            .finish()
    }
}

impl<P: Protocol> MultiplexPoolBuilder<P> {
    pub(super) fn new(spec: WorkerSpec, protocol: P) -> Self {
        Self {
            pool: Pool::builder(MuxManager(RunnerManager::new(spec.clone(), protocol)))
                .name(spec.short_program_name()),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }

    /// The most workers at once (see [`PoolBuilder::max_size`]).
    pub fn max_size(self, max_size: usize) -> Self {
        Self {
            pool: self.pool.max_size(max_size),
            ..self
        }
    }

    /// Workers kept started, ready for the first calls (see [`PoolBuilder::min_idle`]).
    pub fn min_idle(self, min_idle: usize) -> Self {
        Self {
            pool: self.pool.min_idle(min_idle),
            ..self
        }
    }

    /// The pool's name, in every event it and its workers log (default: the program's
    /// file name).
    pub fn name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.pool.manager().0.counters().set_name(&name);
        Self {
            pool: self.pool.name(name),
            ..self
        }
    }

    /// The most requests outstanding on one worker (default [`DEFAULT_MAX_IN_FLIGHT`]).
    pub fn max_in_flight(self, max_in_flight: usize) -> Self {
        Self {
            max_in_flight,
            ..self
        }
    }

    /// How long a call may wait for room on a worker, a worker's start included.
    pub fn wait_timeout(self, timeout: Duration) -> Self {
        Self {
            pool: self.pool.wait_timeout(timeout),
            ..self
        }
    }

    /// Calls `handler` with a worker's pid and each message it sends (see
    /// [`SubprocessPoolBuilder::on_message`](crate::SubprocessPoolBuilder::on_message)).
    pub fn on_message(
        self,
        handler: impl Fn(u32, &P::Message) -> Option<P::Request> + Send + Sync + 'static,
    ) -> Self {
        Self {
            pool: self
                .pool
                .map_manager(|manager| MuxManager(manager.0.with_message_handler(handler))),
            ..self
        }
    }

    /// Every `interval`, workers with no request in flight get the [`ping`](Self::ping)
    /// and must answer it within the spec's `request_timeout`; one that does not retires.
    /// (A worker that dies is noticed at once in any case: a task reads its stdout.)
    pub fn health_check_interval(self, interval: Duration) -> Self {
        Self {
            pool: self.pool.health_check_interval(interval),
            ..self
        }
    }

    /// The request health checks send (see
    /// [`health_check_interval`](Self::health_check_interval)).
    pub fn ping(self, request: P::Request) -> Self
    where
        P::Request: Clone + Sync,
    {
        Self {
            pool: self
                .pool
                .map_manager(|manager| MuxManager(manager.0.with_ping(request))),
            ..self
        }
    }

    /// Builds the pool; refuses a protocol that does not multiplex, a zero
    /// `max_in_flight`, and what [`PoolBuilder::build`] refuses, naming the setting.
    pub fn build(self) -> Result<MultiplexPool<P>, BuildError> {
        let manager = &self.pool.manager().0;
        let spec = manager.spec();
        spec.validate()?;
        if !manager.protocol().multiplexes() {
            return Err(BuildError::new(
                "protocol",
                format!(
                    "{} does not multiplex: its responses carry no request id (use JsonRpc, \
                     or BazelJson/BazelProto with multiplex())",
                    std::any::type_name::<P>()
                ),
            ));
        }
        if self.max_in_flight == 0 {
            return Err(BuildError::new("max_in_flight", "must be at least 1"));
        }
        let settings = self.pool.settings();
        let max_size = settings.max_size;
        let permits = max_size
            .checked_mul(self.max_in_flight)
            .filter(|&permits| permits <= Semaphore::MAX_PERMITS)
            .ok_or_else(|| {
                BuildError::new("max_in_flight", "max_size * max_in_flight is too large")
            })?;
        let wait_timeout = settings.wait_timeout;
        let health_check_interval = settings.health_check_interval;
        let (max_requests, max_age) = (spec.max_requests, spec.max_age);
        let counters = manager.counters().clone();
        // A worker is lent once, for its whole life: its return is its retirement. Idle
        // ones (`min_idle`) still age out.
        let mut config = settings.clone();
        config.max_uses = Some(1);
        config.max_lifetime = max_age;
        config.wait_timeout = None;
        let pool = self.pool.config(config).build()?;
        Ok(MultiplexPool {
            shared: Arc::new(Shared {
                pool,
                max_size,
                max_in_flight: self.max_in_flight,
                permits: Semaphore::new(permits),
                lent: Mutex::new(Lent {
                    workers: Vec::new(),
                    starting: 0,
                    failures: 0,
                    last_failure: None,
                    closed: false,
                }),
                changed: Notify::new(),
                wait_timeout,
                max_requests,
                max_age,
                counters,
                health_check_interval,
                checks_started: std::sync::Once::new(),
            }),
        })
    }
}
