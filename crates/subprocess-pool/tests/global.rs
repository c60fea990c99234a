//! The global facade: every misuse is an error naming what was wrong, never a panic, and a
//! slot can be started again after shutdown. Real `cat` workers.

mod support;

use std::sync::Arc;
use std::time::Duration;

use pool_core::PoolError;
use subprocess_pool::global::{self, GlobalConfig, GlobalError, Pools};
use subprocess_pool::protocol::{LengthPrefixed, Lines};
use subprocess_pool::{CallError, CommandPool, CommandSpec, Global, SubprocessPool, WorkerSpec};
use support::group_members;

const GRACE: Duration = Duration::from_secs(5);

fn cat_workers() -> subprocess_pool::SubprocessPoolBuilder<Lines> {
    SubprocessPool::builder(WorkerSpec::new("cat"), Lines::default()).max_size(2)
}

/// The default facade is one process-wide slot, so its whole life is one test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_facade_reports_each_misuse_and_restarts_after_shutdown() {
    let error = global::get().unwrap_err();
    assert!(matches!(error, GlobalError::NotInitialized), "{error:?}");
    assert!(error.to_string().contains("call init"), "{error}");
    let error = global::shutdown(GRACE).await.unwrap_err();
    assert!(matches!(error, GlobalError::NotInitialized), "{error:?}");

    let config = || {
        GlobalConfig::new()
            .commands(CommandPool::builder().max_size(2))
            .workers("echo", cat_workers().min_idle(2))
    };
    let pools = global::init(config()).unwrap();
    let error = global::init(config()).unwrap_err();
    assert!(matches!(error, GlobalError::AlreadyRunning), "{error:?}");
    assert!(error.to_string().contains("already running"), "{error}");

    // Both kinds of pool work through `get`.
    let from_get = global::get().unwrap();
    assert!(Arc::ptr_eq(&pools, &from_get));
    let echo = from_get.workers::<Lines>("echo").unwrap();
    assert_eq!(echo.call("hi".to_string()).await.unwrap(), "hi");
    let out = from_get
        .commands()
        .run(CommandSpec::new("echo").arg("x"))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"x\n");
    let worker_pids: Vec<u32> = {
        let a = echo.pool().get().await.unwrap();
        let b = echo.pool().get().await.unwrap();
        vec![a.pid(), b.pid()]
    };

    // Shutdown drains both the command pool and every worker pool.
    let report = global::shutdown(GRACE).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    for pid in worker_pids {
        assert!(
            group_members(pid).is_empty(),
            "worker group {pid} still has processes"
        );
    }
    assert_eq!(from_get.commands().status().size, 0);
    let error = echo.call("late".to_string()).await.unwrap_err();
    assert!(
        matches!(error, CallError::Pool(PoolError::Closed)),
        "{error:?}"
    );
    let error = global::get().unwrap_err();
    assert!(matches!(error, GlobalError::ShutDown), "{error:?}");
    assert!(error.to_string().contains("shut down"), "{error}");
    let error = global::shutdown(GRACE).await.unwrap_err();
    assert!(matches!(error, GlobalError::ShutDown), "{error:?}");

    // Init after shutdown starts afresh.
    global::init(config()).unwrap();
    let again = global::get().unwrap();
    let reply = again
        .workers::<Lines>("echo")
        .unwrap()
        .call("again".to_string());
    assert_eq!(reply.await.unwrap(), "again");
    assert!(global::shutdown(GRACE).await.unwrap().is_clean());

    // A config that cannot be built leaves nothing running.
    let bad = GlobalConfig::new().workers("zero", cat_workers().max_size(0));
    let error = global::init(bad).unwrap_err();
    assert!(
        matches!(&error, GlobalError::Build { pool, .. } if pool == "zero"),
        "{error:?}"
    );
    let report = support::report(&error);
    assert!(report.contains("max_size"), "{report}");
    assert!(matches!(global::get(), Err(GlobalError::ShutDown)));
}

#[tokio::test]
async fn a_global_slot_holds_any_pool() {
    static WORKERS: Global<SubprocessPool<Lines>> = Global::new();
    assert!(matches!(WORKERS.get(), Err(GlobalError::NotInitialized)));
    WORKERS.init(cat_workers().build().unwrap()).unwrap();
    assert!(WORKERS.is_running());
    let error = WORKERS.init(cat_workers().build().unwrap()).unwrap_err();
    assert!(matches!(error, GlobalError::AlreadyRunning), "{error:?}");
    let reply = WORKERS.get().unwrap().call("slot".to_string()).await;
    assert_eq!(reply.unwrap(), "slot");
    assert!(WORKERS.shutdown(GRACE).await.unwrap().is_clean());
    assert!(matches!(WORKERS.get(), Err(GlobalError::ShutDown)));
    WORKERS.init(cat_workers().build().unwrap()).unwrap();
    assert!(WORKERS.shutdown(GRACE).await.unwrap().is_clean());
}

#[test]
fn a_global_slot_is_usable_from_many_threads_at_once() {
    static SLOT: Global<u64> = Global::new();
    let winners: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|n| scope.spawn(move || usize::from(SLOT.init(n).is_ok())))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(winners, 1, "exactly one init wins");
    assert!(SLOT.get().is_ok());
}

#[tokio::test]
async fn pools_name_what_is_missing_or_mistyped() {
    let pools: Pools = GlobalConfig::new()
        .workers("echo", cat_workers())
        .workers(
            "frames",
            SubprocessPool::builder(WorkerSpec::new("cat"), LengthPrefixed::default()),
        )
        .build()
        .unwrap();
    let error = pools.workers::<Lines>("resize").unwrap_err();
    assert!(
        matches!(error, GlobalError::UnknownPool { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("echo, frames"), "{error}");
    let error = pools.workers::<LengthPrefixed>("echo").unwrap_err();
    assert!(
        matches!(error, GlobalError::WrongProtocol { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("LengthPrefixed"), "{error}");
    assert!(pools.workers::<LengthPrefixed>("frames").is_ok());
    let names: Vec<_> = pools.reports().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["commands", "echo", "frames"]);
    assert!(pools.shutdown(GRACE).await.is_clean());
}

/// Builds `config`, which must fail naming `taken` as a duplicate.
fn assert_refused_as_duplicate(config: GlobalConfig, taken: &str) {
    let error = config.build().unwrap_err();
    assert!(
        matches!(&error, GlobalError::DuplicateName { name } if name == taken),
        "{error:?}"
    );
}

#[test]
fn duplicate_worker_pool_names_are_refused() {
    let config = GlobalConfig::new()
        .workers("echo", cat_workers())
        .workers("echo", cat_workers());
    assert_refused_as_duplicate(config, "echo");
}

#[test]
fn a_worker_pool_cannot_take_the_command_pools_name() {
    let config = GlobalConfig::new().workers("commands", cat_workers());
    assert_refused_as_duplicate(config, "commands");
}

#[tokio::test]
async fn typed_keys_find_their_pools_and_name_them() {
    use subprocess_pool::global::WorkersKey;
    const ECHO: WorkersKey<Lines> = WorkersKey::new("echo");
    const FRAMES: WorkersKey<LengthPrefixed> = WorkersKey::new("frames");
    const MISSING: WorkersKey<Lines> = WorkersKey::new("missing");
    const MISTYPED: WorkersKey<LengthPrefixed> = WorkersKey::new("strings");
    let pools: Pools = GlobalConfig::new()
        .register(ECHO, cat_workers())
        .register(
            FRAMES,
            SubprocessPool::builder(WorkerSpec::new("cat"), LengthPrefixed::default()),
        )
        .workers("strings", cat_workers()) // by name, with another protocol than MISTYPED's
        .build()
        .unwrap();
    let echo = pools.pool(ECHO).unwrap();
    assert_eq!(echo.call("hi".to_string()).await.unwrap(), "hi");
    assert_eq!(
        echo.name(),
        "echo",
        "a registered pool is named after its key"
    );
    assert_eq!(pools.pool(FRAMES).unwrap().name(), "frames");
    let error = pools.pool(MISSING).unwrap_err();
    assert!(
        matches!(error, GlobalError::UnknownPool { .. }),
        "{error:?}"
    );
    let error = pools.pool(MISTYPED).unwrap_err();
    assert!(
        matches!(error, GlobalError::WrongProtocol { .. }),
        "{error:?}"
    );
    assert!(pools.shutdown(GRACE).await.is_clean());
}
