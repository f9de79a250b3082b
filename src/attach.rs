//! Attach clients: a SOCK_SEQPACKET socket where each output record is one
//! stream byte (2 stdout, 3 stderr) followed by up to 8192 bytes, sent to
//! every client; what clients send is raw input for the container.
//!
//! Two promises, both kept by never blocking on a client:
//! - a slow or stuck client never holds up the container or the log: a
//!   record that does not fit in a client's socket buffer disconnects that
//!   client (it can attach again; the log is complete). A client that saw
//!   a gap would show a corrupt screen, so dropping records is not offered.
//! - a container that does not read its stdin never makes the shim buffer
//!   without bound: input waits in one 32 KiB buffer, and while it waits no
//!   client is read (the kernel's socket buffers then push back on them).
//!
//! `Flow` is the clients' and the input's state machine, as plain logic: it
//! makes every decision and does no I/O, so it is unit-tested without a
//! socket. `Clients` pairs it with the descriptors; the process glue
//! (`process.rs`) does the I/O and then reconciles the epoll interests
//! with what `Flow` says. Nothing calls back into itself: reading the
//! queued input of clients that left is a bounded loop per wake-up
//! (`Flow::next_gone`), never a recursion.

use crate::sys::{self, AsFd, OwnedFd};

/// At most this many clients at once; the next is accepted and closed.
pub const MAX_CLIENTS: usize = 64;
/// Output record payload (conmon's size; clients read 8193 bytes).
pub const RECORD: usize = 8192;
/// Largest input record (podman sends up to 32 KiB at a time); a smaller
/// buffer would silently truncate SEQPACKET records.
pub const IN_SIZE: usize = 32 * 1024;

pub const STREAM_STDOUT: u8 = 2;
pub const STREAM_STDERR: u8 = 3;

/// How far a client may fall behind before it counts as stuck: the kernel
/// holds this much of its unread output (not shimlet's memory, and only
/// while it lags). A reader that is merely busy for a moment (podman
/// copying a burst to its own stdout) is not cut off; one that stops
/// reading is, once this is full, and the container never waits for it.
pub const CLIENT_SLACK: usize = 2 << 20;

/// One client's state.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Peer {
    Free,
    /// Its input is read (when input flows) and it gets output.
    Live,
    /// Its input ended; it still gets output until it hangs up.
    Eof,
    /// It hung up with input still queued in its socket: that input (it
    /// may hold the last of the container's stdin) is read before it goes.
    Gone,
}

/// What a client's end of input does to the container's stdin.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Policy {
    /// The first client's end of input closes stdin (`--stdin-once`).
    Once,
    /// Stdin stays open across clients (`--leave-stdin-open`).
    LeaveOpen,
    /// A terminal: a client's end never closes it.
    Terminal,
}

/// Where input goes, as far as the logic cares.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Target {
    Open,
    /// A terminal whose pty has not arrived yet: input waits for it.
    NotYet,
    /// None, or closed: input is dropped.
    Closed,
}

/// What became of a record read from a client.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Take {
    /// Write it to the target now.
    Flush,
    /// Keep it until the target exists.
    Hold,
    /// Nobody will read it.
    Discard,
}

/// The decisions.
pub struct Flow {
    peers: [Peer; MAX_CLIENTS],
    /// Input read from a client that the target has not taken yet: a
    /// window into the daemon's input buffer.
    pub off: usize,
    pub len: usize,
    /// Close the target once the pending input is out.
    close_due: bool,
    pub policy: Policy,
}

impl Flow {
    pub const fn new(policy: Policy) -> Flow {
        Flow { peers: [Peer::Free; MAX_CLIENTS], off: 0, len: 0, close_due: false, policy }
    }

    pub fn peer(&self, i: usize) -> Peer {
        self.peers.get(i).copied().unwrap_or(Peer::Free)
    }

    /// A new client: its index, or None when the table is full.
    pub fn connect(&mut self) -> Option<usize> {
        let i = self.peers.iter().position(|&p| p == Peer::Free)?;
        self.peers[i] = Peer::Live;
        Some(i)
    }

    pub fn count(&self) -> usize {
        self.peers.iter().filter(|&&p| p != Peer::Free).count()
    }

    /// Clients are read only while no input waits for the target.
    pub fn reading(&self) -> bool {
        self.len == 0
    }

    /// Whether client `i`'s input should be read now.
    pub fn want_read(&self, i: usize) -> bool {
        self.reading() && matches!(self.peer(i), Peer::Live | Peer::Gone)
    }

    /// Whether client `i` gets output.
    pub fn gets_output(&self, i: usize) -> bool {
        matches!(self.peer(i), Peer::Live | Peer::Eof)
    }

    /// Client `i` sent a record of `n` bytes (now at the start of the
    /// input buffer).
    pub fn on_record(&mut self, n: usize, target: Target) -> Take {
        match target {
            Target::Closed => Take::Discard,
            t => {
                self.off = 0;
                self.len = n;
                if t == Target::Open {
                    Take::Flush
                } else {
                    Take::Hold
                }
            }
        }
    }

    /// `n` more bytes of the pending input went out.
    pub fn on_written(&mut self, n: usize) {
        let n = n.min(self.len);
        self.off += n;
        self.len -= n;
        if self.len == 0 {
            self.off = 0;
        }
    }

    /// The target is gone (EPIPE, EIO, closed): pending input is dropped.
    pub fn on_target_dead(&mut self) {
        self.off = 0;
        self.len = 0;
        self.close_due = false;
    }

    /// Client `i`'s input ended (its end-of-file, or it hung up with
    /// nothing left to read: `gone`).
    pub fn on_end(&mut self, i: usize, gone: bool) {
        if i >= MAX_CLIENTS || self.peers[i] == Peer::Free {
            return;
        }
        let had_input = matches!(self.peers[i], Peer::Live | Peer::Gone);
        self.peers[i] = if gone { Peer::Free } else { Peer::Eof };
        if had_input && self.policy == Policy::Once {
            self.close_due = true;
        }
    }

    /// Client `i` hung up; `queued` says whether input is still waiting in
    /// its socket.
    pub fn on_hangup(&mut self, i: usize, queued: bool) {
        match self.peer(i) {
            Peer::Free => {}
            Peer::Eof => self.peers[i] = Peer::Free,
            Peer::Live if queued => self.peers[i] = Peer::Gone,
            Peer::Live => self.on_end(i, true),
            Peer::Gone => {}
        }
    }

    /// Client `i` could not take an output record: a stuck reader is
    /// disconnected (its input, if any, is not waited for).
    pub fn on_stuck(&mut self, i: usize) {
        if i < MAX_CLIENTS {
            self.peers[i] = Peer::Free;
        }
    }

    /// A client that hung up with input queued, to be read next, if input
    /// flows.
    pub fn next_gone(&self) -> Option<usize> {
        if !self.reading() {
            return None;
        }
        self.peers.iter().position(|&p| p == Peer::Gone)
    }

    /// The target should be closed now (a client's end, with nothing
    /// pending).
    pub fn close_due(&self) -> bool {
        self.close_due && self.len == 0
    }

    pub fn target_closed(&mut self) {
        self.close_due = false;
    }
}

/// The clients' descriptors beside their `Flow`.
pub struct Clients {
    pub fds: [Option<OwnedFd>; MAX_CLIENTS],
    /// Bit i: client i is in the epoll set.
    pub watched: u64,
    /// Bit i: client i is watched for input (EPOLLIN).
    pub reading: u64,
    pub flow: Flow,
}

impl Clients {
    pub fn new(policy: Policy) -> Clients {
        Clients { fds: [const { None }; MAX_CLIENTS], watched: 0, reading: 0, flow: Flow::new(policy) }
    }

    pub fn fd(&self, i: usize) -> Option<&OwnedFd> {
        self.fds.get(i).and_then(|f| f.as_ref())
    }
}

/// Send one record to one client without waiting. Err means the client is
/// gone or full and must be let go.
pub fn send_record(fd: impl AsFd, stream: u8, data: &[u8]) -> sys::Result<()> {
    let data = &data[..data.len().min(RECORD)];
    let n = crate::sock::send_parts(fd, &[&[stream], data])?;
    if n == 1 + data.len() {
        Ok(())
    } else {
        Err(sys::Errno::MSGSIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_waits_and_clients_pause() {
        let mut f = Flow::new(Policy::Once);
        let a = f.connect().unwrap();
        assert!(f.want_read(a));
        assert_eq!(f.on_record(10, Target::Open), Take::Flush);
        f.on_written(4);
        assert!(!f.reading(), "6 bytes still pending: clients are not read");
        assert!(!f.want_read(a));
        f.on_written(6);
        assert!(f.reading() && f.want_read(a));
        assert_eq!((f.off, f.len), (0, 0));
    }

    #[test]
    fn stdin_once_closes_after_pending_input() {
        let mut f = Flow::new(Policy::Once);
        let a = f.connect().unwrap();
        f.on_record(3, Target::Open);
        f.on_end(a, false);
        assert_eq!(f.peer(a), Peer::Eof);
        assert!(!f.close_due(), "input first");
        f.on_written(3);
        assert!(f.close_due());
        f.target_closed();
        assert!(!f.close_due());
    }

    #[test]
    fn leave_open_and_terminal_never_close() {
        for p in [Policy::LeaveOpen, Policy::Terminal] {
            let mut f = Flow::new(p);
            let a = f.connect().unwrap();
            f.on_end(a, true);
            assert!(!f.close_due());
            assert_eq!(f.peer(a), Peer::Free);
        }
    }

    #[test]
    fn hangup_with_queued_input_is_read_later() {
        let mut f = Flow::new(Policy::LeaveOpen);
        let a = f.connect().unwrap();
        let b = f.connect().unwrap();
        f.on_record(1, Target::Open); // the target is full: 1 byte waits
        f.on_hangup(a, true);
        assert_eq!(f.peer(a), Peer::Gone);
        assert!(!f.gets_output(a));
        assert_eq!(f.next_gone(), None, "not while input waits");
        f.on_written(1);
        assert_eq!(f.next_gone(), Some(a));
        // Its last record is read, then its end.
        assert_eq!(f.on_record(1, Target::Open), Take::Flush);
        f.on_written(1);
        f.on_end(a, true);
        assert_eq!(f.peer(a), Peer::Free);
        assert_eq!(f.next_gone(), None);
        assert_eq!(f.peer(b), Peer::Live);
        f.on_hangup(b, false);
        assert_eq!(f.peer(b), Peer::Free);
    }

    #[test]
    fn input_for_a_terminal_waits_for_its_pty() {
        let mut f = Flow::new(Policy::Terminal);
        f.connect().unwrap();
        assert_eq!(f.on_record(5, Target::NotYet), Take::Hold);
        assert!(!f.reading());
        assert_eq!(f.on_record(5, Target::Closed), Take::Discard);
    }

    #[test]
    fn dead_target_drops_input_and_resumes() {
        let mut f = Flow::new(Policy::Once);
        let a = f.connect().unwrap();
        f.on_record(100, Target::Open);
        f.on_end(a, false);
        f.on_target_dead();
        assert!(f.reading());
        assert!(!f.close_due(), "already closed");
    }

    #[test]
    fn full_table_refuses_and_stuck_clients_free_slots() {
        let mut f = Flow::new(Policy::Once);
        for _ in 0..MAX_CLIENTS {
            assert!(f.connect().is_some());
        }
        assert_eq!(f.connect(), None);
        f.on_stuck(7);
        assert_eq!(f.connect(), Some(7));
        assert_eq!(f.count(), MAX_CLIENTS);
    }

    /// A model of many clients that queue records and leave while the
    /// target is full, driven the way the daemon drives it: bounded steps
    /// per turn. Every record is delivered once, in each client's order,
    /// and the drain ends.
    #[test]
    fn many_gone_clients_drain_in_bounded_turns() {
        let mut f = Flow::new(Policy::LeaveOpen);
        let mut queues: Vec<std::collections::VecDeque<u8>> = Vec::new();
        for c in 0..MAX_CLIENTS {
            let i = f.connect().unwrap();
            assert_eq!(i, c);
            queues.push((0..50u8).collect());
        }
        // The target is full: one record pending, then everyone leaves.
        f.on_record(1, Target::Open);
        for i in 0..MAX_CLIENTS {
            f.on_hangup(i, true);
        }
        let mut delivered = vec![Vec::new(); MAX_CLIENTS];
        f.on_written(1);
        let mut turns = 0;
        let mut room = 0usize; // the target takes 3 bytes per turn
        while let Some(i) = f.next_gone().or_else(|| if f.reading() { None } else { Some(usize::MAX) }) {
            turns += 1;
            assert!(turns < 10_000, "the drain must end");
            room += 3;
            for _ in 0..64 {
                if !f.reading() {
                    if room == 0 {
                        break;
                    }
                    f.on_written(1);
                    room -= 1;
                    continue;
                }
                let Some(g) = f.next_gone() else { break };
                let _ = i;
                match queues[g].pop_front() {
                    Some(b) => {
                        assert_eq!(f.on_record(1, Target::Open), Take::Flush);
                        delivered[g].push(b);
                    }
                    None => f.on_end(g, true),
                }
            }
        }
        for (c, d) in delivered.iter().enumerate() {
            assert_eq!(d, &(0..50u8).collect::<Vec<_>>(), "client {c}");
        }
        assert_eq!(f.count(), 0);
    }
}
