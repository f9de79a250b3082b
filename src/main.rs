//! The shimlet binary: a C `main` over the library, no std, no allocator.
#![no_std]
#![no_main]

// The C library (musl, linked statically) provides the syscalls' wrappers,
// `_start` and `environ`.
#[link(name = "c")]
extern "C" {}

#[no_mangle]
pub extern "C" fn main(argc: core::ffi::c_int, argv: *const *const core::ffi::c_char) -> core::ffi::c_int {
    // argv lives as long as the process; the option values borrow it.
    unsafe { shimlet::launch::main(argc, argv) }
}

/// Nothing is meant to panic; if something does, die at once rather than
/// unwind (there is nothing to unwind into). The exit record will be
/// missing, which the manager sees as a dead shim.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    unsafe { libc::abort() }
}
