//! Other work on the machine while the benches run: how much CPU went to processes that are
//! not this one or its children, and waiting for a quiet moment before measuring.
//!
//! On a 2-CPU machine one busy compiler halves what a multi-thread bench gets, so a report
//! must say whether it measured alone. The machine's busy time comes from the first line of
//! `/proc/stat` (user, nice, system, irq and softirq of all CPUs; steal, time the hypervisor
//! gave to other guests, separately); this process's own share is its `/proc/self/stat`
//! user and system time plus that of the children it has waited for (which covers
//! `cargo bench` and the bench binaries it runs). The rest is other load.

use std::fs;
use std::io;
use std::thread;
use std::time::{Duration, Instant};

use crate::cpu::{stat_fields, ticks};

/// Average number of CPUs kept busy by other processes above which a measurement counts as
/// disturbed (5% of a 2-CPU machine; an idle machine here shows about 0.01).
pub const DISTURBED: f64 = 0.1;

/// A snapshot of the machine's and this process tree's CPU time.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    at: Instant,
    busy: Duration,
    steal: Duration,
    own: Duration,
}

/// What happened on the machine between two snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Load {
    /// Average CPUs kept busy by other processes.
    pub other_cpus: f64,
    /// Average CPUs taken by the hypervisor for other guests (steal).
    pub steal_cpus: f64,
}

impl Load {
    /// Whether other processes used more than [`DISTURBED`] CPUs on average.
    pub fn disturbed(&self) -> bool {
        self.other_cpus > DISTURBED
    }
}

impl Snapshot {
    /// Takes a snapshot now.
    pub fn take() -> io::Result<Self> {
        let stat = fs::read_to_string("/proc/stat")?;
        let line = stat
            .lines()
            .find(|line| line.starts_with("cpu "))
            .ok_or_else(|| io::Error::other("no cpu line in /proc/stat"))?;
        // cpu  user nice system idle iowait irq softirq steal guest guest_nice
        let values: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse::<u64>().map_err(io::Error::other))
            .collect::<Result<_, _>>()?;
        let at = |i: usize| values.get(i).copied().unwrap_or(0);
        let own = stat_fields("self")?;
        Ok(Self {
            at: Instant::now(),
            busy: ticks(at(0) + at(1) + at(2) + at(5) + at(6)),
            steal: ticks(at(7)),
            own: ticks(own.utime + own.stime + own.cutime + own.cstime),
        })
    }

    /// The load since this snapshot, leaving out `also_ours` (CPU time of live children
    /// that were measured separately and have not been waited for).
    pub fn load_since(&self, also_ours: Duration) -> io::Result<Load> {
        let now = Self::take()?;
        let seconds = now.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let busy = now.busy.saturating_sub(self.busy).as_secs_f64();
        let own = (now.own.saturating_sub(self.own) + also_ours).as_secs_f64();
        Ok(Load {
            other_cpus: ((busy - own) / seconds).max(0.0),
            steal_cpus: now.steal.saturating_sub(self.steal).as_secs_f64() / seconds,
        })
    }
}

/// Waits until other processes have kept less than [`DISTURBED`] CPUs busy for a
/// `window`, checking window after window, for at most `patience`. Returns whether it
/// found the machine quiet; call it while this process is idle.
pub fn wait_for_quiet(window: Duration, patience: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + patience;
    let mut told = false;
    loop {
        let start = Snapshot::take()?;
        thread::sleep(window);
        let load = start.load_since(Duration::ZERO)?;
        if !load.disturbed() {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        if !told {
            eprintln!(
                "report: other processes keep {:.2} CPUs busy; waiting for a quiet machine \
                 (up to {} s)",
                load.other_cpus,
                patience.as_secs()
            );
            told = true;
        }
    }
}
