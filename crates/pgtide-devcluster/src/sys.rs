//! The only `unsafe` in this crate: two plain syscalls with integer arguments.
#![allow(unsafe_code)]

/// True when the process runs with effective uid 0 (PostgreSQL then refuses to run as us).
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid takes no arguments, touches no memory we own and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Signals a process. Callers pass pids of children they have not reaped yet, so the pid
/// cannot have been recycled for an unrelated process.
pub(crate) fn signal(pid: u32, sig: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) only takes integers; a wrong pid yields an error code, not UB.
    unsafe { libc::kill(pid, sig) == 0 }
}

pub(crate) use libc::{SIGINT, SIGQUIT};
