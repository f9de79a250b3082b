//! The exit command (podman's `container cleanup`): run after the exit
//! records, with an absolute path and no shell, nothing inherited but
//! /dev/null on stdio, after `--exit-delay` seconds. Like conmon, the shim
//! waits for it, so the manager's cleanup runs while the shim still
//! stands; it stops being a subreaper first, so a double-forking command
//! is not waited for.

use core::ffi::CStr;

use crate::create::Argv;
use crate::sys::{self, OFlags};

#[inline(never)]
pub fn run<'a>(cmd: &'a CStr, args: impl Iterator<Item = &'a CStr>, delay: u32) {
    sys::set_subreaper(false);
    let Ok(pid) = sys::fork() else { return };
    if pid == 0 {
        let mut argv = Argv::new();
        argv.push(cmd);
        for a in args {
            argv.push(a);
        }
        sys::reset_signals_raw();
        if let Ok(null) = sys::open(c"/dev/null", OFlags::RDWR, 0) {
            for fd in 0..3 {
                let _ = sys::dup_to(&null, fd);
            }
        }
        sys::close_from(3);
        if delay > 0 {
            sys::sleep_ms(delay as u64 * 1000);
        }
        sys::restore_oom_score_adj();
        // An absolute path: no PATH search.
        let _ = argv.exec(cmd);
        sys::exit(127);
    }
    sys::wait_for(pid);
}
