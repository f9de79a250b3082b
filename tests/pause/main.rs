//! The pod sandbox ("pause") program of the CRI suite: PID 1 of the pod's
//! namespaces, it holds them and does nothing else. It blocks SIGCHLD,
//! SIGTERM and SIGINT and waits for them: a SIGCHLD reaps every exited
//! child (the orphans of containers that share its pid namespace), SIGTERM
//! or SIGINT ends it (the CRI itself only ever sends SIGKILL).
//!
//! No std and no allocator: a few calls into musl, linked statically, so
//! that the image needs nothing else. The test builds it with rustc for the
//! musl target (tests/common/cri/pause.rs).
#![no_std]
#![no_main]

use core::ffi::c_int;

const SIGINT: c_int = 2;
const SIGTERM: c_int = 15;
const SIGCHLD: c_int = 17;
const SIG_BLOCK: c_int = 0;
const WNOHANG: c_int = 1;

/// musl's sigset_t: 128 bytes.
#[repr(C)]
struct SigSet([u64; 16]);

// musl, linked statically, provides `_start` and these.
#[link(name = "c")]
extern "C" {
    fn sigemptyset(set: *mut SigSet) -> c_int;
    fn sigaddset(set: *mut SigSet, sig: c_int) -> c_int;
    fn sigprocmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    fn sigwait(set: *const SigSet, sig: *mut c_int) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn _exit(code: c_int) -> !;
}

#[no_mangle]
pub extern "C" fn main(_argc: c_int, _argv: *const *const u8) -> c_int {
    let mut set = SigSet([0; 16]);
    // SAFETY: `set` is a valid sigset_t for the duration of the calls;
    // waitpid gets a valid status pointer.
    unsafe {
        sigemptyset(&mut set);
        for s in [SIGCHLD, SIGTERM, SIGINT] {
            sigaddset(&mut set, s);
        }
        if sigprocmask(SIG_BLOCK, &set, core::ptr::null_mut()) != 0 {
            _exit(1);
        }
        loop {
            let mut sig: c_int = 0;
            if sigwait(&set, &mut sig) != 0 {
                _exit(1);
            }
            match sig {
                SIGCHLD => {
                    let mut st: c_int = 0;
                    while waitpid(-1, &mut st, WNOHANG) > 0 {}
                }
                _ => _exit(0),
            }
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // SAFETY: _exit ends the process at once.
    unsafe { _exit(2) }
}
