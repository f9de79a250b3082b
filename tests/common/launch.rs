//! Running the shim: a command line being built, the launcher run with a
//! bound, the sync descriptor and what came back on it, fake runtimes.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::*;

/// How the launcher gets a sync descriptor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sync {
    None,
    /// `--sync-fd N`, the write end of a SOCK_SEQPACKET socketpair.
    Fd,
    /// `--sync-fd=N`.
    FdEq,
    /// Environment `_OCI_SYNCPIPE=N`.
    Env,
}

/// A shimlet command line being built.
#[derive(Debug)]
pub struct Launcher {
    pub args: Vec<OsString>,
    pub sync: Sync,
    /// Descriptor number at which the launcher inherits an extra open file.
    pub leak_fd: Option<RawFd>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<(OsString, OsString)>,
    pub bin: Option<PathBuf>,
    /// Files the launcher inherits at these descriptor numbers (as podman
    /// passes `--preserve-fds` descriptors).
    pub pass: Vec<(fs::File, RawFd)>,
}

impl Launcher {
    pub fn new() -> Launcher {
        Launcher { args: vec![], sync: Sync::None, leak_fd: None, cwd: None, env: vec![], bin: None, pass: vec![] }
    }

    /// The launcher inherits `f` as descriptor `fd`.
    pub fn pass_fd(mut self, f: fs::File, fd: RawFd) -> Launcher {
        self.pass.push((f, fd));
        self
    }

    /// Run `bin` (conmon, or another shimlet) instead of the shimlet under test.
    pub fn bin<P: AsRef<Path>>(mut self, p: P) -> Launcher {
        self.bin = Some(p.as_ref().to_path_buf());
        self
    }

    pub fn arg<S: AsRef<OsStr>>(mut self, a: S) -> Launcher {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, a: &[S]) -> Launcher {
        for s in a {
            self.args.push(s.as_ref().to_os_string());
        }
        self
    }

    /// `--name value`
    pub fn opt<S: AsRef<OsStr>>(self, name: &str, value: S) -> Launcher {
        self.arg(name).arg(value)
    }

    /// `--name=value`
    pub fn opt_eq<S: AsRef<OsStr>>(self, name: &str, value: S) -> Launcher {
        let mut s = OsString::from(format!("{name}="));
        s.push(value.as_ref());
        self.arg(s)
    }

    pub fn sync(mut self, s: Sync) -> Launcher {
        self.sync = s;
        self
    }

    pub fn leak_fd(mut self, fd: RawFd) -> Launcher {
        self.leak_fd = Some(fd);
        self
    }

    pub fn cwd<P: AsRef<Path>>(mut self, p: P) -> Launcher {
        self.cwd = Some(p.as_ref().to_path_buf());
        self
    }

    pub fn env<K: AsRef<OsStr>, V: AsRef<OsStr>>(mut self, k: K, v: V) -> Launcher {
        self.env.push((k.as_ref().to_os_string(), v.as_ref().to_os_string()));
        self
    }

    /// Runs the launcher with its stdout/stderr sent to files in `dir` (so
    /// that a daemon keeping them open cannot block the test), waits for it
    /// (bounded), then reads the sync line when there is a sync descriptor.
    pub fn run(self, dir: &Path) -> Launched {
        let n = next_n();
        let out_p = dir.join(format!("launcher-{n}.out"));
        let err_p = dir.join(format!("launcher-{n}.err"));
        let mut cmd = Command::new(self.bin.clone().unwrap_or_else(shimlet_bin));
        cmd.stdin(Stdio::null()).stdout(fs::File::create(&out_p).unwrap()).stderr(fs::File::create(&err_p).unwrap());
        if let Some(d) = &self.cwd {
            cmd.current_dir(d);
        }
        cmd.env_remove("_OCI_SYNCPIPE");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut args = self.args.clone();

        let mut read_end: Option<OwnedFd> = None;
        let mut write_end: Option<OwnedFd> = None;
        if self.sync != Sync::None {
            let (r, mut w) = seqpacket_pair();
            if Some(w.as_raw_fd()) == self.leak_fd || !self.pass.is_empty() {
                // Keep the sync descriptor away from the leak's number.
                // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor owned here.
                let d = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100) };
                assert!(d >= 0, "F_DUPFD_CLOEXEC: {}", std::io::Error::last_os_error());
                // SAFETY: d was just created.
                w = unsafe { OwnedFd::from_raw_fd(d) };
            }
            let wfd = w.as_raw_fd();
            match self.sync {
                Sync::Fd => {
                    args.push("--sync-fd".into());
                    args.push(wfd.to_string().into());
                }
                Sync::FdEq => args.push(format!("--sync-fd={wfd}").into()),
                Sync::Env => {
                    cmd.env("_OCI_SYNCPIPE", wfd.to_string());
                }
                Sync::None => unreachable!(),
            }
            read_end = Some(r);
            write_end = Some(w);
        }
        let leak_file = self.leak_fd.map(|_| {
            let p = dir.join(format!("leaked-{n}.txt"));
            fs::write(&p, b"this descriptor must not reach the container\n").unwrap();
            fs::File::open(&p).unwrap()
        });
        let inherit_fd = write_end.as_ref().map(|w| w.as_raw_fd());
        let leak = leak_file.as_ref().map(|f| (f.as_raw_fd(), self.leak_fd.unwrap()));
        // The passed files, first moved above every target number.
        let passed: Vec<(OwnedFd, RawFd)> = self
            .pass
            .iter()
            .map(|(f, to)| {
                // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor owned here.
                let d = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 200) };
                assert!(d >= 0, "F_DUPFD_CLOEXEC: {}", std::io::Error::last_os_error());
                // SAFETY: d was just created.
                (unsafe { OwnedFd::from_raw_fd(d) }, *to)
            })
            .collect();
        let moves: Vec<(RawFd, RawFd)> = passed.iter().map(|(f, to)| (f.as_raw_fd(), *to)).collect();
        // SAFETY: only async-signal-safe calls (fcntl, dup2) in the child.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(fd) = inherit_fd {
                    if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some((from, to)) = leak {
                    // dup2 leaves the new descriptor without FD_CLOEXEC.
                    let r = if from == to { libc::fcntl(to, libc::F_SETFD, 0) } else { libc::dup2(from, to) };
                    if r < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                for &(from, to) in &moves {
                    if libc::dup2(from, to) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        cmd.args(&args);
        let mut child = cmd.spawn().expect("spawn shimlet");
        drop(write_end);
        drop(leak_file);
        drop(passed);
        let status = wait_child(&mut child, "the shimlet launcher", WAIT);
        let stdout = fs::read(&out_p).unwrap_or_default();
        let stderr = fs::read(&err_p).unwrap_or_default();
        let sync = read_end.map(|r| {
            let line = read_line_fd(r.as_raw_fd(), WAIT).unwrap_or_else(|e| {
                panic!(
                    "reading the sync descriptor: {e}\nlauncher: {status:?}\nstderr: {}",
                    String::from_utf8_lossy(&stderr)
                )
            });
            SyncReply::new(line, r)
        });
        Launched { status, stdout, stderr, sync, args }
    }
}

impl Default for Launcher {
    fn default() -> Self {
        Launcher::new()
    }
}

/// What came back on the sync descriptor.
#[derive(Debug)]
pub struct SyncReply {
    pub raw: Vec<u8>,
    pub json: Value,
    pub fd: OwnedFd,
}

impl SyncReply {
    fn new(raw: Vec<u8>, fd: OwnedFd) -> SyncReply {
        assert!(
            raw.ends_with(b"\n"),
            "the sync message must be one line ending in a newline, got {:?}",
            String::from_utf8_lossy(&raw)
        );
        assert_eq!(
            raw.iter().filter(|&&b| b == b'\n').count(),
            1,
            "the sync message must be exactly one line: {:?}",
            String::from_utf8_lossy(&raw)
        );
        let json: Value = serde_json::from_slice(&raw)
            .unwrap_or_else(|e| panic!("sync message is not JSON ({e}): {:?}", String::from_utf8_lossy(&raw)));
        assert!(json.is_object(), "sync message is not a JSON object: {json}");
        SyncReply { raw, json, fd }
    }

    /// Reads what follows the first line until end of file (bounded): must
    /// be called once the shim has ended.
    pub fn rest(&self) -> Vec<u8> {
        read_line_fd(self.fd.as_raw_fd(), WAIT).unwrap_or_else(|e| panic!("sync descriptor after the line: {e}"))
    }
}

/// A finished launcher.
#[derive(Debug)]
pub struct Launched {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub sync: Option<SyncReply>,
    pub args: Vec<OsString>,
}

impl Launched {
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    fn sync_json(&self) -> &Value {
        &self.sync.as_ref().expect("launched without a sync descriptor").json
    }

    /// The `pid` of the sync message.
    pub fn sync_pid(&self) -> i64 {
        self.sync_json()["pid"]
            .as_i64()
            .unwrap_or_else(|| panic!("sync message without an integer pid: {}", self.sync_json()))
    }

    pub fn sync_message(&self) -> Option<String> {
        self.sync_json().get("message").and_then(|m| m.as_str()).map(|s| s.to_string())
    }

    pub fn sync_text(&self) -> String {
        String::from_utf8_lossy(&self.sync.as_ref().unwrap().raw).into_owned()
    }
}

/// A fake runtime from tests/fakes copied into `dir` with mode `mode`.
pub fn fake_runtime(name: &str, dir: &Path, mode: u32) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("fakes").join(name);
    let dst = dir.join(name);
    fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
    fs::set_permissions(&dst, fs::Permissions::from_mode(mode)).unwrap();
    dst
}

/// A launcher run through `/bin/sh -c PRELUDE; exec shimlet ARGS` (to set a
/// umask or an oom_score_adj for the launcher only).
pub fn wrapped(prelude: &str, inner: Launcher) -> Launcher {
    let mut l = Launcher::new().arg("-c").arg(format!("{prelude}; exec \"$0\" \"$@\"")).arg(shimlet_bin());
    l.args.extend(inner.args);
    l.bin = Some(PathBuf::from("/bin/sh"));
    l
}

/// Starts the launcher with `args` plus `--sync-fd N`, N being `fd` (which
/// the launcher inherits); stdout/stderr go to files in `dir`. Returns the
/// child and the paths of its stdout and stderr.
pub fn spawn_with_fd(
    args: &[OsString],
    env: &[(OsString, OsString)],
    fd: RawFd,
    dir: &Path,
) -> (std::process::Child, PathBuf, PathBuf) {
    let out_p = dir.join("raw-launcher.out");
    let err_p = dir.join("raw-launcher.err");
    let mut cmd = Command::new(shimlet_bin());
    cmd.args(args)
        .arg("--sync-fd")
        .arg(fd.to_string())
        .env_remove("_OCI_SYNCPIPE")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_p).unwrap())
        .stderr(fs::File::create(&err_p).unwrap());
    // SAFETY: fcntl is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    (cmd.spawn().expect("spawn shimlet"), out_p, err_p)
}

/// Launches with a sync socket (the launcher returns at once) and reads the
/// create outcome within `limit`. When none comes, reports what the shim is
/// doing (state, wait channel, children), kills its children so nothing is
/// left behind, and panics.
pub fn launch_sync_bounded(fx: &Fixture, c: &Container, l: Launcher, limit: Duration) -> serde_json::Value {
    let (r, w) = seqpacket_pair();
    let (mut child, _out, err) = spawn_with_fd(&l.args, &l.env, w.as_raw_fd(), &c.dir);
    drop(w);
    let st = wait_child(&mut child, "the launcher", WAIT);
    assert!(st.success(), "launcher {st:?}: {}", String::from_utf8_lossy(&read_all(&err)));
    let shim = c.shim_pid();
    fx.track(shim);
    match read_line_fd(r.as_raw_fd(), limit) {
        Ok(line) if line.ends_with(b"\n") => serde_json::from_slice(&line)
            .unwrap_or_else(|e| panic!("sync line is not JSON ({e}): {:?}", String::from_utf8_lossy(&line))),
        other => {
            let kids = children_of(shim);
            let shown: Vec<String> =
                kids.iter().map(|p| format!("{p} {} (state {:?})", proc_cmdline(*p), proc_state(*p))).collect();
            let wchan = fs::read_to_string(format!("/proc/{shim}/wchan")).unwrap_or_default();
            for &p in &kids {
                // SAFETY: kill(2) of what the runtime left under the shim.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            panic!(
                "no create outcome on the sync descriptor within {}s ({other:?}): the shim (pid {shim}, \
                 state {:?}, waiting in {wchan:?}) hangs; its children: {shown:?}",
                limit.as_secs(),
                proc_state(shim)
            );
        }
    }
}
