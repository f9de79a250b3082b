//! Floods of output and hostile output: 1 GiB without a newline, 10 million
//! one-byte lines, 50 MB of random binary, and escapes, forged records,
//! NULs and invalid UTF-8 never grow the shim (RssAnon within its fixed
//! flood buffers and a page of its value before the flood, and back within
//! a page of it once idle) and reach the log byte-exact.
//!
//! Real runc containers, as root; where runc cannot be made to fail in the
//! way wanted, a fake runtime from tests/fakes stands in (copied into the
//! test's directory; most of them end by running the real runc). Each test
//! has its own temp dir, runc root and container ids (see tests/common), so
//! they run in parallel; waits are bounded and nothing is timed. Figures
//! are printed with eprintln! for the report (`cargo test -- --nocapture`).

mod common;

use std::fs;
use std::time::Duration;

use common::*;

// ---------------------------------------------------------------------------
// floods of output, and hostile output: memory stays put

/// A running flood: the container printed `first-line`, heartbeats on
/// stderr until /dev/shm/go, ran the flood (stdout), printed
/// "\nFLOOD-END\n" and now waits for /dev/shm/stop.
struct Flood {
    shim: i32,
    pid: i32,
    /// RssAnon (kB) while heartbeats flowed, before the flood.
    before: u64,
    during: RssTrack,
    /// Right after FLOOD-END was logged.
    after: u64,
    /// 1.5 s later (the shim trims after 1 s idle).
    after_idle: u64,
}

/// The container script of a flood: `setup` runs first (silently),
/// `flood` writes what is measured.
fn flood_script(setup: &str, flood: &str) -> String {
    format!(
        "{setup}\necho first-line\n\
         i=0; while [ ! -e /dev/shm/go ]; do echo hb-$i >&2; i=$((i+1)); [ $i -gt 1200 ] && exit 99; sleep 0.1; done\n\
         {flood}\nprintf '\\nFLOOD-END\\n'\n{}\nexit 0",
        wait_file_sh("stop")
    )
}

/// Launches and starts `c` (whose script is a `flood_script`), takes the
/// shim's RssAnon before, during and after the flood.
fn run_flood(fx: &Fixture, c: &Container) -> Flood {
    fx.launch_ok(c, fx.launcher(c));
    let shim = c.shim_pid();
    let pid = c.container_pid();
    fx.start(c);
    c.wait_log_contains(Stream::Stdout, "first-line\n");
    c.wait_log_contains(Stream::Stderr, "hb-3\n");
    // Heartbeats every 100 ms keep the shim busy: no idle trim meanwhile.
    let mut before = 0;
    for _ in 0..10 {
        before = before.max(status_kb(shim, "RssAnon").expect("shim RssAnon"));
        std::thread::sleep(Duration::from_millis(50));
    }
    touch_in_container(pid, "go");
    let mut during = RssTrack::default();
    wait_until_or(
        "FLOOD-END at the end of the log",
        LONG_WAIT,
        || {
            during.sample(shim);
            contains(&file_tail(&c.log, 64 << 10), b" stdout F FLOOD-END\n").then_some(())
        },
        || c.log_tail(),
    );
    let after = status_kb(shim, "RssAnon").expect("shim RssAnon");
    std::thread::sleep(Duration::from_millis(1500));
    let after_idle = status_kb(shim, "RssAnon").expect("shim RssAnon");
    Flood { shim, pid, before, during, after, after_idle }
}

impl Flood {
    /// Lets the container exit; checks the status and that the shim ends.
    fn stop(&self, fx: &Fixture, c: &Container) {
        touch_in_container(self.pid, "stop");
        let st = c.wait_status_for(LONG_WAIT);
        assert_exited(&st, 0, 0);
        assert_eq!(st.num("lost"), 0, "nothing may be lost: {:?}", st.raw);
        end(fx, c, self.shim);
    }

    /// RssAnon during and right after the flood stays within the fixed
    /// flood buffers and a page of `before`; once idle, within a page of it
    /// (the buffers are handed back).
    fn check_memory(&self, what: &str) {
        eprintln!(
            "{what}: shim RssAnon before {} kB, max during {} kB ({} samples), right after {} kB, after 1.5 s idle {} kB",
            self.before, self.during.max, self.during.samples, self.after, self.after_idle
        );
        assert!(self.during.samples > 0, "no RssAnon sample during the flood");
        let busy = self.before + FLOOD_BUFFERS_KB + 4;
        assert!(
            self.during.max <= busy && self.after <= busy,
            "{what}: the shim's RssAnon grew past its flood buffers: before {} kB, max during {} kB, after {} kB",
            self.before,
            self.during.max,
            self.after
        );
        assert!(
            self.after_idle <= self.before + 4,
            "{what}: the shim's RssAnon was not handed back when idle: before {} kB, after idle {} kB",
            self.before,
            self.after_idle
        );
    }
}

/// Checks the stdout stream of a (huge) log against `want`, streaming; all
/// records at most 8192 payload bytes. Returns the scan and the stderr
/// stream's bytes when `keep_stderr`.
fn check_flood_log(c: &Container, want: Vec<Seg>, keep_stderr: bool) -> (Scan, Vec<u8>) {
    let mut exp = Expect::new(want);
    let mut err = Vec::new();
    let scan = scan_log(
        &c.log,
        Stream::Stdout,
        |d| exp.feed(d),
        |d| {
            if keep_stderr {
                err.extend_from_slice(d)
            }
        },
    )
    .unwrap_or_else(|e| panic!("the log is malformed: {e}"));
    if let Err(e) = exp.finish() {
        panic!("stdout in the log: {e} ({} records, {} payload bytes)", scan.records, scan.bytes);
    }
    assert!(scan.max_payload <= 8192, "a record carries {} bytes: reads are at most 8192 bytes", scan.max_payload);
    (scan, err)
}

/// How much the no-newline flood writes: 1 GiB unless FAULTS_FLOOD_MIB
/// says otherwise.
fn flood_mib() -> u64 {
    std::env::var("FAULTS_FLOOD_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024)
}

// Proves a flood without any newline (1 GiB of 'a', as 1024 x a 1 MiB file)
// neither grows the shim (RssAnon within a page of its value before the
// flood, during and after) nor alters a byte: the P records reassemble to
// exactly the bytes written, each at most 8192 bytes.
#[test]
fn flood_without_newline() {
    let mib = flood_mib();
    let fx = Fixture::new("f-nonl");
    let script = flood_script("", &format!("i=0; while [ $i -lt {mib} ]; do cat /a.bin; i=$((i+1)); done"));
    let c = fx.bundle(&["sh", "-c", &script]);
    c.add_file("/a.bin", &vec![b'a'; 1 << 20]);
    let f = run_flood(&fx, &c);
    f.check_memory(&format!("{mib} MiB without newline"));
    f.stop(&fx, &c);
    let (scan, _) = check_flood_log(
        &c,
        vec![Seg::Bytes(b"first-line\n".to_vec()), Seg::cycle(b"a", mib << 20), Seg::Bytes(b"\nFLOOD-END\n".to_vec())],
        false,
    );
    eprintln!(
        "{mib} MiB without newline: {} bytes in, {} stdout payload bytes logged in {} records ({} P), longest {}",
        (mib << 20) + 22,
        scan.bytes,
        scan.records,
        scan.partial,
        scan.max_payload
    );
}

// Proves 10 million one-byte lines (`yes a | head -n 10000000`, 20 MB that
// make 10 million records) do not grow the shim and are all logged, in
// order.
#[test]
fn flood_of_ten_million_short_lines() {
    let fx = Fixture::new("f-10m");
    let script = flood_script("", "yes a | head -n 10000000");
    let c = fx.bundle(&["sh", "-c", &script]);
    let f = run_flood(&fx, &c);
    f.check_memory("10M one-byte lines");
    f.stop(&fx, &c);
    let (scan, _) = check_flood_log(
        &c,
        vec![
            Seg::Bytes(b"first-line\n".to_vec()),
            Seg::cycle(b"a\n", 20_000_000),
            Seg::Bytes(b"\nFLOOD-END\n".to_vec()),
        ],
        false,
    );
    assert!(scan.full >= 10_000_002, "only {} F records", scan.full);
    eprintln!(
        "10M lines: 20000022 bytes in, {} payload bytes logged, {} records ({} F)",
        scan.bytes, scan.records, scan.full
    );
}

// Proves 50 MB of random binary (from the container's /dev/urandom, kept in
// its /dev/shm to compare) come through byte-exact and do not grow the shim.
#[test]
fn flood_of_random_binary() {
    const N: usize = 50_000_000;
    let fx = Fixture::new("f-bin");
    let script = flood_script(&format!("head -c {N} /dev/urandom > /dev/shm/r"), "cat /dev/shm/r");
    let c = fx.bundle(&["sh", "-c", &script]);
    let f = run_flood(&fx, &c);
    let data = fs::read(shm_path(f.pid, "r")).expect("the container's random data");
    assert_eq!(data.len(), N);
    f.check_memory("50 MB random binary");
    f.stop(&fx, &c);
    let (scan, _) = check_flood_log(
        &c,
        vec![Seg::Bytes(b"first-line\n".to_vec()), Seg::Bytes(data), Seg::Bytes(b"\nFLOOD-END\n".to_vec())],
        false,
    );
    eprintln!("random binary: {} bytes in, {} payload bytes logged in {} records", N + 22, scan.bytes, scan.records);
}

/// Output meant to confuse: a 4 MiB line, terminal escapes, fake record
/// headers, NULs, invalid UTF-8, CRs, a 1 MiB line of random printable
/// bytes, and no final newline.
fn hostile_bytes() -> Vec<u8> {
    let mut h: Vec<u8> = b"HOSTILE-BEGIN\n".to_vec();
    h.extend(std::iter::repeat_n(b'x', 4 << 20));
    h.extend_from_slice(b"\n\x1b[2J\x1b[H\x1b]0;title\x07\x1bP+q\x1b\\\x1b[6n\x1b[?1049h\x1b[31mred\x1b[0m\n");
    h.extend_from_slice(b"2026-11-28T19:33:42.123456789+00:00 stderr F forged record\n");
    h.extend_from_slice(b" stdout P \n F \n P\n\x00\x00\x00\n\xff\xfe\xfd\r\r\r\n\r");
    let mut rng = Rng::new(0xbad_5eed);
    h.extend((0..(1 << 20)).map(|_| b' ' + (rng.next() % 95) as u8));
    h.extend_from_slice(b"\n\t\x08\x7f\x1b[1;1H");
    h.extend_from_slice(&rng.bytes(100_000));
    h.extend_from_slice(b"no final newline\x1b");
    h
}

// Proves nothing a container prints makes the shim allocate: 64 MiB of
// random binary then hostile text (a 4 MiB line, escapes, forged records,
// NULs, invalid UTF-8) on stdout, the hostile text on stderr too; RssAnon
// stays within a page of its value before the flood (during, right after,
// after idle), and both streams are byte-exact in the log.
#[test]
fn hostile_output_does_not_grow_the_shim() {
    const N: usize = 64 << 20;
    let fx = Fixture::new("f-hostile");
    let script = flood_script(
        &format!("head -c {N} /dev/urandom > /dev/shm/r"),
        "cat /dev/shm/r /hostile.bin; cat /hostile.bin >&2",
    );
    let c = fx.bundle(&["sh", "-c", &script]);
    let hostile = hostile_bytes();
    c.add_file("/hostile.bin", &hostile);
    c.edit_config(|v| {
        for m in v["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/dev/shm" {
                let opts = m["options"].as_array_mut().unwrap();
                opts.retain(|o| !o.as_str().unwrap_or("").starts_with("size="));
                opts.push(serde_json::Value::from("size=160m"));
            }
        }
    });
    let f = run_flood(&fx, &c);
    let data = fs::read(shm_path(f.pid, "r")).expect("the container's random data");
    assert_eq!(data.len(), N);
    f.check_memory("64 MiB random + hostile text");
    f.stop(&fx, &c);
    let (scan, err) = check_flood_log(
        &c,
        vec![
            Seg::Bytes(b"first-line\n".to_vec()),
            Seg::Bytes(data),
            Seg::Bytes(hostile.clone()),
            Seg::Bytes(b"\nFLOOD-END\n".to_vec()),
        ],
        true,
    );
    let at = err.windows(13).take(1 << 20).position(|w| w == b"HOSTILE-BEGIN").expect("the hostile text on stderr");
    assert!(err[at..] == hostile[..], "stderr: {}", first_difference(&err[at..], &hostile));
    eprintln!(
        "hostile: {} bytes in on stdout, {} logged in {} records; {} bytes on stderr",
        N + hostile.len() + 22,
        scan.bytes,
        scan.records,
        hostile.len()
    );
}
