//! CPU time of this process and of a live child, and pinning to one CPU.
//!
//! `getrusage(RUSAGE_CHILDREN)` counts only children that have exited and been waited for,
//! so it cannot see a worker that is still running. The CPU time of a round trip is therefore
//! this process's own (`CLOCK_PROCESS_CPUTIME_ID`, all threads, in nanoseconds) plus the
//! worker's, read from `/proc/<pid>/task/*/schedstat` (time on CPU in nanoseconds, per
//! thread), or from `/proc/<pid>/stat` (in clock ticks) where schedstat is missing.

use std::fs;
use std::io;
use std::time::Duration;

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};
use rustix::time::{ClockId, clock_gettime};

/// CPU time used so far by this process, all threads together.
pub fn process_cpu_time() -> Duration {
    let now = clock_gettime(ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

/// CPU time used so far by the live process `pid` (all its threads), from `/proc`.
pub fn child_cpu_time(pid: u32) -> io::Result<Duration> {
    match schedstat_time(pid) {
        Ok(time) => Ok(time),
        Err(_) => stat_time(pid),
    }
}

/// Sum of the first field (nanoseconds on CPU) of each thread's schedstat.
fn schedstat_time(pid: u32) -> io::Result<Duration> {
    let mut total = 0u64;
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        let text = fs::read_to_string(task?.path().join("schedstat"))?;
        let on_cpu = text.split_whitespace().next().unwrap_or("");
        total += on_cpu.parse::<u64>().map_err(io::Error::other)?;
    }
    Ok(Duration::from_nanos(total))
}

/// utime + stime from `/proc/<pid>/stat`.
fn stat_time(pid: u32) -> io::Result<Duration> {
    let fields = stat_fields(&pid.to_string())?;
    Ok(ticks(fields.utime + fields.stime))
}

/// The CPU-time fields of `/proc/<pid>/stat`, in clock ticks.
pub(crate) struct StatTimes {
    /// User time of the process itself.
    pub(crate) utime: u64,
    /// System time of the process itself.
    pub(crate) stime: u64,
    /// User time of its children (and their descendants) that have been waited for.
    pub(crate) cutime: u64,
    /// System time of its children (and their descendants) that have been waited for.
    pub(crate) cstime: u64,
}

/// Reads `/proc/<pid>/stat` (`pid` may be `self`).
pub(crate) fn stat_fields(pid: &str) -> io::Result<StatTimes> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may contain spaces: skip past it.
    let after_name = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other("malformed /proc stat"))?;
    // After the name comes the state, field 3: so field n is at index n - 3 here.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| -> io::Result<u64> {
        fields
            .get(n - 3)
            .ok_or_else(|| io::Error::other("short /proc stat"))?
            .parse::<u64>()
            .map_err(io::Error::other)
    };
    Ok(StatTimes {
        utime: field(14)?,
        stime: field(15)?,
        cutime: field(16)?,
        cstime: field(17)?,
    })
}

/// Clock ticks (USER_HZ, 100 per second on Linux) as a duration.
pub(crate) fn ticks(n: u64) -> Duration {
    Duration::from_millis(n * 10)
}

/// Pins the calling thread, and so every thread and process it starts afterwards, to the
/// first CPU it may run on. Returns that CPU's number.
///
/// Call it before building a runtime or spawning a worker: affinity is inherited at thread
/// and process creation, not pushed to what already exists.
pub fn pin_to_one_cpu() -> io::Result<usize> {
    let allowed = sched_getaffinity(None)?;
    let cpu = (0..CpuSet::MAX_CPU)
        .find(|&cpu| allowed.is_set(cpu))
        .ok_or_else(|| io::Error::other("no CPU in this thread's affinity mask"))?;
    let mut one = CpuSet::new();
    one.set(cpu);
    sched_setaffinity(None, &one)?;
    Ok(cpu)
}
