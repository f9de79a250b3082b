//! A raw ttrpc client and the few protobuf messages the tests send to a
//! containerd shim's socket themselves (the hostile-peer tests, and finding
//! the shim's pid through Connect).
//!
//! Wire format (containerd's ttrpc): a 10-byte header, big-endian
//! `length u32 | stream id u32 | type u8 (1 request, 2 response) | flags u8`,
//! then `length` bytes. Requests are `Request{service=1, method=2,
//! payload=3, timeout_nano=4, metadata=5}`, replies `Response{status=1
//! {code=1, message=2}, payload=2}`; a success carries no status. Client
//! stream ids are odd and increase.
//!
//! Everything is bounded: reads and writes time out (`IO_TIMEOUT`) with an
//! error saying what was awaited.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Bound of one read or write on a ttrpc connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

pub const TYPE_REQUEST: u8 = 1;
pub const TYPE_RESPONSE: u8 = 2;

/// The shim's task service.
pub const TASK: &str = "containerd.task.v2.Task";

// ---------------------------------------------------------------------------
// protobuf, by hand

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn put_tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, ((field as u64) << 3) | wire as u64);
}

/// A length-delimited field (string, bytes, message).
pub fn put_bytes(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    put_tag(out, field, 2);
    put_varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

pub fn put_str(out: &mut Vec<u8>, field: u32, s: &str) {
    put_bytes(out, field, s.as_bytes());
}

pub fn put_uint(out: &mut Vec<u8>, field: u32, v: u64) {
    put_tag(out, field, 0);
    put_varint(out, v);
}

/// A decoded field value.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Varint(u64),
    Fixed64(u64),
    Bytes(Vec<u8>),
    Fixed32(u32),
}

fn get_varint(b: &[u8], i: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *b.get(*i).ok_or("truncated varint")?;
        *i += 1;
        if shift == 63 && byte > 1 {
            return Err("varint overflows 64 bits".into());
        }
        v |= ((byte & 0x7f) as u64) << shift;
        if byte < 0x80 {
            return Ok(v);
        }
    }
    Err("varint longer than 10 bytes".into())
}

/// All fields of a message, in order (unknown wire types are an error).
pub fn decode(b: &[u8]) -> Result<Vec<(u32, Val)>, String> {
    let mut i = 0;
    let mut v = vec![];
    while i < b.len() {
        let key = get_varint(b, &mut i)?;
        let (field, wire) = ((key >> 3) as u32, (key & 7) as u8);
        let val = match wire {
            0 => Val::Varint(get_varint(b, &mut i)?),
            1 => {
                let s = b.get(i..i + 8).ok_or("truncated fixed64")?;
                i += 8;
                Val::Fixed64(u64::from_le_bytes(s.try_into().unwrap()))
            }
            2 => {
                let n = get_varint(b, &mut i)? as usize;
                let s = b.get(i..i.checked_add(n).ok_or("length overflow")?).ok_or("truncated bytes")?;
                i += n;
                Val::Bytes(s.to_vec())
            }
            5 => {
                let s = b.get(i..i + 4).ok_or("truncated fixed32")?;
                i += 4;
                Val::Fixed32(u32::from_le_bytes(s.try_into().unwrap()))
            }
            w => return Err(format!("wire type {w} at byte {i}")),
        };
        v.push((field, val));
    }
    Ok(v)
}

/// The last varint of `field` (proto3: the last one wins), 0 if absent.
pub fn uint_of(fields: &[(u32, Val)], field: u32) -> u64 {
    fields
        .iter()
        .rev()
        .find_map(|(f, v)| match v {
            Val::Varint(x) if *f == field => Some(*x),
            _ => None,
        })
        .unwrap_or(0)
}

/// The last length-delimited value of `field`.
pub fn bytes_of(fields: &[(u32, Val)], field: u32) -> Option<Vec<u8>> {
    fields.iter().rev().find_map(|(f, v)| match v {
        Val::Bytes(x) if *f == field => Some(x.clone()),
        _ => None,
    })
}

pub fn str_of(fields: &[(u32, Val)], field: u32) -> String {
    bytes_of(fields, field).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

/// `Request{service, method, payload, timeout_nano, metadata}`.
pub fn request(service: &str, method: &str, payload: &[u8], timeout_nano: u64, metadata: &[(&str, &str)]) -> Vec<u8> {
    let mut r = vec![];
    put_str(&mut r, 1, service);
    put_str(&mut r, 2, method);
    if !payload.is_empty() {
        put_bytes(&mut r, 3, payload);
    }
    if timeout_nano != 0 {
        put_uint(&mut r, 4, timeout_nano);
    }
    for (k, v) in metadata {
        let mut kv = vec![];
        put_str(&mut kv, 1, k);
        put_str(&mut kv, 2, v);
        put_bytes(&mut r, 5, &kv);
    }
    r
}

/// A message with one string field 1 (ConnectRequest, StateRequest,
/// PidsRequest, StatsRequest, ... all start with `id = 1`).
pub fn id_message(id: &str) -> Vec<u8> {
    let mut m = vec![];
    put_str(&mut m, 1, id);
    m
}

/// One frame with its header.
pub fn frame(stream: u32, typ: u8, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(10 + data.len());
    f.extend_from_slice(&(data.len() as u32).to_be_bytes());
    f.extend_from_slice(&stream.to_be_bytes());
    f.push(typ);
    f.push(flags);
    f.extend_from_slice(data);
    f
}

// ---------------------------------------------------------------------------
// replies

/// A grpc status (code 0 never appears here: success has no status).
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub code: u64,
    pub message: String,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "code {} {:?}", self.code, self.message)
    }
}

/// A received frame.
#[derive(Clone, Debug)]
pub struct Frame {
    pub stream: u32,
    pub typ: u8,
    pub flags: u8,
    pub data: Vec<u8>,
}

impl Frame {
    /// The frame as a `Response`: Ok(payload) or Err(status). A status with
    /// code 0 counts as success (containerd's client accepts both).
    pub fn response(&self) -> Result<Result<Vec<u8>, Status>, String> {
        if self.typ != TYPE_RESPONSE {
            return Err(format!("frame type {} on stream {}, not a response", self.typ, self.stream));
        }
        let f = decode(&self.data).map_err(|e| format!("undecodable Response ({e}): {:02x?}", self.data))?;
        let payload = bytes_of(&f, 2).unwrap_or_default();
        match bytes_of(&f, 1) {
            Some(st) => {
                let s = decode(&st).map_err(|e| format!("undecodable Status ({e}): {st:02x?}"))?;
                let code = uint_of(&s, 1);
                if code == 0 {
                    Ok(Ok(payload))
                } else {
                    Ok(Err(Status { code, message: str_of(&s, 2) }))
                }
            }
            None => Ok(Ok(payload)),
        }
    }
}

/// What a read of the next frame found.
#[derive(Debug)]
pub enum Read1 {
    Frame(Frame),
    /// The peer closed the connection (before a header, or within a frame).
    Closed {
        partial: usize,
    },
    /// Nothing within the bound.
    TimedOut,
    Error(io::Error),
}

// ---------------------------------------------------------------------------
// the client

pub struct Ttrpc {
    pub sock: UnixStream,
    pub path: PathBuf,
    next: u32,
}

impl Ttrpc {
    pub fn connect(path: &Path) -> io::Result<Ttrpc> {
        let sock = UnixStream::connect(path)?;
        sock.set_read_timeout(Some(IO_TIMEOUT))?;
        sock.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(Ttrpc { sock, path: path.to_path_buf(), next: 1 })
    }

    /// The next odd stream id (1, 3, 5, ...).
    pub fn next_stream(&mut self) -> u32 {
        let id = self.next;
        self.next += 2;
        id
    }

    pub fn set_read_timeout(&self, d: Duration) {
        self.sock.set_read_timeout(Some(d)).unwrap();
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.sock.write_all(bytes)
    }

    /// Sends a request frame; returns its stream id.
    pub fn send_request(&mut self, service: &str, method: &str, payload: &[u8]) -> io::Result<u32> {
        let id = self.next_stream();
        let f = frame(id, TYPE_REQUEST, 0, &request(service, method, payload, 0, &[]));
        self.sock.write_all(&f)?;
        Ok(id)
    }

    /// Reads the next frame, within the read timeout.
    pub fn read_frame(&mut self) -> Read1 {
        let mut head = [0u8; 10];
        if let Err(r) = read_full(&mut self.sock, &mut head) {
            return r;
        }
        let len = u32::from_be_bytes(head[0..4].try_into().unwrap()) as usize;
        if len > 64 << 20 {
            return Read1::Error(io::Error::other(format!("a reply frame claims {len} bytes")));
        }
        let mut data = vec![0u8; len];
        if let Err(r) = read_full(&mut self.sock, &mut data) {
            return match r {
                Read1::Closed { partial } => Read1::Closed { partial: partial + 10 },
                other => other,
            };
        }
        Read1::Frame(Frame {
            stream: u32::from_be_bytes(head[4..8].try_into().unwrap()),
            typ: head[8],
            flags: head[9],
            data,
        })
    }

    /// Reads frames until the response on `stream`; any other frame or a
    /// close is an error (the tests keep one request in flight unless they
    /// say otherwise).
    pub fn wait_response(&mut self, stream: u32) -> Result<Result<Vec<u8>, Status>, String> {
        match self.read_frame() {
            Read1::Frame(f) if f.stream == stream => f.response(),
            Read1::Frame(f) => Err(format!("expected the reply to stream {stream}, got {f:?}")),
            Read1::Closed { partial } => Err(format!(
                "the shim closed the connection instead of answering stream {stream} ({partial} bytes of a frame read)"
            )),
            Read1::TimedOut => Err(format!("no reply to stream {stream} within {}s", IO_TIMEOUT.as_secs())),
            Read1::Error(e) => Err(format!("reading the reply to stream {stream}: {e}")),
        }
    }

    /// One call: Ok(Ok(payload)), Ok(Err(status)), or Err(transport problem).
    pub fn call(&mut self, service: &str, method: &str, payload: &[u8]) -> Result<Result<Vec<u8>, Status>, String> {
        let id = self.send_request(service, method, payload).map_err(|e| format!("sending {service}/{method}: {e}"))?;
        self.wait_response(id)
    }

    /// `Task.Connect{id}` → (shim_pid, task_pid).
    pub fn connect_task(&mut self, id: &str) -> Result<(u32, u32), String> {
        match self.call(TASK, "Connect", &id_message(id))? {
            Ok(p) => {
                let f = decode(&p).map_err(|e| format!("undecodable ConnectResponse ({e}): {p:02x?}"))?;
                Ok((uint_of(&f, 1) as u32, uint_of(&f, 2) as u32))
            }
            Err(st) => Err(format!("Connect answered {st}")),
        }
    }

    /// `Task.State{id}` → (pid, status enum: 1 created, 2 running, 3
    /// stopped, 4 paused).
    pub fn state(&mut self, id: &str) -> Result<(u32, u64), String> {
        match self.call(TASK, "State", &id_message(id))? {
            Ok(p) => {
                let f = decode(&p).map_err(|e| format!("undecodable StateResponse ({e}): {p:02x?}"))?;
                Ok((uint_of(&f, 3) as u32, uint_of(&f, 4)))
            }
            Err(st) => Err(format!("State answered {st}")),
        }
    }

    pub fn set_nonblocking(&self, on: bool) {
        self.sock.set_nonblocking(on).unwrap();
    }

    pub fn fd(&self) -> i32 {
        self.sock.as_raw_fd()
    }
}

fn read_full(s: &mut UnixStream, buf: &mut [u8]) -> Result<(), Read1> {
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) => return Err(Read1::Closed { partial: got }),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(if got == 0 {
                    Read1::TimedOut
                } else {
                    Read1::Error(io::Error::other("timed out within a frame"))
                })
            }
            Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => return Err(Read1::Closed { partial: got }),
            Err(e) => return Err(Read1::Error(e)),
        }
    }
    Ok(())
}
