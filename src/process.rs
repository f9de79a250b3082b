//! One supervised process: a container, or an exec in one, from its
//! creation to its exit. It is a value the daemon holds in its table
//! (`table.rs`); it owns its stdio, its output sinks, its attach clients
//! and their input, its ctl FIFO, its console socket, its OOM watch and
//! its deadline, and closes them when it is dropped.
//!
//! Its phase is explicit:
//!
//! | phase    | owns                          | leaves when                  | a signal for it  |
//! |----------|-------------------------------|------------------------------|------------------|
//! | Creating | the runtime's pid, held signals | the front end adopts its pid | held             |
//! | Running  | its pid                       | it is reaped                 | sent             |
//! | Exited   | its pid and how it ended      | the front end lets it go     | dropped          |

use crate::attach::{Clients, Peer, Policy, Take, Target, IN_SIZE, MAX_CLIENTS};
use crate::ctl::{Bad, Cmd, Ctl};
use crate::daemon::{Bufs, Kind, Poll, Token};
use crate::diag;
use crate::exit::Ended;
use crate::logfile::{Batch, Stream};
use crate::oom::Oom;
use crate::output::{self, Output};
use crate::pace::{self, Pace};
use crate::relay::{self, Relay};
use crate::sock::{self, Place};
use crate::sys::{self, AsFd, EventFlags, OwnedFd, Pid};
use crate::tty::{self, Console};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The runtime (`runtime`) is creating it; signals for it wait in
    /// `held` (bit N: signal N).
    Creating { runtime: Pid, held: u64 },
    /// Its pid is known and it is ours to reap.
    Running { pid: Pid },
    /// It has ended; `told` once the front end has heard.
    Exited { pid: Pid, ended: Ended, told: bool },
}

/// The process's side of its stdio: what the shim reads and writes.
pub struct Stdio {
    /// Read ends of its stdout and stderr pipes (also the runtime's stdio).
    pub out: Option<OwnedFd>,
    pub err: Option<OwnedFd>,
    /// Terminal mode: the pty master, once the runtime has sent it.
    pub pty: Option<OwnedFd>,
    /// Write end of its stdin pipe.
    pub stdin: Option<OwnedFd>,
    pub terminal: bool,
    /// The runtime did send a pty (it may since have closed: a quick exec).
    pub pty_received: bool,
    /// A window size that arrived before the pty.
    pub winsz: Option<(u16, u16)>,
}

impl Stdio {
    pub const fn new(terminal: bool) -> Stdio {
        Stdio { out: None, err: None, pty: None, stdin: None, terminal, pty_received: false, winsz: None }
    }
}

/// Something a front end must hear of, from an event of a process.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Note {
    None,
    /// Its cgroup recorded an OOM kill (first time).
    Oom,
}

/// Records of input read per turn from clients that left, at most: the
/// loop goes round (without waiting) for the rest.
pub const DRAIN_BUDGET: usize = 64;

/// Reads of one output source per wake-up, at most: a flood's grown pipe
/// (`pace::FLOOD_PIPE`) in the daemon's read buffer.
const READS: usize = 16;

pub struct Proc<'a> {
    pub slot: u16,
    pub phase: Phase,
    pub io: Stdio,
    pub console: Option<Console>,
    pub output: Output<'a>,
    pub clients: Clients,
    /// The attach socket and its place.
    pub listen: Option<(OwnedFd, Place<'a>)>,
    pub ctl: Option<Ctl<'a>>,
    pub oom: Option<Oom>,
    pub oomed: bool,
    /// When the front end wants to hear again (monotonic ms).
    pub deadline: Option<u64>,
    /// Its output pipes while it floods them.
    pub pace: Pace,
    /// The pty's output to, and input from, a manager's FIFOs (containerd).
    pub relay: Relay,
    /// The input target is in the epoll set for EPOLLOUT (the stdin pipe).
    target_watched: bool,
    /// The pty's current epoll interest.
    pty_ev: EventFlags,
}

impl<'a> Proc<'a> {
    pub fn new(slot: usize, phase: Phase, io: Stdio, output: Output<'a>, policy: Policy) -> Proc<'a> {
        Proc {
            slot: slot as u16,
            phase,
            io,
            console: None,
            output,
            clients: Clients::new(policy),
            listen: None,
            ctl: None,
            oom: None,
            oomed: false,
            deadline: None,
            pace: Pace::new(),
            relay: Relay::new(),
            target_watched: false,
            pty_ev: EventFlags::empty(),
        }
    }

    fn token(&self, kind: Kind, sub: usize, fd: impl AsFd) -> Token {
        Token::new(kind, self.slot as usize, sub, fd)
    }

    /// Watch one of our descriptors.
    pub fn watch(&self, poll: &Poll, kind: Kind, sub: usize, fd: impl AsFd, ev: EventFlags) -> sys::Result<()> {
        let fd = fd.as_fd();
        poll.add(self.token(kind, sub, fd), fd, ev)
    }

    pub fn pid(&self) -> Option<Pid> {
        match self.phase {
            Phase::Creating { .. } => None,
            Phase::Running { pid } | Phase::Exited { pid, .. } => Some(pid),
        }
    }

    pub fn exited(&self) -> bool {
        matches!(self.phase, Phase::Exited { .. })
    }

    // ---- lifecycle -----------------------------------------------------

    /// The runtime is done and `pid` is the process: it runs (or, reaped
    /// already, has ended). Held signals are delivered, output starts to
    /// flow, and its memory cgroup is watched for OOM kills.
    #[inline(never)]
    pub fn adopt(&mut self, poll: &Poll, pid: Pid, already: Option<Ended>) {
        let held = match self.phase {
            Phase::Creating { held, .. } => held,
            _ => 0,
        };
        self.phase = match already {
            Some(ended) => Phase::Exited { pid, ended, told: false },
            None => Phase::Running { pid },
        };
        let mut scratch = crate::buf::PathBuf::new();
        self.oom = Oom::watch(pid, &mut scratch);
        if let Some(w) = self.oom.as_ref().and_then(|o| o.watched()) {
            let ev = if self.oom.as_ref().is_some_and(|o| o.v2) { EventFlags::PRI } else { EventFlags::IN };
            let _ = poll.add(self.token(Kind::Oom, 0, w), w, ev);
        }
        for (fd, kind) in [(&self.io.out, Kind::Stdout), (&self.io.err, Kind::Stderr)] {
            if let Some(fd) = fd {
                let _ = sys::set_nonblock(fd);
                // Quiet-size until it floods (fails, harmlessly, if the
                // runtime left more than that in it).
                let _ = sys::set_pipe_size(fd, pace::IDLE_PIPE);
                let _ = poll.add(self.token(kind, 0, fd), fd, EventFlags::IN);
            }
        }
        for sig in 1..64 {
            if held & (1 << sig) != 0 {
                let _ = sys::kill(pid, sig);
            }
        }
    }

    /// A signal for the process: sent, held until its pid is known, or
    /// dropped once it has ended. Returns true when held.
    pub fn signal(&mut self, sig: i32) -> bool {
        match &mut self.phase {
            Phase::Creating { held, .. } => {
                if (1..64).contains(&sig) {
                    *held |= 1 << sig;
                }
                true
            }
            Phase::Running { pid } => {
                let _ = sys::kill(*pid, sig);
                false
            }
            Phase::Exited { .. } => false,
        }
    }

    /// It was reaped.
    pub fn ended(&mut self, ended: Ended) {
        if let Phase::Running { pid } = self.phase {
            self.phase = Phase::Exited { pid, ended, told: false };
        }
    }

    // ---- events --------------------------------------------------------

    /// One epoll event for this process, with the daemon's shared buffers.
    pub fn on_event(&mut self, poll: &Poll, tok: Token, ev: EventFlags, bufs: &mut Bufs) -> Note {
        match tok.kind {
            Kind::Stdout => self.on_output(poll, Stream::Stdout, Kind::Stdout, bufs),
            Kind::Stderr => self.on_output(poll, Stream::Stderr, Kind::Stderr, bufs),
            Kind::Pty => {
                if ev.contains(EventFlags::OUT) {
                    self.flush_input(&bufs.input);
                    if let Some(pty) = &self.io.pty {
                        self.relay.flush(pty);
                    }
                }
                if ev.intersects(EventFlags::IN | EventFlags::HUP | EventFlags::ERR) {
                    if self.relay.out.is_some() {
                        self.relay_output(poll, &mut bufs.io);
                    } else {
                        self.on_output(poll, Stream::Stdout, Kind::Pty, bufs);
                    }
                }
            }
            Kind::Sink => {
                self.relay.out_blocked = false;
                if let Some(out) = &self.relay.out {
                    poll.remove(out);
                }
                self.relay_output(poll, &mut bufs.io);
            }
            Kind::Source => self.relay_input(poll),
            Kind::Stdin => self.flush_input(&bufs.input),
            Kind::Listen => self.on_accept(poll),
            Kind::Client => self.on_client(tok.sub as usize, tok.fd, ev, &mut bufs.input),
            Kind::Console => self.on_console(poll),
            Kind::ConsoleConn => self.on_console_conn(poll),
            Kind::Ctl => self.on_ctl(),
            Kind::Oom => return self.on_oom(),
            Kind::Signal | Kind::Front => {}
        }
        self.reconcile(poll);
        Note::None
    }

    // ---- output --------------------------------------------------------

    fn source(&mut self, kind: Kind) -> &mut Option<OwnedFd> {
        match kind {
            Kind::Stderr => &mut self.io.err,
            Kind::Pty => &mut self.io.pty,
            _ => &mut self.io.out,
        }
    }

    /// Read while the source keeps filling the buffer (a flood), up to
    /// `READS` reads, before going back to epoll: fewer wake-ups per byte.
    /// A short read means it is empty, so a quiet process costs one read.
    /// The records go to the log in one batch, written when it is full
    /// and before this returns: nothing read waits for a later wake-up.
    ///
    /// A sibling pipe paused for a flood is read first: what waits in it
    /// was written before what just woke this one (a container that writes
    /// its stderr, then its stdout, is logged in that order).
    fn on_output(&mut self, poll: &Poll, stream: Stream, kind: Kind, bufs: &mut Bufs) {
        let (buf, mut batch) = (&mut bufs.io[..], Batch::new(&mut bufs.log));
        let lost = self.output.log.lost;
        let sibling = match kind {
            Kind::Stdout if self.pace.is_paused(1) => Some((Kind::Stderr, Stream::Stderr)),
            Kind::Stderr if self.pace.is_paused(0) => Some((Kind::Stdout, Stream::Stdout)),
            _ => None,
        };
        let mut done = [(Kind::Stdout, 0, 0, false); 2];
        for (i, (k, st)) in sibling.into_iter().chain([(kind, stream)]).enumerate() {
            let (bytes, most, ended) = self.read_source(&mut batch, lost, k, st, buf);
            done[i] = (k, bytes, most, ended);
        }
        self.output.flush(&mut batch, lost);
        for &(k, bytes, most, ended) in &done[..1 + sibling.is_some() as usize] {
            if ended {
                self.close_source(poll, k);
            } else if bytes > 0 {
                self.pace_source(poll, k, bytes, most);
            }
        }
    }

    /// Up to `READS` reads of one source into `batch`: the bytes read, the
    /// largest read, and whether the source ended.
    fn read_source(
        &mut self,
        batch: &mut Batch<'_>,
        lost: u64,
        kind: Kind,
        stream: Stream,
        buf: &mut [u8],
    ) -> (usize, usize, bool) {
        let (mut bytes, mut most) = (0, 0);
        for _ in 0..READS {
            let Some(fd) = self.source(kind).as_ref() else { break };
            match sys::read(fd, buf) {
                Ok(n) if n > 0 => {
                    self.emit(batch, lost, stream, &buf[..n]);
                    bytes += n;
                    most = most.max(n);
                    if n < buf.len() {
                        break;
                    }
                }
                Err(sys::Errno::AGAIN) => break,
                // EOF, or EIO from a pty whose last user closed it.
                _ => return (bytes, most, true),
            }
        }
        (bytes, most, false)
    }

    /// Output pipe `source` of `pace` (0 stdout, 1 stderr) and its kind.
    fn pipe(&self, source: usize) -> Option<(&OwnedFd, Kind)> {
        match source {
            0 => self.io.out.as_ref().map(|f| (f, Kind::Stdout)),
            1 => self.io.err.as_ref().map(|f| (f, Kind::Stderr)),
            _ => None,
        }
    }

    /// After a wake-up read `bytes` from a pipe: pause it while it floods,
    /// grow it for the flood (see `pace`).
    fn pace_source(&mut self, poll: &Poll, kind: Kind, bytes: usize, most: usize) {
        let source = match kind {
            Kind::Stdout => 0,
            Kind::Stderr => 1,
            // A pty's buffer cannot grow: pausing it would slow its writer.
            _ => return,
        };
        let step = self.pace.after_reads(source, sys::monotonic_ms(), bytes, most);
        let Some((fd, _)) = self.pipe(source) else { return };
        let grown = step.grow && sys::set_pipe_size(fd, pace::FLOOD_PIPE).is_ok();
        if step.pause {
            poll.set(self.token(kind, 0, fd), fd, EventFlags::empty());
        }
        if grown {
            self.pace.grown(source);
        }
    }

    /// Paused pipes whose pause is over at `now` are watched again.
    pub fn resume_output(&mut self, poll: &Poll, now: u64) {
        let due = self.pace.due(now);
        for source in 0..pace::SOURCES {
            if due & (1 << source) != 0 {
                if let Some((fd, kind)) = self.pipe(source) {
                    poll.set(self.token(kind, 0, fd), fd, EventFlags::IN);
                }
            }
        }
    }

    /// The idle trim: pipes grown for a flood go back to their quiet size.
    pub fn trim_output(&mut self) {
        let grown = self.pace.shrink();
        for source in 0..pace::SOURCES {
            if grown & (1 << source) == 0 {
                continue;
            }
            // Still holding more than that: at the next trim.
            if self.pipe(source).is_some_and(|(fd, _)| sys::set_pipe_size(fd, pace::IDLE_PIPE).is_err()) {
                self.pace.grown(source);
            }
        }
    }

    /// The log first (it is the record), then every client. `lost`: what
    /// the log had lost when the wake-up began.
    fn emit(&mut self, batch: &mut Batch<'_>, lost: u64, stream: Stream, data: &[u8]) {
        self.output.record(batch, stream, data);
        if !(0..MAX_CLIENTS).any(|i| self.clients.flow.gets_output(i)) {
            return;
        }
        // A client must not see what the log does not hold yet.
        self.output.flush(batch, lost);
        let r = output::to_clients(&self.clients, stream, data);
        if r.stuck | r.left == 0 {
            return;
        }
        for i in 0..MAX_CLIENTS {
            if r.stuck & (1 << i) != 0 {
                diag::warn(&[b"an attach client could not keep up and was disconnected"]);
                self.clients.flow.on_stuck(i);
            } else if r.left & (1 << i) != 0 {
                let queued = self.clients.fd(i).is_some_and(|fd| sys::queued(fd).unwrap_or(0) > 0);
                self.clients.flow.on_hangup(i, queued);
            }
        }
    }

    fn close_source(&mut self, poll: &Poll, kind: Kind) {
        if let Some(fd) = self.source(kind).take() {
            poll.remove(&fd);
            if kind == Kind::Pty {
                self.pty_ev = EventFlags::empty();
                // Its reader sees the end once the pty is gone.
                self.relay.out = None;
            }
        }
    }

    /// The pty's output to the relay's FIFO, as far as it has room.
    fn relay_output(&mut self, poll: &Poll, io: &mut [u8]) {
        let Some(pty) = &self.io.pty else { return };
        match self.relay.output(pty, io) {
            relay::Step::Done => {}
            relay::Step::Blocked => {
                if let Some(out) = &self.relay.out {
                    let _ = poll.add(self.token(Kind::Sink, 0, out), out, EventFlags::OUT);
                }
            }
            relay::Step::Ended => self.close_source(poll, Kind::Pty),
        }
    }

    /// The relay's FIFO input to the pty.
    fn relay_input(&mut self, poll: &Poll) {
        let Some(pty) = &self.io.pty else { return };
        if self.relay.input(pty) == relay::Step::Ended {
            if let Some(inp) = self.relay.inp.take() {
                poll.remove(&inp);
            }
        }
    }

    /// Everything the process wrote before it died is in its pipes (or
    /// pty) now; read it all, paused or not. Bounded, in case something
    /// re-parented keeps writing.
    pub fn drain_output(&mut self, poll: &Poll, bufs: &mut Bufs) {
        let (buf, mut batch) = (&mut bufs.io[..], Batch::new(&mut bufs.log));
        let lost = self.output.log.lost;
        for (kind, stream) in
            [(Kind::Stdout, Stream::Stdout), (Kind::Stderr, Stream::Stderr), (Kind::Pty, Stream::Stdout)]
        {
            if let Some(fd) = self.source(kind).as_ref() {
                let _ = sys::set_nonblock(fd);
            }
            for _ in 0..1024 {
                let Some(fd) = self.source(kind).as_ref() else { break };
                match sys::read(fd, buf) {
                    Ok(n) if n > 0 => self.emit(&mut batch, lost, stream, &buf[..n]),
                    _ => break,
                }
            }
            self.output.flush(&mut batch, lost);
            self.close_source(poll, kind);
        }
        self.reconcile(poll);
    }

    // ---- attach clients and input --------------------------------------

    fn on_accept(&mut self, poll: &Poll) {
        loop {
            let Some((l, _)) = &self.listen else { return };
            let Some(fd) = sock::accept(l) else { return };
            if self.clients.flow.count() == MAX_CLIENTS {
                self.sweep_clients();
                self.reconcile(poll);
            }
            let Some(i) = self.clients.flow.connect() else {
                // Full: the client sees its connection closed at once.
                continue;
            };
            sock::set_send_buffer(&fd, crate::attach::CLIENT_SLACK);
            let ev = if self.clients.flow.reading() { EventFlags::IN } else { EventFlags::empty() };
            if self.watch(poll, Kind::Client, i, &fd, ev).is_err() {
                self.clients.flow.on_stuck(i);
                continue;
            }
            self.clients.watched |= 1 << i;
            if !ev.is_empty() {
                self.clients.reading |= 1 << i;
            }
            self.clients.fds[i] = Some(fd);
        }
    }

    /// The table is full: before refusing anyone, find clients that have
    /// hung up but whose hang-up the loop has not handled yet (one poll).
    #[inline(never)]
    fn sweep_clients(&mut self) {
        let fds: [Option<sys::BorrowedFd<'_>>; MAX_CLIENTS] =
            core::array::from_fn(|i| self.clients.fd(i).map(|f| f.as_fd()));
        let hup = sys::hung_up(&fds);
        for i in 0..MAX_CLIENTS {
            if hup & (1 << i) != 0 {
                let queued = self.clients.fd(i).is_some_and(|fd| sys::queued(fd).unwrap_or(0) > 0);
                self.clients.flow.on_hangup(i, queued);
            }
        }
    }

    fn on_client(&mut self, i: usize, fd: i32, ev: EventFlags, input: &mut [u8; IN_SIZE]) {
        if self.clients.fd(i).map(crate::create::raw) != Some(fd) {
            return;
        }
        if ev.intersects(EventFlags::HUP | EventFlags::ERR) {
            let queued = self.clients.fd(i).is_some_and(|fd| sys::queued(fd).unwrap_or(0) > 0);
            self.clients.flow.on_hangup(i, queued);
            // What it left queued is read by `drain_gone`, a bounded step
            // per turn.
            return;
        }
        if self.clients.flow.want_read(i) {
            self.read_client(i, input);
        }
    }

    fn target(&self) -> Target {
        if self.io.terminal {
            match &self.io.pty {
                Some(_) => Target::Open,
                None if !self.io.pty_received && !self.exited() => Target::NotYet,
                None => Target::Closed,
            }
        } else if self.io.stdin.is_some() {
            Target::Open
        } else {
            Target::Closed
        }
    }

    /// One record of client `i`'s input, or its end.
    fn read_client(&mut self, i: usize, input: &mut [u8; IN_SIZE]) {
        let Some(fd) = self.clients.fd(i) else { return };
        let gone = self.clients.flow.peer(i) == Peer::Gone;
        let mut r = sock::recv(fd, input);
        if r == Err(sys::Errno::CONNRESET) {
            // The peer left with our output unread; that error comes first,
            // but its own input may still be queued behind it.
            r = sock::recv(fd, input);
        }
        match r {
            Ok(n) if n > 0 => {
                if self.clients.flow.on_record(n, self.target()) == Take::Flush {
                    self.flush_input(input);
                }
            }
            Err(sys::Errno::AGAIN) if !gone => {}
            // Its end of input: it may still want output until it hangs up,
            // unless it already has.
            Ok(_) => self.clients.flow.on_end(i, gone),
            Err(_) => self.clients.flow.on_end(i, true),
        }
    }

    /// Write what the target takes of the pending input now.
    fn flush_input(&mut self, input: &[u8; IN_SIZE]) {
        let flow = &mut self.clients.flow;
        if flow.len == 0 {
            return;
        }
        let Some(fd) = (if self.io.terminal { self.io.pty.as_ref() } else { self.io.stdin.as_ref() }) else {
            if !self.io.terminal || self.io.pty_received {
                flow.on_target_dead();
            }
            return;
        };
        while flow.len > 0 {
            match sys::write(fd, &input[flow.off..flow.off + flow.len]) {
                Ok(n) => flow.on_written(n),
                Err(sys::Errno::AGAIN) => return,
                // A dead target (EPIPE, EIO) drops the input: nobody will read it.
                Err(_) => flow.on_target_dead(),
            }
        }
    }

    /// Read what clients that left still have queued, at most `budget`
    /// records; true when some is left for the next turn.
    pub fn drain_gone(&mut self, poll: &Poll, input: &mut [u8; IN_SIZE], budget: usize) -> bool {
        for _ in 0..budget {
            let Some(i) = self.clients.flow.next_gone() else { break };
            self.read_client(i, input);
        }
        self.reconcile(poll);
        self.clients.flow.next_gone().is_some()
    }

    /// Make the descriptors agree with what `Flow` decided: let go of
    /// clients it freed, stop watching those that left, read clients only
    /// while no input waits, watch the target while input waits, and close
    /// stdin when a client's end says so.
    fn reconcile(&mut self, poll: &Poll) {
        let reading = self.clients.flow.reading();
        let c = &mut self.clients;
        for i in 0..MAX_CLIENTS {
            let Some(fd) = c.fds[i].as_ref() else { continue };
            let bit = 1u64 << i;
            let tok = Token::new(Kind::Client, self.slot as usize, i, fd);
            let want_in = match c.flow.peer(i) {
                Peer::Free => {
                    poll.remove(fd);
                    c.fds[i] = None;
                    c.watched &= !bit;
                    c.reading &= !bit;
                    continue;
                }
                Peer::Gone => {
                    if c.watched & bit != 0 {
                        poll.remove(fd);
                        c.watched &= !bit;
                        c.reading &= !bit;
                    }
                    continue;
                }
                // A hang-up is reported whatever the interest.
                Peer::Eof => false,
                Peer::Live => reading,
            };
            if want_in != (c.reading & bit != 0) {
                poll.set(tok, fd, if want_in { EventFlags::IN } else { EventFlags::empty() });
                c.reading ^= bit;
            }
        }
        let want_out = !reading && self.target() == Target::Open;
        if self.io.terminal {
            if let Some(pty) = &self.io.pty {
                let mut ev = EventFlags::empty();
                if !self.relay.out_blocked {
                    ev |= EventFlags::IN;
                }
                if want_out || self.relay.input_waits() {
                    ev |= EventFlags::OUT;
                }
                if ev != self.pty_ev {
                    poll.set(self.token(Kind::Pty, 0, pty), pty, ev);
                    self.pty_ev = ev;
                }
            }
            // The relay's input is read only while its window is empty.
            if let Some(inp) = &self.relay.inp {
                let ev = if self.relay.input_waits() { EventFlags::empty() } else { EventFlags::IN };
                poll.set(self.token(Kind::Source, 0, inp), inp, ev);
            }
        } else if want_out != self.target_watched {
            if let Some(fd) = &self.io.stdin {
                if want_out {
                    let _ = poll.add(self.token(Kind::Stdin, 0, fd), fd, EventFlags::OUT);
                } else {
                    poll.remove(fd);
                }
                self.target_watched = want_out;
            }
        }
        if self.clients.flow.close_due() {
            if let Some(fd) = self.io.stdin.take() {
                if self.target_watched {
                    poll.remove(&fd);
                    self.target_watched = false;
                }
            }
            self.clients.flow.target_closed();
        }
    }

    /// Clients see the end of the stream (after the last record).
    pub fn close_clients(&mut self, poll: &Poll) {
        for fd in self.clients.fds.iter_mut().filter_map(|f| f.take()) {
            poll.remove(&fd);
        }
        self.clients.watched = 0;
        self.clients.reading = 0;
    }

    // ---- terminal ------------------------------------------------------

    fn on_console(&mut self, poll: &Poll) {
        let slot = self.slot as usize;
        let Some(c) = &mut self.console else { return };
        let Some(conn) = c.accept() else { return };
        if poll.add(Token::new(Kind::ConsoleConn, slot, 0, conn), conn, EventFlags::IN).is_err() {
            c.conn = None;
            return;
        }
        self.on_console_conn(poll);
    }

    fn on_console_conn(&mut self, poll: &Poll) {
        let Some(c) = &mut self.console else { return };
        if let Ok(Some(pty)) = c.receive() {
            self.set_pty(poll, pty);
        }
    }

    /// The runtime sent the pty before it exited: pick it up if the loop
    /// has not yet. True when there is one.
    pub fn take_pending_pty(&mut self, poll: &Poll) -> bool {
        if !self.io.pty_received {
            self.on_console(poll);
            self.on_console_conn(poll);
        }
        self.io.pty_received
    }

    fn set_pty(&mut self, poll: &Poll, fd: OwnedFd) {
        if self.io.pty_received {
            return;
        }
        self.io.pty_received = true;
        tty::adopt_pty(&fd, self.io.winsz.take());
        let _ = self.watch(poll, Kind::Pty, 0, &fd, EventFlags::IN);
        self.pty_ev = EventFlags::IN;
        self.io.pty = Some(fd);
        if let Some(inp) = &self.relay.inp {
            let _ = poll.add(self.token(Kind::Source, 0, inp), inp, EventFlags::IN);
        }
        // One pty per process: the console socket is done (dropping it
        // removes it).
        self.console = None;
        self.reconcile(poll);
    }

    pub fn resize(&mut self, rows: u16, cols: u16) {
        match &self.io.pty {
            Some(pty) => {
                let _ = sys::tty_resize(pty, rows, cols);
            }
            None => self.io.winsz = Some((rows, cols)),
        }
    }

    fn on_ctl(&mut self) {
        let Some(mut ctl) = self.ctl.take() else { return };
        ctl.read(&mut |cmd| match cmd {
            Ok(Cmd::Resize { rows, cols }) => self.resize(rows, cols),
            Ok(Cmd::Reopen) => {
                if let Err(e) = self.output.log.reopen() {
                    diag::warn_errno(b"cannot reopen the log", e);
                }
            }
            Err(bad) => diag::warn(&[
                b"ignored a malformed control line: ",
                match bad {
                    Bad::Format => b"not `TYPE HEIGHT WIDTH`",
                    Bad::Type => b"unknown type",
                    Bad::Size => b"size out of 0..1000",
                    Bad::TooLong => b"too long",
                },
            ]),
        });
        self.ctl = Some(ctl);
    }

    // ---- OOM -----------------------------------------------------------

    fn on_oom(&mut self) -> Note {
        if self.check_oom() {
            Note::Oom
        } else {
            Note::None
        }
    }

    /// Has its cgroup recorded an OOM kill? True the first time it is seen.
    pub fn check_oom(&mut self) -> bool {
        if self.oomed || !self.oom.as_ref().is_some_and(|o| o.killed()) {
            return false;
        }
        self.oomed = true;
        true
    }

    /// Remove the attach socket and the ctl FIFO (and the console socket).
    pub fn remove_places(&mut self) {
        if let Some((_, p)) = &self.listen {
            p.remove();
        }
        if let Some(c) = &self.ctl {
            c.place.remove();
        }
        self.console = None;
    }
}
