//! What a manager hands the shim, when it is hostile or careless: 415
//! hostile command lines (never a signal, a hang or a container; errors
//! are one line), garbage on the ctl FIFO (nothing changes; a valid resize
//! still acts), and a sync descriptor closed before it was read (the
//! container is still created and served).
//!
//! Real runc containers, as root; where runc cannot be made to fail in the
//! way wanted, a fake runtime from tests/fakes stands in (copied into the
//! test's directory; most of them end by running the real runc). Each test
//! has its own temp dir, runc root and container ids (see tests/common), so
//! they run in parallel; waits are bounded and nothing is timed. Figures
//! are printed with eprintln! for the report (`cargo test -- --nocapture`).

mod common;

use std::ffi::OsString;
use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use common::*;

// ---------------------------------------------------------------------------
// the manager closes the sync descriptor unread

// Proves the shim does not depend on anyone reading the sync descriptor:
// the manager closes its end (a socketpair, then a pipe) right after
// starting the launcher. The container is still created and served:
// `runc start` works, its output is logged and its exit recorded.
#[test]
fn sync_descriptor_closed_unread() {
    let fx = Fixture::new("f-sync-closed");
    for kind in ["socketpair", "pipe"] {
        let c = fx.bundle(&["sh", "-c", "echo served-out; echo served-err >&2; exit 6"]);
        let (r, w) = if kind == "socketpair" { seqpacket_pair() } else { pipe_pair() };
        let args = fx.launcher(&c).args;
        let (mut child, _out, err) = spawn_with_fd(&args, &[], w.as_raw_fd(), &c.dir);
        drop(r); // the manager is gone before anything was written
        drop(w);
        let st = wait_child(&mut child, "the launcher", WAIT);
        assert!(st.success(), "{kind}: launcher {st:?}: {}", String::from_utf8_lossy(&read_all(&err)));
        let shim = c.shim_pid();
        fx.track(shim);
        wait_until_or(
            &format!("{kind}: the container to be created"),
            WAIT,
            || (runc_status(&fx, &c) == "created").then_some(()),
            || format!("runc state: {}; shim alive: {}", runc_status(&fx, &c), pid_alive(shim)),
        );
        fx.start(&c);
        let st = c.wait_status();
        assert_exited(&st, 6, 0);
        let log = c.log();
        assert_eq!(log.stream(Stream::Stdout), b"served-out\n", "{kind}: stdout");
        assert_eq!(log.stream(Stream::Stderr), b"served-err\n", "{kind}: stderr");
        end(&fx, &c, shim);
    }
}

// ---------------------------------------------------------------------------
// hostile command lines

/// Every option spelling shimlet accepts (its own and conmon's).
const OPTION_NAMES: &[&str] = &[
    "--id",
    "--bundle",
    "--runtime",
    "--runtime-arg",
    "--runtime-opt",
    "--pidfile",
    "--shim-pidfile",
    "--log",
    "--log-size-max",
    "--log-global-size-max",
    "--log-tag",
    "--log-level",
    "--no-sync-log",
    "--syslog",
    "--diag",
    "--status-file",
    "--exit-dir",
    "--persist-dir",
    "--sync-fd",
    "--attach",
    "--stdin",
    "--stdin-once",
    "--leave-stdin-open",
    "--terminal",
    "--ctl",
    "--exec",
    "--exec-attach",
    "--exec-process-spec",
    "--exit-command",
    "--exit-command-arg",
    "--exit-delay",
    "--timeout",
    "--systemd-cgroup",
    "--no-pivot",
    "--no-new-keyring",
    "--sync",
    "--help",
    "-h",
    "--version",
    "-c",
    "--cid",
    "-u",
    "--cuuid",
    "-n",
    "--name",
    "-b",
    "-r",
    "-p",
    "--container-pidfile",
    "-P",
    "--conmon-pidfile",
    "-l",
    "--log-path",
    "--restore-arg",
    "-0",
    "-i",
    "-t",
    "-e",
    "-T",
    "--api-version",
    "-s",
    "--full-attach",
    "--socket-dir-path",
    "--replace-listen-pid",
    "--no-container-partial-message",
    "--log-rotate",
    "--log-label",
    "--log-max-files",
    "--log-allowlist-dir",
    "--restore",
    "--sdnotify-socket",
];

/// Words that look like options but are none.
const NOT_OPTIONS: &[&str] = &["--", "-", "---", "--=", "-=", "--id-", "--ID", "-x", "-Z", "---id", "--log=", "-c="];

struct ArgGen<'a> {
    rng: Rng,
    dir: &'a Path,
    nowhere: String,
}

impl ArgGen<'_> {
    fn ascii(&mut self, max: usize) -> Vec<u8> {
        const CH: &[u8] =
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,:;=+%@ !?*'\"\\$()[]{}<>|&~#";
        let n = 1 + self.rng.below(max);
        let mut w: Vec<u8> = (0..n).map(|_| *self.rng.pick(CH)).collect();
        if w[0] == b'/' {
            w[0] = b'x';
        }
        w
    }

    fn value(&mut self) -> Vec<u8> {
        let d = self.dir.display().to_string();
        match self.rng.below(14) {
            0 => format!("{d}/p{}", self.rng.below(5)).into_bytes(),
            1 => format!("{d}/no-such-dir/x{}", self.rng.below(3)).into_bytes(),
            2 => format!("{}/x", self.nowhere).into_bytes(),
            3 => self
                .rng
                .pick(&[
                    "0",
                    "1",
                    "2",
                    "-1",
                    "3",
                    "4096",
                    "2147483647",
                    "2147483648",
                    "4294967296",
                    "18446744073709551615",
                    "18446744073709551616",
                    "99999999999999999999999",
                    " 5",
                    "5 ",
                    "+5",
                    "0x10",
                    "1e3",
                    "07",
                    "-0",
                ])
                .as_bytes()
                .to_vec(),
            4 => vec![],
            5 => self
                .rng
                .pick(&[
                    "journald",
                    "none",
                    "off",
                    "null",
                    "k8s-file:",
                    "k8s-file",
                    "journald:x",
                    "bogus:x",
                    "passthrough",
                    "error",
                    "warn",
                    "info",
                    "debug",
                    "trace",
                    "WARN",
                    "ctrl-p,ctrl-q",
                ])
                .as_bytes()
                .to_vec(),
            6 => format!("k8s-file:{d}/k8s-{}.log", self.rng.below(3)).into_bytes(),
            7 | 8 => self.ascii(40),
            9 => {
                // Invalid UTF-8, no NUL.
                let n = 1 + self.rng.below(40);
                let mut v: Vec<u8> = (0..n).map(|_| (self.rng.next() % 255 + 1) as u8).collect();
                v.push(0xff);
                if v[0] == b'/' {
                    v[0] = 0xfe;
                }
                v
            }
            10 => vec![b'a'; 1000 + self.rng.below(9000)],
            11 => {
                let mut v = self.ascii(60);
                v.extend(std::iter::repeat_n(b'L', 100_000));
                v
            }
            12 => b"line one\nline two\r\n".to_vec(),
            _ => b"a=b=c".to_vec(),
        }
    }

    /// One to three words.
    fn words(&mut self) -> Vec<Vec<u8>> {
        match self.rng.below(20) {
            0..=7 => {
                let name = self.rng.pick(OPTION_NAMES).as_bytes().to_vec();
                match self.rng.below(4) {
                    0 => vec![name],
                    1 => {
                        let mut w = name;
                        w.push(b'=');
                        w.extend(self.value());
                        vec![w]
                    }
                    _ => vec![name, self.value()],
                }
            }
            8..=10 => vec![self.value()],
            11..=12 => vec![self.rng.pick(NOT_OPTIONS).as_bytes().to_vec()],
            13 => {
                let mut w = b"--".to_vec();
                w.extend(self.ascii(20));
                vec![w]
            }
            _ => vec![self.ascii(30)],
        }
    }
}

// Proves the launcher survives hostile command lines: 15 fixed edge cases
// and 400 generated argv sets (option names of both spellings, `=` forms, stray and option-like
// words, empty, huge, multi-line and non-UTF-8 values) never kill it with
// a signal or hang it; it exits 0 (help, version, or a launch that
// reported through a sync fd), 1 or 2, and an error is one line on stderr.
// No generated line may start a container: most end in two unknown
// options (an error whatever came before); a fifth end in a forced
// nonexistent runtime (PATH holds no runc either), so a complete line fails
// its create; a tenth end in --help or --version. Every shim started is
// waited for and reaped.
#[test]
fn command_line_property() {
    let fx = Fixture::new("f-argv");
    let dir = fx.tmp.path().to_path_buf();
    let cwd = dir.join("cwd");
    let empty_bin = dir.join("emptybin");
    let out = dir.join("out");
    for d in [&cwd, &empty_bin, &out] {
        fs::create_dir_all(d).unwrap();
    }
    let mut g =
        ArgGen { rng: Rng::new(0x0a26_5eed_1234_5678), dir: &dir, nowhere: format!("/nonexistent-{}", fx.token) };
    // Failures by kind, with up to three examples each.
    let mut failures: std::collections::BTreeMap<&str, (usize, Vec<String>)> = Default::default();
    let mut fail = |kind: &'static str, what: String| {
        let e = failures.entry(kind).or_default();
        e.0 += 1;
        if e.1.len() < 3 {
            e.1.push(what);
        }
    };
    let mut codes = std::collections::BTreeMap::new();
    let runs: usize = std::env::var("FAULTS_ARGV_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
    if let Some(seed) = std::env::var("FAULTS_ARGV_SEED").ok().and_then(|v| v.parse().ok()) {
        g.rng = Rng::new(seed);
    }
    // Fixed edge cases first (class 10), then the generated ones.
    let id = format!("--id={}fixed", fx.token);
    let rt = format!("--runtime={}/runtime", g.nowhere);
    // Lines that may start a shim name its pidfile, so that it is reaped.
    let sp = |k: usize| -> OsString {
        let mut a = OsString::from("--shim-pidfile=");
        a.push(dir.join(format!("shim-{k}.pid")));
        a
    };
    let fixed: Vec<Vec<OsString>> = vec![
        vec!["--help".into()],
        vec!["-h".into()],
        vec!["--version".into()],
        vec![],
        vec!["--id".into()],
        vec!["--id=".into()],
        vec![id.clone().into(), os(b"\xff\xfe")],
        vec![id.clone().into(), rt.clone().into(), sp(7), "--sync-fd".into(), "99".into()],
        vec![id.clone().into(), rt.clone().into(), sp(8), "--timeout".into(), "-1".into()],
        vec![id.clone().into(), rt.clone().into(), sp(9), "--exit-command".into(), "relative/cmd".into()],
        vec![id.clone().into(), rt.clone().into(), sp(10), "--log-level".into(), "loud\n2nd line".into()],
        vec!["-c".into(), "x".into(), "-u".into(), "x".into(), "-r".into(), format!("{}/rt", g.nowhere).into()],
        vec![id.clone().into(), rt.clone().into(), sp(12)],
        vec![id.clone().into(), rt.clone().into(), sp(13), "--sync".into()],
        vec![os(&[b'i'; 100_000]), "--zz".into()],
    ];
    for n in 0..runs + fixed.len() {
        let class = if n < fixed.len() { 10 } else { n % 10 };
        let mut args: Vec<OsString> = vec![format!("--log-tag={}", fx.token).into()];
        if class == 10 {
            args.extend(fixed[n].iter().cloned());
        }
        let k = if class == 10 { 0 } else { g.rng.below(12) };
        for _ in 0..k {
            for w in g.words() {
                args.push(os(&w));
            }
        }
        let shim_pidfile = dir.join(format!("shim-{n}.pid"));
        match class {
            10 => {}
            0..=6 => {
                args.push("--zz-bogus-1".into());
                args.push("--zz-bogus-2".into());
            }
            7 | 8 => {
                for _ in 0..2 {
                    args.push(format!("--runtime={}/runtime", g.nowhere).into());
                }
                for _ in 0..2 {
                    args.push(format!("--id={}{n}", fx.token).into());
                }
                for _ in 0..2 {
                    let mut a = OsString::from("--shim-pidfile=");
                    a.push(&shim_pidfile);
                    args.push(a);
                }
            }
            _ => {
                let w = if n % 20 == 9 { "--help" } else { "--version" };
                args.push(w.into());
                args.push(w.into());
            }
        }
        let l = Launcher::new().args(&args).cwd(&cwd).env("PATH", &empty_bin).env("TMPDIR", &dir);
        let r = l.run(&out);
        let code = r.status.code();
        *codes
            .entry(format!(
                "{} exit {code:?}",
                match class {
                    0..=6 => "bogus-tail",
                    7 | 8 => "no-runtime",
                    9 => "help",
                    _ => "fixed",
                }
            ))
            .or_insert(0) += 1;
        let show = || {
            format!(
                "run {n}: argv {:?}\n  exit {:?}\n  stderr {:?}\n  stdout {:?}",
                args.iter()
                    .map(|a| {
                        let s = a.to_string_lossy();
                        if s.len() > 120 {
                            format!("{}...({} bytes)", &s[..100], s.len())
                        } else {
                            s.into_owned()
                        }
                    })
                    .collect::<Vec<_>>(),
                r.status,
                String::from_utf8_lossy(&r.stderr[..r.stderr.len().min(400)]),
                String::from_utf8_lossy(&r.stdout[..r.stdout.len().min(200)])
            )
        };
        match code {
            None => fail("killed by a signal", show()),
            Some(0) => {
                if class <= 6 {
                    fail("a line ending in unknown options was accepted", show());
                } else if class == 9 && r.stdout.is_empty() {
                    fail("--help/--version printed nothing", show());
                }
            }
            Some(1) | Some(2) => {
                if r.stderr.is_empty() {
                    fail("an error exit with nothing on stderr", show());
                } else if !one_line(&r.stderr) {
                    fail("the error message is not exactly one line (an argument is echoed raw)", show());
                }
            }
            Some(_) => fail("exit status outside 0-2", show()),
        }
        // Whatever was started must end by itself (its create cannot work).
        if let Some(p) = fs::read_to_string(&shim_pidfile).ok().and_then(|s| s.trim().parse::<i32>().ok()) {
            fx.track(p);
            wait_pid_gone(p, "a shim started by a generated command line");
        }
        let stray = find_shims(&fx.token);
        if !stray.is_empty() {
            fail("shims still running after the run", format!("{stray:?}: {}", show()));
            for p in stray {
                // SAFETY: kill(2) of a shim this test started.
                unsafe { libc::kill(p, libc::SIGKILL) };
                fx.track(p);
                wait_pid_gone(p, "a stray shim");
            }
        }
    }
    eprintln!("command lines: {} runs: {codes:?}", runs + fixed.len());
    assert!(fx.runc_list().is_empty(), "a generated command line created a container");
    let report: Vec<String> =
        failures.iter().map(|(k, (n, ex))| format!("{n} runs: {k}; for example:\n{}", ex.join("\n"))).collect();
    assert!(failures.is_empty(), "generated command lines broke the rules:\n{}", report.join("\n\n"));
}

// ---------------------------------------------------------------------------
// hostile ctl FIFO lines

/// Whether the shim would act on this ctl line as a resize: conmon's
/// rules (its `sscanf("%d %d %d")`: three integers, each after optional
/// white space, a NUL ends the string, whatever follows the third is
/// ignored; at most 198 bytes; type 1, sizes 0..=1000).
fn ctl_resizes(line: &[u8]) -> bool {
    if line.len() > 198 {
        return false;
    }
    let line = &line[..line.iter().position(|&b| b == 0).unwrap_or(line.len())];
    let ws = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | 0x0b | 0x0c);
    let mut vals = vec![];
    let mut i = 0;
    while vals.len() < 3 {
        while i < line.len() && ws(line[i]) {
            i += 1;
        }
        let neg = i < line.len() && line[i] == b'-';
        if i < line.len() && (line[i] == b'-' || line[i] == b'+') {
            i += 1;
        }
        let from = i;
        while i < line.len() && line[i].is_ascii_digit() {
            i += 1;
        }
        if i == from {
            return false;
        }
        let v = line[from..i].iter().fold(0i64, |v, d| (v * 10 + (d - b'0') as i64).min(1 << 40));
        vals.push(if neg { -v } else { v });
    }
    vals[0] == 1 && (0..=1000).contains(&vals[1]) && (0..=1000).contains(&vals[2])
}

// Proves hostile ctl input changes nothing: 300 lines of random bytes,
// near-miss commands (wrong counts, types, signs, out-of-range sizes, NULs,
// non-ASCII digits), padded and over-long lines, long random text, empty
// lines and reopen commands, written in random pieces, leave a --terminal
// container's size at the 11x22 set before, and the shim running (lines
// the shim would act on are spoiled first, by the test's own reading of
// conmon's rules). A valid resize padded to 199 bytes is dropped, padded
// to 198 it acts (conmon's buffer); a final `1 30 70` makes `stty size` in
// the container say `30 70`.
// The diag file lists the ignored lines.
#[test]
fn ctl_fifo_garbage() {
    let fx = Fixture::new("f-ctl");
    let c = tty_bundle(&fx, &["sh"]);
    let (sock, ctl, diag) = (c.dir.join("attach.sock"), c.dir.join("ctl"), c.dir.join("diag.txt"));
    let l =
        fx.launcher(&c).opt("--attach", &sock).opt("--ctl", &ctl).opt("--diag", &diag).args(&["--terminal", "--stdin"]);
    fx.launch_ok(&c, l);
    let shim = c.shim_pid();
    let pid = c.container_pid();
    fx.start(&c);
    let mut cl = Target::new(&sock).connect();
    cl.send(b"echo up-$((6*7))\n");
    cl.read_until(b"up-42", WAIT);
    ctl_send(&ctl, b"1 11 22\n");
    let size_is = |rows, cols| {
        wait_until_or(
            &format!("the container's pty to be {rows}x{cols}"),
            WAIT,
            || (proc_tty_size(pid) == Some((rows, cols))).then_some(()),
            || format!("size now {:?}", proc_tty_size(pid)),
        )
    };
    size_is(11, 22);

    let mut rng = Rng::new(0xc71_f1f0);
    let near: &[&[u8]] = &[
        b"1 30",
        b"1 30 70 5",
        b"3 1 1",
        b"0 5 5",
        b"1 -1 5",
        b"1 1001 5",
        b"1 99999999999 5",
        b"x 1 1",
        b"1 5 5x",
        b"1\x005 5",
        b"1 5\x0c5",
        b"\xd9\xa1 \xd9\xa5 \xd9\xa5",
        b"1,5,5",
        b"1  5  ",
        b"--1 5 5",
        b"1 0x10 5",
        b"1 5 5;2 0 0",
        b"2 0 0",
        b"2 0 0\r",
        b"\x1b[8;5;5t",
    ];
    let mut stream: Vec<u8> = vec![];
    let mut kinds = [0usize; 6];
    for _ in 0..300 {
        let k = rng.below(6);
        kinds[k] += 1;
        let mut line: Vec<u8> = match k {
            0 => {
                let n = rng.below(200);
                rng.bytes(n).into_iter().filter(|&b| b != b'\n').collect()
            }
            1 => rng.pick(near).to_vec(),
            2 => {
                let mut l = b"1 20 20".to_vec();
                let (n, pad) = (65 + rng.below(300), if rng.chance(50) { b' ' } else { b'\t' });
                l.resize(n, pad);
                l
            }
            3 => {
                let n = 1000 + rng.below(4000);
                (0..n).map(|_| b' ' + (rng.next() % 95) as u8).collect()
            }
            4 => vec![],
            _ => b"2 0 0".to_vec(),
        };
        if ctl_resizes(&line) {
            line.insert(0, b'x');
        }
        stream.extend_from_slice(&line);
        stream.push(b'\n');
    }
    {
        use std::io::Write;
        let mut f = fs::OpenOptions::new().write(true).open(&ctl).unwrap();
        let mut i = 0;
        while i < stream.len() {
            let n = (1 + rng.below(300)).min(stream.len() - i);
            f.write_all(&stream[i..i + n]).unwrap();
            i += n;
            if rng.chance(20) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    wait_until("the shim to read all of the ctl garbage", WAIT, || (fifo_pending(&ctl) == 0).then_some(()));
    // The shim has consumed it all: one more round trip through it.
    cl.send(b"echo still-$((7*6))\n");
    cl.read_until(b"still-42", WAIT);
    assert!(pid_alive(shim), "the shim died of ctl garbage");
    assert_eq!(proc_tty_size(pid), Some((11, 22)), "ctl garbage changed the terminal size");

    // conmon's line length: 199 bytes are dropped, 198 act.
    let mut l199 = b"1 44 44".to_vec();
    l199.resize(199, b' ');
    l199.push(b'\n');
    ctl_send(&ctl, &l199);
    let mut l198 = b"1 20 20".to_vec();
    l198.resize(198, b' ');
    l198.push(b'\n');
    ctl_send(&ctl, &l198);
    size_is(20, 20);
    ctl_send(&ctl, b"1 30 70\n");
    size_is(30, 70);
    cl.send(b"stty size\n");
    cl.read_until(b"30 70", WAIT);
    let d = read_text(&diag);
    let ignored = d.matches("ignored a malformed control line").count();
    eprintln!("ctl garbage: {} bytes in 300 lines (kinds {kinds:?}); {ignored} ignored-line diagnostics", stream.len());
    assert!(ignored > 100, "the diag file should list the ignored lines: {ignored}");
    assert!(d.contains("too long"), "over-long lines are reported as such");
    cl.send(b"exit 0\n");
    assert_exited(&c.wait_status(), 0, 0);
    end(&fx, &c, shim);
}
