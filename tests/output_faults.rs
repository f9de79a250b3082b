//! The log and the status file when their disk fails them: a full disk
//! drops and counts output without blocking the container and recovers;
//! a deleted or renamed log is reopened by `2 0 0` on the ctl FIFO; an
//! unwritable status file is reported while the exit file is still
//! written; and every byte the container wrote is in the log before its
//! exit is recorded, whatever the attached clients do.
//!
//! Real runc containers, as root; where runc cannot be made to fail in the
//! way wanted, a fake runtime from tests/fakes stands in (copied into the
//! test's directory; most of them end by running the real runc). Each test
//! has its own temp dir, runc root and container ids (see tests/common), so
//! they run in parallel; waits are bounded and nothing is timed. Figures
//! are printed with eprintln! for the report (`cargo test -- --nocapture`).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

// ---------------------------------------------------------------------------
// the log's disk fills up

// Proves a full disk never blocks the container and is accounted for: the
// log lives on a 2 MiB tmpfs half taken by a filler file; the container
// writes 3 MiB (49152 lines of 64 bytes), then waits. It finishes its
// writes (it is never blocked), the diag file says the log cannot be
// written, and once the filler is deleted the next 200 lines are logged
// again and the diag file says so, with the count of bytes lost so far.
// The status file's lost= equals that count and the 3 MiB exactly: logged
// bytes + lost bytes = bytes written; and the log is still a well-formed
// sequence of whole records (a write cut short by the full disk must not
// leave half a record for the next one to be glued to).
#[test]
fn log_disk_full_drops_counts_and_recovers() {
    const LINES: usize = 49152;
    let line: String = "0123456789abcdef".repeat(4)[..63].to_string();
    let fx = Fixture::new("f-enospc");
    let script = format!(
        "yes \"$0\" | head -n {LINES}; : > /dev/shm/flood-done; {}; \
         i=0; while [ $i -lt 200 ]; do echo after-space-$i; i=$((i+1)); done; exit 0",
        wait_file_sh("go")
    );
    let mut c = fx.bundle(&["sh", "-c", &script, &line]);
    let small = c.dir.join("small");
    let _mount = Mount::tmpfs(&small, "size=2m");
    let filler = small.join("filler");
    fs::write(&filler, vec![b'f'; 1 << 20]).unwrap();
    c.log = small.join("ctr.log");
    let diag = c.dir.join("diag.txt");
    fx.launch_ok(&c, fx.launcher(&c).opt("--diag", &diag));
    let shim = c.shim_pid();
    let pid = c.container_pid();
    fx.start(&c);
    // Never blocked: the container gets through all its writes.
    wait_until_or(
        "the container to finish writing its 3 MiB",
        LONG_WAIT,
        || shm_path(pid, "flood-done").exists().then_some(()),
        || format!("diag: {}", read_text(&diag)),
    );
    wait_until_or(
        "the diag file to say the log cannot be written",
        WAIT,
        || read_text(&diag).contains("cannot write the log").then_some(()),
        || format!("diag: {:?}", read_text(&diag)),
    );
    assert!(pid_alive(shim), "the shim died on a full disk");
    let logged_before = fs::metadata(&c.log).map(|m| m.len()).unwrap_or(0);
    // Space comes back.
    fs::remove_file(&filler).unwrap();
    touch_in_container(pid, "go");
    let st = c.wait_status();
    assert_exited(&st, 0, 0);
    c.wait_no_shim(Some(shim));
    let lost = st.num("lost") as usize;
    let d = read_text(&diag);
    eprintln!("disk full: log {logged_before} bytes when full; status {:?}; diag:\n{d}", st.raw.trim());
    assert!(lost > 0, "lost= must count the dropped bytes: {:?}", st.raw);
    let again = d
        .lines()
        .find_map(|l| l.split("the log is writable again; bytes lost so far: ").nth(1))
        .unwrap_or_else(|| panic!("the diag file does not say the log is writable again:\n{d}"));
    assert_eq!(again.trim().parse::<usize>().ok(), Some(lost), "bytes lost in the diag vs lost= in the status");
    let raw = fs::read(&c.log).unwrap();
    let log = Log::parse(&raw).unwrap_or_else(|e| panic!("after the disk was full the log is malformed: {e}"));
    let out = log.stream(Stream::Stdout);
    let flood_bytes = LINES * (line.len() + 1);
    let after: String = (0..200).map(|i| format!("after-space-{i}\n")).collect();
    assert!(
        out.ends_with(after.as_bytes()),
        "the 200 lines written after the space came back are not all logged: tail {:?}",
        tail_str(&out)
    );
    let flood_part = &out[..out.len() - after.len()];
    let full_line = format!("{line}\n");
    let bad: Vec<String> = flood_part
        .split_inclusive(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| *l != full_line.as_bytes())
        .map(|(i, l)| format!("line {i}: {:?}", String::from_utf8_lossy(l)))
        .collect();
    assert!(
        bad.is_empty() && flood_part.len() + lost == flood_bytes,
        "after the disk was full the log holds records the container did not write \
         (a record cut short by ENOSPC, with the next record glued to it): {bad:?}; \
         logged {} + lost {lost} = {} bytes, the container wrote {flood_bytes}",
        flood_part.len(),
        flood_part.len() + lost
    );
}

// ---------------------------------------------------------------------------
// the log file is deleted or renamed under the shim

/// The shim's descriptor whose target is `path` followed by " (deleted)".
fn deleted_log_fd(shim: i32, path: &Path) -> Option<PathBuf> {
    let want = format!("{} (deleted)", path.display());
    proc_fds(shim).into_iter().find(|(_, t)| *t == want).map(|(n, _)| PathBuf::from(format!("/proc/{shim}/fd/{n}")))
}

// Proves the shim survives its log being deleted and renamed, and that
// `2 0 0` on the ctl FIFO reopens it by path: after a delete, output goes on
// into the deleted file (no crash); the reopen creates a new file at the
// path with only the later lines. After a rename, lines go to the renamed
// file until the reopen, then into a new file at the path.
#[test]
fn log_deleted_or_renamed_then_reopened() {
    let fx = Fixture::new("f-reopen");
    let script = format!(
        "echo before-delete; {}; echo while-deleted; {}; echo after-reopen; {}; \
         echo after-rename-1; {}; echo after-rename-2; exit 0",
        wait_file_sh("go1"),
        wait_file_sh("go2"),
        wait_file_sh("go3"),
        wait_file_sh("go4")
    );
    let c = fx.bundle(&["sh", "-c", &script]);
    let ctl = c.dir.join("ctl");
    fx.launch_ok(&c, fx.launcher(&c).opt("--ctl", &ctl));
    let shim = c.shim_pid();
    let pid = c.container_pid();
    fx.start(&c);
    c.wait_log_contains(Stream::Stdout, "before-delete\n");

    // Deleted: the shim keeps writing into the unlinked file.
    fs::remove_file(&c.log).unwrap();
    touch_in_container(pid, "go1");
    wait_until_or(
        "while-deleted to reach the deleted log",
        WAIT,
        || {
            let p = deleted_log_fd(shim, &c.log)?;
            contains(&fs::read(p).ok()?, b"stdout F while-deleted\n").then_some(())
        },
        || format!("shim fds: {:?}", proc_fds(shim)),
    );
    assert!(pid_alive(shim), "the shim died when its log was deleted");
    ctl_send(&ctl, b"2 0 0\n");
    wait_until("the reopen to create a new log", WAIT, || c.log.exists().then_some(()));
    touch_in_container(pid, "go2");
    c.wait_log_contains(Stream::Stdout, "after-reopen\n");
    assert_eq!(c.log().stream(Stream::Stdout), b"after-reopen\n", "the new log");

    // Renamed: lines follow the file until the reopen.
    let renamed = c.dir.join("ctr.log.renamed");
    fs::rename(&c.log, &renamed).unwrap();
    touch_in_container(pid, "go3");
    wait_until("after-rename-1 in the renamed file", WAIT, || {
        contains(&fs::read(&renamed).ok()?, b"stdout F after-rename-1\n").then_some(())
    });
    assert!(!c.log.exists(), "nothing may create the log before the reopen");
    ctl_send(&ctl, b"2 0 0\n");
    wait_until("the second reopen to create a new log", WAIT, || c.log.exists().then_some(()));
    touch_in_container(pid, "go4");
    let st = c.wait_status();
    assert_exited(&st, 0, 0);
    assert_eq!(st.num("lost"), 0, "nothing was lost: {:?}", st.raw);
    assert_eq!(c.log().stream(Stream::Stdout), b"after-rename-2\n", "the newest log");
    let old = Log::parse(&fs::read(&renamed).unwrap()).expect("renamed log well-formed");
    assert_eq!(
        old.stream(Stream::Stdout),
        b"after-reopen\nafter-rename-1\n",
        "the renamed log keeps the lines written before the reopen"
    );
    end(&fx, &c, shim);
}

// ---------------------------------------------------------------------------
// the container exits with output in flight and clients attached

// Proves every byte is in the log before the exit is recorded: the
// container writes 1 MiB on stdout and 256 KiB on stderr as fast as it can
// and exits 3, while one client reads slowly and another not at all. The
// moment the status file appears, the log already holds every byte; the
// slow client got a prefix of stdout, then its connection was closed.
#[test]
fn exit_with_output_in_flight_log_complete() {
    let line: String = "0123456789abcdef".repeat(4)[..63].to_string();
    let fx = Fixture::new("f-inflight");
    let c = fx.bundle(&["sh", "-c", "yes \"$0\" | head -c 1048576; yes \"$0\" | head -c 262144 >&2; exit 3", &line]);
    let sock = c.dir.join("attach.sock");
    fx.launch_ok(&c, fx.launcher(&c).opt("--attach", &sock));
    let shim = c.shim_pid();
    let target = Target::new(&sock);
    let mut slow = target.connect();
    let idle = target.connect();
    let reader = std::thread::spawn(move || {
        loop {
            match slow.recv(Duration::from_millis(200)) {
                Recv::Closed(_) => break,
                _ => std::thread::sleep(Duration::from_millis(2)),
            }
            if slow.records > 100_000 {
                break;
            }
        }
        slow
    });
    fx.start(&c);
    let deadline = Instant::now() + WAIT;
    while !c.status.exists() {
        assert!(Instant::now() < deadline, "no status file");
        std::thread::sleep(Duration::from_millis(1));
    }
    let log_at_exit = fs::read(&c.log).unwrap();
    let st = StatusLine::parse(&fs::read(&c.status).unwrap()).unwrap();
    assert_exited(&st, 3, 0);
    let log = Log::parse(&log_at_exit).expect("the log at the time of the status file");
    let full = format!("{line}\n");
    let want_out = full.repeat(1048576 / 64);
    let want_err = full.repeat(262144 / 64);
    let out = log.stream(Stream::Stdout);
    let err = log.stream(Stream::Stderr);
    assert!(
        out == want_out.as_bytes(),
        "stdout in the log when the exit was recorded: {}",
        first_difference(&out, want_out.as_bytes())
    );
    assert!(
        err == want_err.as_bytes(),
        "stderr in the log when the exit was recorded: {}",
        first_difference(&err, want_err.as_bytes())
    );
    let slow = reader.join().expect("reader thread");
    assert!(slow.closed.is_some(), "the slow client was not closed");
    assert!(
        want_out.as_bytes().starts_with(&slow.stdout),
        "the slow client's stdout is not a prefix of what was written"
    );
    drop(idle);
    eprintln!(
        "in flight: 1048576 + 262144 bytes written, {} + {} in the log when the status appeared; slow client got {} bytes",
        out.len(),
        err.len(),
        slow.stdout.len()
    );
    end(&fx, &c, shim);
}

// ---------------------------------------------------------------------------
// the status file cannot be written

// Proves a status file that cannot be written (its directory is a
// read-only tmpfs) is reported in --diag, and the exit dir's file is still
// written with the container's code.
#[test]
fn status_file_unwritable() {
    let fx = Fixture::new("f-status-ro");
    let mut c = fx.bundle(&["sh", "-c", "echo bye; exit 4"]);
    let ro = c.dir.join("ro");
    let _mount = Mount::tmpfs(&ro, "ro,size=64k");
    c.status = ro.join("status");
    let diag = c.dir.join("diag.txt");
    fx.launch_ok(&c, fx.launcher(&c).opt("--diag", &diag));
    let shim = c.shim_pid();
    fx.start(&c);
    assert_eq!(c.wait_exit_file(), "4", "the exit dir's file");
    c.wait_no_shim(Some(shim));
    let d = read_text(&diag);
    eprintln!("status file unwritable: diag:\n{d}");
    assert!(d.contains("cannot write the status file"), "diag: {d:?}");
    assert!(!c.status.exists());
    assert_eq!(c.log().stream(Stream::Stdout), b"bye\n");
    end(&fx, &c, shim);
}
