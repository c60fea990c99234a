//! The backend's HTTP server: at most `max_connections` at once, a connection that stalls
//! in a request head or idles between requests is closed, and stopping takes at most the
//! grace period. axum's own `serve` has none of these knobs, so this drives hyper's HTTP/1
//! connections itself, the way `axum::serve` does inside.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

/// Limits on clients: how many connections, how long a request head or an idle connection
/// may take, how big and how slow a body may be.
#[derive(Debug, Clone)]
pub(crate) struct HttpLimits {
    /// Connections served at once; more wait in the listen backlog until one closes.
    pub(crate) max_connections: usize,
    /// From a request's first byte to its whole head; a connection slower than this is
    /// closed (a half-sent head otherwise holds a connection, and shutdown, for ever).
    pub(crate) header_read_timeout: Duration,
    /// How long a keep-alive connection may sit between requests.
    pub(crate) idle_timeout: Duration,
    /// How long a request body may take to arrive.
    pub(crate) body_timeout: Duration,
    /// The largest request body accepted; a larger one is answered 413.
    pub(crate) max_body: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            max_body: 64 * 1024,
        }
    }
}

/// Serves `router` on `listener` until `stop` resolves. Then it stops accepting, asks every
/// connection to close after its current request, and waits up to `grace` for them; those
/// still open then are closed. Returns when no connection is left: at most `grace` after
/// `stop`.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    stop: impl Future<Output = ()>,
    grace: Duration,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stopping, stop_seen) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let slot = tokio::select! {
            () = &mut stop => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of descriptors, most likely: wait for some to close rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let connection = serve_connection(
            stream,
            router.clone(),
            limits.clone(),
            stop_seen.clone(),
            slot,
        );
        connections.spawn(connection);
    }
    drop(listener);
    let deadline = Instant::now() + grace;
    let _ = stopping.send(true);
    let drained = tokio::time::timeout_at(deadline, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "grace period over: closing the connections still open"
        );
        connections.shutdown().await;
    }
}

/// One client connection, until it closes, stalls, idles too long, or the server stops.
/// Dropping the hyper connection closes the socket.
async fn serve_connection(
    stream: TcpStream,
    router: Router,
    limits: HttpLimits,
    mut stopping: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        stream,
        activity: Arc::clone(&activity),
    });
    let requests = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let request_done = RequestDone::start(Arc::clone(&requests));
        let router = router.clone();
        async move {
            let response = router.oneshot(request.map(axum::body::Body::new)).await;
            drop(request_done);
            response
        }
    });
    let mut builder = http1::Builder::new();
    // Timeouts are the watchdog's below (hyper's counts idle time as head time).
    builder.header_read_timeout(None);
    let connection = builder.serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let stalled = stalled(&activity, &limits);
    let mut stalled = std::pin::pin!(stalled);
    tokio::select! {
        _ = connection.as_mut() => return,
        () = stalled.as_mut() => return,
        _ = stopping.wait_for(|stopping| *stopping) => {}
    }
    // Idle connections close now, busy ones after their current answer; the server's
    // grace period bounds the rest.
    connection.as_mut().graceful_shutdown();
    tokio::select! {
        _ = connection => {}
        () = stalled => {}
    }
}

/// Resolves when the connection has been sending a request head for longer than
/// `header_read_timeout`, or has been idle for longer than `idle_timeout`.
async fn stalled(activity: &Activity, limits: &HttpLimits) {
    // A phase entered from now on ends no sooner than this after now, so sleeping at most
    // this long never oversleeps a new phase's deadline.
    let shortest = limits.header_read_timeout.min(limits.idle_timeout);
    loop {
        let now = Instant::now();
        let next_look = now + shortest;
        match activity.deadline(limits) {
            Some(deadline) if deadline <= now => return,
            Some(deadline) => tokio::time::sleep_until(deadline.min(next_look)).await,
            // A request is being served: its handler's own timeouts bound it.
            None => tokio::time::sleep_until(next_look).await,
        }
    }
}

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request since then.
    Idle(Instant),
    /// A request head has been arriving since then.
    ReadingHead(Instant),
    /// This many requests are being answered.
    Busy(usize),
}

/// A connection's phase, moved by its reads ([`Watched`]) and its requests ([`RequestDone`]).
#[derive(Debug)]
struct Activity(Mutex<Phase>);

impl Activity {
    fn new() -> Self {
        Self(Mutex::new(Phase::Idle(Instant::now())))
    }

    fn update(&self, change: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *phase = change(*phase);
    }

    fn bytes_arrived(&self) {
        self.update(|phase| match phase {
            Phase::Idle(_) => Phase::ReadingHead(Instant::now()),
            other => other,
        });
    }

    /// When the connection is to be closed if its phase does not change first.
    fn deadline(&self, limits: &HttpLimits) -> Option<Instant> {
        match *self.0.lock().unwrap_or_else(PoisonError::into_inner) {
            Phase::Idle(since) => Some(since + limits.idle_timeout),
            Phase::ReadingHead(since) => Some(since + limits.header_read_timeout),
            Phase::Busy(_) => None,
        }
    }
}

/// Marks a request busy from its head until its answer is ready, or until hyper drops it
/// (the client left).
struct RequestDone(Arc<Activity>);

impl RequestDone {
    fn start(activity: Arc<Activity>) -> Self {
        activity.update(|phase| match phase {
            Phase::Busy(requests) => Phase::Busy(requests + 1),
            Phase::Idle(_) | Phase::ReadingHead(_) => Phase::Busy(1),
        });
        Self(activity)
    }
}

impl Drop for RequestDone {
    fn drop(&mut self) {
        self.0.update(|phase| match phase {
            Phase::Busy(requests) if requests > 1 => Phase::Busy(requests - 1),
            _ => Phase::Idle(Instant::now()),
        });
    }
}

/// A TCP stream that tells its connection's [`Activity`] when bytes arrive.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        read
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
