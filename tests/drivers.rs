//! Log drivers: journald (against a fake journal socket), k8s-file size
//! rotation that keeps the previous file, the global size cap, `none` and
//! `passthrough`. Real runc containers, as root.

mod common;

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::*;

fn numbered(n: usize) -> String {
    format!("i=1; while [ $i -le {n} ]; do echo line-$i-padding-padding-padding; i=$((i+1)); done")
}

// Proves the journald driver sends one native-protocol datagram per line
// with the container's fields, the priority of its stream, the message
// bytes without the newline, and the partial flag on a piece without its
// newline; k8s-file logging goes on beside it.
#[test]
fn journald_datagrams() {
    let fx = Fixture::new("journald");
    let c = fx.bundle(&["sh", "-c", "echo to-out; echo to-err >&2; printf 'piece'"]);
    let sock_path = fx.tmp.join("journal.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let l =
        fx.launcher(&c).opt("--log", "journald").opt("--log-tag", "tagged").env("SHIMLET_JOURNAL_SOCKET", &sock_path);
    fx.launch_ok(&c, l);
    fx.start(&c);
    let mut grams = vec![];
    for _ in 0..3 {
        let mut b = vec![0u8; 65536];
        let n = sock.recv(&mut b).expect("a journal datagram");
        grams.push(b[..n].to_vec());
    }
    let st = c.wait_status();
    assert_eq!(st.num("code"), 0);
    assert_eq!(st.num("lost"), 0);
    let field = |g: &[u8], k: &str| -> Option<Vec<u8>> {
        // Text fields `K=V\n`; MESSAGE in binary form `MESSAGE\n` + le64 + bytes + `\n`.
        if k == "MESSAGE" {
            let at = g.windows(8).position(|w| w == b"MESSAGE\n")? + 8;
            let len = u64::from_le_bytes(g[at..at + 8].try_into().unwrap()) as usize;
            return Some(g[at + 8..at + 8 + len].to_vec());
        }
        let pre = format!("{k}=");
        g.split(|&b| b == b'\n').find(|l| l.starts_with(pre.as_bytes())).map(|l| l[pre.len()..].to_vec())
    };
    let find = |msg: &str| {
        grams
            .iter()
            .find(|g| field(g, "MESSAGE").as_deref() == Some(msg.as_bytes()))
            .unwrap_or_else(|| panic!("no datagram with MESSAGE={msg}: {grams:?}"))
            .clone()
    };
    let out = find("to-out");
    assert_eq!(field(&out, "PRIORITY").unwrap(), b"6");
    assert_eq!(field(&out, "CONTAINER_ID_FULL").unwrap(), c.id.as_bytes());
    assert_eq!(field(&out, "CONTAINER_ID").unwrap(), &c.id.as_bytes()[..12]);
    assert_eq!(field(&out, "CONTAINER_TAG").unwrap(), b"tagged");
    assert_eq!(field(&out, "SYSLOG_IDENTIFIER").unwrap(), b"tagged");
    assert!(field(&out, "CONTAINER_PARTIAL_MESSAGE").is_none());
    assert_eq!(field(&find("to-err"), "PRIORITY").unwrap(), b"3");
    assert_eq!(field(&find("piece"), "CONTAINER_PARTIAL_MESSAGE").unwrap(), b"true");
    // The k8s-file log has the same lines.
    assert_eq!(c.log().stream(Stream::Stdout), b"to-out\npiece");
    c.wait_no_shim(Some(c.shim_pid()));
}

// Proves a journald driver without a journal socket is an error at start:
// the launcher exits 1 naming the socket, and nothing is left running.
#[test]
fn journald_without_socket_fails_at_start() {
    let fx = Fixture::new("nojournal");
    let c = fx.bundle(&["true"]);
    let missing = fx.tmp.join("no-such-journal.sock");
    let r = fx.launch(&c, fx.launcher(&c).opt("--log", "journald").env("SHIMLET_JOURNAL_SOCKET", &missing));
    assert_eq!(r.status.code(), Some(1), "stderr: {}", r.stderr_str());
    assert!(r.stderr_str().contains("no-such-journal.sock"), "stderr: {}", r.stderr_str());
    assert!(find_shims(&c.id).is_empty());
    assert!(!c.pidfile.exists(), "no container was created");
}

// Proves --log-size-max rotates into FILE.1 instead of discarding: the
// previous file and the current one hold the newest lines, contiguous and
// complete, each within the limit.
#[test]
fn rotation_keeps_the_previous_file() {
    let fx = Fixture::new("rotate");
    let c = fx.bundle(&["sh", "-c", &numbered(3000)]);
    fx.launch_ok(&c, fx.launcher(&c).opt("--log-size-max", "16384"));
    fx.start(&c);
    assert_eq!(c.wait_status().num("code"), 0);
    let old_path = c.log.with_extension("log.1");
    let old = fs::read(&old_path).unwrap_or_else(|e| panic!("{}: {e}", old_path.display()));
    let cur = fs::read(&c.log).unwrap();
    assert!(old.len() <= 16384 && cur.len() <= 16384, "sizes {} {}", old.len(), cur.len());
    let mut all = old.clone();
    all.extend_from_slice(&cur);
    let log = Log::parse(&all).unwrap();
    let text = String::from_utf8(log.stream(Stream::Stdout)).unwrap();
    // FILE.1 may open with the rest of a line whose start (a P record) was
    // in an older file, already replaced: one such fragment, no more.
    let mut lines: Vec<&str> = text.lines().collect();
    if lines.first().is_some_and(|l| !l.starts_with("line-")) {
        lines.remove(0);
    }
    let nums: Vec<usize> = lines
        .iter()
        .map(|l| l.split('-').nth(1).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("not a whole line: {l:?}")))
        .collect();
    assert_eq!(*nums.last().unwrap(), 3000, "the newest line is kept");
    for w in nums.windows(2) {
        assert_eq!(w[1], w[0] + 1, "contiguous lines across FILE.1 and FILE");
    }
    assert!(nums.len() > 100, "more than one file's worth survives: {}", nums.len());
}

// Proves --log-global-size-max stops logging after the limit and that the
// exit record counts what was not logged.
#[test]
fn global_cap_stops_and_counts() {
    let fx = Fixture::new("globalcap");
    let c = fx.bundle(&["sh", "-c", &numbered(500)]);
    fx.launch_ok(&c, fx.launcher(&c).opt("--log-global-size-max", "4000"));
    fx.start(&c);
    let st = c.wait_status();
    assert_eq!(st.num("code"), 0);
    let size = fs::metadata(&c.log).unwrap().len();
    assert!(size <= 4000 && size > 0, "log size {size}");
    assert!(st.num("lost") > 10_000, "lost bytes counted: {}", st.raw);
}

// Proves `--log none` logs nothing (the container still runs and its exit
// is recorded) and `--log passthrough` hands the container the shim's own
// stdio (here the launcher's stdout and stderr files).
#[test]
fn none_and_passthrough() {
    let fx = Fixture::new("nonepass");
    let c = fx.bundle(&["sh", "-c", "echo quiet"]);
    let l = Launcher::new()
        .opt("--id", &c.id)
        .opt("--bundle", &c.bundle)
        .arg(format!("--runtime-arg=--root={}", fx.runc_root.display()))
        .opt("--log", "none")
        .opt("--status-file", &c.status);
    fx.launch_ok(&c, l);
    fx.start(&c);
    assert_eq!(c.wait_status().num("code"), 0);
    assert!(!c.log.exists());

    let c = fx.bundle(&["sh", "-c", "echo passed-out; echo passed-err >&2"]);
    let out = fx.tmp.join("pass.out");
    let (o, e) = (fs::File::create(&out).unwrap(), fs::File::create(fx.tmp.join("pass.err")).unwrap());
    let status = std::process::Command::new(shimlet_bin())
        .args(["--id", &c.id, "--bundle"])
        .arg(&c.bundle)
        .arg(format!("--runtime-arg=--root={}", fx.runc_root.display()))
        .args(["--log", "passthrough", "--status-file"])
        .arg(&c.status)
        .stdin(std::process::Stdio::null())
        .stdout(o)
        .stderr(e)
        .status()
        .unwrap();
    assert!(status.success());
    fx.start(&c);
    assert_eq!(c.wait_status().num("code"), 0);
    let got = fs::read_to_string(&out).unwrap();
    assert!(got.contains("passed-out"), "stdout file: {got:?}");
    let err = fs::read_to_string(fx.tmp.join("pass.err")).unwrap();
    assert!(err.contains("passed-err"), "stderr file: {err:?}");
}
