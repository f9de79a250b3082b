//! shimlet: the smallest container runtime shim.
//!
//! The binary (`main.rs`) is `no_std`, `no_main` and has no allocator; all
//! logic lives here, in modules named after what they own, which also
//! build under `std` so that `cargo test` can unit-tests them.
//!
//! Front ends, above the core:
//! - `conmon`   podman's and CRI-O's conmon protocol: its command line
//!   (`conmon::cli`), the launcher (`conmon::launch`), the exit command
//! - `containerd` containerd's runtime v2 shim (`containerd-shim-shimlet-v1`):
//!   start and delete, the ttrpc Task service, events, metrics
//! - `client`   `shimlet attach`, the terminal-side client
//!
//! The core, one daemon holding several processes:
//! - `daemon`   per daemon: the epoll loop, signals, deadlines, buffers
//! - `table`    the fixed-capacity table of processes
//! - `process`  per process: its phase, stdio, sinks, clients, ctl, OOM
//! - `create`   starting the OCI runtime, reading what it leaves
//! - `relay`    a pty to and from a manager's FIFOs
//! - `output`   a process's output to its sinks
//! - `logfile`  the k8s-file log writer
//! - `pace`     pacing output pipes while a process floods them
//! - `journal`  the journald log driver
//! - `attach`   attach clients and input flow control (plain logic)
//! - `tty`      the console socket and the pty
//! - `ctl`      the control FIFO and its line protocol
//! - `oom`      OOM kills of a process's cgroup
//! - `exit`     how a process ended, and its records
//! - `diag`     shimlet's own diagnostics
//!
//! Beneath: `sys` and `sock` (every system call), `stack` (the daemon's
//! own guarded stack and arguments), `buf`, `json`, `timefmt`.
#![cfg_attr(not(test), no_std)]

pub mod attach;
pub mod buf;
pub mod client;
pub mod conmon;
pub mod containerd;
pub mod create;
pub mod ctl;
pub mod daemon;
pub mod diag;
pub mod exit;
pub mod journal;
pub mod json;
pub mod logfile;
pub mod oom;
pub mod output;
pub mod pace;
pub mod process;
pub mod relay;
pub mod sock;
pub mod stack;
pub mod sys;
pub mod table;
pub mod timefmt;
pub mod tty;

use core::ffi::{c_char, c_int, CStr};

/// shimlet's own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The program: as `containerd-shim-shimlet-v1`, containerd's shim;
/// `shimlet attach ...` is the client; anything else the conmon command
/// line.
///
/// # Safety
/// `argv` holds `argc` valid C strings that live as long as the process;
/// called once, first thing.
pub unsafe fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    // Descriptors 0-2 must be taken before anything else is opened, or a
    // pipe could land there and later be replaced by /dev/null.
    sys::fill_stdio();
    if argc > 0 && containerd::is_shim_name(CStr::from_ptr(*argv)) {
        return containerd::main(argc, argv);
    }
    if argc > 1 && CStr::from_ptr(*argv.add(1)).to_bytes() == b"attach" {
        let args = (2..argc as usize).map(|i| CStr::from_ptr(*argv.add(i)));
        return client::main(args);
    }
    conmon::launch::main(argc, argv)
}

#[cfg(test)]
mod tests {
    /// Every `unsafe` block says why it is sound, in a `// SAFETY:` line
    /// just above it (or in the `# Safety` section of an unsafe fn).
    #[test]
    fn every_unsafe_block_says_why() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![root.join("main.rs")];
        let mut dirs = vec![root];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    files.push(p);
                }
            }
        }
        let mut missing = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (i, l) in lines.iter().enumerate() {
                let code = l.split("//").next().unwrap_or("");
                let marker = concat!("unsafe", " {");
                if !(code.contains(marker) || code.contains(concat!("unsafe", " impl"))) {
                    continue;
                }
                let said = lines[i.saturating_sub(6)..=i].iter().any(|p| p.contains("SAFETY"));
                if !said {
                    missing.push(format!("{}:{}: {}", f.display(), i + 1, l.trim()));
                }
            }
        }
        assert!(missing.is_empty(), "unsafe without a SAFETY line:\n{}", missing.join("\n"));
    }
}
