//! What the numbers were measured on: cores, CPU model, memory, kernel, compiler, date and
//! the commit of the work tree.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// A description of this machine and this build, for the report's header.
#[derive(Debug, Clone)]
pub struct Machine {
    /// CPUs this process may use (`std::thread::available_parallelism`, as `nproc` counts).
    pub cores: usize,
    /// The first `model name` in `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Whether `/proc/cpuinfo` has the `hypervisor` flag (a virtual machine).
    pub virtual_machine: bool,
    /// `MemTotal` from `/proc/meminfo`, in GiB.
    pub memory_gib: Option<f64>,
    /// The kernel release (`/proc/sys/kernel/osrelease`).
    pub kernel: String,
    /// `rustc --version`.
    pub rustc: String,
}

impl Machine {
    /// Reads the description; any part that cannot be read says `unknown`.
    pub fn detect() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let virtual_machine = cpuinfo
            .lines()
            .filter(|line| line.starts_with("flags"))
            .any(|line| line.split_whitespace().any(|flag| flag == "hypervisor"));
        let memory_gib = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                let line = text.lines().find(|line| line.starts_with("MemTotal:"))?;
                line.split_whitespace().nth(1)?.parse::<f64>().ok()
            })
            .map(|kib| kib / (1024.0 * 1024.0));
        Self {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model,
            virtual_machine,
            memory_gib,
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into()),
            rustc: command_line("rustc", &["--version"], None).unwrap_or_else(|| "unknown".into()),
        }
    }
}

/// The commit checked out in `repo`, with `+ uncommitted changes` when the work tree
/// differs from it; `None` when git is not there.
pub fn git_commit(repo: &Path) -> Option<String> {
    let commit = command_line("git", &["rev-parse", "--short", "HEAD"], Some(repo))?;
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(repo)
        .output()
        .ok()
        .is_some_and(|out| !out.stdout.is_empty());
    Some(if dirty {
        format!("{commit} + uncommitted changes")
    } else {
        commit
    })
}

fn command_line(program: &str, args: &[&str], dir: Option<&Path>) -> Option<String> {
    let mut command = Command::new(program);
    command.args(args);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let output = command.output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Now, in UTC, as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_000), (2024, 10, 4));
    }
}
