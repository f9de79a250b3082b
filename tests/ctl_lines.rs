//! ctl FIFO lines read as conmon reads them (`sscanf("%d %d %d")`): a
//! resize with extra fields resizes to the first two (`1 2 2 3` is 2x2),
//! leading zeros are decimal, floats and hex numbers are malformed, too few
//! fields change nothing. The same lines go to a terminal container under
//! /usr/bin/conmon and under shimlet (conmon's command line, `-t -i`, the
//! FIFO at BUNDLE/ctl) and must leave the same window size; conmon 2.2's
//! range rule (both sizes within 0..=1000; conmon 2.1.6 applies or wraps
//! any size) and its handling of several lines in one write are held to
//! 2.2's documented behaviour.
//!
//! After each line the test makes sure the shim is done with it before it
//! reads the size: the FIFO is empty, a command sent through the attach
//! socket has come back (the shim handles one thing at a time), conmon's
//! winsz FIFO (its second hop) is empty, and a second command came back.

mod common;

use common::*;

struct Tty {
    c: Container,
    pid: i32,
    cl: Client,
    ctl: std::path::PathBuf,
    n: u32,
}

impl Tty {
    fn start(fx: &Fixture, shim: Shim) -> Tty {
        let c = tty_bundle(fx, &["sh"]);
        let r = fx.launch_ok(&c, conmon_logged(fx, &c, shim).args(&["-t", "-i"]));
        let pid = r.sync_pid() as i32;
        fx.start(&c);
        let cl = Target::new(&c.bundle.join("attach")).connect();
        let ctl = c.bundle.join("ctl");
        let mut t = Tty { c, pid, cl, ctl, n: 0 };
        t.round_trip();
        t
    }

    /// A command through the attach socket, and its answer.
    fn round_trip(&mut self) {
        self.n += 1;
        let n = self.n;
        self.cl.send(format!("echo rt-$(({n}+1000))\n").as_bytes());
        self.cl.read_until(format!("rt-{}", n + 1000).as_bytes(), WAIT);
    }

    /// Sends one line (one write), waits until the shim is done with it,
    /// returns the terminal's size.
    fn send(&mut self, line: &[u8]) -> (u16, u16) {
        ctl_send(&self.ctl, line);
        wait_until("the shim to read the ctl line", WAIT, || (fifo_pending(&self.ctl) == 0).then_some(()));
        self.round_trip();
        let winsz = self.c.bundle.join("winsz");
        // conmon's second hop (shimlet resizes at once; nobody reads its winsz).
        wait_until("the winsz FIFO to be read", WAIT, || {
            (fifo_pending_if_read(&winsz).unwrap_or(0) == 0).then_some(())
        });
        self.round_trip();
        proc_tty_size(self.pid).expect("the container's terminal size")
    }

    fn end(self) {
        self.cl.send(b"exit 0\n");
        assert_eq!(self.c.wait_exit_file(), "0");
        self.c.wait_no_shim(None);
    }
}

// Proves the lines conmon 2.1.6 and 2.2 read alike are read alike by
// shimlet: `1 11 22`, then `1 2 2 3` (2x2: the extra field is ignored),
// `1 0010 0020` (10x20), `1 44 55 and more words` (44x55); and `1 10.5
// 20.3`, `1 0x10 0x20`, `1 2`, `1`, `foo`, `999 2 2`, `1 5x 5` change
// nothing.
#[test]
fn resize_lines_like_conmon() {
    let fx = Fixture::new("ctl-lines");
    let cases: &[(&[u8], (u16, u16))] = &[
        (b"1 11 22\n", (11, 22)),
        (b"1 2 2 3\n", (2, 2)),
        (b"1 0010 0020\n", (10, 20)),
        (b"1 10.5 20.3\n", (10, 20)),
        (b"1 0x10 0x20\n", (10, 20)),
        (b"1 2\n", (10, 20)),
        (b"1\n", (10, 20)),
        (b"foo\n", (10, 20)),
        (b"999 2 2\n", (10, 20)),
        (b"1 5x 5\n", (10, 20)),
        (b"1 44 55 and more words\n", (44, 55)),
    ];
    for shim in Shim::BOTH {
        let mut t = Tty::start(&fx, shim);
        for (line, want) in cases {
            let got = t.send(line);
            assert_eq!(got, *want, "[{shim}] after {:?}", String::from_utf8_lossy(line));
        }
        eprintln!("[{shim}] {} lines: sizes as conmon's sscanf reads them", cases.len());
        t.end();
    }
}

// Proves conmon 2.2's rules: a size below 0 or above 1000 (either one) is
// refused, 1000x1000 is fine; several lines in one write are each taken,
// in order (conmon 2.1.6 repeated the first).
#[test]
fn resize_range_and_several_lines() {
    let fx = Fixture::new("ctl-range");
    let mut t = Tty::start(&fx, Shim::Shimlet);
    assert_eq!(t.send(b"1 11 22\n"), (11, 22));
    for line in [&b"1 -1 -1\n"[..], b"1 1001 1000\n", b"1 1000 1001\n", b"1 65535 65535\n", b"1 100000 100000\n"] {
        assert_eq!(t.send(line), (11, 22), "after {:?}", String::from_utf8_lossy(line));
    }
    assert_eq!(t.send(b"1 1000 1000\n"), (1000, 1000));
    assert_eq!(t.send(b"1 10 20\n1 30 40\n"), (30, 40), "both lines of one write, in order");
    assert_eq!(t.send(b"1 12 34\n2 -1 -1\n1 56 78\n"), (56, 78), "a bad line does not drop the next");
    t.end();
}
