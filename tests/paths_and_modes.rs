//! Paths and permissions: over-long paths and missing directories are
//! errors the manager sees before the shim detaches (or clean create
//! failures for the attach socket and ctl FIFO), non-UTF-8 names are just
//! bytes, and nothing the shim creates is group- or world-writable, even
//! under umask 0.
//!
//! Real runc containers, as root; where runc cannot be made to fail in the
//! way wanted, a fake runtime from tests/fakes stands in (copied into the
//! test's directory; most of them end by running the real runc). Each test
//! has its own temp dir, runc root and container ids (see tests/common), so
//! they run in parallel; waits are bounded and nothing is timed. Figures
//! are printed with eprintln! for the report (`cargo test -- --nocapture`).

mod common;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use common::*;

// ---------------------------------------------------------------------------
// paths

/// A path longer than PATH_MAX (4096) under `base`.
fn overlong(base: &Path, leaf: &str) -> PathBuf {
    let mut p = base.to_path_buf();
    while p.as_os_str().len() < 4200 {
        p.push("d".repeat(200));
    }
    p.push(leaf);
    p
}

// Proves bad paths are errors the manager sees before the shim detaches:
// --log, --status-file and --exit-dir longer than PATH_MAX, a --log,
// --diag or --shim-pidfile in a missing directory, a missing --exit-dir:
// the launcher exits 1 with one line naming the problem, and nothing runs
// (no shim, no container). Attach socket and ctl FIFO paths are checked
// after detaching: a missing directory there fails the create, cleanly.
#[test]
fn bad_paths_fail_before_detaching() {
    let fx = Fixture::new("f-paths");
    let nowhere = PathBuf::from(format!("/nonexistent-{}", fx.token));
    type Case = (&'static str, &'static str, PathBuf, &'static str);
    let cases: Vec<Case> = vec![
        ("long log", "--log", overlong(fx.tmp.path(), "ctr.log"), "--log path is too long"),
        ("long status", "--status-file", overlong(fx.tmp.path(), "status"), "--status-file path is too long"),
        ("long exit dir", "--exit-dir", overlong(fx.tmp.path(), "exits"), "--exit-dir path is too long"),
        ("missing log dir", "--log", nowhere.join("dir/x.log"), "Failed to open log file"),
        ("missing diag dir", "--diag", nowhere.join("dir/diag"), "cannot open --diag"),
        ("missing exit dir", "--exit-dir", nowhere.join("exits"), "--exit-dir"),
        ("missing shim pidfile dir", "--shim-pidfile", nowhere.join("shim.pid"), "shim pidfile"),
    ];
    for (what, opt, path, want) in cases {
        let c = fx.bundle(&["true"]);
        let r = fx.launch(&c, fx.launcher(&c).opt(opt, &path));
        let err = r.stderr_str();
        assert_eq!(r.status.code(), Some(1), "{what}: launcher exit; stderr {err:?}");
        assert!(one_line(&r.stderr), "{what}: want one line on stderr, got {err:?}");
        assert!(err.contains(want), "{what}: {err:?} should say {want:?}");
        assert!(find_shims(&fx.token).is_empty(), "{what}: a shim was started");
        assert!(fx.runc_list().is_empty(), "{what}: a container was created");
        assert!(!c.status.exists(), "{what}: a status file was written");
        eprintln!("{what}: {}", err.trim().chars().take(150).collect::<String>());
    }
    // Checked after detaching: the create fails and nothing is left.
    for (what, opt, leaf) in [("attach", "--attach", "sock"), ("ctl", "--ctl", "ctl")] {
        for path in [nowhere.join(leaf), overlong(fx.tmp.path(), leaf)] {
            let c = fx.bundle(&["true"]);
            let r = fx.launch(&c, fx.launcher(&c).opt(opt, &path));
            let err = r.stderr_str();
            assert_eq!(r.status.code(), Some(1), "{what}: launcher exit; stderr {err:?}");
            assert!(err.contains(what), "{what}: {err:?}");
            assert_nothing_left(&fx, &c, &[]);
            assert!(fx.runc_list().is_empty(), "{what}: a container was created");
            eprintln!("{what} in a bad place: {}", err.trim().chars().take(150).collect::<String>());
        }
    }
}

// Proves non-UTF-8 bytes in paths are just bytes: a log, a status file and
// an exit dir whose names hold \xff \xfe \x01 work, and the files with
// those byte names exist afterwards with the expected content.
#[test]
fn non_utf8_paths_work() {
    let fx = Fixture::new("f-nonutf8");
    let mut c = fx.bundle(&["sh", "-c", "echo non-utf8-ok; exit 3"]);
    c.log = c.dir.join(std::ffi::OsStr::from_bytes(b"log-\xff\xfe\x01.txt"));
    c.status = c.dir.join(std::ffi::OsStr::from_bytes(b"status-\xff"));
    c.exit_dir = c.dir.join(std::ffi::OsStr::from_bytes(b"exits-\xfe\x80"));
    fs::create_dir(&c.exit_dir).unwrap();
    fx.launch_ok(&c, fx.launcher(&c));
    let shim = c.shim_pid();
    fx.start(&c);
    assert_exited(&c.wait_status(), 3, 0);
    assert_eq!(c.wait_exit_file(), "3");
    let names: Vec<Vec<u8>> =
        fs::read_dir(&c.dir).unwrap().filter_map(|e| Some(e.ok()?.file_name().as_bytes().to_vec())).collect();
    assert!(names.iter().any(|n| n == b"log-\xff\xfe\x01.txt"), "no log with the byte name: {names:?}");
    assert_eq!(c.log().stream(Stream::Stdout), b"non-utf8-ok\n");
    end(&fx, &c, shim);
}

// ---------------------------------------------------------------------------
// modes of what the shim creates

// Proves nothing the shim creates is world-writable, even under umask 0
// (set for the launcher only): attach socket 0700, ctl FIFO 0640, log 0640
// (conmon 2.2's modes), diag 0600, the shim pidfile, status file and exit file not writable by
// group or others.
#[test]
fn created_files_are_not_world_writable() {
    let fx = Fixture::new("f-modes");
    let c = fx.bundle(&["cat"]);
    let (sock, ctl, diag) = (c.dir.join("attach.sock"), c.dir.join("ctl"), c.dir.join("diag.txt"));
    let inner = fx.launcher(&c).opt("--attach", &sock).opt("--ctl", &ctl).opt("--diag", &diag).arg("--stdin");
    fx.launch_ok(&c, wrapped("umask 000", inner));
    let shim = c.shim_pid();
    let mode = |p: &Path| {
        let m = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
        (m.file_type(), m.mode() & 0o7777)
    };
    let (t, m) = mode(&sock);
    assert!(t.is_socket() && m == 0o700, "attach socket: {t:?} {m:o}");
    let (t, m) = mode(&ctl);
    assert!(t.is_fifo() && m == 0o640, "ctl FIFO: {t:?} {m:o}");
    assert_eq!(mode(&c.log).1, 0o640, "log");
    assert_eq!(mode(&diag).1, 0o600, "diag");
    let cl = Target::new(&sock).connect();
    fx.start(&c);
    cl.send(b"bye\n");
    cl.shutdown_wr();
    assert_exited(&c.wait_status(), 0, 0);
    c.wait_exit_file();
    c.wait_no_shim(Some(shim));
    let mut seen = vec![];
    for e in fs::read_dir(&c.dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "bundle" || name.starts_with("launcher-") {
            continue;
        }
        let (t, m) = mode(&e.path());
        seen.push(format!("{name} {m:o}"));
        if t.is_dir() {
            continue; // made by the test
        }
        assert!(m & 0o022 == 0, "{name} is group- or world-writable: {m:o}");
    }
    for e in fs::read_dir(&c.exit_dir).unwrap().flatten() {
        let (_, m) = mode(&e.path());
        seen.push(format!("exits/{} {m:o}", e.file_name().to_string_lossy()));
        assert!(m & 0o022 == 0, "exit file {:?} is group- or world-writable: {m:o}", e.file_name());
    }
    eprintln!("modes under umask 0: socket 700, FIFO 640; after the exit: {seen:?}");
    end(&fx, &c, shim);
}
