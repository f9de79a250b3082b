//! The command line: one table of options. Each option has shimlet's own
//! names and conmon's spellings, so podman and CRI-O can run shimlet as
//! they run conmon, with one parser, one help text and one place to look.
//!
//! `--opt value`, `--opt=value`, `-o value` and `-ovalue` all work. Values
//! are borrowed from argv, which lives as long as the process: nothing is
//! copied, nothing is allocated.
//!
//! A command line that uses any spelling only conmon has is a conmon
//! command line: its usage errors use conmon's texts and exit status 1,
//! stray words are ignored (podman passes `--api-version 1`), and the
//! defaults are conmon's (attach socket and ctl FIFO in the bundle, the
//! container pidfile at `CWD/pidfile-ID`).

use core::ffi::{c_char, CStr};
use core::marker::PhantomData;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Key {
    Id,
    Cuuid,
    Name,
    Bundle,
    Runtime,
    RuntimeArg,
    RuntimeOpt,
    Pidfile,
    ShimPidfile,
    Log,
    LogSizeMax,
    LogGlobalSizeMax,
    LogTag,
    LogLevel,
    NoSyncLog,
    Syslog,
    Diag,
    StatusFile,
    ExitDir,
    PersistDir,
    SyncFd,
    Attach,
    Stdin,
    StdinOnce,
    LeaveStdinOpen,
    Terminal,
    Ctl,
    Exec,
    ExecAttach,
    ExecSpec,
    ExitCommand,
    ExitCommandArg,
    ExitDelay,
    Timeout,
    ApiVersion,
    SystemdCgroup,
    NoPivot,
    NoNewKeyring,
    FullAttach,
    SocketDir,
    Sync,
    /// Accepted and ignored, as conmon 2.1.6 does or as harmless here.
    Ignored,
    /// Accepted by conmon, refused here with a clear message.
    Unsupported,
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
    /// shimlet's own names (long `--x` or short `-x`).
    pub names: &'static [&'static str],
    /// conmon's spellings; those not also in `names` mark a conmon command line.
    pub conmon: &'static [&'static str],
    pub arg: Arg,
    pub meta: &'static str,
    pub help: &'static str,
}

macro_rules! opt {
    ($key:ident, [$($n:expr),*], [$($c:expr),*], $arg:ident, $meta:expr, $help:expr) => {
        Opt { key: Key::$key, names: &[$($n),*], conmon: &[$($c),*], arg: Arg::$arg, meta: $meta, help: $help }
    };
}

pub static OPTIONS: &[Opt] = &[
    opt!(Id, ["--id"], ["-c", "--cid"], One, "ID", "container id (required)"),
    opt!(Cuuid, [], ["-u", "--cuuid"], One, "UUID", "container uuid: names the attach symlink in --socket-dir-path"),
    opt!(Name, [], ["-n", "--name"], One, "NAME", "container name (journald CONTAINER_NAME)"),
    opt!(Bundle, ["--bundle"], ["-b", "--bundle"], One, "DIR", "OCI bundle directory (default: working directory)"),
    opt!(Runtime, ["--runtime"], ["-r", "--runtime"], One, "PATH", "OCI runtime (default: runc found on PATH)"),
    opt!(
        RuntimeArg,
        ["--runtime-arg"],
        ["--runtime-arg"],
        Many,
        "ARG",
        "argument placed before `create`/`exec` (repeatable)"
    ),
    opt!(
        RuntimeOpt,
        ["--runtime-opt"],
        ["--runtime-opt", "--restore-arg"],
        Many,
        "ARG",
        "argument placed after `create`/`exec`'s own (repeatable)"
    ),
    opt!(
        Pidfile,
        ["--pidfile"],
        ["-p", "--container-pidfile", "--pidfile"],
        One,
        "FILE",
        "where the runtime writes the container pid (default: BUNDLE/pidfile)"
    ),
    opt!(ShimPidfile, ["--shim-pidfile"], ["-P", "--conmon-pidfile"], One, "FILE", "where shimlet writes its own pid"),
    opt!(
        Log,
        ["--log"],
        ["-l", "--log-path"],
        Many,
        "DRIVER",
        "log: FILE or k8s-file:FILE, journald, passthrough, none (repeatable)"
    ),
    opt!(
        LogSizeMax,
        ["--log-size-max"],
        ["--log-size-max"],
        One,
        "BYTES",
        "rotate the log file to FILE.1 before it passes BYTES"
    ),
    opt!(
        LogGlobalSizeMax,
        ["--log-global-size-max"],
        ["--log-global-size-max"],
        One,
        "BYTES",
        "stop logging after BYTES in all"
    ),
    opt!(LogTag, ["--log-tag"], ["--log-tag"], One, "TAG", "journald CONTAINER_TAG and SYSLOG_IDENTIFIER"),
    opt!(LogLevel, ["--log-level"], ["--log-level"], One, "LEVEL", "diagnostics: error, warn, info, debug, trace"),
    opt!(NoSyncLog, ["--no-sync-log"], ["--no-sync-log"], No, "", "do not fsync the log when the container exits"),
    opt!(Syslog, ["--syslog"], ["--syslog"], No, "", "send shimlet's own diagnostics to syslog"),
    opt!(Diag, ["--diag"], [], One, "FILE", "append shimlet's own diagnostics to FILE"),
    opt!(StatusFile, ["--status-file"], [], One, "FILE", "exit record, one line, written atomically"),
    opt!(ExitDir, ["--exit-dir"], ["--exit-dir"], One, "DIR", "also write DIR/ID holding the decimal exit status"),
    opt!(
        PersistDir,
        ["--persist-dir"],
        ["-0", "--persist-dir"],
        One,
        "DIR",
        "also write DIR/exit holding the decimal exit status"
    ),
    opt!(SyncFd, ["--sync-fd"], [], One, "N", "report the create outcome on fd N (default: $_OCI_SYNCPIPE)"),
    opt!(Attach, ["--attach"], [], One, "PATH", "attach socket (SOCK_SEQPACKET, 0700) for clients"),
    opt!(Stdin, ["--stdin"], ["-i", "--stdin"], No, "", "give the container a stdin fed by attach clients"),
    opt!(StdinOnce, ["--stdin-once"], [], No, "", "close stdin when the first client sends EOF (the default)"),
    opt!(LeaveStdinOpen, ["--leave-stdin-open"], ["--leave-stdin-open"], No, "", "keep stdin open across clients' EOF"),
    opt!(
        Terminal,
        ["--terminal"],
        ["-t", "--terminal"],
        No,
        "",
        "run the container on a pty (runtime --console-socket)"
    ),
    opt!(Ctl, ["--ctl"], [], One, "PATH", "control FIFO: `1 ROWS COLS` resizes, `2 0 0` reopens the log"),
    opt!(Exec, ["--exec"], ["-e", "--exec"], No, "", "run `RUNTIME exec` in a running container instead of create"),
    opt!(
        ExecAttach,
        ["--exec-attach"],
        ["--exec-attach"],
        No,
        "",
        "exec: wait for the manager's go ($_OCI_STARTPIPE) after attach is ready"
    ),
    opt!(ExecSpec, ["--exec-process-spec"], ["--exec-process-spec"], One, "FILE", "exec: the OCI process spec"),
    opt!(
        ExitCommand,
        ["--exit-command"],
        ["--exit-command"],
        One,
        "PATH",
        "run PATH (absolute, no shell) after the exit records"
    ),
    opt!(
        ExitCommandArg,
        ["--exit-command-arg"],
        ["--exit-command-arg"],
        Many,
        "ARG",
        "argument of the exit command (repeatable)"
    ),
    opt!(ExitDelay, ["--exit-delay"], ["--exit-delay"], One, "SECONDS", "wait before running the exit command"),
    opt!(
        Timeout,
        ["--timeout"],
        ["-T", "--timeout"],
        One,
        "SECONDS",
        "kill the container (process group) after SECONDS"
    ),
    opt!(ApiVersion, [], ["--api-version"], No, "", "conmon API 1: sync messages use the key `data`"),
    opt!(
        SystemdCgroup,
        ["--systemd-cgroup"],
        ["-s", "--systemd-cgroup"],
        No,
        "",
        "pass --systemd-cgroup to the runtime"
    ),
    opt!(NoPivot, ["--no-pivot"], ["--no-pivot"], No, "", "pass --no-pivot to `create`"),
    opt!(NoNewKeyring, ["--no-new-keyring"], ["--no-new-keyring"], No, "", "pass --no-new-keyring to `create`"),
    opt!(FullAttach, [], ["--full-attach"], No, "", "attach socket at BUNDLE/attach, no symlink in --socket-dir-path"),
    opt!(
        SocketDir,
        [],
        ["--socket-dir-path"],
        One,
        "DIR",
        "where the attach symlink DIR/UUID -> BUNDLE goes (default /var/run/crio)"
    ),
    opt!(Sync, ["--sync"], ["--sync"], No, "", "do not detach: the launcher itself serves the container"),
    opt!(
        Ignored,
        [],
        ["--replace-listen-pid", "--no-container-partial-message", "--log-rotate"],
        No,
        "",
        "accepted, no effect"
    ),
    opt!(Ignored, [], ["--log-label", "--log-max-files", "--log-allowlist-dir"], Many, "X", "accepted, no effect"),
    opt!(Unsupported, [], ["--restore", "--sdnotify-socket"], One, "X", "not supported: shimlet refuses these"),
    opt!(Help, ["--help", "-h"], [], No, "", "print this help and exit"),
    opt!(Version, ["--version"], ["--version"], No, "", "print the version and exit"),
];

/// Repeated values, as thin pointers into argv (8 bytes each).
#[derive(Clone, Copy)]
pub struct Multi<'a, const N: usize> {
    ptrs: [*const c_char; N],
    len: usize,
    _life: PhantomData<&'a CStr>,
}

impl<'a, const N: usize> Multi<'a, N> {
    pub const fn new() -> Self {
        Multi { ptrs: [core::ptr::null(); N], len: 0, _life: PhantomData }
    }
    pub fn push(&mut self, s: &'a CStr) -> bool {
        if self.len == N {
            return false;
        }
        self.ptrs[self.len] = s.as_ptr();
        self.len += 1;
        true
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn iter(&self) -> impl Iterator<Item = &'a CStr> + '_ {
        // SAFETY: each pointer came from a &'a CStr (see `push`).
        self.ptrs[..self.len].iter().map(|&p| unsafe { CStr::from_ptr(p) })
    }
}

impl<'a, const N: usize> Default for Multi<'a, N> {
    fn default() -> Self {
        Self::new()
    }
}

/// How the container's output is logged; several may be combined.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Driver {
    None,
    K8sFile,
    Journald,
    Passthrough,
}

pub const MAX_RUNTIME_ARGS: usize = 32;
pub const MAX_RUNTIME_OPTS: usize = 16;
pub const MAX_EXIT_ARGS: usize = 64;

#[derive(Clone, Copy)]
pub struct Config<'a> {
    /// A conmon command line (see the module comment).
    pub conmon: bool,
    pub id: Option<&'a CStr>,
    pub cuuid: Option<&'a CStr>,
    pub name: Option<&'a CStr>,
    pub bundle: Option<&'a CStr>,
    pub runtime: Option<&'a CStr>,
    pub runtime_args: Multi<'a, MAX_RUNTIME_ARGS>,
    pub runtime_opts: Multi<'a, MAX_RUNTIME_OPTS>,
    pub pidfile: Option<&'a CStr>,
    pub shim_pidfile: Option<&'a CStr>,
    /// The k8s-file log path, if that driver is on.
    pub log: Option<&'a CStr>,
    pub journald: bool,
    pub passthrough: bool,
    pub log_size_max: Option<u64>,
    pub log_global_size_max: Option<u64>,
    pub log_tag: Option<&'a CStr>,
    pub log_level: u8,
    pub no_sync_log: bool,
    pub syslog: bool,
    pub diag: Option<&'a CStr>,
    pub status_file: Option<&'a CStr>,
    pub exit_dir: Option<&'a CStr>,
    pub persist_dir: Option<&'a CStr>,
    pub sync_fd: Option<i32>,
    pub attach: Option<&'a CStr>,
    pub stdin: bool,
    pub leave_stdin_open: bool,
    pub terminal: bool,
    pub ctl: Option<&'a CStr>,
    pub exec: bool,
    pub exec_attach: bool,
    pub exec_spec: Option<&'a CStr>,
    pub exit_command: Option<&'a CStr>,
    pub exit_args: Multi<'a, MAX_EXIT_ARGS>,
    pub exit_delay: u32,
    pub timeout: u32,
    pub api_version: bool,
    pub systemd_cgroup: bool,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub full_attach: bool,
    pub socket_dir: Option<&'a CStr>,
    pub sync: bool,
}

impl<'a> Config<'a> {
    pub const fn empty() -> Self {
        Config {
            conmon: false,
            id: None,
            cuuid: None,
            name: None,
            bundle: None,
            runtime: None,
            runtime_args: Multi::new(),
            runtime_opts: Multi::new(),
            pidfile: None,
            shim_pidfile: None,
            log: None,
            journald: false,
            passthrough: false,
            log_size_max: None,
            log_global_size_max: None,
            log_tag: None,
            log_level: 1,
            no_sync_log: false,
            syslog: false,
            diag: None,
            status_file: None,
            exit_dir: None,
            persist_dir: None,
            sync_fd: None,
            attach: None,
            stdin: false,
            leave_stdin_open: false,
            terminal: false,
            ctl: None,
            exec: false,
            exec_attach: false,
            exec_spec: None,
            exit_command: None,
            exit_args: Multi::new(),
            exit_delay: 0,
            timeout: 0,
            api_version: false,
            systemd_cgroup: false,
            no_pivot: false,
            no_new_keyring: false,
            full_attach: false,
            socket_dir: None,
            sync: false,
        }
    }

    /// The key of sync-pipe messages: conmon API 1 says `data`; without it
    /// `pid` for create and `exit_code` for the end of an exec.
    pub fn sync_key(&self, final_exec: bool) -> &'static [u8] {
        if self.api_version {
            b"data"
        } else if final_exec {
            b"exit_code"
        } else {
            b"pid"
        }
    }

    /// The attach socket and ctl FIFO live in the bundle (conmon's way):
    /// on a conmon command line with a bundle, unless logs pass through.
    pub fn bundle_sockets(&self) -> bool {
        self.conmon && !self.passthrough && (self.bundle.is_some() || !self.exec)
    }
}

// No allocator: the config is moved once, into its static.
#[allow(clippy::large_enum_variant)]
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
    /// A conmon check, with conmon's own words.
    Conmon(&'static str),
    NoSuchDriver(&'a [u8]),
    Unsupported(&'a [u8]),
}

impl Usage<'_> {
    /// One line, without the program name or newline.
    pub fn write_to<const N: usize>(&self, out: &mut crate::buf::Buf<N>) {
        match *self {
            Usage::Unknown(o) => {
                out.push(b"unknown option ");
                out.push(o);
            }
            Usage::MissingValue(o) => {
                out.push(b"option ");
                out.push(o);
                out.push(b" needs a value");
            }
            Usage::NoValueAllowed(o) => {
                out.push(b"option ");
                out.push(o);
                out.push(b" takes no value");
            }
            Usage::BadValue(o, v) => {
                out.push(b"invalid value '");
                out.push(v);
                out.push(b"' for ");
                out.push(o);
            }
            Usage::TooMany(o) => {
                out.push(b"too many ");
                out.push(o);
                out.push(b" options");
            }
            Usage::Unexpected(a) => {
                out.push(b"unexpected argument '");
                out.push(a);
                out.push(b"'");
            }
            Usage::Required(o) => {
                out.push(b"missing required option ");
                out.push(o.as_bytes());
            }
            Usage::Conmon(t) => {
                out.push(t.as_bytes());
            }
            Usage::NoSuchDriver(d) => {
                out.push(b"No such log driver ");
                out.push(d);
            }
            Usage::Unsupported(o) => {
                out.push(o);
                out.push(b" is not supported by shimlet");
            }
        };
    }
}

fn lookup(name: &[u8]) -> Option<(&'static Opt, bool)> {
    for o in OPTIONS {
        if o.names.iter().any(|n| n.as_bytes() == name) {
            return Some((o, false));
        }
        if o.conmon.iter().any(|n| n.as_bytes() == name) {
            return Some((o, true));
        }
    }
    None
}

/// The value part of `--opt=value` as a C string (it ends where the argv
/// word ends, so it is NUL-terminated already).
fn tail(word: &CStr, from: usize) -> &CStr {
    let b = word.to_bytes_with_nul();
    CStr::from_bytes_with_nul(&b[from.min(b.len() - 1)..]).unwrap_or(c"")
}

/// The option name of a word, if it is one (`--x`, `--x=v`, `-x`, `-xv`).
fn name_of(w: &[u8]) -> &[u8] {
    if w.starts_with(b"--") {
        &w[..w.iter().position(|&b| b == b'=').unwrap_or(w.len())]
    } else if w.len() >= 2 && w[0] == b'-' {
        &w[..2]
    } else {
        b""
    }
}

fn number<'a>(name: &'a [u8], v: &'a CStr, max: u64) -> Result<u64, Usage<'a>> {
    crate::buf::parse_u64(v.to_bytes(), max).ok_or(Usage::BadValue(name, v.to_bytes()))
}

fn set_log<'a>(c: &mut Config<'a>, v: &'a CStr) -> Result<(), Usage<'a>> {
    let b = v.to_bytes();
    let (driver, path) = match b.iter().position(|&x| x == b':') {
        Some(i) => (&b[..i], Some(tail(v, i + 1))),
        None => (b, None),
    };
    let d = match driver {
        b"k8s-file" => Driver::K8sFile,
        b"journald" => Driver::Journald,
        b"passthrough" => Driver::Passthrough,
        b"none" | b"off" | b"null" => Driver::None,
        // A bare path is a k8s-file (conmon's rule); so is `PATH` with a
        // colon in a directory name, when it is not a known driver.
        _ if b.contains(&b'/') => {
            c.log = Some(v);
            return Ok(());
        }
        _ => return Err(Usage::NoSuchDriver(driver)),
    };
    match d {
        Driver::K8sFile => match path {
            Some(p) if !p.is_empty() => c.log = Some(p),
            _ => return Err(Usage::MissingValue(b"k8s-file")),
        },
        Driver::Journald => c.journald = true,
        Driver::Passthrough => c.passthrough = true,
        Driver::None => {}
    }
    Ok(())
}

/// Whether these words make a conmon command line.
pub fn is_conmon<'a>(mut args: impl Iterator<Item = &'a CStr>) -> bool {
    args.any(|w| matches!(lookup(name_of(w.to_bytes())), Some((_, true))))
}

#[inline(never)]
pub fn parse<'a, I: Iterator<Item = &'a CStr> + Clone>(args: I) -> Result<Action<'a>, Usage<'a>> {
    let mut c = Config::empty();
    // First pass: is this a conmon command line? It decides how errors and
    // stray words are treated, wherever the conmon spelling stands.
    c.conmon = is_conmon(args.clone());
    let mut args = args;
    let mut want_help = false;
    let mut want_version = false;
    while let Some(word) = args.next() {
        let w = word.to_bytes();
        let (opt, inline): (&Opt, Option<&'a CStr>) = if w.starts_with(b"--") && w.len() > 2 {
            let name = name_of(w);
            let val = if name.len() < w.len() { Some(tail(word, name.len() + 1)) } else { None };
            (lookup(name).ok_or(Usage::Unknown(name))?.0, val)
        } else if w.len() >= 2 && w[0] == b'-' && w[1] != b'-' {
            let name = &w[..2];
            let opt = lookup(name).ok_or(Usage::Unknown(name))?.0;
            let val = if w.len() > 2 { Some(tail(word, 2)) } else { None };
            if opt.arg == Arg::No && val.is_some() {
                return Err(Usage::Unknown(w));
            }
            (opt, val)
        } else if c.conmon {
            continue; // GLib leaves stray words alone; so does conmon.
        } else {
            return Err(Usage::Unexpected(w));
        };
        let name = opt.names.first().or(opt.conmon.last()).map(|n| n.as_bytes()).unwrap_or(b"?");
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
        // An empty id is never useful; other empty values are legitimate
        // (podman passes empty exit-command arguments) or fail later with
        // a clear error.
        if opt.key == Key::Id && v.is_empty() {
            return Err(Usage::BadValue(name, b""));
        }
        match opt.key {
            Key::Id => c.id = Some(v),
            Key::Cuuid => c.cuuid = Some(v),
            Key::Name => c.name = Some(v),
            Key::Bundle => c.bundle = Some(v),
            Key::Runtime => c.runtime = Some(v),
            Key::RuntimeArg => {
                if !c.runtime_args.push(v) {
                    return Err(Usage::TooMany(name));
                }
            }
            Key::RuntimeOpt => {
                if !c.runtime_opts.push(v) {
                    return Err(Usage::TooMany(name));
                }
            }
            Key::Pidfile => c.pidfile = Some(v),
            Key::ShimPidfile => c.shim_pidfile = Some(v),
            Key::Log => set_log(&mut c, v)?,
            Key::LogSizeMax => c.log_size_max = Some(number(name, v, u64::MAX / 2)?),
            Key::LogGlobalSizeMax => c.log_global_size_max = Some(number(name, v, u64::MAX / 2)?),
            Key::LogTag => c.log_tag = Some(v),
            Key::LogLevel => {
                c.log_level = match v.to_bytes() {
                    b"error" | b"fatal" | b"panic" => 0,
                    b"warn" | b"warning" => 1,
                    b"info" => 2,
                    b"debug" => 3,
                    b"trace" => 4,
                    _ => return Err(Usage::BadValue(name, v.to_bytes())),
                }
            }
            Key::NoSyncLog => c.no_sync_log = true,
            Key::Syslog => c.syslog = true,
            Key::Diag => c.diag = Some(v),
            Key::StatusFile => c.status_file = Some(v),
            Key::ExitDir => c.exit_dir = Some(v),
            Key::PersistDir => c.persist_dir = Some(v),
            Key::SyncFd => c.sync_fd = Some(number(name, v, i32::MAX as u64)? as i32),
            Key::Attach => c.attach = Some(v),
            Key::Stdin => c.stdin = true,
            Key::StdinOnce => c.leave_stdin_open = false,
            Key::LeaveStdinOpen => c.leave_stdin_open = true,
            Key::Terminal => c.terminal = true,
            Key::Ctl => c.ctl = Some(v),
            Key::Exec => c.exec = true,
            Key::ExecAttach => c.exec_attach = true,
            Key::ExecSpec => c.exec_spec = Some(v),
            Key::ExitCommand => c.exit_command = Some(v),
            Key::ExitCommandArg => {
                if !c.exit_args.push(v) {
                    return Err(Usage::TooMany(name));
                }
            }
            Key::ExitDelay => c.exit_delay = number(name, v, 86_400)? as u32,
            Key::Timeout => c.timeout = number(name, v, u32::MAX as u64 / 2)? as u32,
            Key::ApiVersion => c.api_version = true,
            Key::SystemdCgroup => c.systemd_cgroup = true,
            Key::NoPivot => c.no_pivot = true,
            Key::NoNewKeyring => c.no_new_keyring = true,
            Key::FullAttach => c.full_attach = true,
            Key::SocketDir => c.socket_dir = Some(v),
            Key::Sync => c.sync = true,
            Key::Ignored => {}
            Key::Unsupported => return Err(Usage::Unsupported(name_of(w))),
            Key::Help => want_help = true,
            Key::Version => want_version = true,
        }
    }
    if want_help {
        return Ok(Action::Help);
    }
    if want_version {
        return Ok(Action::Version);
    }
    check(&c)?;
    Ok(Action::Run(c))
}

/// What must hold after parsing, in conmon's words on a conmon command line.
fn check<'a>(c: &Config<'a>) -> Result<(), Usage<'a>> {
    if c.id.is_none() {
        return Err(if c.conmon {
            Usage::Conmon("Container ID not provided. Use --cid")
        } else {
            Usage::Required("--id")
        });
    }
    if c.exec_attach && !c.exec {
        return Err(Usage::Conmon("Attach can only be specified with exec"));
    }
    if c.conmon {
        if c.exec_attach && !c.api_version {
            return Err(Usage::Conmon("Attach can only be specified for a non-legacy exec session"));
        }
        if c.cuuid.is_none() && (!c.exec || c.api_version) {
            return Err(Usage::Conmon("Container UUID not provided. Use --cuuid"));
        }
        if c.runtime.is_none() {
            return Err(Usage::Conmon("Runtime path not provided. Use --runtime"));
        }
    }
    if c.exec && c.exec_spec.is_none() {
        return Err(Usage::Conmon("Exec process spec path not provided. Use --exec-process-spec"));
    }
    if let Some(cmd) = c.exit_command {
        if !cmd.to_bytes().starts_with(b"/") {
            return Err(Usage::BadValue(b"--exit-command", cmd.to_bytes()));
        }
    }
    Ok(())
}

/// The help text, generated from the table so it never drifts.
pub fn write_help(out: &mut dyn FnMut(&[u8])) {
    out(b"usage: shimlet --id ID [options]\n");
    out(b"       shimlet attach [--detach-keys KEYS] [--ctl PATH] SOCKET\n\n");
    out(b"Runs `RUNTIME create` for an OCI bundle, detaches, logs the container's\n");
    out(b"output, forwards signals, reaps it and records how it ended.\n");
    out(b"conmon's spellings (in brackets) are accepted too.\n\noptions:\n");
    for o in OPTIONS {
        out(b"  ");
        let mut first = true;
        for n in o.names {
            if !first {
                out(b", ");
            }
            out(n.as_bytes());
            first = false;
        }
        let extra = o.conmon.iter().filter(|c| !o.names.contains(c));
        let mut opened = false;
        for n in extra {
            out(if opened {
                b", "
            } else if first {
                b"["
            } else {
                b" ["
            });
            out(n.as_bytes());
            opened = true;
        }
        if opened {
            out(b"]");
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
        assert!(!c.conmon);
        assert_eq!(c.id.unwrap().to_bytes(), b"a");
        assert_eq!(c.bundle.unwrap().to_bytes(), b"/b");
        let ra: Vec<_> = c.runtime_args.iter().map(|s| s.to_bytes()).collect();
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
        assert_eq!(run(&["--log", "x"]).err(), Some(Usage::NoSuchDriver(b"x")));
        assert_eq!(run(&["--log", "/x"]).err(), Some(Usage::Required("--id")));
        assert_eq!(run(&["--id", "a", "stray"]).err(), Some(Usage::Unexpected(b"stray")));
        assert_eq!(run(&["--id", "a", "--help=1"]).err(), Some(Usage::NoValueAllowed(b"--help")));
        assert_eq!(run(&["--id", ""]).err(), Some(Usage::BadValue(b"--id", b"")));
        assert_eq!(run(&["--id", "a", "--exit-command-arg", ""]).ok().map(|c| c.exit_args.len()), Some(1));
        assert_eq!(run(&["-x"]).err(), Some(Usage::Unknown(b"-x")));
        let mut many = vec!["--id", "a"];
        many.extend(std::iter::repeat_n("--runtime-arg=x", MAX_RUNTIME_ARGS + 1));
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
            for n in o.names.iter().chain(o.conmon) {
                assert!(text.contains(n), "help lists {n}");
            }
        }
    }

    #[test]
    fn podman_command_line() {
        let c = run(&[
            "--api-version",
            "1",
            "-c",
            "abc",
            "-u",
            "abc",
            "-r",
            "/usr/sbin/runc",
            "-b",
            "/b",
            "-p",
            "/b/pidfile",
            "-n",
            "name",
            "--exit-dir",
            "/e",
            "--full-attach",
            "-s",
            "-l",
            "k8s-file:/b/ctr.log",
            "--log-level",
            "warning",
            "--runtime-arg",
            "--log-format=json",
            "--runtime-arg",
            "--log",
            "--runtime-arg=/b/oci-log",
            "--conmon-pidfile",
            "/b/conmon.pid",
            "--exit-command",
            "/usr/bin/podman",
            "--exit-command-arg",
            "--root",
            "--exit-command-arg",
            "/var/lib/containers/storage",
            "--exit-command-arg",
            "container",
        ])
        .unwrap();
        assert!(c.conmon && c.api_version && c.full_attach && c.systemd_cgroup);
        assert_eq!(c.id.unwrap().to_bytes(), b"abc");
        assert_eq!(c.log.unwrap().to_bytes(), b"/b/ctr.log");
        assert_eq!(c.shim_pidfile.unwrap().to_bytes(), b"/b/conmon.pid");
        assert_eq!(c.runtime_args.len(), 3);
        assert_eq!(c.exit_args.iter().map(|a| a.to_bytes().len()).sum::<usize>(), 6 + 27 + 9);
        assert_eq!(c.sync_key(false), b"data");
    }

    #[test]
    fn crio_command_line() {
        let c = run(&[
            "-b",
            "/b",
            "-c",
            "id",
            "--exit-dir",
            "/e",
            "-l",
            "/var/log/x.log",
            "--log-level",
            "error",
            "-n",
            "n",
            "-P",
            "/b/conmon-pidfile",
            "-p",
            "/b/pidfile",
            "--persist-dir",
            "/p",
            "-r",
            "/usr/sbin/runc",
            "--runtime-arg",
            "--root=/r",
            "--socket-dir-path",
            "/s",
            "--syslog",
            "-u",
            "id",
            "--leave-stdin-open",
            "-i",
        ])
        .unwrap();
        assert!(c.conmon && !c.api_version && c.stdin && c.leave_stdin_open && c.syslog);
        assert_eq!(c.log.unwrap().to_bytes(), b"/var/log/x.log");
        assert_eq!(c.sync_key(false), b"pid");
        assert_eq!(c.sync_key(true), b"exit_code");
    }

    #[test]
    fn conmon_checks() {
        assert_eq!(run(&["-r", "/x", "-u", "u"]).err(), Some(Usage::Conmon("Container ID not provided. Use --cid")));
        assert_eq!(run(&["-c", "a", "-u", "u"]).err(), Some(Usage::Conmon("Runtime path not provided. Use --runtime")));
        assert_eq!(
            run(&["-c", "a", "-r", "/x"]).err(),
            Some(Usage::Conmon("Container UUID not provided. Use --cuuid"))
        );
        assert_eq!(run(&["-c", "a", "-u", "u", "-r", "/x", "-l", "bogus"]).err(), Some(Usage::NoSuchDriver(b"bogus")));
        assert_eq!(
            run(&["-c", "a", "-u", "u", "-r", "/x", "--restore", "/c"]).err(),
            Some(Usage::Unsupported(b"--restore"))
        );
        let c = run(&["-c", "a", "-u", "u", "-r", "/x", "-l", "journald", "-l", "none", "-l", "passthrough"]).unwrap();
        assert!(c.journald && c.passthrough && c.log.is_none());
        // CRI-O ExecSync: no uuid needed without the API version.
        let c = run(&["-c", "a", "-r", "/x", "-e", "--exec-process-spec", "/s", "-T", "5"]).unwrap();
        assert!(c.exec && c.timeout == 5);
    }

    /// A cheap deterministic fuzz of the parser: many generated argv sets
    /// mixing real option names (both styles), `=` forms, stray words,
    /// empty, long and non-UTF-8 values. Parsing never panics, and every
    /// error renders as one line.
    #[test]
    fn generated_command_lines_never_panic() {
        let mut seed: u64 = 0x5eed_1234_abcd_0001;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let names: Vec<&str> = OPTIONS.iter().flat_map(|o| o.names.iter().chain(o.conmon.iter())).copied().collect();
        let values: [&[u8]; 9] = [
            b"",
            b"1",
            b"-1",
            b"x",
            b"k8s-file:/tmp/l",
            b"journald",
            b"/abs/path",
            b"\xff\xfe",
            b"99999999999999999999",
        ];
        for _ in 0..20_000 {
            let n = (next() % 12) as usize;
            let mut words: Vec<Vec<u8>> = Vec::new();
            for _ in 0..n {
                let r = next();
                let name = names[(r % names.len() as u64) as usize].as_bytes().to_vec();
                let val = values[((r >> 16) % values.len() as u64) as usize].to_vec();
                match (r >> 32) % 6 {
                    0 => words.push(name),
                    1 => {
                        words.push(name);
                        words.push(val);
                    }
                    2 => words.push([&name[..], b"=", &val[..]].concat()),
                    3 => words.push(val),
                    4 => words.push(vec![b'a'; (r >> 40) as usize % 5000]),
                    _ => words.push(b"--no-such-option".to_vec()),
                }
            }
            let owned: Vec<std::ffi::CString> = words
                .into_iter()
                .map(|w| std::ffi::CString::new(w.into_iter().filter(|&b| b != 0).collect::<Vec<u8>>()).unwrap())
                .collect();
            let refs: Vec<&CStr> = owned.iter().map(|c| c.as_c_str()).collect();
            if let Err(u) = parse(refs.iter().copied()) {
                let mut b: crate::buf::Buf<512> = crate::buf::Buf::new();
                u.write_to(&mut b);
                assert!(!b.is_empty() && !b.as_bytes().contains(&b'\n'));
            }
        }
    }
}
