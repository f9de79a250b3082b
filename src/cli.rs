//! The command line: one table of options. Each option has shimlet's own
//! name and may carry aliases (conmon's spellings join the same table), so
//! there is one parser, one help text and one place to look.
//!
//! `--opt value`, `--opt=value`, `-o value` and `-ovalue` all work. Values
//! are borrowed from argv, which lives as long as the process: nothing is
//! copied, nothing is allocated.

use core::ffi::CStr;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Key {
    Id,
    Bundle,
    Runtime,
    RuntimeArg,
    Pidfile,
    ShimPidfile,
    Log,
    StatusFile,
    ExitDir,
    SyncFd,
    Attach,
    Stdin,
    StdinOnce,
    LeaveStdinOpen,
    Terminal,
    Ctl,
    Help,
    Version,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// A flag.
    No,
    /// One value; given twice, the last wins.
    One,
    /// Repeatable; values kept in order.
    Many,
}

pub struct Opt {
    pub key: Key,
    /// shimlet's name, then aliases (long `--x` or short `-x`).
    pub names: &'static [&'static str],
    pub arg: Arg,
    pub meta: &'static str,
    pub help: &'static str,
}

pub static OPTIONS: &[Opt] = &[
    Opt { key: Key::Id, names: &["--id"], arg: Arg::One, meta: "ID", help: "container id (required)" },
    Opt { key: Key::Bundle, names: &["--bundle"], arg: Arg::One, meta: "DIR", help: "OCI bundle directory (default: working directory)" },
    Opt { key: Key::Runtime, names: &["--runtime"], arg: Arg::One, meta: "PATH", help: "OCI runtime (default: runc found on PATH)" },
    Opt { key: Key::RuntimeArg, names: &["--runtime-arg"], arg: Arg::Many, meta: "ARG", help: "argument placed before `create` (repeatable)" },
    Opt { key: Key::Pidfile, names: &["--pidfile"], arg: Arg::One, meta: "FILE", help: "where the runtime writes the container pid (default: BUNDLE/pidfile)" },
    Opt { key: Key::ShimPidfile, names: &["--shim-pidfile"], arg: Arg::One, meta: "FILE", help: "where shimlet writes its own pid" },
    Opt { key: Key::Log, names: &["--log"], arg: Arg::One, meta: "FILE", help: "container output log, CRI k8s-file format" },
    Opt { key: Key::StatusFile, names: &["--status-file"], arg: Arg::One, meta: "FILE", help: "exit record, one line, written atomically" },
    Opt { key: Key::ExitDir, names: &["--exit-dir"], arg: Arg::One, meta: "DIR", help: "also write DIR/ID holding the decimal exit status" },
    Opt { key: Key::SyncFd, names: &["--sync-fd"], arg: Arg::One, meta: "N", help: "report the create outcome on fd N (default: $_OCI_SYNCPIPE)" },
    Opt { key: Key::Attach, names: &["--attach"], arg: Arg::One, meta: "PATH", help: "attach socket (SOCK_SEQPACKET, 0700) for clients" },
    Opt { key: Key::Stdin, names: &["--stdin"], arg: Arg::No, meta: "", help: "give the container a stdin fed by attach clients" },
    Opt { key: Key::StdinOnce, names: &["--stdin-once"], arg: Arg::No, meta: "", help: "close stdin when the first client sends EOF (the default)" },
    Opt { key: Key::LeaveStdinOpen, names: &["--leave-stdin-open"], arg: Arg::No, meta: "", help: "keep stdin open across clients' EOF" },
    Opt { key: Key::Terminal, names: &["--terminal"], arg: Arg::No, meta: "", help: "run the container on a pty (runtime --console-socket)" },
    Opt { key: Key::Ctl, names: &["--ctl"], arg: Arg::One, meta: "PATH", help: "control FIFO: `1 ROWS COLS` resizes, `2 0 0` reopens the log" },
    Opt { key: Key::Help, names: &["--help", "-h"], arg: Arg::No, meta: "", help: "print this help and exit" },
    Opt { key: Key::Version, names: &["--version"], arg: Arg::No, meta: "", help: "print the version and exit" },
];

/// How many `--runtime-arg`s fit. Bounded like everything else.
pub const MAX_RUNTIME_ARGS: usize = 32;

#[derive(Clone, Copy)]
pub struct Config<'a> {
    pub id: Option<&'a CStr>,
    pub bundle: Option<&'a CStr>,
    pub runtime: Option<&'a CStr>,
    pub runtime_args: [&'a CStr; MAX_RUNTIME_ARGS],
    pub n_runtime_args: usize,
    pub pidfile: Option<&'a CStr>,
    pub shim_pidfile: Option<&'a CStr>,
    pub log: Option<&'a CStr>,
    pub status_file: Option<&'a CStr>,
    pub exit_dir: Option<&'a CStr>,
    pub sync_fd: Option<i32>,
    pub attach: Option<&'a CStr>,
    pub stdin: bool,
    pub leave_stdin_open: bool,
    pub terminal: bool,
    pub ctl: Option<&'a CStr>,
}

impl<'a> Config<'a> {
    pub const fn empty() -> Self {
        Config {
            id: None,
            bundle: None,
            runtime: None,
            runtime_args: [c""; MAX_RUNTIME_ARGS],
            n_runtime_args: 0,
            pidfile: None,
            shim_pidfile: None,
            log: None,
            status_file: None,
            exit_dir: None,
            sync_fd: None,
            attach: None,
            stdin: false,
            leave_stdin_open: false,
            terminal: false,
            ctl: None,
        }
    }
    pub fn runtime_args(&self) -> &[&'a CStr] {
        &self.runtime_args[..self.n_runtime_args]
    }
}

pub enum Action<'a> {
    Run(Config<'a>),
    Help,
    Version,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Usage<'a> {
    Unknown(&'a [u8]),
    MissingValue(&'a [u8]),
    NoValueAllowed(&'a [u8]),
    BadValue(&'a [u8], &'a [u8]),
    TooMany(&'a [u8]),
    Unexpected(&'a [u8]),
    Required(&'static str),
}

impl Usage<'_> {
    /// One line, without the program name or newline.
    pub fn write_to<const N: usize>(&self, out: &mut crate::buf::Buf<N>) {
        match *self {
            Usage::Unknown(o) => { out.push(b"unknown option "); out.push(o); }
            Usage::MissingValue(o) => { out.push(b"option "); out.push(o); out.push(b" needs a value"); }
            Usage::NoValueAllowed(o) => { out.push(b"option "); out.push(o); out.push(b" takes no value"); }
            Usage::BadValue(o, v) => { out.push(b"invalid value '"); out.push(v); out.push(b"' for "); out.push(o); }
            Usage::TooMany(o) => { out.push(b"too many "); out.push(o); out.push(b" options"); }
            Usage::Unexpected(a) => { out.push(b"unexpected argument '"); out.push(a); out.push(b"'"); }
            Usage::Required(o) => { out.push(b"missing required option "); out.push(o.as_bytes()); }
        };
    }
}

fn lookup(name: &[u8]) -> Option<&'static Opt> {
    OPTIONS.iter().find(|o| o.names.iter().any(|n| n.as_bytes() == name))
}

/// The value part of `--opt=value` as a C string (it ends where the argv
/// word ends, so it is NUL-terminated already).
fn tail(word: &CStr, from: usize) -> &CStr {
    let b = word.to_bytes_with_nul();
    // `from` is inside the word, and the slice keeps the word's NUL.
    CStr::from_bytes_with_nul(&b[from..]).unwrap_or(c"")
}

pub fn parse<'a, I: Iterator<Item = &'a CStr>>(mut args: I) -> Result<Action<'a>, Usage<'a>> {
    let mut c = Config::empty();
    let mut want_help = false;
    let mut want_version = false;
    while let Some(word) = args.next() {
        let w = word.to_bytes();
        let (opt, inline): (&Opt, Option<&'a CStr>) = if w.starts_with(b"--") {
            let (name, val) = match w.iter().position(|&b| b == b'=') {
                Some(eq) => (&w[..eq], Some(tail(word, eq + 1))),
                None => (w, None),
            };
            (lookup(name).ok_or(Usage::Unknown(name))?, val)
        } else if w.len() >= 2 && w[0] == b'-' {
            let name = &w[..2];
            let opt = lookup(name).ok_or(Usage::Unknown(name))?;
            let val = if w.len() > 2 { Some(tail(word, 2)) } else { None };
            if opt.arg == Arg::No && val.is_some() {
                return Err(Usage::Unknown(w));
            }
            (opt, val)
        } else {
            return Err(Usage::Unexpected(w));
        };
        let name = opt.names[0].as_bytes();
        let value = match opt.arg {
            Arg::No => {
                if inline.is_some() {
                    return Err(Usage::NoValueAllowed(name));
                }
                None
            }
            _ => Some(match inline {
                Some(v) => v,
                None => args.next().ok_or(Usage::MissingValue(name))?,
            }),
        };
        let v = value.unwrap_or(c"");
        match opt.key {
            Key::Id => c.id = Some(v),
            Key::Bundle => c.bundle = Some(v),
            Key::Runtime => c.runtime = Some(v),
            Key::RuntimeArg => {
                if c.n_runtime_args == MAX_RUNTIME_ARGS {
                    return Err(Usage::TooMany(name));
                }
                c.runtime_args[c.n_runtime_args] = v;
                c.n_runtime_args += 1;
            }
            Key::Pidfile => c.pidfile = Some(v),
            Key::ShimPidfile => c.shim_pidfile = Some(v),
            Key::Log => c.log = Some(v),
            Key::StatusFile => c.status_file = Some(v),
            Key::ExitDir => c.exit_dir = Some(v),
            Key::SyncFd => {
                let n = crate::buf::parse_u64(v.to_bytes(), i32::MAX as u64)
                    .ok_or(Usage::BadValue(name, v.to_bytes()))?;
                c.sync_fd = Some(n as i32);
            }
            Key::Attach => c.attach = Some(v),
            Key::Stdin => c.stdin = true,
            Key::StdinOnce => c.leave_stdin_open = false,
            Key::LeaveStdinOpen => c.leave_stdin_open = true,
            Key::Terminal => c.terminal = true,
            Key::Ctl => c.ctl = Some(v),
            Key::Help => want_help = true,
            Key::Version => want_version = true,
        }
        // Empty strings are never a useful path or id.
        if opt.arg != Arg::No && v.to_bytes().is_empty() {
            return Err(Usage::BadValue(name, b""));
        }
    }
    if want_help {
        return Ok(Action::Help);
    }
    if want_version {
        return Ok(Action::Version);
    }
    if c.id.is_none() {
        return Err(Usage::Required("--id"));
    }
    Ok(Action::Run(c))
}

/// The help text, generated from the table so it never drifts.
pub fn write_help(out: &mut dyn FnMut(&[u8])) {
    out(b"usage: shimlet --id ID [options]\n\n");
    out(b"Runs `RUNTIME create` for an OCI bundle, detaches, logs the container's\n");
    out(b"output, forwards signals, reaps it and records how it ended.\n\noptions:\n");
    for o in OPTIONS {
        out(b"  ");
        for (i, n) in o.names.iter().enumerate() {
            if i > 0 {
                out(b", ");
            }
            out(n.as_bytes());
        }
        if !o.meta.is_empty() {
            out(b" ");
            out(o.meta.as_bytes());
        }
        out(b"\n      ");
        out(o.help.as_bytes());
        out(b"\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    fn args(v: &[&str]) -> Vec<&'static CStr> {
        v.iter().map(|s| &*Box::leak(CString::new(*s).unwrap().into_boxed_c_str())).collect()
    }

    fn run(v: &[&str]) -> Result<Config<'static>, Usage<'static>> {
        match parse(args(v).into_iter())? {
            Action::Run(c) => Ok(c),
            _ => panic!("not a run"),
        }
    }

    #[test]
    fn both_value_forms() {
        let c = run(&["--id", "a", "--bundle=/b", "--runtime-arg=--root=/r", "--runtime-arg", "--debug"]).unwrap();
        assert_eq!(c.id.unwrap().to_bytes(), b"a");
        assert_eq!(c.bundle.unwrap().to_bytes(), b"/b");
        let ra: Vec<_> = c.runtime_args().iter().map(|s| s.to_bytes()).collect();
        assert_eq!(ra, vec![&b"--root=/r"[..], b"--debug"]);
    }

    #[test]
    fn sync_fd_and_last_wins() {
        let c = run(&["--id=x", "--id=y", "--sync-fd", "7"]).unwrap();
        assert_eq!(c.id.unwrap().to_bytes(), b"y");
        assert_eq!(c.sync_fd, Some(7));
        assert_eq!(run(&["--id=x", "--sync-fd=-1"]).err(), Some(Usage::BadValue(b"--sync-fd", b"-1")));
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(run(&["--id", "a", "--bogus"]).err(), Some(Usage::Unknown(b"--bogus")));
        assert_eq!(run(&["--id", "a", "--bogus=1"]).err(), Some(Usage::Unknown(b"--bogus")));
        assert_eq!(run(&["--id"]).err(), Some(Usage::MissingValue(b"--id")));
        assert_eq!(run(&["--log", "x"]).err(), Some(Usage::Required("--id")));
        assert_eq!(run(&["--id", "a", "stray"]).err(), Some(Usage::Unexpected(b"stray")));
        assert_eq!(run(&["--id", "a", "--help=1"]).err(), Some(Usage::NoValueAllowed(b"--help")));
        assert_eq!(run(&["--id", ""]).err(), Some(Usage::BadValue(b"--id", b"")));
        assert_eq!(run(&["-x"]).err(), Some(Usage::Unknown(b"-x")));
        let mut many = vec!["--id", "a"];
        for _ in 0..=MAX_RUNTIME_ARGS {
            many.push("--runtime-arg=x");
        }
        assert_eq!(run(&many).err(), Some(Usage::TooMany(b"--runtime-arg")));
    }

    #[test]
    fn help_and_version_need_no_id() {
        assert!(matches!(parse(args(&["--help"]).into_iter()), Ok(Action::Help)));
        assert!(matches!(parse(args(&["-h"]).into_iter()), Ok(Action::Help)));
        assert!(matches!(parse(args(&["--version"]).into_iter()), Ok(Action::Version)));
        let mut text = Vec::new();
        write_help(&mut |b| text.extend_from_slice(b));
        let text = String::from_utf8(text).unwrap();
        for o in OPTIONS {
            assert!(text.contains(o.names[0]), "help lists {}", o.names[0]);
        }
    }

    #[test]
    fn messages() {
        let mut b: crate::buf::Buf<128> = crate::buf::Buf::new();
        Usage::MissingValue(b"--log").write_to(&mut b);
        assert_eq!(b.as_bytes(), b"option --log needs a value");
    }
}
