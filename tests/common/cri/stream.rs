//! The CRI's streaming side: Exec and Attach answer with a URL of
//! containerd's stream server (loopback TCP), which kubelet's API server
//! proxy, and here the test, speaks to over a WebSocket with the
//! `v4.channel.k8s.io` protocol: each binary message starts with its
//! channel (0 stdin, 1 stdout, 2 stderr, 3 the exit status as a JSON
//! `Status`, 4 terminal resizes as `{"Width":W,"Height":H}`).
//!
//! A minimal blocking client (HTTP/1.1 upgrade, RFC 6455 frames, masked
//! from the client): every read is bounded.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const STATUS: u8 = 3;
pub const RESIZE: u8 = 4;

/// Exec: `{container_id=1, cmd=2, tty=3, stdin=4, stdout=5, stderr=6}`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExecRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, repeated, tag = "2")]
    pub cmd: Vec<String>,
    #[prost(bool, tag = "3")]
    pub tty: bool,
    #[prost(bool, tag = "4")]
    pub stdin: bool,
    #[prost(bool, tag = "5")]
    pub stdout: bool,
    #[prost(bool, tag = "6")]
    pub stderr: bool,
}

/// Attach: `{container_id=1, stdin=2, tty=3, stdout=4, stderr=5}`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttachRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(bool, tag = "2")]
    pub stdin: bool,
    #[prost(bool, tag = "3")]
    pub tty: bool,
    #[prost(bool, tag = "4")]
    pub stdout: bool,
    #[prost(bool, tag = "5")]
    pub stderr: bool,
}

/// ExecResponse and AttachResponse: `{url=1}`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UrlResponse {
    #[prost(string, tag = "1")]
    pub url: String,
}

/// One WebSocket session with the stream server.
pub struct Session {
    sock: TcpStream,
    /// What arrived on each channel.
    pub got: [Vec<u8>; 5],
    /// How many messages arrived on each channel (the server's first one,
    /// empty, says that the streams are up).
    pub msgs: [usize; 5],
    /// The server closed the session (close frame or EOF).
    pub closed: bool,
    /// Bytes read but not yet parsed as frames.
    pending: Vec<u8>,
}

impl Session {
    /// Connects to `url` (`http://HOST:PORT/PATH`) and upgrades.
    pub fn open(url: &str) -> Result<Session, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| format!("not an http URL: {url:?}"))?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let sock = TcpStream::connect(host).map_err(|e| format!("connect {host}: {e}"))?;
        sock.set_read_timeout(Some(Duration::from_millis(200))).map_err(|e| e.to_string())?;
        let mut s = Session { sock, got: Default::default(), msgs: [0; 5], closed: false, pending: vec![] };
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"
        );
        s.sock.write_all(req.as_bytes()).map_err(|e| format!("send the upgrade: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let head_end = loop {
            if let Some(i) = s.pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if Instant::now() >= deadline {
                return Err(format!("no upgrade answer: {:?}", String::from_utf8_lossy(&s.pending)));
            }
            if !s.fill()? {
                return Err(format!("closed during the upgrade: {:?}", String::from_utf8_lossy(&s.pending)));
            }
        };
        let head = String::from_utf8_lossy(&s.pending[..head_end]).into_owned();
        if !head.starts_with("HTTP/1.1 101") {
            return Err(format!("upgrade refused: {head:?}"));
        }
        s.pending.drain(..head_end);
        Ok(s)
    }

    /// Reads what is there (up to the read timeout); false at EOF.
    fn fill(&mut self) -> Result<bool, String> {
        let mut b = [0u8; 16384];
        match self.sock.read(&mut b) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.pending.extend_from_slice(&b[..n]);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(false),
            Err(e) => Err(format!("read: {e}")),
        }
    }

    fn frame(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let mut f = vec![0x80 | opcode];
        let n = payload.len();
        if n < 126 {
            f.push(0x80 | n as u8);
        } else if n < 65536 {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
        let mask = [0x5a, 0x1e, 0xc3, 0x77];
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.sock.write_all(&f)
    }

    /// A message on `channel`.
    pub fn send(&mut self, channel: u8, data: &[u8]) -> Result<(), String> {
        let mut m = vec![channel];
        m.extend_from_slice(data);
        self.frame(2, &m).map_err(|e| format!("send on channel {channel}: {e}"))
    }

    /// A terminal size.
    pub fn resize(&mut self, width: u16, height: u16) -> Result<(), String> {
        self.send(RESIZE, format!("{{\"Width\":{width},\"Height\":{height}}}").as_bytes())
    }

    /// Parses the complete frames read so far.
    fn parse(&mut self) -> Result<(), String> {
        loop {
            let p = &self.pending;
            if p.len() < 2 {
                return Ok(());
            }
            let (opcode, masked) = (p[0] & 0x0f, p[1] & 0x80 != 0);
            let (len, mut at) = match p[1] & 0x7f {
                126 if p.len() >= 4 => (u16::from_be_bytes([p[2], p[3]]) as usize, 4),
                127 if p.len() >= 10 => (u64::from_be_bytes(p[2..10].try_into().unwrap()) as usize, 10),
                126 | 127 => return Ok(()),
                n => (n as usize, 2),
            };
            let mask = if masked {
                at += 4;
                p.get(at - 4..at).map(|m| [m[0], m[1], m[2], m[3]])
            } else {
                None
            };
            if p.len() < at + len {
                return Ok(());
            }
            let mut payload = p[at..at + len].to_vec();
            if let Some(m) = mask {
                payload.iter_mut().enumerate().for_each(|(i, b)| *b ^= m[i % 4]);
            }
            self.pending.drain(..at + len);
            match opcode {
                // Binary (or continuation of one): channel byte, then data.
                0 | 2 => {
                    if let Some((&ch, data)) = payload.split_first() {
                        let ch = ch as usize;
                        if ch >= self.got.len() {
                            return Err(format!("a message on unknown channel {ch}"));
                        }
                        self.got[ch].extend_from_slice(data);
                        if opcode == 2 {
                            self.msgs[ch] += 1;
                        }
                    }
                }
                8 => {
                    self.closed = true;
                    return Ok(());
                }
                9 => self.frame(10, &payload).map_err(|e| format!("pong: {e}"))?,
                _ => {}
            }
        }
    }

    /// Reads until `done` holds or the server closes, for at most `limit`.
    pub fn read_until(&mut self, limit: Duration, done: impl Fn(&Session) -> bool) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            self.parse()?;
            if done(self) || self.closed {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("nothing conclusive within {}s; got {}", limit.as_secs(), self.describe()));
            }
            if !self.fill()? {
                self.parse()?;
                self.closed = true;
                return Ok(());
            }
        }
    }

    /// Waits for the server's first message: the streams are up.
    pub fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        self.read_until(limit, |s| s.msgs.iter().any(|&n| n > 0))?;
        if self.msgs.iter().all(|&n| n == 0) {
            return Err(format!("the session ended before it was up: {}", self.describe()));
        }
        Ok(())
    }

    /// Reads until the server ends the session.
    pub fn read_to_end(&mut self, limit: Duration) -> Result<(), String> {
        self.read_until(limit, |_| false)
    }

    /// The exit code from the status channel: 0 for `Success`, the
    /// `ExitCode` cause of a `NonZeroExitCode` failure; None before it came.
    pub fn exit_code(&self) -> Option<i32> {
        let v: Value = serde_json::from_slice(&self.got[STATUS as usize]).ok()?;
        match v["status"].as_str()? {
            "Success" => Some(0),
            _ => v["details"]["causes"]
                .as_array()?
                .iter()
                .find(|c| c["reason"] == "ExitCode")
                .and_then(|c| c["message"].as_str()?.parse().ok()),
        }
    }

    pub fn text(&self, channel: u8) -> String {
        String::from_utf8_lossy(&self.got[channel as usize]).into_owned()
    }

    pub fn describe(&self) -> String {
        format!(
            "stdout {:?}, stderr {:?}, status {:?}, closed {}",
            self.text(STDOUT),
            self.text(STDERR),
            self.text(STATUS),
            self.closed
        )
    }

    /// Ends the session (a close frame; the server then ends its side).
    pub fn close(mut self) {
        let _ = self.frame(8, &[0x03, 0xe8]);
    }
}
