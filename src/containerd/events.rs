//! Events to containerd: `containerd.services.events.ttrpc.v1.Events/
//! Forward` calls over a ttrpc client connection to `$TTRPC_ADDRESS`,
//! each an `Envelope{timestamp=1, namespace=2, topic=3, event=4 (Any)}`.
//!
//! Events wait in a fixed ring, in order, until containerd has answered
//! them; publishing never waits. When the connection is lost (containerd
//! restarts), the shim connects again and sends again what was not
//! answered. An event that does not fit in the ring is dropped, counted,
//! and said in the shim's diagnostics.

use super::proto::Writer;
use super::ttrpc::{self, Conn, Frame};
use crate::buf::Buf;
use crate::diag;
use crate::sock;
use crate::sys::{self, Errno};

/// Bytes of queued events.
pub const RING: usize = 32 * 1024;
/// The largest one event may be.
pub const EVENT_MAX: usize = 7 * 1024;
/// Events sent and not yet answered, at most: one. containerd serves
/// each request in a goroutine of its own, so two in flight could be
/// published in either order; events must keep theirs.
const FLIGHT: usize = 1;

pub const SERVICE: &[u8] = b"containerd.services.events.ttrpc.v1.Events";

/// Not sent now: no connection to containerd (it is tried again later).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unsent;

/// The queue and its bookkeeping; all zero bytes is an empty queue (it
/// lives in .bss). The connection itself is the caller's.
#[repr(C, align(4096))]
pub struct Events {
    /// containerd's ttrpc socket.
    pub addr: Buf<108>,
    pub ns: Buf<80>,
    next_stream: u32,
    start: usize,
    end: usize,
    unsent: usize,
    /// The stream ids of the oldest entries, sent and not yet answered
    /// (true once answered).
    flight: [(u32, bool); FLIGHT],
    sent: usize,
    /// Events that did not fit, and events containerd refused.
    pub dropped: u64,
    pub refused: u64,
    /// The connection is full: wait for it to be writable.
    pub blocked: bool,
    /// A frame's worth of the connection's replies.
    rbuf: [u8; 1024],
    /// Encoded ForwardRequests, each `[len: u16 LE][bytes]`, oldest at
    /// `start`, the next to send at `unsent`. Last, so the fields above
    /// share its first page and an idle daemon keeps that one page only
    /// (`trim` hands back the rest).
    ring: [u8; RING],
}

impl Events {
    pub const ZERO: Events = Events {
        addr: Buf::new(),
        ns: Buf::new(),
        next_stream: 0,
        ring: [0; RING],
        start: 0,
        end: 0,
        unsent: 0,
        flight: [(0, false); FLIGHT],
        sent: 0,
        dropped: 0,
        refused: 0,
        rbuf: [0; 1024],
        blocked: false,
    };

    /// Where events go, and in which namespace.
    pub fn set(&mut self, addr: &[u8], ns: &[u8]) {
        self.addr.clear();
        self.addr.push(addr.strip_prefix(b"unix://").unwrap_or(addr));
        self.ns.clear();
        self.ns.push(ns);
    }

    /// Hand the ring's pages back when it is empty.
    pub fn trim(&mut self) {
        if !self.pending() {
            sys::release(self.ring.as_ptr() as usize, RING);
        }
    }

    pub fn pending(&self) -> bool {
        self.end > self.start
    }

    /// Queue an event: `topic`, its type (`containerd.events.X`) and body.
    pub fn publish(&mut self, topic: &[u8], type_url: &[u8], body: impl FnOnce(&mut Writer<'_>)) {
        if self.end + 2 + EVENT_MAX > RING {
            self.compact();
        }
        let room = (RING - self.end).min(2 + EVENT_MAX);
        if room <= 2 {
            self.drop_one(topic);
            return;
        }
        let (secs, nanos) = sys::now();
        let ns = &self.ns;
        let mut w = Writer::new(&mut self.ring[self.end + 2..self.end + room]);
        let env = w.open(1);
        w.timestamp(1, secs, nanos as i32);
        w.bytes(2, ns.as_bytes());
        w.bytes(3, topic);
        w.any(4, type_url, body);
        w.close(env);
        if w.overflow {
            self.drop_one(topic);
            return;
        }
        let n = w.len();
        self.ring[self.end..self.end + 2].copy_from_slice(&(n as u16).to_le_bytes());
        self.end += 2 + n;
    }

    fn drop_one(&mut self, topic: &[u8]) {
        self.dropped += 1;
        let mut n: Buf<24> = Buf::new();
        n.push_u64(self.dropped);
        diag::warn(&[b"event dropped (the queue is full): ", topic, b"; dropped so far: ", n.as_bytes()]);
    }

    /// Move the queued entries to the front of the ring.
    fn compact(&mut self) {
        if self.start == 0 {
            return;
        }
        self.ring.copy_within(self.start..self.end, 0);
        self.unsent -= self.start;
        self.end -= self.start;
        self.start = 0;
    }

    fn entry_len(&self, at: usize) -> usize {
        u16::from_le_bytes([self.ring[at], self.ring[at + 1]]) as usize
    }

    /// Connect if need be, then send what waits, as far as the socket
    /// takes it. Err: not connected (try again later).
    pub fn send(&mut self, conn: &mut Option<Conn>, frame: &mut [u8]) -> Result<(), Unsent> {
        if conn.is_none() {
            let path = self.addr.as_cstr().ok_or(Unsent)?;
            let fd = sock::connect(path, sock::STREAM).map_err(|_| Unsent)?;
            let _ = sys::set_nonblock(&fd);
            *conn = Some(Conn::new(fd));
            self.next_stream = 1;
            self.unsent = self.start;
            self.sent = 0;
        }
        while self.unsent < self.end && self.sent < FLIGHT && !self.blocked {
            let n = self.entry_len(self.unsent);
            let stream = self.next_stream;
            let body = &self.ring[self.unsent + 2..self.unsent + 2 + n];
            // The entry is the ForwardRequest itself.
            let len =
                ttrpc::request(frame, stream, SERVICE, b"Forward", self.ns.as_bytes(), 5_000_000_000, |w| w.raw(body));
            let Some(c) = conn.as_ref() else { return Err(Unsent) };
            if let Err(e) = ttrpc::send(&c.fd, &frame[..len]) {
                // A frame cut in the middle (the socket full: EAGAIN) cannot
                // be resumed: the connection starts over and what was not
                // answered is sent again.
                let _ = e == Errno::AGAIN;
                self.lost(conn);
                return Err(Unsent);
            }
            self.flight[self.sent] = (stream, false);
            self.sent += 1;
            self.next_stream += 2;
            self.unsent += 2 + n;
        }
        Ok(())
    }

    /// The connection broke: what was not answered is sent again on the
    /// next one.
    pub fn lost(&mut self, conn: &mut Option<Conn>) {
        *conn = None;
        self.sent = 0;
        self.unsent = self.start;
        self.blocked = false;
    }

    /// Replies from containerd: each answers one sent event. False when
    /// the connection is gone.
    pub fn on_readable(&mut self, conn: &mut Option<Conn>) -> bool {
        for _ in 0..FLIGHT {
            let Some(c) = conn.as_mut() else { return false };
            let frame = match c.read(&mut self.rbuf) {
                Ok(Some(Frame::Whole(h, body))) => {
                    let (code, why) = match ttrpc::parse_response(body) {
                        Ok(r) => (r.code, r.message),
                        Err(_) => (ttrpc::UNKNOWN, &b"a malformed reply"[..]),
                    };
                    if code != ttrpc::OK {
                        diag::warn(&[b"containerd refused an event: ", &why[..why.len().min(200)]]);
                    }
                    Some((h.stream, code))
                }
                Ok(Some(Frame::TooBig(h))) => Some((h.stream, ttrpc::UNKNOWN)),
                Ok(None) => None,
                Err(_) => {
                    self.lost(conn);
                    return false;
                }
            };
            let Some((stream, code)) = frame else { return true };
            if code != ttrpc::OK {
                self.refused += 1;
            }
            if let Some(f) = self.flight[..self.sent].iter_mut().find(|f| f.0 == stream) {
                f.1 = true;
            }
            // Answered ones at the head leave the ring.
            while self.sent > 0 && self.flight[0].1 {
                let n = self.entry_len(self.start);
                self.start += 2 + n;
                self.flight.copy_within(1..self.sent, 0);
                self.sent -= 1;
            }
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
                self.unsent = 0;
            }
        }
        true
    }
}
