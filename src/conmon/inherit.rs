//! What podman (or systemd) hands the runtime through the shim, as conmon
//! passes it on: descriptors and socket activation.
//!
//! - `--preserve-fds N` among the runtime options (podman passes it as
//!   `--runtime-opt --preserve-fds --runtime-opt N`): the shim's inherited
//!   descriptors 3 .. 3+N-1 reach the runtime, which hands them to the
//!   container. conmon leaves everything it inherited open for the
//!   runtime; shimlet keeps just that range (and only what it inherited:
//!   its own descriptors are close-on-exec), so nothing of the shim's can
//!   take those numbers in the container.
//! - Socket activation: `LISTEN_PID` must be a positive number (else the
//!   create fails: `Invalid LISTEN_PID X`, conmon's words); with
//!   `--replace-listen-pid`, or when it names the shim itself (`--sync`
//!   under systemd), the runtime gets its own pid as `LISTEN_PID`, so that
//!   it takes the `LISTEN_FDS` descriptors (3 .. 3+LISTEN_FDS-1, then the
//!   preserved ones after them) as its own, as runc does.

use core::ffi::CStr;

use super::cli::{Config, Key};
use crate::buf::parse_u64;
use crate::sys;

/// The runtime's share of the shim's descriptors and environment.
pub struct Handed {
    /// Descriptors from 3 up that may reach the runtime.
    pub keep: u32,
    /// The runtime gets LISTEN_PID = its own pid.
    pub own_listen_pid: bool,
}

/// The last `--preserve-fds` among the runtime options (`N` or `=N`).
fn preserved(cfg: &Config) -> u32 {
    let mut n = 0;
    let mut next_is = false;
    for w in cfg.values(Key::RuntimeOpt) {
        let b = w.to_bytes();
        if next_is {
            n = parse_u64(b, u32::MAX as u64).unwrap_or(0) as u32;
            next_is = false;
        } else if b == b"--preserve-fds" {
            next_is = true;
        } else if let Some(v) = b.strip_prefix(b"--preserve-fds=") {
            n = parse_u64(v, u32::MAX as u64).unwrap_or(0) as u32;
        }
    }
    n
}

/// A number as strtol reads one: white space, a sign, digits, and
/// whatever follows ignored. None without digits.
fn strtol(b: &[u8]) -> Option<i64> {
    let b = b.trim_ascii_start();
    let (neg, b) = match b.split_first() {
        Some((b'-', r)) => (true, r),
        Some((b'+', r)) => (false, r),
        _ => (false, b),
    };
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let v = b[..digits].iter().fold(0i64, |v, d| v.saturating_mul(10).saturating_add((d - b'0') as i64));
    Some(if neg { -v } else { v })
}

/// What the runtime is handed; Err: `LISTEN_PID` is not a positive
/// number (its value, for the message).
pub fn handed(cfg: &Config) -> Result<Handed, &'static CStr> {
    let mut h = Handed { keep: preserved(cfg), own_listen_pid: false };
    if let Some(v) = sys::getenv(c"LISTEN_PID") {
        let pid = strtol(v.to_bytes()).filter(|&p| p > 0 && p <= i32::MAX as i64).ok_or(v)?;
        if cfg.replace_listen_pid || pid == sys::getpid() as i64 {
            h.own_listen_pid = true;
            let fds = sys::getenv(c"LISTEN_FDS").and_then(|f| parse_u64(f.to_bytes(), 1 << 16)).unwrap_or(0);
            h.keep = h.keep.saturating_add(fds as u32);
        }
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::strtol;

    #[test]
    fn listen_pid_as_strtol_reads_it() {
        assert_eq!(strtol(b"123"), Some(123));
        assert_eq!(strtol(b" 12abc"), Some(12));
        assert_eq!(strtol(b"-5"), Some(-5));
        assert_eq!(strtol(b"abc"), None);
        assert_eq!(strtol(b""), None);
    }
}
