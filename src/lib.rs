//! shimlet: the smallest container runtime shim.
//!
//! The binary (`main.rs`) is `no_std`, `no_main` and has no allocator; all
//! logic lives here, in modules named after what they own, which also
//! build under `std` so that `cargo test` can unit-test them.
//!
//! - `cli`      the option table and its parser
//! - `launch`   the launcher: checks, forks the daemon, waits or returns
//! - `shim`     the daemon: the epoll loop and its states
//! - `spawn`    starting the OCI runtime
//! - `logfile`  the k8s-file log writer
//! - `exit`     exit statuses and their records
//! - `client`   `shimlet attach`, the terminal-side client
//! - `attach`   attach clients: output records out, input in
//! - `tty`      the pty: console socket, ONLCR, window size
//! - `ctl`      the control FIFO and its line protocol
//! - `diag`     shimlet's own diagnostics (--diag FILE, --syslog)
//! - `oom`      OOM kills of the container's cgroup
//! - `exitcmd`  the exit command
//! - `journal`  the journald log driver
//! - `restack`  the daemon's own stack and arguments (the kernel's go)
//! - `sock`     unix sockets by path of any length, fd passing
//! - `json`, `timefmt`, `buf`, `sys`: formatting and syscall plumbing
#![cfg_attr(not(test), no_std)]

pub mod attach;
pub mod buf;
pub mod cli;
pub mod client;
pub mod ctl;
pub mod diag;
pub mod exit;
pub mod exitcmd;
pub mod journal;
pub mod json;
pub mod launch;
pub mod logfile;
pub mod oom;
pub mod restack;
pub mod shim;
pub mod sock;
pub mod spawn;
pub mod sys;
pub mod timefmt;
pub mod tty;
