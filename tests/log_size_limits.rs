//! The log file's limits and renewal, as conmon applies them: at
//! `--log-size-max` the file is started anew before the record that would
//! pass the limit (conmon's default: the old lines are gone), with
//! `--log-rotate` the old files are kept as FILE.1 .. FILE.N; past
//! `--log-global-size-max` the rest is dropped (the crossing record is
//! written); `2 0 0` on the ctl FIFO starts the file anew too. Where
//! conmon 2.1.6 has the behaviour, the same container runs under
//! /usr/bin/conmon and shimlet with conmon's command line and the files
//! must match byte for byte (timestamps aside); `--log-rotate` and
//! `--log-max-files` (conmon 2.2) are held to conmon 2.2's documented
//! behaviour, and the file modes to 2.2's 0640.
//!
//! Each line the container prints is one write of 40 bytes (an 85-byte
//! record), and a container's whole output is far below one 8 KiB read,
//! so no line is ever cut across reads and the outcome is exact.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::*;

/// `line-NNN-000...0`: 40 bytes with the newline; an 85-byte record.
fn lines_script(n: u32) -> String {
    format!("i=1; while [ $i -le {n} ]; do printf 'line-%03d-%030d\\n' $i 0; i=$((i+1)); done")
}

const RECORD: u64 = 85;

/// The line numbers in a log file, in order (fails on a malformed file).
fn numbers(p: &Path) -> Vec<u32> {
    let data = fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    let log = Log::parse(&data).unwrap_or_else(|e| panic!("{} is not a k8s-file log: {e}", p.display()));
    String::from_utf8(log.stream(Stream::Stdout))
        .unwrap()
        .lines()
        .map(|l| l[5..8].parse().unwrap_or_else(|_| panic!("not a numbered line: {l:?}")))
        .collect()
}

/// conmon's rule, record by record, for `n` records: the files from the
/// newest, each a list of line numbers.
fn model(n: u32, max: u64) -> Vec<Vec<u32>> {
    let mut files = vec![vec![]];
    let mut size = 0;
    for i in 1..=n {
        if size > 0 && size + RECORD > max {
            files.push(vec![]);
            size = 0;
        }
        files.last_mut().unwrap().push(i);
        size += RECORD;
    }
    files.reverse();
    files
}

/// The names in the log's directory that start with the log's name.
fn log_family(c: &Container) -> Vec<String> {
    let base = c.log.file_name().unwrap().to_string_lossy().into_owned();
    let mut v: Vec<String> = fs::read_dir(&c.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&base))
        .collect();
    v.sort();
    v
}

fn numbered(c: &Container, k: usize) -> PathBuf {
    if k == 0 {
        c.log.clone()
    } else {
        PathBuf::from(format!("{}.{k}", c.log.display()))
    }
}

/// Runs `n` lines in a container under `shim` with conmon's command line
/// and `extra` options; waits for its exit file.
fn run_lines(fx: &Fixture, shim: Shim, n: u32, extra: &[&str]) -> Container {
    let c = fx.bundle(&["sh", "-c", &lines_script(n)]);
    let l = conmon_logged(fx, &c, shim).args(extra);
    let r = fx.launch_ok(&c, l);
    assert!(r.sync_pid() > 0, "[{shim}] create: {}", r.sync_text());
    fx.start(&c);
    assert_eq!(c.wait_exit_file(), "0", "[{shim}] exit status");
    c.wait_no_shim(None);
    c
}

// Proves --log-size-max starts the file anew at the limit, record by
// record as conmon does: 60 records of 85 bytes with a limit of 400 leave
// a file holding the last four (340 bytes), under conmon and under
// shimlet alike. conmon throws the file before away; shimlet keeps it as
// FILE.1 (the four records before), so a rotation loses nothing that fits
// in twice the limit. shimlet's files are 0640 (conmon 2.2's mode).
#[test]
fn size_limit_starts_anew_and_keeps_the_old_file() {
    let fx = Fixture::new("l-trunc");
    let want = model(60, 400);
    for shim in Shim::BOTH {
        let c = run_lines(&fx, shim, 60, &["--log-size-max", "400"]);
        assert_eq!(numbers(&c.log), want[0], "[{shim}] the log holds the last records");
        assert_eq!(fs::metadata(&c.log).unwrap().len(), want[0].len() as u64 * RECORD, "[{shim}] log size");
        if shim == Shim::Shimlet {
            assert_eq!(
                log_family(&c),
                vec!["ctr.log".to_string(), "ctr.log.1".to_string()],
                "[{shim}] the old file kept"
            );
            assert_eq!(numbers(&numbered(&c, 1)), want[1], "[{shim}] FILE.1 holds the records before");
        } else {
            assert_eq!(log_family(&c), vec!["ctr.log".to_string()], "[{shim}] conmon keeps nothing beside the log");
        }
        let mode = fs::metadata(&c.log).unwrap().mode() & 0o777;
        eprintln!("[{shim}] log holds lines {:?}, mode {mode:o}", want[0]);
        if shim == Shim::Shimlet {
            assert_eq!(mode, 0o640, "the log's mode");
        }
    }
}

// Proves --log-global-size-max as conmon applies it: with 200 bytes and
// 85-byte records, three records are logged (the one that crosses the
// limit too) and nothing after, under conmon and shimlet alike.
#[test]
fn global_cap_like_conmon() {
    let fx = Fixture::new("l-global");
    for shim in Shim::BOTH {
        let c = run_lines(&fx, shim, 20, &["--log-global-size-max", "200"]);
        assert_eq!(numbers(&c.log), vec![1, 2, 3], "[{shim}] the records up to and across the cap");
    }
}

// Proves --log-rotate with --log-max-files 3 (conmon 2.2): 60 records with
// a limit of 400 end in FILE (the last 4), FILE.1, FILE.2 and FILE.3 (the
// four before each), no FILE.4, every file 0640; with --log-max-files 1
// exactly one old file is kept (conmon 2.2.1 also keeps a FILE.2 there:
// a counting slip, not followed).
#[test]
fn rotation_keeps_n_files() {
    let fx = Fixture::new("l-rotate");
    let want = model(60, 400);
    let c = run_lines(&fx, Shim::Shimlet, 60, &["--log-size-max", "400", "--log-rotate", "--log-max-files", "3"]);
    assert_eq!(log_family(&c), vec!["ctr.log", "ctr.log.1", "ctr.log.2", "ctr.log.3"], "the files");
    for (k, lines) in want.iter().take(4).enumerate() {
        let p = numbered(&c, k);
        assert_eq!(&numbers(&p), lines, "{}", p.display());
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o640, "the mode of {}", p.display());
    }
    let c = run_lines(&fx, Shim::Shimlet, 60, &["--log-size-max", "400", "--log-rotate"]);
    assert_eq!(log_family(&c), vec!["ctr.log", "ctr.log.1"], "--log-max-files 1 (the default)");
    assert_eq!(numbers(&numbered(&c, 1)), want[1]);
    // Without --log-rotate, --log-max-files changes nothing: one old file.
    let c = run_lines(&fx, Shim::Shimlet, 60, &["--log-size-max", "400", "--log-max-files", "5"]);
    assert_eq!(log_family(&c), vec!["ctr.log", "ctr.log.1"]);
}

// Proves `2 0 0` on the ctl FIFO starts the log anew as conmon does, the
// later lines in a new file at the path. When the file was not moved away
// conmon throws its earlier lines away; shimlet keeps them in FILE.1
// (always: with --log-rotate conmon 2.2 does too).
#[test]
fn ctl_reopen_starts_anew_like_conmon() {
    let fx = Fixture::new("l-reopen");
    for (shim, rotate) in [(Shim::Conmon, false), (Shim::Shimlet, false), (Shim::Shimlet, true)] {
        let script = format!("echo before; {}; echo after", wait_file_sh("go"));
        let c = fx.bundle(&["sh", "-c", &script]);
        let extra: &[&str] = if rotate { &["--log-rotate"] } else { &[] };
        let r = fx.launch_ok(&c, conmon_logged(&fx, &c, shim).args(extra));
        let pid = r.sync_pid() as i32;
        fx.start(&c);
        c.wait_log_contains(Stream::Stdout, "before\n");
        let ino = fs::metadata(&c.log).unwrap().ino();
        ctl_send(&c.bundle.join("ctl"), b"2 0 0\n");
        wait_until(&format!("[{shim}] a new log file"), WAIT, || {
            (fs::metadata(&c.log).ok()?.ino() != ino).then_some(())
        });
        touch_in_container(pid, "go");
        assert_eq!(c.wait_exit_file(), "0", "[{shim}]");
        c.wait_no_shim(None);
        assert_eq!(c.log().stream(Stream::Stdout), b"after\n", "[{shim}] rotate={rotate}: the new log");
        let old = numbered(&c, 1);
        if shim == Shim::Shimlet {
            let kept = Log::parse(&fs::read(&old).unwrap()).unwrap();
            assert_eq!(kept.stream(Stream::Stdout), b"before\n", "[{shim}] rotate={rotate}: the old lines in FILE.1");
        } else {
            assert!(!old.exists(), "[{shim}] no FILE.1 without --log-rotate");
        }
    }
}
