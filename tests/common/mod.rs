//! Shared helpers of the shimlet integration tests, one module per concern.
//! Every test file declares `mod common;` and uses `common::*`; the podman
//! suite also uses `common::podman::*`.
//!
//! - `fixture`: a test's world (temp dir, runc root, unique container ids,
//!   cleanup on drop) and its containers (bundles, the files the shim writes).
//! - `launch`: shim command lines, running the launcher, the sync descriptor.
//! - `conmon_cli`: conmon's command line, for /usr/bin/conmon and shimlet
//!   side by side, and their messages without their prefixes.
//! - `journal`: a stand-in journald socket and the records it receives.
//! - `checks`: how a container and its shim must have ended, what must not
//!   be left behind.
//! - `attach_client`: an attach-socket client; `ctl`: the ctl FIFO; `pty`:
//!   pseudo-terminals.
//! - `log`, `status`: the log and the status file the shim writes.
//! - `proc`: processes seen through /proc, reaping; `wait`: bounded waits.
//! - `fdio`, `files`, `mount`, `bytes`, `rng`, `tools`: descriptors, files,
//!   tmpfs mounts, byte strings, test data, the binaries the tests run.
//! - `podman`: the real-podman world (podman suite only).
//! - `containerd`, `image`, `ttrpc`: a private containerd driven with ctr,
//!   the locally built busybox image it imports, a raw ttrpc client for the
//!   shims' sockets (containerd and CRI suites; used as `common::containerd::*`).
//! - `cri`: containerd's CRI plugin driven over gRPC as kubelet does, and
//!   the pause image (CRI suite; used as `common::cri::*`).
//!
//! Waits are bounded (poll every 20 ms up to a limit, then panic with a
//! message saying what was awaited); nothing here measures time.

// Each test file is its own crate and uses only some of these helpers: the
// rest would be reported as dead code in every one of them.
#![allow(dead_code)]

pub mod attach_client;
pub mod bytes;
pub mod checks;
pub mod conmon_cli;
pub mod containerd;
pub mod cri;
pub mod ctl;
pub mod fdio;
pub mod files;
pub mod fixture;
pub mod image;
pub mod journal;
pub mod launch;
pub mod log;
pub mod mount;
pub mod podman;
pub mod proc;
pub mod pty;
pub mod rng;
pub mod status;
pub mod tools;
pub mod ttrpc;
pub mod wait;

// Re-exported for `use common::*`; the same holds as for dead code above.
#[allow(unused_imports)]
pub use self::{
    attach_client::*, bytes::*, checks::*, conmon_cli::*, ctl::*, fdio::*, files::*, fixture::*, journal::*, launch::*,
    log::*, mount::*, proc::*, pty::*, rng::*, status::*, tools::*, wait::*,
};
