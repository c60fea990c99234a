//! A tour of the pool in one run: `cargo run -p pool-core --example quickstart`.
//!
//! A manager that "connects" (a short sleep) and hands out numbered connections. Eight
//! tasks share a pool of three; the output shows creation, reuse, fair waiting, a broken
//! object being replaced, and a clean shutdown.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use pool_core::{Manager, Object, ObjectMeta, Pool};

struct FakeDb {
    next_id: AtomicU32,
}

#[derive(Debug)]
struct Conn {
    id: u32,
    broken: bool,
}

impl Manager for FakeDb {
    type Object = Conn;
    type Error = std::io::Error;

    async fn create(&self) -> Result<Conn, std::io::Error> {
        tokio::time::sleep(Duration::from_millis(20)).await; // a connect takes a while
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        println!("  create   -> connection #{id}");
        Ok(Conn { id, broken: false })
    }

    async fn recycle(&self, conn: &mut Conn, meta: &ObjectMeta) -> Result<(), std::io::Error> {
        println!(
            "  recycle  -> connection #{} (use {})",
            conn.id, meta.times_used
        );
        Ok(())
    }

    fn is_broken(&self, conn: &Conn) -> bool {
        conn.broken
    }

    async fn destroy(&self, conn: Conn) {
        println!("  destroy  -> connection #{}", conn.id);
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = Pool::builder(FakeDb {
        next_id: AtomicU32::new(0),
    })
    .max_size(3)
    .wait_timeout(Duration::from_secs(2))
    .build()?;
    println!("pool of 3 built: {:?}", pool.status());

    println!("8 tasks each borrow a connection for 50 ms:");
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let conn = pool.get().await?;
                println!("  task {task} got connection #{}", conn.id);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<_, pool_core::PoolError<std::io::Error>>(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    println!("after the burst: {:?}", pool.status());

    println!("a connection goes bad while in use:");
    let mut conn = pool.get().await?;
    conn.broken = true;
    let bad = conn.id;
    drop(conn);
    tokio::task::yield_now().await;
    let replacement = pool.get().await?;
    println!(
        "  #{bad} was destroyed; next get got #{} ({} uses)",
        replacement.id,
        Object::meta(&replacement).times_used
    );
    drop(replacement);

    let metrics = pool.metrics();
    println!(
        "metrics: created {}, recycled {}, destroyed {} (broken {}), waits {}",
        metrics.created,
        metrics.recycled,
        metrics.destroyed,
        metrics.destroyed_by.broken,
        metrics.waits
    );

    let report = pool.shutdown(Duration::from_secs(1)).await;
    println!("shutdown clean: {}", report.is_clean());
    Ok(())
}
