//! A bounded soak of the backend: steady load, hostile clients and worker kills for a set
//! time, with this process's file descriptors and resident memory sampled every second.
//! `cargo run --release -p backend-example -- --soak 60` runs it;
//! `tests/backend.rs` runs it briefly.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::app;

/// What the soak saw.
#[derive(Debug, Default)]
pub(crate) struct SoakReport {
    /// How long the load ran.
    pub(crate) ran: Duration,
    /// `/run` requests answered correctly.
    pub(crate) answered: u64,
    /// `/run` requests that failed, by the error's `kind`.
    pub(crate) failed: BTreeMap<String, u64>,
    /// Answers that were neither the right answer nor a JSON error: must be 0.
    pub(crate) wrong: u64,
    /// Hostile clients: requests abandoned mid-call, half-sent heads, oversized bodies.
    pub(crate) hostile: u64,
    /// Workers SIGKILLed from outside.
    pub(crate) kills: u64,
    /// Median and 99th percentile latency of answered requests.
    pub(crate) p50: Duration,
    /// See `p50`.
    pub(crate) p99: Duration,
    /// Open descriptors, sampled each second (the first after one second of load).
    pub(crate) fds: Vec<usize>,
    /// Resident memory in KiB, sampled with `fds`.
    pub(crate) rss_kib: Vec<u64>,
    /// Workers the pool started and destroyed over the run.
    pub(crate) workers_created: u64,
    /// See `workers_created`.
    pub(crate) workers_destroyed: u64,
    /// Why they were destroyed (the pool's `destroyed_by`, as JSON).
    pub(crate) destroyed_by: String,
}

impl std::fmt::Display for SoakReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (first_fd, last_fd) = (self.fds.first(), self.fds.last());
        let max_fd = self.fds.iter().max();
        let (first_rss, last_rss) = (self.rss_kib.first(), self.rss_kib.last());
        let max_rss = self.rss_kib.iter().max();
        writeln!(
            f,
            "ran {:.1?}: {} answered ({:.0}/s), failed {:?}, wrong {}, hostile {}, kills {}",
            self.ran,
            self.answered,
            self.answered as f64 / self.ran.as_secs_f64(),
            self.failed,
            self.wrong,
            self.hostile,
            self.kills
        )?;
        writeln!(f, "latency p50 {:.1?}, p99 {:.1?}", self.p50, self.p99)?;
        writeln!(
            f,
            "fds first {first_fd:?} last {last_fd:?} max {max_fd:?}; rss KiB first {first_rss:?} last {last_rss:?} max {max_rss:?}"
        )?;
        let every_10s = |samples: Vec<String>| samples.into_iter().step_by(10).collect::<Vec<_>>();
        writeln!(
            f,
            "fds every 10 s: {}",
            every_10s(self.fds.iter().map(usize::to_string).collect()).join(" ")
        )?;
        writeln!(
            f,
            "rss KiB every 10 s: {}",
            every_10s(self.rss_kib.iter().map(u64::to_string).collect()).join(" ")
        )?;
        write!(
            f,
            "workers created {} destroyed {} by {}",
            self.workers_created, self.workers_destroyed, self.destroyed_by
        )
    }
}

/// Serves `settings` on a local port and drives it for `duration` with `clients` steady
/// clients, one hostile client, and a worker SIGKILLed every `kill_every`.
pub(crate) async fn soak(
    settings: app::Settings,
    duration: Duration,
    clients: usize,
    kill_every: Duration,
) -> Result<SoakReport, Box<dyn std::error::Error + Send + Sync>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app::serve(listener, settings, async {
        let _ = stopped.await;
    }));
    // The first answer means the pools are up.
    post(addr, "/run", Bytes::from_static(b"warm up")).await?;

    let report = Arc::new(Mutex::new(SoakReport::default()));
    let started = Instant::now();
    let deadline = started + duration;
    let mut load = JoinSet::new();
    for client in 0..clients {
        load.spawn(steady(addr, client, deadline, Arc::clone(&report)));
    }
    load.spawn(hostile(addr, deadline, Arc::clone(&report)));
    load.spawn(killer(kill_every, deadline, Arc::clone(&report)));
    load.spawn(sampler(deadline, Arc::clone(&report)));
    let mut latencies = Latencies::default();
    while let Some(done) = load.join_next().await {
        latencies.merge(&done?);
    }
    let status = post_status(addr).await?;
    let _ = stop.send(());
    server.await??;

    let mut report = std::mem::take(&mut *report.lock().unwrap_or_else(PoisonError::into_inner));
    report.ran = started.elapsed();
    (report.p50, report.p99) = (latencies.quantile(0.5), latencies.quantile(0.99));
    let workers = status["pools"]
        .as_array()
        .and_then(|pools| pools.iter().find(|pool| pool["name"] == app::WORKERS))
        .ok_or("no worker pool in /status")?;
    report.workers_created = workers["metrics"]["created"].as_u64().unwrap_or(0);
    report.workers_destroyed = workers["metrics"]["destroyed"].as_u64().unwrap_or(0);
    report.destroyed_by = workers["metrics"]["destroyed_by"].to_string();
    Ok(report)
}

/// One keep-alive client sending `/run` requests until `deadline`; returns its latencies.
async fn steady(
    addr: SocketAddr,
    client: usize,
    deadline: Instant,
    report: Arc<Mutex<SoakReport>>,
) -> Latencies {
    let mut latencies = Latencies::default();
    let mut request = 0u64;
    while Instant::now() < deadline {
        let Ok(mut sender) = connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        while Instant::now() < deadline {
            request += 1;
            let text = format!("client {client} request {request}");
            let sent = Instant::now();
            let Ok((status, body)) = send(&mut sender, "/run", Bytes::from(text.clone())).await
            else {
                break;
            };
            let mut report = report.lock().unwrap_or_else(PoisonError::into_inner);
            if status == hyper::StatusCode::OK && body == upper(&text) {
                report.answered += 1;
                latencies.record(sent.elapsed());
            } else if let Some(kind) = error_kind(&body) {
                *report.failed.entry(kind).or_default() += 1;
            } else {
                report.wrong += 1;
            }
        }
    }
    latencies
}

/// Clients that misbehave, one after another: one that hangs up during its call, one that
/// sends half a head and leaves it, one that sends too big a body.
async fn hostile(addr: SocketAddr, deadline: Instant, report: Arc<Mutex<SoakReport>>) -> Latencies {
    let mut round = 0u64;
    while Instant::now() < deadline {
        round += 1;
        let result = match round % 3 {
            0 => hang_up(addr).await.is_ok(),
            1 => half_head(addr).await.is_ok(),
            // The server may answer 413 and close before all of it is sent: either is fine.
            _ => {
                let _ = post(addr, "/run", Bytes::from(vec![b'x'; 1 << 20])).await;
                true
            }
        };
        if result {
            report
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .hostile += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Latencies::default()
}

async fn hang_up(addr: SocketAddr) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(b"POST /run HTTP/1.1\r\nHost: soak\r\nContent-Length: 7\r\n\r\nhang up")
        .await?;
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(())
}

/// Sends half a head and keeps the connection for a while (the server's header timeout
/// closes it, or it is dropped when this task's next round comes).
async fn half_head(addr: SocketAddr) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(b"POST /run HTTP/1.1\r\nHo").await?;
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(stream);
    });
    Ok(())
}

/// SIGKILLs one of this process's `upper.py` workers every `every`.
async fn killer(every: Duration, deadline: Instant, report: Arc<Mutex<SoakReport>>) -> Latencies {
    let mut turn = 0;
    loop {
        // Never past the deadline, however long `every` is.
        tokio::time::sleep_until((Instant::now() + every).min(deadline)).await;
        if Instant::now() >= deadline {
            return Latencies::default();
        }
        let workers = worker_pids();
        if workers.is_empty() {
            continue;
        }
        turn += 1;
        let victim = workers[turn % workers.len()];
        let killed = rustix::process::Pid::from_raw(victim as i32)
            .map(|pid| rustix::process::kill_process(pid, rustix::process::Signal::KILL));
        if matches!(killed, Some(Ok(()))) {
            report.lock().unwrap_or_else(PoisonError::into_inner).kills += 1;
        }
    }
}

/// Samples descriptors and resident memory every second.
async fn sampler(deadline: Instant, report: Arc<Mutex<SoakReport>>) -> Latencies {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if Instant::now() >= deadline {
            return Latencies::default();
        }
        let fds = std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count);
        let rss = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
                line.split_whitespace().nth(1)?.parse().ok()
            })
            .unwrap_or(0);
        let mut report = report.lock().unwrap_or_else(PoisonError::into_inner);
        report.fds.push(fds);
        report.rss_kib.push(rss);
    }
}

/// A latency histogram of fixed size (64 buckets per power of two of microseconds, about
/// 1.5% apart), so that a long soak's own bookkeeping does not grow the memory it samples.
struct Latencies(Vec<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self(vec![0; 64 * 59])
    }
}

impl Latencies {
    fn bucket(micros: u64) -> usize {
        if micros < 64 {
            return micros as usize;
        }
        let exponent = 63 - micros.leading_zeros() as u64;
        let mantissa = (micros >> (exponent - 6)) & 63;
        (64 + (exponent - 6) * 64 + mantissa) as usize
    }

    /// The smallest latency bucket `index` holds.
    fn lower_bound(index: usize) -> Duration {
        let index = index as u64;
        let micros = if index < 64 {
            index
        } else {
            let (exponent, mantissa) = ((index - 64) / 64 + 6, (index - 64) % 64);
            (64 + mantissa) << (exponent - 6)
        };
        Duration::from_micros(micros)
    }

    fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.0[Self::bucket(micros)] += 1;
    }

    fn merge(&mut self, other: &Latencies) {
        for (mine, theirs) in self.0.iter_mut().zip(&other.0) {
            *mine += theirs;
        }
    }

    fn quantile(&self, quantile: f64) -> Duration {
        let total: u64 = self.0.iter().sum();
        let wanted = (total as f64 * quantile).ceil() as u64;
        let mut seen = 0;
        for (index, count) in self.0.iter().enumerate() {
            seen += count;
            if seen >= wanted.max(1) {
                return Self::lower_bound(index);
            }
        }
        Duration::ZERO
    }
}

/// This process's children running `upper.py`: the warm workers.
pub(crate) fn worker_pids() -> Vec<u32> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The parent pid is the second field after the parenthesised command name.
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1));
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            parent == Some(me.as_str()) && String::from_utf8_lossy(&cmdline).contains("upper.py")
        })
        .collect()
}

/// The job `examples/workers/upper.py` does.
pub(crate) fn upper(text: &str) -> String {
    text.to_uppercase().chars().rev().collect()
}

/// An error body's `kind`, if `body` is a JSON error.
fn error_kind(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    Some(value["kind"].as_str()?.to_owned())
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, Box<dyn std::error::Error + Send + Sync>> {
    let stream = TcpStream::connect(addr).await?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn send(
    sender: &mut Sender,
    path: &str,
    body: Bytes,
) -> Result<(hyper::StatusCode, String), Box<dyn std::error::Error + Send + Sync>> {
    sender.ready().await?;
    let method = if path == "/status" { "GET" } else { "POST" };
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "soak")
        .body(Full::new(body))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// One request on a connection of its own.
async fn post(
    addr: SocketAddr,
    path: &str,
    body: Bytes,
) -> Result<(hyper::StatusCode, String), Box<dyn std::error::Error + Send + Sync>> {
    send(&mut connect(addr).await?, path, body).await
}

async fn post_status(
    addr: SocketAddr,
) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
    let (_, body) = post(addr, "/status", Bytes::new()).await?;
    Ok(serde_json::from_str(&body)?)
}
