//! The command line: one table of options. Each option has shimlet's own
//! names and conmon's spellings, so podman and CRI-O can run shimlet as
//! they run conmon, with one parser, one help text and one place to look.
//!
//! `--opt value`, `--opt=value`, `-o value` and `-ovalue` all work. Values
//! are borrowed from argv, which lives as long as the process: nothing is
//! copied, nothing is allocated. Repeatable options are not stored at all:
//! the config keeps argv (`Args`) and walks it again for their values, in
//! order (`Config::values`), so any number of them costs nothing resident.
//!
//! A command line that uses any spelling only conmon has is a conmon
//! command line: its usage errors use conmon's texts, in conmon 2.2's order
//! of checks, and exit status 1, stray words are ignored (podman passes
//! `--api-version 1`), and the defaults are conmon's (attach socket and ctl
//! FIFO in the bundle, the container pidfile at `CWD/pidfile-ID`, a log
//! driver is required).

use core::ffi::{c_char, CStr};

use crate::sys::Errno;

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
    LogRotate,
    LogMaxFiles,
    LogAllowlistDir,
    LogTag,
    LogLabel,
    NoPartial,
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
    Restore,
    SdNotify,
    ReplaceListenPid,
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
    /// Accepted and ignored, as conmon itself ignores it.
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
        "argument placed after `create`/`exec`/`restore`'s own (repeatable; `--preserve-fds N` keeps fds 3..N+2)"
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
        "log: FILE, k8s-file:FILE, :FILE, journald, passthrough, none (repeatable)"
    ),
    opt!(
        LogSizeMax,
        ["--log-size-max"],
        ["--log-size-max"],
        One,
        "BYTES",
        "before the log file passes BYTES, start it anew (or rotate, --log-rotate)"
    ),
    opt!(
        LogGlobalSizeMax,
        ["--log-global-size-max"],
        ["--log-global-size-max"],
        One,
        "BYTES",
        "stop logging after BYTES in all"
    ),
    opt!(LogRotate, ["--log-rotate"], ["--log-rotate"], No, "", "at --log-size-max keep FILE.1 .. FILE.N, not nothing"),
    opt!(
        LogMaxFiles,
        ["--log-max-files"],
        ["--log-max-files"],
        One,
        "N",
        "--log-rotate: how many old files (default 1)"
    ),
    opt!(
        LogAllowlistDir,
        ["--log-allowlist-dir"],
        ["--log-allowlist-dir"],
        Many,
        "DIR",
        "the log file must be inside one of these (repeatable)"
    ),
    opt!(LogTag, ["--log-tag"], ["--log-tag"], One, "TAG", "journald CONTAINER_TAG and SYSLOG_IDENTIFIER"),
    opt!(LogLabel, ["--log-label"], ["--log-label"], Many, "K=V", "journald: an extra field K=V (repeatable)"),
    opt!(
        NoPartial,
        ["--no-container-partial-message"],
        ["--no-container-partial-message"],
        No,
        "",
        "journald: no CONTAINER_PARTIAL_MESSAGE on pieces of lines"
    ),
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
    opt!(Ctl, ["--ctl"], [], One, "PATH", "control FIFO: `1 ROWS COLS` resizes, `2 0 0` starts the log anew"),
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
    opt!(Restore, ["--restore"], ["--restore"], One, "DIR", "`RUNTIME restore` from the checkpoint in DIR, not create"),
    opt!(
        SdNotify,
        ["--sdnotify-socket"],
        ["--sdnotify-socket"],
        One,
        "PATH",
        "relay the container's sd_notify messages (BUNDLE/notify/notify.sock) to PATH"
    ),
    opt!(
        ReplaceListenPid,
        ["--replace-listen-pid"],
        ["--replace-listen-pid"],
        No,
        "",
        "socket activation: the runtime gets LISTEN_PID set to its own pid"
    ),
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
        ["--seccomp-notify-plugins"],
        One,
        "X",
        "accepted, no effect (conmon uses it only with --seccomp-notify-socket)"
    ),
    opt!(Unsupported, [], ["--seccomp-notify-socket"], One, "X", "not supported: refused (conmon's seccomp plugins)"),
    opt!(Help, ["--help", "-h"], [], No, "", "print this help and exit"),
    opt!(Version, ["--version"], ["--version"], No, "", "print the version and exit"),
];

/// The words of the command line (after the program name), as thin
/// pointers into argv, which lives as long as the process.
#[derive(Clone, Copy)]
pub struct Args<'a> {
    ptrs: &'a [*const c_char],
}

impl<'a> Args<'a> {
    /// # Safety
    /// Every pointer is a C string that lives (unchanged) for `'a`.
    pub const unsafe fn new(ptrs: &'a [*const c_char]) -> Args<'a> {
        Args { ptrs }
    }

    pub const fn empty() -> Args<'a> {
        Args { ptrs: &[] }
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a CStr> + Clone + 'a {
        // SAFETY: see `new`.
        self.ptrs.iter().map(|&p| unsafe { CStr::from_ptr(p) })
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

/// Diagnostic levels (the diagnostics module owns them).
pub use crate::diag::level;

#[derive(Clone, Copy)]
pub struct Config<'a> {
    /// A conmon command line (see the module comment).
    pub conmon: bool,
    /// The whole command line, for the repeatable options (`values`).
    pub args: Args<'a>,
    pub id: Option<&'a CStr>,
    pub cuuid: Option<&'a CStr>,
    pub name: Option<&'a CStr>,
    pub bundle: Option<&'a CStr>,
    pub runtime: Option<&'a CStr>,
    pub pidfile: Option<&'a CStr>,
    pub shim_pidfile: Option<&'a CStr>,
    /// The k8s-file log path, if that driver is on.
    pub log: Option<&'a CStr>,
    pub journald: bool,
    pub passthrough: bool,
    /// A `-l` was given (conmon requires one).
    pub any_log: bool,
    pub log_size_max: Option<u64>,
    pub log_global_size_max: Option<u64>,
    pub log_rotate: bool,
    /// Old files kept with --log-rotate (1 or more).
    pub log_max_files: u32,
    /// Some --log-allowlist-dir was given.
    pub log_allowlist: bool,
    /// Some --log-label was given.
    pub log_labels: bool,
    pub no_partial: bool,
    pub log_tag: Option<&'a CStr>,
    /// `level::*`.
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
    pub restore: Option<&'a CStr>,
    pub sdnotify: Option<&'a CStr>,
    pub replace_listen_pid: bool,
    pub exit_command: Option<&'a CStr>,
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
            args: Args::empty(),
            id: None,
            cuuid: None,
            name: None,
            bundle: None,
            runtime: None,
            pidfile: None,
            shim_pidfile: None,
            log: None,
            journald: false,
            passthrough: false,
            any_log: false,
            log_size_max: None,
            log_global_size_max: None,
            log_rotate: false,
            log_max_files: 1,
            log_allowlist: false,
            log_labels: false,
            no_partial: false,
            log_tag: None,
            log_level: level::WARN,
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
            restore: None,
            sdnotify: None,
            replace_listen_pid: false,
            exit_command: None,
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

    /// The values of a repeatable option, in command-line order.
    pub fn values(&self, key: Key) -> impl Iterator<Item = &'a CStr> + 'a {
        values(self.args.iter(), self.conmon, key)
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

/// What is wrong with a label (`--log-label`), in conmon's words.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum BadLabel {
    NoName,
    NotOneEquals,
    BadName,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Usage<'a> {
    Unknown(&'a [u8]),
    MissingValue(&'a [u8]),
    NoValueAllowed(&'a [u8]),
    BadValue(&'a [u8], &'a [u8]),
    /// GLib's words for an integer option's value.
    NotInteger(&'a [u8], &'a [u8]),
    OutOfRange(&'a [u8], &'a [u8]),
    TooMany(&'a [u8]),
    Unexpected(&'a [u8]),
    Required(&'static str),
    /// A conmon check, with conmon's own words.
    Conmon(&'static str),
    MaxFilesNegative(i64),
    MaxFilesZero,
    NoSuchLevel(&'a [u8]),
    RuntimeInvalid(&'a [u8], Errno),
    NoSuchDriver(&'a [u8]),
    Label(BadLabel, &'a [u8]),
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
            Usage::NotInteger(o, v) => {
                out.push("Cannot parse integer value “".as_bytes());
                out.push(v);
                out.push("” for ".as_bytes());
                out.push(o);
            }
            Usage::OutOfRange(o, v) => {
                out.push("Integer value “".as_bytes());
                out.push(v);
                out.push("” for ".as_bytes());
                out.push(o);
                out.push(b" out of range");
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
            Usage::MaxFilesNegative(n) => {
                out.push(b"log-max-files must be non-negative, got ");
                out.push_i64(n);
            }
            Usage::MaxFilesZero => {
                out.push(b"log-max-files must be at least 1 when log-rotate is enabled, got 0");
            }
            Usage::NoSuchLevel(l) => {
                out.push(b"No such log level ");
                out.push(l);
            }
            Usage::RuntimeInvalid(p, e) => {
                out.push(b"Runtime path ");
                out.push(p);
                out.push(b" is not valid: ");
                out.push(crate::sys::text(e));
            }
            Usage::NoSuchDriver(d) => {
                out.push(b"No such log driver ");
                out.push(d);
            }
            Usage::Label(why, l) => {
                out.push(match why {
                    BadLabel::NoName => b"Container labels must be in format LABEL=VALUE (no LABEL present in '",
                    BadLabel::NotOneEquals => {
                        b"Container labels must be in format LABEL=VALUE (none or more than one '=' present in '"
                    }
                    BadLabel::BadName => {
                        b"Container label names must contain only uppercase letters, numbers and underscore (in '"
                    }
                });
                out.push(l);
                out.push(b"')");
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

/// The options of a command line, one at a time, with their values (`""`
/// for a flag).
struct Opts<I> {
    args: I,
    conmon: bool,
}

impl<'a, I: Iterator<Item = &'a CStr>> Iterator for Opts<I> {
    type Item = Result<(&'static Opt, &'a CStr), Usage<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let word = self.args.next()?;
        Some(self.one(word))
    }
}

impl<'a, I: Iterator<Item = &'a CStr>> Opts<I> {
    fn one(&mut self, word: &'a CStr) -> Result<(&'static Opt, &'a CStr), Usage<'a>> {
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
        } else if self.conmon {
            // GLib leaves stray words alone; so does conmon.
            return Ok((&STRAY, c""));
        } else {
            return Err(Usage::Unexpected(w));
        };
        let name = opt_name(opt);
        let value = match opt.arg {
            Arg::No => {
                if inline.is_some() {
                    return Err(Usage::NoValueAllowed(name));
                }
                c""
            }
            _ => match inline {
                Some(v) => v,
                None => self.args.next().ok_or(Usage::MissingValue(name))?,
            },
        };
        Ok((opt, value))
    }
}

/// A stray word of a conmon command line.
static STRAY: Opt = opt!(Ignored, [], [], No, "", "");

/// The name an option is called by in messages.
fn opt_name(opt: &'static Opt) -> &'static [u8] {
    opt.names.first().or(opt.conmon.last()).map(|n| n.as_bytes()).unwrap_or(b"?")
}

/// The values of the repeatable option `key`, in order.
fn values<'a>(
    args: impl Iterator<Item = &'a CStr> + 'a,
    conmon: bool,
    key: Key,
) -> impl Iterator<Item = &'a CStr> + 'a {
    Opts { args, conmon }.filter_map(move |r| r.ok().filter(|(o, _)| o.key == key).map(|(_, v)| v))
}

/// An integer as GLib reads one (strtol with base 0: an optional sign,
/// then decimal, `0x` hexadecimal or `0` octal, the whole word), within
/// `min..=max`.
fn int<'a>(name: &'a [u8], v: &'a CStr, min: i64, max: i64) -> Result<i64, Usage<'a>> {
    let b = v.to_bytes();
    let bad = Usage::NotInteger(name, b);
    let mut s = b;
    while let [c, rest @ ..] = s {
        if !matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
            break;
        }
        s = rest;
    }
    let neg = s.first() == Some(&b'-');
    if matches!(s.first(), Some(b'-' | b'+')) {
        s = &s[1..];
    }
    let (radix, digits) = match s {
        [b'0', b'x' | b'X', rest @ ..] if rest.first().is_some_and(|c| c.is_ascii_hexdigit()) => (16, rest),
        [b'0', rest @ ..] if !rest.is_empty() => (8, rest),
        _ => (10, s),
    };
    if digits.is_empty() {
        return Err(bad);
    }
    let mut val: i128 = 0;
    for &c in digits {
        let d = match (c as char).to_digit(radix) {
            Some(d) => d,
            None => return Err(bad),
        };
        val = (val * radix as i128 + d as i128).min(i128::from(i64::MAX) + 2);
    }
    let val = if neg { -val } else { val };
    if val < min as i128 || val > max as i128 {
        return Err(Usage::OutOfRange(name, b));
    }
    Ok(val as i64)
}

fn number<'a>(name: &'a [u8], v: &'a CStr, max: u64) -> Result<u64, Usage<'a>> {
    crate::buf::parse_u64(v.to_bytes(), max).ok_or(Usage::BadValue(name, v.to_bytes()))
}

/// One `-l` value, as conmon reads it: the part before the first colon is
/// the driver, the rest its path. No colon: the whole value is a k8s-file
/// path; a leading colon: what follows is. conmon also drops whatever
/// follows a second colon (`k8s-file:/a:b` would log to `/a`); shimlet
/// keeps the whole path.
fn set_log<'a>(c: &mut Config<'a>, v: &'a CStr) -> Result<(), Usage<'a>> {
    let b = v.to_bytes();
    let colon = b.iter().position(|&x| x == b':');
    // conmon's strtok skips runs of colons: `:` and `::` hold nothing,
    // `::P` is `:P`, `k8s-file::P` is `k8s-file:P`.
    let (driver, path): (&[u8], Option<&'a CStr>) = match colon {
        None => (b, None),
        Some(i) => {
            let from = b[i..].iter().position(|&x| x != b':').map_or(b.len(), |n| i + n);
            (&b[..i], Some(tail(v, from)).filter(|r| !r.is_empty()))
        }
    };
    if driver.is_empty() && path.is_none() {
        return Err(Usage::Conmon("log-path must not be empty"));
    }
    if driver.is_empty() {
        // `:PATH`: a file, even one named `journald` or `none`.
        c.log = path;
        return Ok(());
    }
    let d = match driver {
        b"off" | b"null" | b"none" => Driver::None,
        b"passthrough" => Driver::Passthrough,
        b"journald" => Driver::Journald,
        b"k8s-file" => Driver::K8sFile,
        _ if colon.is_none() => {
            c.log = Some(v);
            return Ok(());
        }
        _ => return Err(Usage::NoSuchDriver(driver)),
    };
    match d {
        Driver::K8sFile => match path {
            Some(p) => c.log = Some(p),
            None => return Err(Usage::Conmon("k8s-file requires a filename")),
        },
        Driver::Journald => c.journald = true,
        Driver::Passthrough => c.passthrough = true,
        Driver::None => {}
    }
    Ok(())
}

/// Whether a `--log-label` is `NAME=VALUE` with a NAME of [A-Z0-9_].
pub fn check_label(l: &[u8]) -> Result<(), BadLabel> {
    if l.first() == Some(&b'=') {
        return Err(BadLabel::NoName);
    }
    if l.iter().filter(|&&b| b == b'=').count() != 1 {
        return Err(BadLabel::NotOneEquals);
    }
    let name = &l[..l.iter().position(|&b| b == b'=').unwrap_or(l.len())];
    if !name.iter().all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
        return Err(BadLabel::BadName);
    }
    Ok(())
}

fn log_level(v: &[u8]) -> Option<u8> {
    let is = |s: &[u8]| v.eq_ignore_ascii_case(s);
    Some(if is(b"error") || is(b"fatal") || is(b"panic") {
        level::ERROR
    } else if is(b"warn") || is(b"warning") {
        level::WARN
    } else if is(b"info") {
        level::INFO
    } else if is(b"debug") {
        level::DEBUG
    } else if is(b"trace") {
        level::TRACE
    } else {
        return None;
    })
}

/// Whether these words make a conmon command line.
pub fn is_conmon<'a>(mut args: impl Iterator<Item = &'a CStr>) -> bool {
    args.any(|w| matches!(lookup(name_of(w.to_bytes())), Some((_, true))))
}

#[inline(never)]
pub fn parse(args: Args<'_>) -> Result<Action<'_>, Usage<'_>> {
    let mut c = Config::empty();
    // First pass: is this a conmon command line? It decides how errors and
    // stray words are treated, wherever the conmon spelling stands.
    c.conmon = is_conmon(args.iter());
    c.args = args;
    let mut want_help = false;
    let mut want_version = false;
    let mut max_files: Option<(&[u8], &CStr)> = None;
    let (mut n_args, mut n_opts, mut n_exit) = (0, 0, 0);
    let mut negative_delay = false;
    for r in (Opts { args: args.iter(), conmon: c.conmon }) {
        let (opt, v) = r?;
        let name = opt_name(opt);
        // An empty id is never useful; other empty values are legitimate
        // (podman passes empty exit-command arguments) or fail later with
        // a clear error.
        if opt.key == Key::Id && v.is_empty() {
            return Err(Usage::BadValue(name, b""));
        }
        let count = |n: &mut usize, max: usize| {
            *n += 1;
            if *n > max {
                Err(Usage::TooMany(name))
            } else {
                Ok(())
            }
        };
        match opt.key {
            Key::Id => c.id = Some(v),
            Key::Cuuid => c.cuuid = Some(v),
            Key::Name => c.name = Some(v),
            Key::Bundle => c.bundle = Some(v),
            Key::Runtime => c.runtime = Some(v),
            Key::RuntimeArg => count(&mut n_args, MAX_RUNTIME_ARGS)?,
            Key::RuntimeOpt => count(&mut n_opts, MAX_RUNTIME_OPTS)?,
            Key::ExitCommandArg => count(&mut n_exit, MAX_EXIT_ARGS)?,
            Key::Pidfile => c.pidfile = Some(v),
            Key::ShimPidfile => c.shim_pidfile = Some(v),
            // Checked in conmon's order, below.
            Key::Log | Key::LogLabel | Key::LogLevel => {}
            Key::LogSizeMax => {
                c.log_size_max = Some(int(name, v, i64::MIN, i64::MAX)?).filter(|&n| n > 0).map(|n| n as u64)
            }
            Key::LogGlobalSizeMax => {
                c.log_global_size_max = Some(int(name, v, i64::MIN, i64::MAX)?).filter(|&n| n > 0).map(|n| n as u64)
            }
            Key::LogRotate => c.log_rotate = true,
            Key::LogMaxFiles => {
                int(name, v, i32::MIN as i64, i32::MAX as i64)?;
                max_files = Some((name, v));
            }
            Key::LogAllowlistDir => c.log_allowlist = true,
            Key::NoPartial => c.no_partial = true,
            Key::LogTag => c.log_tag = Some(v),
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
            Key::Restore => c.restore = Some(v),
            Key::SdNotify => c.sdnotify = Some(v),
            Key::ReplaceListenPid => c.replace_listen_pid = true,
            Key::ExitCommand => c.exit_command = Some(v),
            Key::ExitDelay => {
                let d = int(name, v, i32::MIN as i64, i32::MAX as i64)?;
                // A negative delay is refused after the other checks, as
                // conmon does.
                negative_delay = d < 0;
                c.exit_delay = d.max(0) as u32;
            }
            Key::Timeout => c.timeout = int(name, v, i32::MIN as i64, i32::MAX as i64)?.max(0) as u32,
            Key::ApiVersion => c.api_version = true,
            Key::SystemdCgroup => c.systemd_cgroup = true,
            Key::NoPivot => c.no_pivot = true,
            Key::NoNewKeyring => c.no_new_keyring = true,
            Key::FullAttach => c.full_attach = true,
            Key::SocketDir => c.socket_dir = Some(v),
            Key::Sync => c.sync = true,
            Key::Ignored => {}
            Key::Unsupported => return Err(Usage::Unsupported(name)),
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
    if let Some((name, v)) = max_files {
        let n = int(name, v, i32::MIN as i64, i32::MAX as i64)?;
        if n < 0 {
            return Err(Usage::MaxFilesNegative(n));
        }
        if n == 0 && c.log_rotate {
            return Err(Usage::MaxFilesZero);
        }
        c.log_max_files = (n as u32).max(1);
    }
    check(&mut c, negative_delay)?;
    Ok(Action::Run(c))
}

/// What must hold after parsing, in conmon's words and conmon's order on a
/// conmon command line; the log drivers are read here.
fn check<'a>(c: &mut Config<'a>, negative_delay: bool) -> Result<(), Usage<'a>> {
    if c.id.is_none() {
        // A bare command line gets conmon's words too (conmon's own suite
        // runs it so), with shimlet's status and hint.
        return Err(if c.conmon || c.args.iter().next().is_none() {
            Usage::Conmon("Container ID not provided. Use --cid")
        } else {
            Usage::Required("--id")
        });
    }
    if let Some(l) = c.values(Key::LogLevel).last() {
        c.log_level = log_level(l.to_bytes()).ok_or(Usage::NoSuchLevel(l.to_bytes()))?;
    }
    if c.restore.is_some() && c.exec {
        return Err(Usage::Conmon("Cannot use 'exec' and 'restore' at the same time"));
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
        let Some(runtime) = c.runtime else {
            return Err(Usage::Conmon("Runtime path not provided. Use --runtime"));
        };
        if let Err(e) = crate::sys::executable(runtime) {
            return Err(Usage::RuntimeInvalid(runtime.to_bytes(), e));
        }
    }
    if c.exec && c.exec_spec.is_none() {
        return Err(Usage::Conmon("Exec process spec path not provided. Use --exec-process-spec"));
    }
    if negative_delay {
        return Err(Usage::Conmon("Delay before invoking exit command must be greater than or equal to 0"));
    }
    for v in c.values(Key::Log) {
        c.any_log = true;
        set_log(c, v)?;
    }
    if c.conmon && !c.any_log {
        return Err(Usage::Conmon("Log driver not provided. Use --log-path"));
    }
    c.log_labels = c.values(Key::LogLabel).next().is_some();
    if c.log.is_some() && !c.journald {
        if c.log_tag.is_some() {
            return Err(Usage::Conmon("k8s-file doesn't support --log-tag"));
        }
        if c.log_labels {
            return Err(Usage::Conmon("k8s-file doesn't support --log-label"));
        }
    }
    if c.journald {
        if c.conmon && c.id.is_some_and(|i| i.to_bytes().len() <= 12) {
            return Err(Usage::Conmon("Container ID must be longer than 12 characters"));
        }
        for l in c.values(Key::LogLabel) {
            check_label(l.to_bytes()).map_err(|why| Usage::Label(why, l.to_bytes()))?;
        }
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

    fn args(v: &[&str]) -> Args<'static> {
        let ptrs: Vec<*const c_char> =
            v.iter().map(|s| CString::new(*s).unwrap().into_raw() as *const c_char).collect();
        let ptrs: &'static [*const c_char] = Box::leak(ptrs.into_boxed_slice());
        // SAFETY: the strings are leaked: they live for the test's life.
        unsafe { Args::new(ptrs) }
    }

    fn run(v: &[&str]) -> Result<Config<'static>, Usage<'static>> {
        match parse(args(v))? {
            Action::Run(c) => Ok(c),
            _ => panic!("not a run"),
        }
    }

    /// A conmon command line with what conmon requires, plus `extra`.
    fn conmon(extra: &[&str]) -> Result<Config<'static>, Usage<'static>> {
        let mut v = vec!["-c", "0123456789abcdef", "-u", "u", "-r", "/bin/sh"];
        v.extend_from_slice(extra);
        run(&v)
    }

    fn text(u: Usage) -> String {
        let mut b: crate::buf::Buf<512> = crate::buf::Buf::new();
        u.write_to(&mut b);
        String::from_utf8_lossy(b.as_bytes()).into_owned()
    }

    #[test]
    fn both_value_forms() {
        let c = run(&["--id", "a", "--bundle=/b", "--runtime-arg=--root=/r", "--runtime-arg", "--debug"]).unwrap();
        assert!(!c.conmon);
        assert_eq!(c.id.unwrap().to_bytes(), b"a");
        assert_eq!(c.bundle.unwrap().to_bytes(), b"/b");
        let ra: Vec<_> = c.values(Key::RuntimeArg).map(|s| s.to_bytes()).collect();
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
        assert_eq!(run(&["--log", "/x"]).err(), Some(Usage::Required("--id")));
        assert_eq!(run(&["--id", "a", "stray"]).err(), Some(Usage::Unexpected(b"stray")));
        assert_eq!(run(&["--id", "a", "--help=1"]).err(), Some(Usage::NoValueAllowed(b"--help")));
        assert_eq!(run(&["--id", ""]).err(), Some(Usage::BadValue(b"--id", b"")));
        assert_eq!(
            run(&["--id", "a", "--exit-command-arg", ""]).ok().map(|c| c.values(Key::ExitCommandArg).count()),
            Some(1)
        );
        assert_eq!(run(&["-x"]).err(), Some(Usage::Unknown(b"-x")));
        let mut many = vec!["--id", "a"];
        many.extend(std::iter::repeat_n("--runtime-arg=x", MAX_RUNTIME_ARGS + 1));
        assert_eq!(run(&many).err(), Some(Usage::TooMany(b"--runtime-arg")));
    }

    #[test]
    fn help_and_version_need_no_id() {
        assert!(matches!(parse(args(&["--help"])), Ok(Action::Help)));
        assert!(matches!(parse(args(&["-h"])), Ok(Action::Help)));
        assert!(matches!(parse(args(&["--version"])), Ok(Action::Version)));
        // --version comes before the --log-max-files checks (conmon's order).
        assert!(matches!(parse(args(&["--log-max-files", "-1", "--version"])), Ok(Action::Version)));
        // ... but after option parsing.
        assert!(matches!(parse(args(&["--version", "--bogus"])), Err(Usage::Unknown(b"--bogus"))));
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
            "/bin/sh",
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
            "--runtime-opt",
            "--preserve-fds",
            "--runtime-opt",
            "2",
        ])
        .unwrap();
        assert!(c.conmon && c.api_version && c.full_attach && c.systemd_cgroup);
        assert_eq!(c.id.unwrap().to_bytes(), b"abc");
        assert_eq!(c.log.unwrap().to_bytes(), b"/b/ctr.log");
        assert_eq!(c.shim_pidfile.unwrap().to_bytes(), b"/b/conmon.pid");
        assert_eq!(c.values(Key::RuntimeArg).count(), 3);
        assert_eq!(c.values(Key::ExitCommandArg).map(|a| a.to_bytes().len()).sum::<usize>(), 6 + 27 + 9);
        let opts: Vec<_> = c.values(Key::RuntimeOpt).map(|s| s.to_bytes()).collect();
        assert_eq!(opts, vec![&b"--preserve-fds"[..], b"2"]);
        assert_eq!(c.sync_key(false), b"data");
        assert_eq!(c.log_level, level::WARN);
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
            "/bin/sh",
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
        assert_eq!(c.log_level, level::ERROR);
    }

    #[test]
    fn conmon_checks_in_conmons_order() {
        let t = |v: &[&str]| text(run(v).err().expect("an error"));
        assert_eq!(t(&["-r", "/x", "-u", "u"]), "Container ID not provided. Use --cid");
        assert_eq!(run(&[]).err(), Some(Usage::Conmon("Container ID not provided. Use --cid")));
        assert_eq!(t(&["-c", "a", "--log-level", "loud"]), "No such log level loud");
        assert_eq!(
            t(&["-c", "a", "-r", "/x", "-e", "--restore", "/c"]),
            "Cannot use 'exec' and 'restore' at the same time"
        );
        assert_eq!(t(&["-c", "a", "--exec-attach"]), "Attach can only be specified with exec");
        assert_eq!(
            t(&["-c", "a", "-e", "--exec-attach"]),
            "Attach can only be specified for a non-legacy exec session"
        );
        assert_eq!(t(&["-c", "a", "-r", "/x"]), "Container UUID not provided. Use --cuuid");
        assert_eq!(t(&["-c", "a", "-u", "u"]), "Runtime path not provided. Use --runtime");
        assert!(t(&["-c", "a", "-u", "u", "-r", "/nonexistent", "-l", "bogus:"])
            .starts_with("Runtime path /nonexistent is not valid: "));
        assert_eq!(
            t(&["-c", "a", "-u", "u", "-r", "/bin/sh", "-e", "--api-version"]),
            "Exec process spec path not provided. Use --exec-process-spec"
        );
        assert_eq!(
            t(&["-c", "a", "-u", "u", "-r", "/bin/sh", "--exit-delay", "-1"]),
            "Delay before invoking exit command must be greater than or equal to 0"
        );
        assert_eq!(t(&["-c", "a", "-u", "u", "-r", "/bin/sh"]), "Log driver not provided. Use --log-path");
        // CRI-O ExecSync: no uuid needed without the API version.
        let c = run(&["-c", "a", "-r", "/bin/sh", "-e", "--exec-process-spec", "/s", "-T", "5", "-l", "none"]).unwrap();
        assert!(c.exec && c.timeout == 5);
        assert_eq!(
            run(&["-c", "a", "-u", "u", "-r", "/x", "--seccomp-notify-socket", "/s"]).err(),
            Some(Usage::Unsupported(b"--seccomp-notify-socket"))
        );
    }

    #[test]
    fn log_drivers_as_conmon_reads_them() {
        let ok = |l: &str| conmon(&["-l", l]).unwrap_or_else(|e| panic!("-l {l:?}: {}", text(e)));
        let err = |l: &str| text(conmon(&["-l", l]).err().unwrap_or_else(|| panic!("-l {l:?} should fail")));
        for l in ["", ":", "::"] {
            assert_eq!(err(l), "log-path must not be empty", "-l {l:?}");
        }
        for l in ["k8s-file", "k8s-file:", "k8s-file::"] {
            assert_eq!(err(l), "k8s-file requires a filename", "-l {l:?}");
        }
        assert_eq!(err("invalid:/x"), "No such log driver invalid");
        assert_eq!(err("invalid:"), "No such log driver invalid");
        assert_eq!(err("/a/b:c"), "No such log driver /a/b");
        let path = |l: &str| ok(l).log.map(|p| String::from_utf8_lossy(p.to_bytes()).into_owned());
        assert_eq!(path("/x/ctr.log").as_deref(), Some("/x/ctr.log"));
        assert_eq!(path("ctr.log").as_deref(), Some("ctr.log"));
        assert_eq!(path("k8s-file:/x/l").as_deref(), Some("/x/l"));
        assert_eq!(path("k8s-file::/x/l").as_deref(), Some("/x/l"));
        assert_eq!(path(":/x/l").as_deref(), Some("/x/l"));
        assert_eq!(path("::/x/l").as_deref(), Some("/x/l"));
        // A path with a colon, after a driver, stays whole (conmon cuts it).
        assert_eq!(path("k8s-file:/a:b").as_deref(), Some("/a:b"));
        // `:journald` and `:none` are files of that name.
        assert_eq!(path(":journald").as_deref(), Some("journald"));
        assert_eq!(path(":none").as_deref(), Some("none"));
        for l in ["journald", "journald:", "journald:/ignored"] {
            let c = ok(l);
            assert!(c.journald && c.log.is_none(), "-l {l:?}");
        }
        for l in ["none", "none:", "off", "off:", "null", "null:"] {
            let c = ok(l);
            assert!(!c.journald && c.log.is_none() && !c.passthrough && c.any_log, "-l {l:?}");
        }
        assert!(ok("passthrough").passthrough);
        // Repeated: in order, the last file wins, none changes nothing.
        let c = conmon(&["-l", "k8s-file:/a", "-l", "journald", "-l", "none", "-l", "/b"]).unwrap();
        assert!(c.journald && c.log.unwrap().to_bytes() == b"/b");
        assert_eq!(text(conmon(&["-l", "/a", "-l", "bad:x"]).err().unwrap()), "No such log driver bad");
    }

    #[test]
    fn k8s_file_tag_and_label_and_journald_id() {
        let t = |v: &[&str]| text(conmon(v).err().expect("an error"));
        assert_eq!(t(&["-l", "/x", "--log-tag", "t"]), "k8s-file doesn't support --log-tag");
        assert_eq!(t(&["-l", "/x", "--log-label", "A=B"]), "k8s-file doesn't support --log-label");
        assert!(conmon(&["-l", "/x", "-l", "journald", "--log-tag", "t", "--log-label", "A=B"]).is_ok());
        let short = run(&["-c", "abcdefghijkl", "-u", "u", "-r", "/bin/sh", "-l", "journald"]).err().unwrap();
        assert_eq!(text(short), "Container ID must be longer than 12 characters");
        assert!(run(&["-c", "abcdefghijklm", "-u", "u", "-r", "/bin/sh", "-l", "journald"]).is_ok());
        // shimlet's own command line has no such rule.
        assert!(run(&["--id", "short", "--log", "journald"]).is_ok());
    }

    #[test]
    fn log_labels_are_checked_with_journald() {
        let t = |l: &str| conmon(&["-l", "journald", "--log-label", l]).err().map(text);
        assert_eq!(t("=A").unwrap(), "Container labels must be in format LABEL=VALUE (no LABEL present in '=A')");
        for l in ["A", "A=B=C"] {
            assert_eq!(
                t(l).unwrap(),
                format!("Container labels must be in format LABEL=VALUE (none or more than one '=' present in '{l}')")
            );
        }
        for l in ["a=B", "MY%LABEL=x"] {
            assert_eq!(
                t(l).unwrap(),
                format!("Container label names must contain only uppercase letters, numbers and underscore (in '{l}')")
            );
        }
        assert_eq!(t("MY_LABEL2="), None);
        // Without journald (and without k8s-file) they are not looked at.
        assert!(conmon(&["-l", "none", "--log-label", "bad"]).is_ok());
        let c = conmon(&["-l", "journald", "--log-label", "A=1", "--log-label=B=2"]).unwrap();
        assert!(c.log_labels);
        assert_eq!(c.values(Key::LogLabel).map(|l| l.to_bytes()).collect::<Vec<_>>(), vec![&b"A=1"[..], b"B=2"]);
    }

    #[test]
    fn log_max_files_bounds() {
        let t = |v: &[&str]| run(v).err().map(text);
        assert_eq!(t(&["--log-max-files", "-1"]).unwrap(), "log-max-files must be non-negative, got -1");
        assert_eq!(
            t(&["--log-max-files", "0", "--log-rotate"]).unwrap(),
            "log-max-files must be at least 1 when log-rotate is enabled, got 0"
        );
        assert_eq!(
            t(&["--log-max-files", "2147483648"]).unwrap(),
            "Integer value “2147483648” for --log-max-files out of range"
        );
        assert_eq!(t(&["--log-max-files", "abc"]).unwrap(), "Cannot parse integer value “abc” for --log-max-files");
        // Checked before the container id, as conmon does.
        assert_eq!(t(&["--log-max-files", "-5"]).unwrap(), "log-max-files must be non-negative, got -5");
        let c = conmon(&["-l", "/x", "--log-rotate", "--log-max-files", "3", "--log-size-max", "0x400"]).unwrap();
        assert_eq!((c.log_rotate, c.log_max_files, c.log_size_max), (true, 3, Some(1024)));
        assert_eq!(conmon(&["-l", "/x", "--log-max-files", "0"]).unwrap().log_max_files, 1);
        assert_eq!(conmon(&["-l", "/x", "--log-size-max", "-1"]).unwrap().log_size_max, None);
        assert_eq!(conmon(&["-l", "/x", "--log-size-max", "010"]).unwrap().log_size_max, Some(8));
        assert_eq!(conmon(&["-l", "/x", "-T", "-3"]).unwrap().timeout, 0);
    }

    #[test]
    fn log_levels_any_case() {
        for (l, want) in [
            ("ERROR", 0),
            ("fatal", 0),
            ("Panic", 0),
            ("warn", 1),
            ("WARNING", 1),
            ("info", 2),
            ("Debug", 3),
            ("trace", 4),
        ] {
            assert_eq!(conmon(&["-l", "none", "--log-level", l]).unwrap().log_level, want, "{l}");
        }
        assert_eq!(run(&["--id", "a"]).unwrap().log_level, level::WARN);
    }

    #[test]
    fn labels_and_ints_by_hand() {
        assert_eq!(check_label(b"A=B"), Ok(()));
        assert_eq!(check_label(b"A_1="), Ok(()));
        assert_eq!(check_label(b"=B"), Err(BadLabel::NoName));
        assert_eq!(check_label(b""), Err(BadLabel::NotOneEquals));
        assert_eq!(check_label(b"Ab=c"), Err(BadLabel::BadName));
        let i = |s: &str| {
            let c = CString::new(s).unwrap();
            int(b"--x", Box::leak(c.into_boxed_c_str()), i32::MIN as i64, i32::MAX as i64).map_err(|_| ())
        };
        assert_eq!(i("12"), Ok(12));
        assert_eq!(i(" -12"), Ok(-12));
        assert_eq!(i("+0x1f"), Ok(31));
        assert_eq!(i("017"), Ok(15));
        assert_eq!(i("0"), Ok(0));
        assert_eq!(i("2147483647"), Ok(i32::MAX as i64));
        for bad in ["", "-", "0x", "08", "1e3", "12 ", "99999999999999999999999999"] {
            assert!(i(bad).is_err(), "{bad:?}");
        }
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
        let values: [&[u8]; 11] = [
            b"",
            b"1",
            b"-1",
            b"x",
            b"k8s-file:/tmp/l",
            b"journald",
            b"/abs/path",
            b"\xff\xfe",
            b"99999999999999999999",
            b"::",
            b"A=B",
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
            let owned: Vec<CString> = words
                .into_iter()
                .map(|w| CString::new(w.into_iter().filter(|&b| b != 0).collect::<Vec<u8>>()).unwrap())
                .collect();
            let ptrs: Vec<*const c_char> = owned.iter().map(|c| c.as_ptr()).collect();
            // SAFETY: `owned` outlives every use of the parsed result below.
            let a = unsafe { Args::new(&ptrs) };
            if let Err(u) = parse(a) {
                let mut b: crate::buf::Buf<512> = crate::buf::Buf::new();
                u.write_to(&mut b);
                assert!(!b.is_empty() && !b.as_bytes().contains(&b'\n'));
            }
        }
    }
}
