//! Each child runs in a process group of its own, so it can be killed with everything it
//! started (grandchildren that inherited its pipes included).

use rustix::process::{Pid, Signal, kill_process_group};

/// Sends SIGKILL to the whole process group led by `pid`. A group that is already gone is
/// not an error.
pub(crate) fn kill_group(pid: u32) {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    if let Err(error) = kill_process_group(pid, Signal::KILL) {
        if error != rustix::io::Errno::SRCH {
            tracing::warn!(target: "subprocess_pool", pid = pid.as_raw_nonzero().get(), %error, "could not kill process group");
        }
    }
}
