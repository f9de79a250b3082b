//! How a test's container and shim must have ended, and what must not be
//! left behind.

use std::fs;
use std::time::Duration;

use super::*;

/// Asserts an `exited` status line with this code and signal.
pub fn assert_exited(st: &StatusLine, code: i64, signal: i64) {
    assert_eq!(st.kind, "exited", "status line: {:?}", st.raw);
    assert_eq!(st.num("code"), code, "exit code in {:?}", st.raw);
    assert_eq!(st.num("signal"), signal, "signal in {:?}", st.raw);
}

/// `assert_exited`, and the record names the container's `pid` and no OOM
/// kill.
pub fn assert_exited_pid(st: &StatusLine, code: i64, signal: i64, pid: i32) {
    assert_exited(st, code, signal);
    assert_eq!(st.num("oom"), 0, "oom in {:?}", st.raw);
    assert_eq!(st.num("pid"), pid as i64, "pid (the container's) in {:?}", st.raw);
}

/// The end of every test: the shim is gone (and reaped), no shimlet process
/// of this test is left, the (stopped) container deletes and `runc list` is
/// empty.
pub fn end(fx: &Fixture, c: &Container, shim: i32) {
    c.wait_no_shim(Some(shim));
    let left = find_shims(&fx.token);
    assert!(left.is_empty(), "shimlet processes left: {left:?}");
    let out = fx.runc_output(&["delete", &c.id]);
    assert!(out.status.success(), "runc delete {}: {}", c.id, String::from_utf8_lossy(&out.stderr));
    let list = fx.runc_list();
    assert!(list.is_empty(), "runc list after the test: {list:?}");
}

/// After a failed create: no shim, none of `pids` (reaped if they ended up
/// as children of the test), nothing in the container's cgroups, no
/// process mentioning the container id.
pub fn assert_nothing_left(fx: &Fixture, c: &Container, pids: &[i32]) {
    let shim = fs::read_to_string(&c.shim_pidfile).ok().and_then(|s| s.trim().parse::<i32>().ok());
    c.wait_no_shim(shim);
    for &p in pids {
        wait_pid_gone(p, "a process the runtime started");
        assert!(!pid_alive(p), "pid {p} ({}) is still running", proc_cmdline(p));
    }
    wait_until_or(
        &format!("no process left in the cgroups of {}", c.id),
        WAIT,
        || cgroup_procs(&c.id).is_empty().then_some(()),
        || {
            cgroup_procs(&c.id)
                .iter()
                .map(|p| format!("{p}: {} (parent {:?})", proc_cmdline(*p), proc_ppid(*p)))
                .collect::<Vec<_>>()
                .join("\n")
        },
    );
    wait_until_or(
        &format!("no process mentioning {}", c.id),
        WAIT,
        || processes_mentioning(&c.id).is_empty().then_some(()),
        || processes_mentioning(&c.id).iter().map(|(p, _, cl)| format!("{p}: {cl}")).collect::<Vec<_>>().join("\n"),
    );
    assert!(find_shims(&fx.token).is_empty(), "a shim is left");
}

/// Requires a failed create on the sync descriptor: `{"pid": -1,
/// "message": ...}` with a message containing `want`; returns the message.
pub fn assert_sync_failure(r: &Launched, want: &str) -> String {
    assert!(r.status.success(), "with a sync fd the launcher exits 0: {:?} {}", r.status, r.stderr_str());
    assert_eq!(r.sync_pid(), -1, "sync message {}", r.sync_text());
    let m = r.sync_message().unwrap_or_else(|| panic!("no string message in {}", r.sync_text()));
    assert!(!m.trim().is_empty(), "empty message: {}", r.sync_text());
    assert!(m.contains(want), "the message {m:?} should contain {want:?}");
    m
}

/// Waits for a status file that must not appear before `limit`; None if
/// it did not.
pub fn status_within(c: &Container, limit: Duration) -> Option<StatusLine> {
    poll_for(limit, || c.status.exists().then_some(()))?;
    Some(StatusLine::parse(&fs::read(&c.status).unwrap()).unwrap())
}

/// Asserts stderr is exactly one non-empty line.
pub fn one_line(err: &[u8]) -> bool {
    err.ends_with(b"\n") && err.iter().filter(|&&b| b == b'\n').count() == 1 && err.len() > 4
}
