//! Log drivers: journald (against a fake journal socket), `none` and
//! `passthrough`. Real runc containers, as root. (The size limits are in
//! log_size_limits.rs, journald's conmon 2.2 fields in journald_fields.rs.)

mod common;

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::*;

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
