//! The daemon's own stack and arguments, so the kernel's stack can go.
//!
//! After detaching, the daemon's only mapping in the upper half of the
//! address space is the stack the kernel gave the process (the vDSO is
//! dropped too, see `sys::drop_mappings`). Running on a static stack in .bss
//! and unmapping that one frees its page-table pages (the upper PUD, PMD
//! and PTE pages: 12 KiB per shim) and the page of argument strings.
//!
//! For that, nothing may point into the old stack: `adopt_args` copies argv
//! and the environment into a static arena first thing in `main`, and
//! everything borrows from there. When they do not fit, the daemon simply
//! stays on the kernel's stack.

use core::ffi::{c_char, c_int};
use core::ptr::addr_of_mut;

/// Pointers then strings, packed: a usual command line and environment
/// fit in one page, and only touched pages cost memory.
const ARENA_WORDS: usize = 4096;
/// The daemon's stack. Only touched pages cost memory; idle trims return
/// what deep calls touched.
pub const STACK: usize = 64 * 1024;

#[repr(C, align(4096))]
struct Stack([u8; STACK]);
static mut STACK_MEM: Stack = Stack([0; STACK]);

/// The flags share the arena's first page with the copied arguments.
#[repr(C, align(4096))]
struct Arena {
    adopted: bool,
    switched: bool,
    words: [usize; ARENA_WORDS],
}
static mut ARENA: Arena = Arena { adopted: false, switched: false, words: [0; ARENA_WORDS] };

fn arena() -> &'static mut Arena {
    unsafe { &mut *addr_of_mut!(ARENA) }
}

extern "C" {
    static mut environ: *mut *mut c_char;
}

/// Copy argv and the environment into the arena; returns the argv to use
/// (the copy, or the original when it does not fit).
///
/// # Safety
/// `argv` holds `argc` C strings; called once, before anything reads them.
pub unsafe fn adopt_args(argc: c_int, argv: *const *const c_char) -> *const *const c_char {
    let env = environ;
    let n = argc.max(0) as usize;
    let mut e = 0;
    let mut bytes = 0;
    for i in 0..n {
        bytes += libc::strlen(*argv.add(i)) + 1;
    }
    if !env.is_null() {
        while !(*env.add(e)).is_null() {
            bytes += libc::strlen(*env.add(e)) + 1;
            e += 1;
        }
    }
    let words = n + 1 + e + 1;
    let size = core::mem::size_of::<usize>();
    if words * size + bytes > ARENA_WORDS * size {
        return argv;
    }
    let base = arena().words.as_mut_ptr();
    let new_argv = base as *mut *const c_char;
    let new_env = base.add(n + 1) as *mut *mut c_char;
    let mut dst = base.add(words) as *mut u8;
    let mut copy = |s: *const c_char| -> *mut c_char {
        let len = libc::strlen(s) + 1;
        core::ptr::copy_nonoverlapping(s as *const u8, dst, len);
        let at = dst as *mut c_char;
        dst = dst.add(len);
        at
    };
    for i in 0..n {
        *new_argv.add(i) = copy(*argv.add(i));
    }
    *new_argv.add(n) = core::ptr::null();
    for i in 0..e {
        *new_env.add(i) = copy(*env.add(i));
    }
    *new_env.add(e) = core::ptr::null_mut();
    environ = new_env;
    arena().adopted = true;
    new_argv
}

/// Run `f` on the static stack, then drop the kernel's stack and the vDSO;
/// without adopted arguments, run `f` where we are.
///
/// # Safety
/// Nothing `f` uses may live on the current stack.
pub unsafe fn switch(f: extern "C" fn() -> !) -> ! {
    if !arena().adopted {
        f()
    }
    arena().switched = true;
    let top = (addr_of_mut!(STACK_MEM) as *mut u8).add(STACK);
    // 16-byte aligned before the call, as the ABI wants.
    core::arch::asm!("mov rsp, {top}", "call {f}", "ud2", top = in(reg) top, f = in(reg) f, options(noreturn));
}

/// On the static stack: unmap the kernel's stack (and the vDSO).
pub fn drop_old_stack() {
    if arena().switched {
        crate::sys::drop_mappings(&[b"[stack]", b"[vdso]", b"[vvar]", b"[vvar_vclock]"]);
    } else {
        crate::sys::drop_mappings(&[b"[vdso]", b"[vvar]", b"[vvar_vclock]"]);
    }
}

/// The bounds of the stack we run on, when it is ours: trims must not
/// reach the statics around it.
pub fn own_stack() -> Option<(usize, usize)> {
    if arena().switched {
        let lo = addr_of_mut!(STACK_MEM) as usize;
        Some((lo, lo + STACK))
    } else {
        None
    }
}
