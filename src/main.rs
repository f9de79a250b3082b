//! The shimlet binary: a C `main` over the library, no std, no allocator.
#![no_std]
#![no_main]

// The C library (musl, linked statically) provides `_start`, `environ`
// and the few calls `sys` lists.
#[link(name = "c")]
extern "C" {}

/// # Safety
/// Called once by the C runtime with `argc` valid C strings in `argv` that
/// live as long as the process.
#[no_mangle]
pub unsafe extern "C" fn main(argc: core::ffi::c_int, argv: *const *const core::ffi::c_char) -> core::ffi::c_int {
    // SAFETY: as the C runtime promises (see above).
    unsafe { shimlet::main(argc, argv) }
}

/// Nothing is meant to panic; if something does, die at once rather than
/// unwind (there is nothing to unwind into). The exit record will be
/// missing, which the manager sees as a dead shim.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    shimlet::sys::exit(134)
}
