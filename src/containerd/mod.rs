//! The containerd front end: the same binary, run as
//! `containerd-shim-shimlet-v1` (runtime `io.containerd.shimlet.v1`),
//! speaks containerd's runtime v2 shim protocol.
//!
//! - `start` (`start.rs`): find or start the daemon for the container's
//!   group (one per pod), print its socket address.
//! - `delete` (`start.rs`): clean up after a container whose shim is gone.
//! - the daemon (`server.rs`): a ttrpc server (`ttrpc.rs`, `proto.rs`) for
//!   `containerd.task.v2.Task` (`task.rs`), serving up to the table's
//!   capacity of containers and execs on the core, with their stdio
//!   (`stdio.rs`), rootfs (`mounts.rs`), metrics (`stats.rs`), and the
//!   events it sends back to containerd (`events.rs`).

pub mod events;
pub mod mounts;
pub mod proto;
pub mod server;
pub mod sha256;
pub mod start;
pub mod stats;
pub mod stdio;
pub mod task;
pub mod ttrpc;

use core::ffi::{c_char, c_int, CStr};

use crate::diag::say;

/// The binary's name when it is the containerd shim.
pub const BINARY: &[u8] = b"containerd-shim-shimlet-v1";

/// What containerd asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Start,
    Delete,
    Version,
}

/// The command line containerd gives a shim (Go flag syntax: `-name
/// value`, `-name=value`, `--name` too), then the action word.
#[derive(Clone, Copy, Debug)]
pub struct Args<'a> {
    pub namespace: &'a CStr,
    pub address: &'a CStr,
    pub publish_binary: &'a CStr,
    pub id: &'a CStr,
    pub bundle: Option<&'a CStr>,
    pub debug: bool,
    pub action: Action,
}

/// A usage error, in Go's flag package's words where it has them.
#[derive(Debug, PartialEq, Eq)]
pub enum Usage<'a> {
    Unknown(&'a [u8]),
    NeedsValue(&'a [u8]),
    NoNamespace,
    NoId,
    NoAction,
    BadAction(&'a [u8]),
}

pub fn parse<'a>(mut words: impl Iterator<Item = &'a CStr>) -> Result<Args<'a>, Usage<'a>> {
    let mut a = Args {
        namespace: c"",
        address: c"",
        publish_binary: c"containerd",
        id: c"",
        bundle: None,
        debug: false,
        action: Action::Start,
    };
    let mut action = None;
    while let Some(w) = words.next() {
        let b = w.to_bytes();
        if action.is_some() || !b.starts_with(b"-") || b == b"-" {
            // The first word that is not a flag is the action; Go's flag
            // package stops there.
            if action.is_none() {
                action = Some(b);
            }
            continue;
        }
        let name = b.trim_ascii_start().strip_prefix(b"--").or_else(|| b.strip_prefix(b"-")).unwrap_or(b);
        let (name, inline) = match name.iter().position(|&c| c == b'=') {
            Some(i) => (&name[..i], Some(i)),
            None => (name, None),
        };
        let value = |words: &mut dyn Iterator<Item = &'a CStr>| -> Result<&'a CStr, Usage<'a>> {
            match inline {
                Some(_) => {
                    let all = w.to_bytes_with_nul();
                    let eq = all.iter().position(|&c| c == b'=').unwrap_or(0);
                    CStr::from_bytes_with_nul(&all[eq + 1..]).map_err(|_| Usage::NeedsValue(name))
                }
                None => words.next().ok_or(Usage::NeedsValue(name)),
            }
        };
        match name {
            b"namespace" => a.namespace = value(&mut words)?,
            b"address" => a.address = value(&mut words)?,
            b"publish-binary" => a.publish_binary = value(&mut words)?,
            b"id" => a.id = value(&mut words)?,
            b"bundle" => a.bundle = Some(value(&mut words)?),
            b"socket" => {
                value(&mut words)?;
            }
            b"debug" => a.debug = true,
            b"v" | b"version" => {
                a.action = Action::Version;
                return Ok(a);
            }
            _ => return Err(Usage::Unknown(name)),
        }
    }
    a.action = match action {
        Some(b"start") => Action::Start,
        Some(b"delete") => Action::Delete,
        Some(other) => return Err(Usage::BadAction(other)),
        None => return Err(Usage::NoAction),
    };
    if a.namespace.is_empty() {
        return Err(Usage::NoNamespace);
    }
    if a.id.is_empty() {
        return Err(Usage::NoId);
    }
    Ok(a)
}

/// Whether argv[0] names the containerd shim.
pub fn is_shim_name(argv0: &CStr) -> bool {
    let b = argv0.to_bytes();
    let base = b.rsplit(|&c| c == b'/').next().unwrap_or(b);
    base == BINARY
}

/// The containerd shim's command line.
///
/// # Safety
/// `argv` holds `argc` valid C strings that live as long as the process.
pub unsafe fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    let argv = crate::stack::adopt_args(argc, argv);
    // containerd runs as a systemd Type=notify service: its NOTIFY_SOCKET
    // (systemd's) reaches the shim, and from it a runtime it starts would
    // take it as the container's sd_notify socket (runc binds a proxy for
    // it under its state dir and `runc start` waits for READY=1). It is
    // the manager's, never the container's: gone before anything runs.
    crate::sys::unsetenv(c"NOTIFY_SOCKET");
    // SAFETY (caller): argc C strings, for the life of the process.
    let words = (1..argc.max(1) as usize).map(|i| CStr::from_ptr(*argv.add(i)));
    match parse(words) {
        Ok(a) => match a.action {
            Action::Version => {
                let mut m: crate::buf::Buf<128> = crate::buf::Buf::new();
                m.push(BINARY);
                m.push(b":\n  Version:  ");
                m.push(crate::VERSION.as_bytes());
                m.push(b" (shimlet)\n");
                let _ = crate::sys::write_all(crate::sys::borrow(1), m.as_bytes());
                0
            }
            Action::Start => start::start(&a),
            Action::Delete => start::delete(&a),
        },
        Err(u) => {
            match u {
                Usage::Unknown(f) => say(&[b"flag provided but not defined: -", f]),
                Usage::NeedsValue(f) => say(&[b"flag needs an argument: -", f]),
                Usage::NoNamespace => say(&[b"shim namespace cannot be empty"]),
                Usage::NoId => say(&[b"shim id cannot be empty"]),
                Usage::NoAction => say(&[b"no action: start or delete"]),
                Usage::BadAction(w) => say(&[b"invalid action: ", w]),
            }
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    fn args(v: &[&str]) -> Vec<&'static CStr> {
        v.iter().map(|s| &*Box::leak(CString::new(*s).unwrap().into_boxed_c_str())).collect()
    }

    #[test]
    fn containerd_command_lines() {
        // Observed: containerd 1.6.20's start and delete.
        let a = parse(
            args(&[
                "-namespace",
                "default",
                "-address",
                "/run/containerd/containerd.sock",
                "-publish-binary",
                "/usr/bin/containerd",
                "-id",
                "c1",
                "start",
            ])
            .into_iter(),
        )
        .unwrap();
        assert_eq!((a.namespace.to_bytes(), a.id.to_bytes(), a.action), (&b"default"[..], &b"c1"[..], Action::Start));
        assert_eq!(a.address.to_bytes(), b"/run/containerd/containerd.sock");
        let a =
            parse(args(&["-namespace=k8s.io", "-id", "x", "-bundle", "/b", "-debug", "delete"]).into_iter()).unwrap();
        assert_eq!((a.action, a.debug, a.bundle.map(|b| b.to_bytes())), (Action::Delete, true, Some(&b"/b"[..])));
        assert!(matches!(parse(args(&["-v"]).into_iter()), Ok(Args { action: Action::Version, .. })));
        assert_eq!(parse(args(&["-id", "x", "start"]).into_iter()).err(), Some(Usage::NoNamespace));
        assert_eq!(parse(args(&["-namespace", "n", "-id", "x"]).into_iter()).err(), Some(Usage::NoAction));
        assert_eq!(
            parse(args(&["-namespace", "n", "-id", "x", "run"]).into_iter()).err(),
            Some(Usage::BadAction(b"run"))
        );
        assert_eq!(parse(args(&["-nope", "start"]).into_iter()).err(), Some(Usage::Unknown(b"nope")));
        assert_eq!(parse(args(&["-id"]).into_iter()).err(), Some(Usage::NeedsValue(b"id")));
    }

    #[test]
    fn shim_name() {
        assert!(is_shim_name(c"/usr/local/bin/containerd-shim-shimlet-v1"));
        assert!(is_shim_name(c"containerd-shim-shimlet-v1"));
        assert!(!is_shim_name(c"/usr/bin/shimlet"));
    }
}
