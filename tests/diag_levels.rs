//! `--log-level` filters shimlet's own diagnostics (`--diag FILE`, and
//! syslog with `--syslog`) as conmon's levels filter conmon's: `error`
//! says no warnings, `warn` (the default) says them, `info` adds the
//! container's end, `debug` its pid, `trace` the runtime's command line
//! (conmon's `calling runtime args: ...`). conmon's own diagnostics go to
//! syslog only, so this is held to conmon's documented levels, not run
//! beside it.

mod common;

use common::*;

/// Runs a container that exits 3 after a malformed ctl line (a warning)
/// at `level`; returns the diag file's text and the container's pid.
fn run_at(fx: &Fixture, level: &str) -> (String, i32) {
    let c = fx.bundle(&["sh", "-c", &format!("{}; exit 3", wait_file_sh("go"))]);
    let (ctl, diag) = (c.dir.join("ctl"), c.dir.join("diag.txt"));
    let l = fx.launcher(&c).opt("--ctl", &ctl).opt("--diag", &diag).opt("--log-level", level);
    let r = fx.launch_ok(&c, l.sync(Sync::Fd));
    let pid = r.sync_pid() as i32;
    fx.start(&c);
    ctl_send(&ctl, b"not a ctl line\n");
    wait_until("the shim to read the ctl line", WAIT, || (fifo_pending(&ctl) == 0).then_some(()));
    touch_in_container(pid, "go");
    assert_exited(&c.wait_status(), 3, 0);
    c.wait_no_shim(None);
    (read_text(&diag), pid)
}

// Proves each level says what it should and nothing more detailed: the
// malformed-line warning at warn and above only; the container's end at
// info and above; its pid at debug and above; the runtime's command line
// (with `create` and the id) at trace only.
#[test]
fn levels_filter_diagnostics() {
    let fx = Fixture::new("d-levels");
    for (level, rank) in [("error", 0), ("warn", 1), ("info", 2), ("debug", 3), ("trace", 4)] {
        let (d, pid) = run_at(&fx, level);
        let has = |s: &str| d.contains(s);
        eprintln!("--log-level {level}: {} lines", d.lines().count());
        assert_eq!(has("ignored a malformed control line"), rank >= 1, "{level}: the warning\n{d}");
        assert_eq!(has(&format!("container {pid} exited with status 3")), rank >= 2, "{level}: the end\n{d}");
        assert_eq!(has(&format!("container PID: {pid}")), rank >= 3, "{level}: the pid\n{d}");
        let runtime = d.lines().find(|l| l.contains("calling runtime args: "));
        assert_eq!(runtime.is_some(), rank >= 4, "{level}: the runtime's command line\n{d}");
        if let Some(l) = runtime {
            assert!(l.contains(" create --bundle ") && l.contains("--pid-file"), "{l}");
        }
    }
}
