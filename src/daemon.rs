//! The daemon: one per shim process, after it has detached. It owns the
//! epoll loop, the signalfd, the deadlines, the shared I/O buffers and the
//! table of processes; a front end (conmon's command line, containerd's
//! ttrpc) decides what the processes are, and what to report about them.
//!
//! One `epoll_wait` per turn. Each entry's 64-bit data is a `Token` (kind,
//! slot, sub-index, fd), so dispatch is a `match` with no lookup. Work per
//! turn is bounded: what is left (input queued by clients that left) is
//! done on the next turn, which then does not wait. Children are reaped
//! with `waitid` until none is left, on every SIGCHLD.

use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;

use crate::attach::IN_SIZE;
use crate::exit::Ended;
use crate::process::{Note, Phase, Proc, DRAIN_BUDGET};
use crate::sys::{self, AsFd, AsRawFd, Event, EventFlags, OwnedFd, Pid};
use crate::table::Table;

/// What an epoll entry is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Kind {
    Signal = 1,
    Stdout,
    Stderr,
    Pty,
    Stdin,
    Listen,
    Client,
    Console,
    ConsoleConn,
    Ctl,
    Oom,
    /// A relay's output FIFO (writable again).
    Sink,
    /// A relay's input FIFO.
    Source,
    /// The front end's own descriptors; `sub` says which.
    Front,
}

impl Kind {
    const ALL: [Kind; 14] = [
        Kind::Signal,
        Kind::Stdout,
        Kind::Stderr,
        Kind::Pty,
        Kind::Stdin,
        Kind::Listen,
        Kind::Client,
        Kind::Console,
        Kind::ConsoleConn,
        Kind::Ctl,
        Kind::Oom,
        Kind::Sink,
        Kind::Source,
        Kind::Front,
    ];
}

/// An epoll entry's identity, packed into its 64-bit data.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Token {
    pub kind: Kind,
    /// The process's slot (or the front end's own index).
    pub slot: u16,
    /// A client's index, or the front end's sub-kind.
    pub sub: u8,
    /// The descriptor, so a stale event for a reused index is ignored.
    pub fd: i32,
}

impl Token {
    pub fn new(kind: Kind, slot: usize, sub: usize, fd: impl AsFd) -> Token {
        Token { kind, slot: slot as u16, sub: sub as u8, fd: fd.as_fd().as_raw_fd() }
    }

    pub const fn pack(self) -> u64 {
        (self.kind as u64) << 56 | (self.sub as u64) << 48 | (self.slot as u64) << 32 | self.fd as u32 as u64
    }

    pub fn unpack(v: u64) -> Option<Token> {
        let kind = *Kind::ALL.get(((v >> 56) as usize).wrapping_sub(1))?;
        Some(Token { kind, sub: (v >> 48) as u8, slot: (v >> 32) as u16, fd: v as u32 as i32 })
    }
}

/// The epoll set.
pub struct Poll {
    ep: OwnedFd,
}

impl Poll {
    pub fn add(&self, tok: Token, fd: impl AsFd, ev: EventFlags) -> sys::Result<()> {
        sys::epoll_add(&self.ep, fd, tok.pack(), ev)
    }
    /// Change an entry's interest (a failure leaves it as it was).
    pub fn set(&self, tok: Token, fd: impl AsFd, ev: EventFlags) {
        let _ = sys::epoll_mod(&self.ep, fd, tok.pack(), ev);
    }
    pub fn remove(&self, fd: impl AsFd) {
        sys::epoll_del(&self.ep, fd);
    }
}

/// What one read from a process carries, at most.
pub const READ: usize = 64 * 1024;
/// The log's batch: a flood is written 256 KiB at a time (fewer, larger
/// writes cost the kernel less), and any record of one read fits whole.
pub const LOG_BATCH: usize = 4 * READ + 4096;

/// The shared buffers, page-aligned so they can be handed back whole:
/// what one read from a process carries, one client's input record, and
/// the records of one wake-up on their way to the log. Only a flood
/// touches all of `io` and `log`; the idle trim hands them back.
#[repr(C, align(4096))]
pub struct Bufs {
    pub io: [u8; READ],
    pub input: [u8; IN_SIZE],
    pub log: [u8; LOG_BATCH],
}

impl Bufs {
    pub const ZERO: Bufs = Bufs { io: [0; READ], input: [0; IN_SIZE], log: [0; LOG_BATCH] };
}

/// Exits reaped before anyone knew the pid (a container that died before
/// its pidfile was read), kept for `adopt`; the oldest goes when full.
pub struct Early {
    exits: [(Pid, Ended); 16],
    next: usize,
}

impl Early {
    fn push(&mut self, pid: Pid, e: Ended) {
        self.exits[self.next % 16] = (pid, e);
        self.next = self.next.wrapping_add(1);
    }
    /// How `pid` ended, if it was reaped early (and forget it).
    pub fn take(&mut self, pid: Pid) -> Option<Ended> {
        let e = self.exits.iter_mut().find(|(p, _)| *p == pid && pid > 0)?;
        e.0 = 0;
        Some(e.1)
    }
    pub fn contains(&self, pid: Pid) -> bool {
        pid > 0 && self.exits.iter().any(|&(p, _)| p == pid)
    }
}

/// After this long without events, hand touched buffer and stack pages
/// back to the kernel: an idle shim should cost what an idle shim needs.
const IDLE_TRIM_MS: u64 = 1000;

/// Signals the daemon reads from its signalfd: children, and those a
/// front end may forward.
pub const SIGNALS: [i32; 7] =
    [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2];

/// Laid out in this order (`repr(C)`): the small fields, then the table,
/// so an idle daemon with one process touches one page of it (slot 0
/// shares the page of the fields). The buffers are apart, page-aligned.
#[repr(C)]
pub struct Daemon<'a> {
    pub poll: Poll,
    signals: OwnedFd,
    pub early: Early,
    /// The front end's own deadline (monotonic ms).
    pub front_deadline: Option<u64>,
    /// Work was left for the next turn: do not wait.
    more: bool,
    /// Something happened since the last trim.
    busy: bool,
    /// When the loop last went to wait, and when it last had events
    /// (monotonic ms): the trim waits for `IDLE_TRIM_MS` without any.
    now: u64,
    last_busy: u64,
    pub bufs: &'a mut Bufs,
    pub procs: Table<'a>,
}

/// What a front end does with the daemon's news. Every method runs on the
/// daemon's stack, called from the loop, and must return (except where a
/// front end ends the process).
pub trait Front<'a> {
    /// One of its own descriptors (`Kind::Front`) is ready.
    fn ready(&mut self, _d: &mut Daemon<'a>, _tok: Token, _ev: EventFlags) {}
    /// A signal other than SIGCHLD arrived.
    fn signal(&mut self, d: &mut Daemon<'a>, sig: i32);
    /// The runtime creating slot `slot`'s process exited.
    fn runtime_exited(&mut self, d: &mut Daemon<'a>, slot: usize, e: Ended);
    /// A child that is no process's own exited (a runtime run the front
    /// end started itself?). False: not its, keep it as an early exit.
    fn reaped(&mut self, _d: &mut Daemon<'a>, _pid: Pid, _e: Ended) -> bool {
        false
    }
    /// Slot `slot`'s process has ended; its output is drained.
    fn exited(&mut self, d: &mut Daemon<'a>, slot: usize, e: Ended);
    /// Slot `slot`'s deadline passed (cleared before the call).
    fn deadline(&mut self, d: &mut Daemon<'a>, slot: usize);
    /// The front end's own deadline passed (cleared before the call).
    fn tick(&mut self, _d: &mut Daemon<'a>) {}
    /// Slot `slot`'s cgroup recorded an OOM kill.
    fn oom(&mut self, d: &mut Daemon<'a>, slot: usize);
    /// The daemon is idle: hand back the front end's own idle buffers.
    fn trim(&mut self) {}
}

impl<'a> Daemon<'a> {
    /// Set up the daemon in `at` (zeroed memory, as a static in .bss is):
    /// the epoll set and the signalfd (the signals are blocked already),
    /// with `bufs` as its buffers. Zero is a valid value for every other
    /// field.
    pub fn init(at: &'a mut MaybeUninit<Daemon<'a>>, bufs: &'a mut Bufs) -> sys::Result<&'a mut Daemon<'a>> {
        let ep = sys::epoll_create()?;
        let signals = sys::signalfd(&SIGNALS)?;
        sys::epoll_add(&ep, &signals, Token::new(Kind::Signal, 0, 0, &signals).pack(), EventFlags::IN)?;
        let d = at.as_mut_ptr();
        // SAFETY: `at` is zeroed memory we own; the descriptor and buffer
        // fields are written before anything reads them, and zero bytes
        // are a valid `Table` (no slot used), `Early`, `Option<u64>` (None)
        // and `bool` (false).
        unsafe {
            addr_of_mut!((*d).poll).write(Poll { ep });
            addr_of_mut!((*d).signals).write(signals);
            addr_of_mut!((*d).bufs).write(bufs);
            Ok(at.assume_init_mut())
        }
    }

    /// Ask for another turn without waiting (work was left).
    pub fn again(&mut self) {
        self.more = true;
    }

    /// The loop. Never returns: the front end ends the process.
    pub fn serve<F: Front<'a>>(&mut self, f: &mut F) -> ! {
        let mut evs: [Event; 16] = core::array::from_fn(|_| Event { flags: EventFlags::empty(), data: sys_data(0) });
        loop {
            let timeout = self.timeout();
            let got = sys::epoll_wait(&self.poll.ep, &mut evs, timeout);
            if got.is_empty() {
                self.expire(f);
            } else {
                self.busy = true;
                self.last_busy = self.now;
            }
            let n = got.len();
            for ev in &evs[..n] {
                if let Some(tok) = Token::unpack(ev.data.u64()) {
                    self.dispatch(f, tok, ev.flags);
                }
            }
            self.resume_output();
            self.leftovers();
            self.report_exits(f);
        }
    }

    /// How long epoll may wait: until the nearest deadline, or the idle
    /// trim, or for ever; not at all when work was left.
    fn timeout(&mut self) -> Option<u64> {
        let now = sys::monotonic_ms();
        self.now = now;
        if core::mem::take(&mut self.more) {
            return Some(0);
        }
        let mut next = self.front_deadline;
        for i in self.procs.used() {
            let Some(p) = self.procs.get(i) else { continue };
            for d in [p.deadline, p.pace.resume].into_iter().flatten() {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        }
        let until = next.map(|d| d.saturating_sub(now));
        let trim = (self.last_busy + IDLE_TRIM_MS).saturating_sub(now);
        match (until, self.busy) {
            (Some(u), true) => Some(u.min(trim)),
            (Some(u), false) => Some(u),
            (None, true) => Some(trim),
            (None, false) => None,
        }
    }

    /// Nothing came within the timeout: deadlines that passed, and the
    /// idle trim.
    fn expire<F: Front<'a>>(&mut self, f: &mut F) {
        let now = sys::monotonic_ms();
        if self.front_deadline.is_some_and(|d| d <= now) {
            self.front_deadline = None;
            f.tick(self);
        }
        for i in self.procs.used() {
            let due = self.procs.get_mut(i).and_then(|p| p.deadline.filter(|&d| d <= now).map(|_| p.deadline = None));
            if due.is_some() {
                f.deadline(self, i);
            }
        }
        if self.busy && now >= self.last_busy + IDLE_TRIM_MS {
            self.busy = false;
            f.trim();
            self.trim();
        }
    }

    fn dispatch<F: Front<'a>>(&mut self, f: &mut F, tok: Token, ev: EventFlags) {
        match tok.kind {
            Kind::Signal => self.on_signals(f),
            Kind::Front => f.ready(self, tok, ev),
            _ => {
                let slot = tok.slot as usize;
                let Some(p) = self.procs.get_mut(slot) else { return };
                if p.on_event(&self.poll, tok, ev, self.bufs) == Note::Oom {
                    f.oom(self, slot);
                }
            }
        }
    }

    /// Output pipes paused for a flood whose pause is over (the clock is
    /// read only while one is paused).
    fn resume_output(&mut self) {
        let mut now = None;
        for i in self.procs.used() {
            let Some(p) = self.procs.get_mut(i) else { continue };
            if p.pace.resume.is_some() {
                let now = *now.get_or_insert_with(sys::monotonic_ms);
                p.resume_output(&self.poll, now);
            }
        }
    }

    /// Bounded leftovers: input that clients which left still have queued.
    fn leftovers(&mut self) {
        for i in self.procs.used() {
            if let Some(p) = self.procs.get_mut(i) {
                if p.drain_gone(&self.poll, &mut self.bufs.input, DRAIN_BUDGET) {
                    self.more = true;
                }
            }
        }
    }

    /// Processes that ended: their output is drained, then the front end
    /// hears of it.
    fn report_exits<F: Front<'a>>(&mut self, f: &mut F) {
        for i in self.procs.used() {
            let Some(p) = self.procs.get_mut(i) else { continue };
            let Phase::Exited { pid, ended, told: false } = p.phase else { continue };
            p.drain_output(&self.poll, self.bufs);
            p.phase = Phase::Exited { pid, ended, told: true };
            f.exited(self, i, ended);
        }
    }

    fn on_signals<F: Front<'a>>(&mut self, f: &mut F) {
        while let Some(sig) = sys::next_signal(&self.signals) {
            if sig == libc::SIGCHLD {
                self.reap(f);
            } else {
                f.signal(self, sig);
            }
        }
    }

    /// Reap every child that has exited: runtimes, processes, and anything
    /// re-parented to us.
    pub fn reap<F: Front<'a>>(&mut self, f: &mut F) {
        while let Some((pid, code, status)) = sys::reap_one() {
            let e = Ended::from_wait(code, status);
            let mut owner = None;
            for i in self.procs.used() {
                match self.procs.get(i).map(|p| p.phase) {
                    Some(Phase::Creating { runtime, .. }) if runtime == pid => owner = Some((i, true)),
                    Some(Phase::Running { pid: p }) if p == pid => owner = Some((i, false)),
                    _ => continue,
                }
                break;
            }
            match owner {
                Some((i, true)) => f.runtime_exited(self, i, e),
                Some((i, false)) => {
                    if let Some(p) = self.procs.get_mut(i) {
                        p.ended(e);
                    }
                }
                None => {
                    if !f.reaped(self, pid, e) {
                        self.early.push(pid, e);
                    }
                }
            }
        }
    }

    /// Give back the I/O buffers (the input buffer too, unless input waits
    /// in it) and the unused stack pages; pipes grown for a flood shrink.
    #[inline(never)]
    pub fn trim(&mut self) {
        let input_waits = self.procs.used().any(|i| self.procs.get(i).is_some_and(|p| !p.clients.flow.reading()));
        for i in self.procs.used() {
            if let Some(p) = self.procs.get_mut(i) {
                p.trim_output();
            }
        }
        sys::release(self.bufs.io.as_ptr() as usize, READ);
        sys::release(self.bufs.log.as_ptr() as usize, LOG_BATCH);
        if !input_waits {
            sys::release(self.bufs.input.as_ptr() as usize, IN_SIZE);
        }
        crate::stack::trim_below_here();
    }

    /// Monotonic milliseconds from now, for a deadline.
    pub fn after_ms(ms: u64) -> u64 {
        sys::monotonic_ms() + ms
    }

    /// A process in slot `i`.
    pub fn proc(&mut self, i: usize) -> Option<&mut Proc<'a>> {
        self.procs.get_mut(i)
    }
}

fn sys_data(v: u64) -> rustix::event::epoll::EventData {
    rustix::event::epoll::EventData::new_u64(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for kind in Kind::ALL {
            for (slot, sub, fd) in [(0usize, 0usize, 0i32), (63, 63, 5), (65535, 255, i32::MAX), (1, 2, 3)] {
                let t = Token { kind, slot: slot as u16, sub: sub as u8, fd };
                assert_eq!(Token::unpack(t.pack()), Some(t));
            }
        }
        assert_eq!(Token::unpack(0), None);
        assert_eq!(Token::unpack(0xff << 56), None);
    }
}
