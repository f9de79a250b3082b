//! The exit command (podman's `container cleanup`): run after the exit
//! records, with an absolute path and no shell, nothing inherited but
//! /dev/null on stdio, after `--exit-delay` seconds. Like conmon, the shim
//! waits for it, so the manager's cleanup runs while the shim still
//! stands; it stops being a subreaper first, so a double-forking command
//! is not waited for.

use core::ffi::{c_char, CStr};

use crate::cli::{Multi, MAX_EXIT_ARGS};
use crate::sys;

#[inline(never)]
pub fn run(cmd: &CStr, args: &Multi<MAX_EXIT_ARGS>, delay: u32) {
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 0) };
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return;
    }
    if pid == 0 {
        let mut argv: [*const c_char; MAX_EXIT_ARGS + 2] = [core::ptr::null(); MAX_EXIT_ARGS + 2];
        argv[0] = cmd.as_ptr();
        for (i, a) in args.iter().enumerate() {
            argv[i + 1] = a.as_ptr();
        }
        unsafe {
            let mut set: libc::sigset_t = core::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, core::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            if let Ok(null) = sys::open(c"/dev/null", libc::O_RDWR, 0) {
                for fd in 0..3 {
                    let _ = sys::dup2(null, fd);
                }
            }
            sys::close_from(3);
            if delay > 0 {
                libc::sleep(delay);
            }
            if let Ok(fd) = sys::open(c"/proc/self/oom_score_adj", libc::O_WRONLY, 0) {
                let _ = sys::write(fd, b"0");
            }
            libc::execv(cmd.as_ptr(), argv.as_ptr());
            libc::_exit(127);
        }
    }
    // Wait for it, reaping whatever else ends meanwhile.
    loop {
        let mut st = 0;
        let r = unsafe { libc::waitpid(-1, &mut st, 0) };
        if r == pid || (r < 0 && sys::Errno::last().0 != libc::EINTR) {
            break;
        }
    }
}
