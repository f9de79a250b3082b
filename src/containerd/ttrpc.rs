//! ttrpc, containerd's RPC over a unix stream socket, without an
//! allocator: every frame is a 10-byte big-endian header (length, stream
//! id, type, flags) and a protobuf message: `Request{service=1, method=2,
//! payload=3, timeout_nano=4, metadata=5}` one way, `Response{status=1
//! {code, message}, payload=2}` the other.
//!
//! A server connection (`Conn`) reads frames into its own fixed buffer,
//! without waiting: a frame is handled once whole, a frame longer than
//! `MSG_MAX` is read past and answered with ResourceExhausted, and the
//! connection stays usable. The events client (`events.rs`) uses the same
//! framing the other way.

use super::proto::{self, Value, Writer};
use crate::sys::{self, Errno, OwnedFd};

pub const HEADER: usize = 10;
pub const T_REQUEST: u8 = 1;
pub const T_RESPONSE: u8 = 2;

/// The largest message the shim takes, in bytes (containerd's requests
/// are a few KiB: an exec spec, a rootfs with its overlay layers). Bigger
/// ones get a ResourceExhausted reply and the connection goes on.
pub const MSG_MAX: usize = 64 * 1024;

/// gRPC status codes the shim answers with.
pub const OK: u32 = 0;
pub const UNKNOWN: u32 = 2;
pub const INVALID_ARGUMENT: u32 = 3;
pub const NOT_FOUND: u32 = 5;
pub const ALREADY_EXISTS: u32 = 6;
pub const RESOURCE_EXHAUSTED: u32 = 8;
pub const FAILED_PRECONDITION: u32 = 9;
pub const UNIMPLEMENTED: u32 = 12;
pub const INTERNAL: u32 = 13;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub len: u32,
    pub stream: u32,
    pub ty: u8,
    pub flags: u8,
}

impl Header {
    pub fn parse(b: &[u8; HEADER]) -> Header {
        Header {
            len: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            stream: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            ty: b[8],
            flags: b[9],
        }
    }
    pub fn bytes(&self) -> [u8; HEADER] {
        let mut b = [0u8; HEADER];
        b[..4].copy_from_slice(&self.len.to_be_bytes());
        b[4..8].copy_from_slice(&self.stream.to_be_bytes());
        b[8] = self.ty;
        b[9] = self.flags;
        b
    }
}

/// A request, borrowed from the frame.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Request<'a> {
    pub service: &'a [u8],
    pub method: &'a [u8],
    pub payload: &'a [u8],
    pub timeout_ns: u64,
}

pub fn parse_request(b: &[u8]) -> Result<Request<'_>, proto::Malformed> {
    let mut r = Request::default();
    proto::each(b, |f, v| match (f, v) {
        (1, Value::Bytes(s)) => r.service = s,
        (2, Value::Bytes(s)) => r.method = s,
        (3, Value::Bytes(s)) => r.payload = s,
        (4, v) => r.timeout_ns = v.u64(),
        _ => {}
    })?;
    Ok(r)
}

/// A response's status and payload, borrowed from the frame.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Response<'a> {
    pub code: u32,
    pub message: &'a [u8],
    pub payload: &'a [u8],
}

pub fn parse_response(b: &[u8]) -> Result<Response<'_>, proto::Malformed> {
    let mut r = Response::default();
    let mut status: &[u8] = &[];
    proto::each(b, |f, v| match (f, v) {
        (1, Value::Bytes(s)) => status = s,
        (2, Value::Bytes(s)) => r.payload = s,
        _ => {}
    })?;
    proto::each(status, |f, v| match f {
        1 => r.code = v.u32(),
        2 => r.message = v.bytes(),
        _ => {}
    })?;
    Ok(r)
}

/// Write one response frame into `out`: success (`code` 0: no status,
/// only the payload `write` produces) or an error (status only). Returns
/// the frame's length; 0 if it did not fit.
pub fn response(out: &mut [u8], stream: u32, code: u32, message: &[u8], write: impl FnOnce(&mut Writer<'_>)) -> usize {
    if out.len() < HEADER {
        return 0;
    }
    let (head, body) = out.split_at_mut(HEADER);
    let mut w = Writer::new(body);
    let mut empty = false;
    if code == OK {
        let o = w.open(2);
        write(&mut w);
        w.close(o);
        // An empty payload is sent as an empty frame (as Go's ttrpc does).
        empty = w.len() == 2;
    } else {
        let o = w.open(1);
        w.uint(1, code as u64);
        w.bytes(2, &message[..message.len().min(1024)]);
        w.close(o);
    }
    if w.overflow {
        return 0;
    }
    let n = if empty { 0 } else { w.len() };
    head.copy_from_slice(&Header { len: n as u32, stream, ty: T_RESPONSE, flags: 0 }.bytes());
    HEADER + n
}

/// Write one request frame into `out` (the events client's Forward).
pub fn request(
    out: &mut [u8],
    stream: u32,
    service: &[u8],
    method: &[u8],
    ns: &[u8],
    timeout_ns: u64,
    write: impl FnOnce(&mut Writer<'_>),
) -> usize {
    if out.len() < HEADER {
        return 0;
    }
    let (head, body) = out.split_at_mut(HEADER);
    let mut w = Writer::new(body);
    w.bytes(1, service);
    w.bytes(2, method);
    let o = w.open(3);
    write(&mut w);
    w.close(o);
    w.uint(4, timeout_ns);
    let md = w.open(5);
    w.bytes(1, b"containerd-namespace-ttrpc");
    w.bytes(2, ns);
    w.close(md);
    if w.overflow {
        return 0;
    }
    let n = w.len();
    head.copy_from_slice(&Header { len: n as u32, stream, ty: T_REQUEST, flags: 0 }.bytes());
    HEADER + n
}

/// Where a connection is in the stream of frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    /// `got` bytes of the next header are in `head`.
    Header,
    /// The body of a frame: `got` of `len` bytes are in the buffer.
    Body(Header),
    /// The body of an oversized frame, read past: `left` bytes to go.
    Skip(Header, u32),
}

/// One frame that came whole, or one that was too big.
pub enum Frame<'b> {
    Whole(Header, &'b [u8]),
    TooBig(Header),
}

/// The peer has gone, or sent what cannot be read past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gone;

/// A server (or client) connection's reading side.
pub struct Conn {
    pub fd: OwnedFd,
    head: [u8; HEADER],
    got: usize,
    want: Want,
}

impl Conn {
    pub fn new(fd: OwnedFd) -> Conn {
        Conn { fd, head: [0; HEADER], got: 0, want: Want::Header }
    }

    /// Read what is there and return the next frame once it is whole.
    /// `buf` holds the body between calls (it is the connection's own);
    /// its size is the largest frame taken. Err(Gone) when the peer has gone (or sent garbage beyond
    /// repair); Ok(None) when more is to come.
    pub fn read<'b>(&mut self, buf: &'b mut [u8]) -> Result<Option<Frame<'b>>, Gone> {
        let max = buf.len();
        // At most a header then a body per call.
        for _ in 0..2 {
            match self.want {
                Want::Header => {
                    let n = recv(&self.fd, &mut self.head[self.got..])?;
                    self.got += n;
                    if self.got < HEADER {
                        return Ok(None);
                    }
                    let h = Header::parse(&self.head);
                    self.got = 0;
                    if h.len as usize > max {
                        self.want = Want::Skip(h, h.len);
                    } else if h.len == 0 {
                        return Ok(Some(Frame::Whole(h, &buf[..0])));
                    } else {
                        self.want = Want::Body(h);
                    }
                }
                Want::Body(h) => {
                    let len = h.len as usize;
                    let n = recv(&self.fd, &mut buf[self.got..len])?;
                    self.got += n;
                    if self.got < len {
                        return Ok(None);
                    }
                    self.got = 0;
                    self.want = Want::Header;
                    return Ok(Some(Frame::Whole(h, &buf[..len])));
                }
                Want::Skip(h, left) => {
                    let n = recv(&self.fd, &mut buf[..(left as usize).min(max)])?;
                    let left = left - n as u32;
                    if left > 0 {
                        self.want = Want::Skip(h, left);
                        return Ok(None);
                    }
                    self.want = Want::Header;
                    return Ok(Some(Frame::TooBig(h)));
                }
            }
        }
        Ok(None)
    }

    /// Whether a frame is half-read (so the caller reads again before
    /// sleeping: one read per call may leave whole frames in the socket).
    pub fn mid_frame(&self) -> bool {
        self.want != Want::Header || self.got > 0
    }
}

/// One read without waiting: Ok(0) when nothing is there now, Err at the
/// peer's end or a failure.
fn recv(fd: &OwnedFd, buf: &mut [u8]) -> Result<usize, Gone> {
    if buf.is_empty() {
        return Ok(0);
    }
    match crate::sock::recv(fd, buf) {
        Ok(0) => Err(Gone),
        Ok(n) => Ok(n),
        Err(Errno::AGAIN) => Ok(0),
        Err(_) => Err(Gone),
    }
}

/// Send a whole frame without waiting. A peer that does not read its
/// replies (the socket is full) is dropped by the caller: Err.
pub fn send(fd: &OwnedFd, frame: &[u8]) -> sys::Result<()> {
    let mut off = 0;
    while off < frame.len() {
        let n = crate::sock::send(fd, &frame[off..])?;
        if n == 0 {
            return Err(Errno::PIPE);
        }
        off += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_as_containerd_sends_them() {
        // Observed: Connect from containerd 1.6.20.
        let frame = b"\x00\x00\x00\x2c\x00\x00\x00\x03\x01\x00\x0a\x17containerd.task.v2.Task\x12\x07Connect\x1a\x08\x0a\x06cdexp4";
        let h = Header::parse(frame[..10].try_into().unwrap());
        assert_eq!(h, Header { len: 0x2c, stream: 3, ty: T_REQUEST, flags: 0 });
        let r = parse_request(&frame[10..]).unwrap();
        assert_eq!(r.service, b"containerd.task.v2.Task");
        assert_eq!(r.method, b"Connect");
        assert_eq!(r.payload, b"\x0a\x06cdexp4");
    }

    #[test]
    fn responses_as_containerd_expects_them() {
        let mut out = [0u8; 64];
        // Success: no status, the payload only (observed Create reply).
        let n = response(&mut out, 1, OK, b"", |w| w.uint(1, 2706));
        assert_eq!(&out[..n], b"\x00\x00\x00\x05\x00\x00\x00\x01\x02\x00\x12\x03\x08\x92\x15");
        // Empty: a zero-length frame.
        let n = response(&mut out, 5, OK, b"", |_| {});
        assert_eq!(&out[..n], b"\x00\x00\x00\x00\x00\x00\x00\x05\x02\x00");
        // An error: status only.
        let n = response(&mut out, 7, NOT_FOUND, b"process already finished: not found", |_| {});
        let r = parse_response(&out[HEADER..n]).unwrap();
        assert_eq!((r.code, r.message, r.payload), (NOT_FOUND, &b"process already finished: not found"[..], &b""[..]));
    }

    #[test]
    fn a_request_round_trips() {
        let mut out = [0u8; 256];
        let n = request(
            &mut out,
            9,
            b"containerd.services.events.ttrpc.v1.Events",
            b"Forward",
            b"default",
            5_000_000_000,
            |w| w.bytes(1, b"x"),
        );
        let r = parse_request(&out[HEADER..n]).unwrap();
        assert_eq!(r.method, b"Forward");
        assert_eq!(r.payload, b"\x0a\x01x");
        assert_eq!(r.timeout_ns, 5_000_000_000);
    }
}
