//! The daemon's own stack and arguments, so the kernel's stack can go.
//!
//! After detaching, the daemon's only mapping in the upper half of the
//! address space is the stack the kernel gave the process (the vDSO is
//! dropped too, see `sys::drop_mappings`). Running on a static stack in
//! .bss and unmapping that one frees its page-table pages (the upper PUD,
//! PMD and PTE pages: 12 KiB per shim) and the page of argument strings.
//!
//! For that, nothing may point into the old stack: `adopt_args` copies argv
//! and the environment into a static arena first thing in `main`, and
//! everything borrows from there. When they do not fit, the daemon simply
//! stays on the kernel's stack (which has the kernel's guard gap).
//!
//! The static stack's lowest page is PROT_NONE: an overflow faults there
//! (and the shim dies, which its manager sees) instead of silently
//! overwriting the statics below it. Rust probes every page of a large
//! frame, so no frame can step over the guard.
//!
//! Page-aligned statics (this stack, the daemon's buffers and resident
//! page, the runtime's child stack) go in their own section,
//! `.sbss.pages`, placed after .bss: in .bss one of them would align all
//! of .bss to a page, and the small statics that are always touched (the
//! C runtime's, musl's, `diag`'s, the head of the argument arena) would no
//! longer share the last page of .data, which the kernel dirties at exec
//! anyway. That is one page of RssAnon per shim.

use core::ffi::{c_char, c_int};
use core::ptr::addr_of_mut;

/// Pointers then strings, packed: a usual command line and environment
/// fit in one page, and only touched pages cost memory.
const ARENA_WORDS: usize = 4096;
/// The daemon's usable stack. Only touched pages cost memory (an idle
/// daemon touches one or two); idle trims return what deep calls touched
/// (a containerd Create goes some tens of KiB deep).
pub const STACK: usize = 256 * 1024;
const GUARD: usize = 4096;

#[repr(C, align(4096))]
struct Stack([u8; GUARD + STACK]);
#[link_section = ".sbss.pages"]
static mut STACK_MEM: Stack = Stack([0; GUARD + STACK]);

/// The flags and the kernel's mappings to drop share the arena's first
/// page with the copied arguments. Not page-aligned, and in a section of
/// its own right after .bss (src/layout.ld): its head shares a page with
/// all the small statics (the C runtime's too), which are touched anyway.
#[repr(C)]
struct Arena {
    adopted: bool,
    switched: bool,
    /// The kernel's stack and vDSO mappings, found by the launcher (whose
    /// /proc/self entries go when it exits; the daemon, a fork of it, has
    /// the same mappings and no /proc entry of its own to pay for).
    old: [(usize, usize); OLD_MAX],
    old_len: usize,
    words: [usize; ARENA_WORDS],
}
const OLD_MAX: usize = 6;
#[link_section = ".sbss.arena"]
static mut ARENA: Arena =
    Arena { adopted: false, switched: false, old: [(0, 0); OLD_MAX], old_len: 0, words: [0; ARENA_WORDS] };

/// The kernel's mappings the daemon drops: the vDSO's, and its stack's once
/// it runs on its own. The stack comes first.
const STACK_MAP: &[u8] = b"[stack]";
const VDSO_MAPS: [&[u8]; 3] = [b"[vdso]", b"[vvar]", b"[vvar_vclock]"];

extern "C" {
    static mut environ: *mut *mut c_char;
}

/// Copy argv and the environment into the arena; returns the argv to use
/// (the copy, or the original when it does not fit).
///
/// # Safety
/// `argv` holds `argc` C strings; called once, before anything reads them.
pub unsafe fn adopt_args(argc: c_int, argv: *const *const c_char) -> *const *const c_char {
    let arena = &mut *addr_of_mut!(ARENA);
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
    let base = arena.words.as_mut_ptr();
    let new_argv = base as *mut *const c_char;
    let new_env = base.add(n + 1) as *mut *mut c_char;
    let mut dst = base.add(words) as *mut u8;
    let mut copy = |s: *const c_char| -> *mut c_char {
        let len = libc::strlen(s) + 1;
        core::ptr::copy_nonoverlapping(s.cast::<u8>(), dst, len);
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
    arena.adopted = true;
    // The stack first; it may grow down into the guard gap the kernel
    // keeps free below it (1 MiB) before the daemon drops it.
    let mut n = crate::sys::find_mappings(&[STACK_MAP], &mut arena.old[..1]);
    if n == 1 {
        arena.old[0].0 = arena.old[0].0.saturating_sub(1 << 20);
    }
    n += crate::sys::find_mappings(&VDSO_MAPS, &mut arena.old[n..]);
    arena.old_len = n;
    new_argv
}

/// Run `f` on the static stack (its guard page armed first), after which
/// `f` should call `drop_old_stack`; without adopted arguments, run `f`
/// where we are.
///
/// # Safety
/// Nothing `f` uses may live on the current stack.
pub unsafe fn switch(f: extern "C" fn() -> !) -> ! {
    let arena = &mut *addr_of_mut!(ARENA);
    let base = addr_of_mut!(STACK_MEM) as usize;
    if !arena.adopted || crate::sys::guard(base, GUARD).is_err() {
        f()
    }
    arena.switched = true;
    let top = base + GUARD + STACK;
    jump(top, f)
}

/// Point the stack pointer at `top` and call `f` (16-byte aligned, as the
/// ABI wants at a call).
#[cfg(target_arch = "x86_64")]
unsafe fn jump(top: usize, f: extern "C" fn() -> !) -> ! {
    core::arch::asm!("mov rsp, {top}", "call {f}", "ud2", top = in(reg) top, f = in(reg) f, options(noreturn));
}

#[cfg(target_arch = "aarch64")]
unsafe fn jump(top: usize, f: extern "C" fn() -> !) -> ! {
    core::arch::asm!("mov sp, {top}", "blr {f}", "brk #1", top = in(reg) top, f = in(reg) f, options(noreturn));
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
unsafe fn jump(_top: usize, f: extern "C" fn() -> !) -> ! {
    f()
}

fn switched() -> bool {
    // SAFETY: a plain read of a flag written once before the switch; the
    // process has one thread.
    unsafe { (*addr_of_mut!(ARENA)).switched }
}

/// On the static stack: unmap the kernel's stack (and the vDSO), as the
/// launcher found them; else the vDSO, looked up now.
pub fn drop_old_stack() {
    if switched() {
        // SAFETY: written by `adopt_args` before the fork, read-only since;
        // the process has one thread.
        let arena = unsafe { &*addr_of_mut!(ARENA) };
        crate::sys::unmap(&arena.old[..arena.old_len.min(OLD_MAX)]);
    } else {
        crate::sys::drop_mappings(&VDSO_MAPS);
    }
}

/// Give back the stack pages below the caller's frame (dead: nothing lives
/// below the stack pointer). The page in use is kept, and the one under it
/// too when less than 1 KiB of it is left for the calls made from here.
#[inline(never)]
pub fn trim_below_here() {
    let here = 0u8;
    let sp = core::hint::black_box(&here) as *const u8 as usize;
    let mut keep = sp & !4095;
    if sp - keep < 1024 {
        keep -= 4096;
    }
    // On our own stack, never into the guard; on the kernel's, parts of
    // the range below the mapping are skipped by the kernel.
    let low = if switched() { addr_of_mut!(STACK_MEM) as usize + GUARD } else { keep.saturating_sub(60 * 1024) };
    if keep > low {
        crate::sys::release(low, keep - low);
    }
}
