//! A real TCP backend that goes down and comes back: a listener on a local port, stopped
//! for 20 s (on tokio's paused clock) and started again on the same port. The pool's
//! connections are real sockets; the connect runs on a blocking thread, during which tokio
//! does not advance its paused clock, so the simulated time is exact.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pool_core::{DEFAULT_CREATE_BACKOFF_MAX, Manager, Pool, PoolError};
use tokio::task::JoinSet;
use tokio::time::Instant;

const SECOND: Duration = Duration::from_secs(1);

/// Connects to `addr`, counting every attempt.
struct Connector {
    addr: SocketAddr,
    attempts: Arc<AtomicUsize>,
}

impl Manager for Connector {
    type Object = TcpStream;
    type Error = std::io::Error;

    async fn create(&self) -> Result<TcpStream, std::io::Error> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let addr = self.addr;
        tokio::task::spawn_blocking(move || TcpStream::connect(addr))
            .await
            .map_err(std::io::Error::other)?
    }
}

#[tokio::test(start_paused = true)]
async fn a_pool_on_a_tcp_backend_down_for_20_s_probes_a_few_times_a_second_and_recovers_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let attempts = Arc::new(AtomicUsize::new(0));
    let pool = Pool::builder(Connector {
        addr,
        attempts: Arc::clone(&attempts),
    })
    .max_size(4)
    .wait_timeout(2 * SECOND)
    .build()
    .unwrap();
    drop(pool.get().await.expect("the backend is up"));

    // Down: the listener is gone, and so are the connections it had.
    drop(listener);
    pool.evict_all();
    let before = attempts.load(Ordering::SeqCst);
    let down_at = Instant::now();
    let mut callers = JoinSet::new();
    while down_at.elapsed() < 20 * SECOND {
        for _ in 0..10 {
            let pool = pool.clone();
            callers.spawn(async move { pool.get().await.map(drop) });
        }
        tokio::time::sleep(SECOND).await;
    }
    let mut timed_out = 0;
    while let Some(result) = callers.join_next().await {
        match result.unwrap() {
            Err(PoolError::Timeout {
                last_error: Some(error),
                ..
            }) => {
                assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
                timed_out += 1;
            }
            other => panic!("expected a timeout saying the connection was refused: {other:?}"),
        }
    }
    let during_outage = attempts.load(Ordering::SeqCst) - before;
    let outage = down_at.elapsed();

    // Back, on the same port.
    let listener = TcpListener::bind(addr).unwrap();
    let back_at = Instant::now();
    let object = pool.get().await.expect("served once the backend is back");
    let recovered_after = back_at.elapsed();
    drop(object);
    eprintln!(
        "{timed_out} callers over {outage:?} of outage: {during_outage} connect attempts \
         ({:.1}/s); first success {recovered_after:?} after the backend came back",
        during_outage as f64 / outage.as_secs_f64()
    );
    assert_eq!(timed_out, 200);
    // One probe per backoff delay (500 ms cut by up to half): at most 4 a second for the
    // whole pool, whatever the number of callers.
    assert!(
        during_outage as f64 <= 4.0 * outage.as_secs_f64() + 10.0,
        "{during_outage} attempts in {outage:?}"
    );
    assert!(
        recovered_after <= DEFAULT_CREATE_BACKOFF_MAX,
        "recovered after {recovered_after:?}"
    );

    // A caller with a 2 s deadline that starts after recovery succeeds.
    let held: Vec<_> = [
        pool.get().await.unwrap(),
        pool.get_timeout(2 * SECOND).await.unwrap(),
    ]
    .into();
    assert_eq!(held.len(), 2);
    drop(listener);
}
