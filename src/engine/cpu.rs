//! CPU time of the calling thread, for the per-endpoint CPU utilisation the
//! draft asks for in 5.1.

use nix::sys::resource::{getrusage, UsageWho};

/// User + system CPU seconds the calling thread has used so far.
pub fn thread_cpu_s() -> f64 {
    match getrusage(UsageWho::RUSAGE_THREAD) {
        Ok(usage) => {
            let user = usage.user_time();
            let system = usage.system_time();
            (user.tv_sec() + system.tv_sec()) as f64
                + (user.tv_usec() + system.tv_usec()) as f64 / 1e6
        }
        Err(_) => 0.0,
    }
}
