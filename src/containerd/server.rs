//! The containerd shim's daemon: one per group (a pod, or a container),
//! started by `start`. It serves `containerd.task.v2.Task` over ttrpc on
//! the socket `start` bound, to any number of containerd connections (up
//! to `MAX_CONNS` at once: containerd reconnects after a restart), from
//! peers of our own uid and gid only. Requests are answered in order of
//! completion: one that waits (Create, Start, Delete, Wait, a runtime
//! call) holds only its reply address, never the loop.
//!
//! Runtime calls other than create and exec (`runc start`, `delete`,
//! `pause`, `resume`, `update`, `kill --all`) are jobs: spawned, reaped
//! by the daemon like any child, answered when they end.

use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;

use super::events::Events;
use super::task::Task;
use super::ttrpc::{self, Conn, Frame};
use super::Args;
use crate::buf::Buf;
use crate::daemon::{Bufs, Daemon, Front, Kind, Token};
use crate::diag;
use crate::exit::Ended;
use crate::sock;
use crate::sys::{self, EventFlags, OFlags, OwnedFd, Pid};
use crate::table::Slots;

/// containerd connections served at once: containerd 1.6 opens one per
/// task it holds (a pod's sandbox and each container), so one per slot,
/// and a few more for the reconnections after a restart. A connection's
/// buffer costs memory only while a request is in it.
pub const MAX_CONNS: usize = crate::table::CAPACITY + 8;
// A bit of `Shim::touched` per connection.
const _: () = assert!(MAX_CONNS <= 128);
/// Runtime calls in flight at once.
pub const MAX_JOBS: usize = 16;
/// Wait calls pending at once.
pub const MAX_WAITS: usize = 64;
/// The largest reply (a State, a Pids list, a Metrics message).
pub const OUT: usize = 16 * 1024;

/// Sub-kinds of this front end's epoll entries.
pub const SUB_LISTEN: usize = 1;
pub const SUB_CONN: usize = 2;
pub const SUB_EVENTS: usize = 3;

/// Where a reply goes: a connection (by index and generation, so a reused
/// index does not get someone else's reply) and the request's stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub conn: u8,
    pub gen: u16,
    pub stream: u32,
}

/// What a runtime call is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobKind {
    Start,
    Delete,
    Pause,
    Resume,
    Update,
    /// `kill --all`, answered.
    KillAll,
    /// `kill --all KILL` after the init of a container sharing a pid
    /// namespace exited: nobody waits for it.
    Reap,
}

pub struct Job {
    pub pid: Pid,
    pub slot: u16,
    pub kind: JobKind,
    pub reply: Option<Reply>,
    /// The runtime's stderr, for its error text.
    pub err: Option<OwnedFd>,
}

#[repr(C, align(4096))]
pub struct ConnBuf(pub [u8; ttrpc::MSG_MAX]);

#[repr(C, align(4096))]
pub struct OutBuf(pub [u8; OUT]);

/// The tasks, page-aligned: the table's bookkeeping and its first slot
/// share a page, so one task costs as few pages as it spans.
#[repr(C, align(4096))]
struct TaskTable(Slots<Task>);

pub struct Shim<'a> {
    pub args: &'a Args<'a>,
    listen: OwnedFd,
    socket: Buf<108>,
    conns: [Option<Conn>; MAX_CONNS],
    gens: [u16; MAX_CONNS],
    /// The connections' receive buffers (out while a request is served).
    cbufs: Option<&'a mut [ConnBuf; MAX_CONNS]>,
    /// Bit i: buffer i was read into since the last trim.
    touched: u128,
    pub out: &'a mut OutBuf,
    pub tasks: &'a mut Slots<Task>,
    pub jobs: [Option<Job>; MAX_JOBS],
    pub waits: [Option<(u16, Reply)>; MAX_WAITS],
    pub events: &'a mut Events,
    pub events_conn: Option<Conn>,
    /// Shutdown was asked with no task left: exit once events are out.
    exiting: bool,
}

/// What the daemon keeps for its life, page-aligned: this front end's
/// fields, then the daemon's and its process table (the table last, so a
/// single container's daemon touches two pages of it all).
#[repr(C, align(4096))]
struct Resident {
    shim: MaybeUninit<Shim<'static>>,
    args: MaybeUninit<Args<'static>>,
    listen: Option<OwnedFd>,
    socket: Buf<108>,
    daemon: MaybeUninit<Daemon<'static>>,
}
#[link_section = ".sbss.pages"]
static mut RESIDENT: Resident = Resident {
    shim: MaybeUninit::uninit(),
    args: MaybeUninit::uninit(),
    listen: None,
    socket: Buf::new(),
    daemon: MaybeUninit::zeroed(),
};

// The front end's fields, the daemon's and the first process slot fit in
// two pages.
const _: () = assert!(
    core::mem::offset_of!(Resident, daemon)
        + core::mem::offset_of!(Daemon<'static>, procs)
        + crate::table::SLOTS_OFFSET
        + core::mem::size_of::<crate::process::Proc<'static>>()
        <= 2 * 4096
);
#[link_section = ".sbss.zcold"]
static mut BUFS: Bufs = Bufs::ZERO;
#[link_section = ".sbss.zcold"]
static mut CBUFS: [ConnBuf; MAX_CONNS] = [const { ConnBuf([0; ttrpc::MSG_MAX]) }; MAX_CONNS];
#[link_section = ".sbss.pages"]
static mut OUTBUF: OutBuf = OutBuf([0; OUT]);
#[link_section = ".sbss.pages"]
static mut TASKS: TaskTable = TaskTable(Slots::EMPTY);
#[link_section = ".sbss.pages"]
static mut EVENTS: Events = Events::ZERO;

/// Fork the daemon: detached, on its own stack, serving `listen`.
pub fn spawn_daemon(a: &Args<'static>, listen: OwnedFd, socket: &Buf<108>) -> sys::Result<()> {
    // Signals are blocked before the fork and read from the daemon's
    // signalfd.
    sys::block_signals(&crate::daemon::SIGNALS);
    let pid = sys::fork()?;
    if pid != 0 {
        return Ok(());
    }
    sys::detach();
    // containerd reads start's stdout and stderr to their end: the daemon
    // holds neither. Its diagnostics go to the bundle's `log` FIFO, which
    // containerd reads.
    if let Ok(null) = sys::open(c"/dev/null", OFlags::RDWR, 0) {
        for fd in 0..3 {
            let _ = sys::dup_to(&null, fd);
        }
    }
    // Nothing else containerd's start left open comes along.
    let keep = crate::create::raw(&listen);
    sys::close_from_except(3, &[keep]);
    if let Ok(log) = sys::open(c"log", OFlags::WRONLY | OFlags::NONBLOCK, 0) {
        diag::use_fd(log, Some(a.id));
    }
    // Not holding the first bundle open (containerd removes it).
    let _ = rustix::process::chdir(c"/");
    // SAFETY: the one write of these statics, in the daemon's process,
    // before the switch; `daemon` reads them.
    unsafe {
        let r = &mut *addr_of_mut!(RESIDENT);
        r.args.write(*a);
        r.listen = Some(listen);
        r.socket = Buf::new();
        r.socket.push(socket.as_bytes());
        crate::stack::switch(daemon)
    }
}

extern "C" fn daemon() -> ! {
    crate::stack::drop_old_stack();
    // SAFETY: the one set of references to the daemon's statics, taken
    // once, here; `args` was written before the switch.
    let (r, bufs, cbufs, out, tasks, events) = unsafe {
        (
            &mut *addr_of_mut!(RESIDENT),
            &mut *addr_of_mut!(BUFS),
            &mut *addr_of_mut!(CBUFS),
            &mut *addr_of_mut!(OUTBUF),
            &mut (*addr_of_mut!(TASKS)).0,
            &mut *addr_of_mut!(EVENTS),
        )
    };
    // SAFETY: written by spawn_daemon before the switch.
    let args: &'static Args<'static> = unsafe { r.args.assume_init_ref() };
    let Some(listen) = r.listen.take() else { sys::exit(1) };
    let d = match Daemon::init(&mut r.daemon, bufs) {
        Ok(d) => d,
        Err(e) => {
            diag::warn_errno(b"cannot start the event loop", e);
            sys::exit(1)
        }
    };
    d.procs.set_capacity(crate::table::CAPACITY);
    tasks.set_capacity(crate::table::CAPACITY);
    let ttrpc_addr = sys::getenv(c"TTRPC_ADDRESS").map_or(&b""[..], |a| a.to_bytes());
    events.set(ttrpc_addr, args.namespace.to_bytes());
    let tok = Token::new(Kind::Front, 0, SUB_LISTEN, &listen);
    if d.poll.add(tok, &listen, EventFlags::IN).is_err() {
        sys::exit(1);
    }
    let shim = r.shim.write(Shim {
        args,
        listen,
        socket: Buf::new(),
        conns: [const { None }; MAX_CONNS],
        gens: [0; MAX_CONNS],
        cbufs: Some(cbufs),
        touched: 0,
        out,
        tasks,
        jobs: [const { None }; MAX_JOBS],
        waits: [None; MAX_WAITS],
        events,
        events_conn: None,
        exiting: false,
    });
    shim.socket.push(r.socket.as_bytes());
    d.serve(shim)
}

impl<'a> Shim<'a> {
    // ---- connections ---------------------------------------------------

    fn on_accept(&mut self, d: &mut Daemon<'_>) {
        for _ in 0..MAX_CONNS {
            let Some(fd) = sock::accept(&self.listen) else { return };
            // Only our own user and group may drive us (as ttrpc's
            // UnixSocketRequireSameUser).
            let same = rustix::net::sockopt::socket_peercred(&fd)
                .is_ok_and(|c| c.uid == rustix::process::geteuid() && c.gid == rustix::process::getegid());
            if !same {
                diag::warn(&[b"refused a ttrpc connection from another user"]);
                continue;
            }
            let Some(i) = self.conns.iter().position(|c| c.is_none()) else {
                diag::warn(&[b"refused a ttrpc connection: too many at once"]);
                continue;
            };
            if d.poll.add(Token::new(Kind::Front, i, SUB_CONN, &fd), &fd, EventFlags::IN).is_err() {
                continue;
            }
            self.gens[i] = self.gens[i].wrapping_add(1);
            self.conns[i] = Some(Conn::new(fd));
        }
    }

    fn close_conn(&mut self, d: &mut Daemon<'_>, i: usize) {
        if let Some(c) = self.conns[i].take() {
            d.poll.remove(&c.fd);
        }
        // Its pending replies have nowhere to go.
        let gen = self.gens[i];
        for w in self.waits.iter_mut() {
            if w.is_some_and(|(_, r)| r.conn as usize == i && r.gen == gen) {
                *w = None;
            }
        }
    }

    /// Frames from connection `i`: at most a few per turn (the loop comes
    /// back while more are there).
    fn on_conn(&mut self, d: &mut Daemon<'_>, i: usize) {
        // The buffers are taken out while a request is served, so the
        // handlers may borrow its payload and the shim at once.
        let Some(cb) = self.cbufs.take() else { return };
        self.touched |= 1 << i;
        for _ in 0..8 {
            let Some(conn) = self.conns[i].as_mut() else { break };
            let (h, body) = match conn.read(&mut cb[i].0) {
                Ok(Some(Frame::Whole(h, body))) => (h, Some(body)),
                Ok(Some(Frame::TooBig(h))) => (h, None),
                Ok(None) => break,
                Err(_) => {
                    self.close_conn(d, i);
                    break;
                }
            };
            let reply = Reply { conn: i as u8, gen: self.gens[i], stream: h.stream };
            let Some(body) = body else {
                let mut m: Buf<96> = Buf::new();
                m.push(b"message length ");
                m.push_u64(h.len as u64);
                m.push(b" exceed maximum message size of ");
                m.push_u64(ttrpc::MSG_MAX as u64);
                self.fail(d, reply, ttrpc::RESOURCE_EXHAUSTED, m.as_bytes());
                continue;
            };
            if h.ty != ttrpc::T_REQUEST {
                // Other frame types are for streams, which no method here has.
                continue;
            }
            if h.stream % 2 == 0 {
                self.fail(d, reply, ttrpc::INVALID_ARGUMENT, b"StreamID must be odd for client initiated streams");
                continue;
            }
            let req = match ttrpc::parse_request(body) {
                Ok(r) => r,
                Err(_) => {
                    self.fail(d, reply, ttrpc::INVALID_ARGUMENT, b"unmarshal request error: malformed message");
                    continue;
                }
            };
            if req.service != super::task::SERVICE {
                let mut m: Buf<160> = Buf::new();
                m.push(b"service ");
                m.push(&req.service[..req.service.len().min(128)]);
                self.fail(d, reply, ttrpc::UNIMPLEMENTED, m.as_bytes());
                continue;
            }
            super::task::call(self, d, reply, req.method, req.payload);
        }
        self.cbufs = Some(cb);
    }

    /// Send a reply frame `out[..n]` on its connection; a peer that does
    /// not take it is let go.
    pub fn send(&mut self, d: &mut Daemon<'_>, r: Reply, n: usize) {
        let i = r.conn as usize;
        if self.gens[i] != r.gen {
            return;
        }
        let Some(c) = &self.conns[i] else { return };
        if n == 0 || ttrpc::send(&c.fd, &self.out.0[..n]).is_err() {
            diag::warn(&[b"a ttrpc peer does not read its replies; it was disconnected"]);
            self.close_conn(d, i);
        }
    }

    /// An error reply.
    pub fn fail(&mut self, d: &mut Daemon<'_>, r: Reply, code: u32, msg: &[u8]) {
        let n = ttrpc::response(&mut self.out.0, r.stream, code, msg, |_| {});
        self.send(d, r, n);
    }

    /// A success reply whose payload `write` writes.
    pub fn ok(&mut self, d: &mut Daemon<'_>, r: Reply, write: impl FnOnce(&mut super::proto::Writer<'_>)) {
        let n = ttrpc::response(&mut self.out.0, r.stream, ttrpc::OK, b"", write);
        if n == 0 {
            return self.fail(d, r, ttrpc::INTERNAL, b"shimlet: the reply does not fit its buffer");
        }
        self.send(d, r, n);
    }

    // ---- jobs ----------------------------------------------------------

    /// Track a runtime call; false when too many are in flight.
    pub fn add_job(&mut self, j: Job) -> bool {
        match self.jobs.iter().position(|j| j.is_none()) {
            Some(i) => {
                self.jobs[i] = Some(j);
                true
            }
            None => false,
        }
    }

    pub fn job_slots_free(&self) -> bool {
        self.jobs.iter().any(|j| j.is_none())
    }

    // ---- events --------------------------------------------------------

    /// Send what waits; on failure, try again in a second.
    pub fn flush_events(&mut self, d: &mut Daemon<'_>) {
        if !self.events.pending() {
            return;
        }
        let had = self.events_conn.is_some();
        match self.events.send(&mut self.events_conn, &mut self.out.0) {
            Ok(()) => {
                if !had {
                    if let Some(c) = &self.events_conn {
                        let _ = d.poll.add(Token::new(Kind::Front, 0, SUB_EVENTS, &c.fd), &c.fd, EventFlags::IN);
                    }
                }
            }
            Err(_) => {
                if d.front_deadline.is_none() {
                    d.front_deadline = Some(Daemon::after_ms(1000));
                }
            }
        }
    }

    /// Exit, once nothing is left: the socket goes, queued events get a
    /// bounded last chance.
    fn exit_now(&mut self, d: &mut Daemon<'_>) -> ! {
        for _ in 0..50 {
            if !self.events.pending() {
                break;
            }
            self.flush_events(d);
            match &self.events_conn {
                Some(c) => {
                    let mut p = [rustix::event::PollFd::new(&c.fd, rustix::event::PollFlags::IN)];
                    let _ =
                        rustix::event::poll(&mut p, Some(&rustix::time::Timespec { tv_sec: 0, tv_nsec: 100_000_000 }));
                    self.events.on_readable(&mut self.events_conn);
                }
                None => sys::sleep_ms(100),
            }
        }
        if let Some(p) = self.socket.as_cstr() {
            let _ = sys::unlink(p);
        }
        sys::exit(0)
    }

    pub fn shutdown_if_idle(&mut self, d: &mut Daemon<'_>) {
        if self.tasks.count() == 0 {
            self.exiting = true;
            self.exit_now(d)
        }
    }
}

impl<'a> Front<'a> for Shim<'a> {
    fn ready(&mut self, d: &mut Daemon<'a>, tok: Token, ev: EventFlags) {
        match tok.sub as usize {
            SUB_LISTEN => self.on_accept(d),
            SUB_CONN => {
                let i = tok.slot as usize;
                if i < MAX_CONNS && self.conns[i].as_ref().is_some_and(|c| crate::create::raw(&c.fd) == tok.fd) {
                    self.on_conn(d, i);
                }
            }
            SUB_EVENTS => {
                if ev.intersects(EventFlags::IN | EventFlags::HUP | EventFlags::ERR) {
                    let fd = self.events_conn.as_ref().map(|c| crate::create::raw(&c.fd));
                    if !self.events.on_readable(&mut self.events_conn) {
                        // Gone: its fd left the epoll set when it closed.
                        let _ = fd;
                        d.front_deadline = Some(Daemon::after_ms(1000));
                    }
                }
                self.flush_events(d);
            }
            _ => {}
        }
    }

    fn signal(&mut self, d: &mut Daemon<'a>, sig: i32) {
        // containerd stops a shim with SIGTERM only when it is done with it.
        if matches!(sig, libc::SIGTERM | libc::SIGINT) && self.tasks.count() == 0 {
            self.exit_now(d);
        }
    }

    fn runtime_exited(&mut self, d: &mut Daemon<'a>, slot: usize, e: Ended) {
        super::task::created(self, d, slot, e);
        self.flush_events(d);
    }

    fn reaped(&mut self, d: &mut Daemon<'a>, pid: Pid, e: Ended) -> bool {
        let Some(i) = self.jobs.iter().position(|j| j.as_ref().is_some_and(|j| j.pid == pid)) else {
            // A binary:// logger, or an orphan.
            return self.tasks.used().any(|s| self.tasks.get(s).is_some_and(|t| t.logger == pid));
        };
        let Some(job) = self.jobs[i].take() else { return true };
        super::task::job_done(self, d, job, e);
        self.flush_events(d);
        true
    }

    fn exited(&mut self, d: &mut Daemon<'a>, slot: usize, e: Ended) {
        super::task::exited(self, d, slot, e);
        self.flush_events(d);
    }

    fn deadline(&mut self, _d: &mut Daemon<'a>, _slot: usize) {}

    fn tick(&mut self, d: &mut Daemon<'a>) {
        self.flush_events(d);
    }

    fn oom(&mut self, d: &mut Daemon<'a>, slot: usize) {
        super::task::oom(self, d, slot);
        self.flush_events(d);
    }

    fn trim(&mut self) {
        // Connection buffers hold nothing between frames, the reply buffer
        // nothing between replies, the event ring nothing once empty.
        if let Some(cb) = &self.cbufs {
            for (i, (b, c)) in cb.iter().zip(self.conns.iter()).enumerate() {
                if self.touched & (1 << i) != 0 && !c.as_ref().is_some_and(|c| c.mid_frame()) {
                    sys::release(b.0.as_ptr() as usize, ttrpc::MSG_MAX);
                    self.touched &= !(1 << i);
                }
            }
        }
        sys::release(self.out.0.as_ptr() as usize, OUT);
        self.events.trim();
    }
}
