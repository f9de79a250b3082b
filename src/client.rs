//! `shimlet attach [--detach-keys KEYS] [--ctl PATH] SOCKET`: a terminal's
//! view of an attach socket. stdin goes in (raw, when it is a terminal),
//! stream 2 comes out on stdout and stream 3 on stderr; the detach keys
//! leave without touching the container; stdin's end-of-file half-closes
//! the socket so `--stdin-once` sees it. The terminal mode is restored on
//! every way out, signals included.

use core::ffi::{c_int, CStr};

use crate::buf::Buf;
use crate::sock;
use crate::sys::{self, Errno, OFlags, OwnedFd};

pub const DEFAULT_DETACH: &[u8] = b"ctrl-p,ctrl-q";

/// At most this many keys in a detach sequence.
pub const MAX_KEYS: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keys {
    pub seq: [u8; MAX_KEYS],
    pub len: usize,
}

/// Docker's syntax: comma-separated `ctrl-X` or single characters. An
/// empty string disables detaching.
pub fn parse_keys(s: &[u8]) -> Option<Keys> {
    let mut k = Keys { seq: [0; MAX_KEYS], len: 0 };
    if s.is_empty() {
        return Some(k);
    }
    for part in s.split(|&b| b == b',') {
        let key = match part {
            [c] => *c,
            [b'c', b't', b'r', b'l', b'-', c] => match c.to_ascii_lowercase() {
                c @ b'a'..=b'z' => c - b'a' + 1,
                b'@' => 0,
                b'[' => 27,
                b'\\' => 28,
                b']' => 29,
                b'^' => 30,
                b'_' => 31,
                _ => return None,
            },
            _ => return None,
        };
        if k.len == MAX_KEYS {
            return None;
        }
        k.seq[k.len] = key;
        k.len += 1;
    }
    Some(k)
}

/// Finds the detach sequence in a byte stream, holding back a partial
/// match until it is known not to be one.
pub struct Matcher {
    keys: Keys,
    matched: usize,
}

impl Matcher {
    pub fn new(keys: Keys) -> Self {
        Matcher { keys, matched: 0 }
    }

    /// Feed input; bytes to forward go to `out`. True when the sequence
    /// is complete (what follows it is not forwarded).
    pub fn feed(&mut self, data: &[u8], out: &mut dyn FnMut(&[u8])) -> bool {
        let k = &self.keys.seq[..self.keys.len];
        if k.is_empty() {
            out(data);
            return false;
        }
        let mut start = 0;
        for (i, &b) in data.iter().enumerate() {
            if b == k[self.matched] {
                if self.matched == 0 {
                    out(&data[start..i]);
                }
                self.matched += 1;
                start = i + 1;
                if self.matched == k.len() {
                    return true;
                }
            } else if self.matched > 0 {
                // Not the sequence after all: release what was held.
                out(&k[..self.matched]);
                self.matched = 0;
                if b == k[0] {
                    self.matched = 1;
                    start = i + 1;
                } else {
                    start = i;
                }
            }
        }
        if self.matched == 0 {
            out(&data[start..]);
        }
        false
    }
}

/// The terminal on stdin, in raw mode while attached.
struct Tty {
    saved: Option<sys::Termios>,
}

impl Tty {
    fn raw() -> Tty {
        let stdin = sys::borrow(0);
        if !sys::is_tty(stdin) {
            return Tty { saved: None };
        }
        let Some(t) = sys::tty_get(stdin) else { return Tty { saved: None } };
        sys::tty_set(stdin, &sys::tty_raw(&t));
        Tty { saved: Some(t) }
    }
    fn restore(&self) {
        if let Some(t) = &self.saved {
            sys::tty_set(sys::borrow(0), t);
        }
    }
}

fn say(parts: &[&[u8]]) {
    let mut m: Buf<512> = Buf::new();
    m.push(b"shimlet attach: ");
    for p in parts {
        m.push(p);
    }
    m.push(b"\r\n");
    let _ = sys::write_all(sys::borrow(2), m.as_bytes());
}

fn send_size(ctl: Option<&OwnedFd>) {
    let Some(ctl) = ctl else { return };
    let Some((rows, cols)) = sys::tty_size(sys::borrow(0)) else { return };
    let mut l: Buf<32> = Buf::new();
    l.push(b"1 ");
    l.push_u64(rows as u64);
    l.push(b" ");
    l.push_u64(cols as u64);
    l.push(b"\n");
    let _ = sys::write(ctl, l.as_bytes());
}

const USAGE: &[u8] = b"usage: shimlet attach [--detach-keys KEYS] [--ctl PATH] SOCKET\n";

#[inline(never)]
pub fn main<'a>(mut args: impl Iterator<Item = &'a CStr>) -> c_int {
    let mut keys_s: &[u8] = DEFAULT_DETACH;
    let mut ctl_path: Option<&CStr> = None;
    let mut socket: Option<&CStr> = None;
    while let Some(a) = args.next() {
        let w = a.to_bytes();
        let (name, inline) = match w.iter().position(|&b| b == b'=') {
            Some(i) if w.starts_with(b"--") => (&w[..i], Some(&w[i + 1..])),
            _ => (w, None),
        };
        match name {
            b"--detach-keys" | b"--ctl" => {
                // The value as a C string: the tail of this argv word, or
                // the next word.
                let v: &CStr = match inline {
                    Some(v) => {
                        let b = a.to_bytes_with_nul();
                        CStr::from_bytes_with_nul(&b[b.len() - v.len() - 1..]).unwrap_or(c"")
                    }
                    None => match args.next() {
                        Some(v) => v,
                        None => {
                            say(&[b"option ", name, b" needs a value"]);
                            return 2;
                        }
                    },
                };
                if name == b"--ctl" {
                    ctl_path = Some(v);
                } else {
                    keys_s = v.to_bytes();
                }
            }
            b"--help" | b"-h" => {
                let _ = sys::write_all(sys::borrow(1), USAGE);
                return 0;
            }
            _ if w.starts_with(b"-") => {
                say(&[b"unknown option ", name]);
                return 2;
            }
            _ if socket.is_none() => socket = Some(a),
            _ => {
                say(&[b"unexpected argument '", w, b"'"]);
                return 2;
            }
        }
    }
    let Some(socket) = socket else {
        let _ = sys::write_all(sys::borrow(2), USAGE);
        return 2;
    };
    let Some(keys) = parse_keys(keys_s) else {
        say(&[b"invalid detach keys '", keys_s, b"'"]);
        return 2;
    };
    let fd = match sock::connect(socket, sock::SEQPACKET) {
        Ok(fd) => fd,
        Err(e) => {
            say(&[b"cannot connect to ", socket.to_bytes(), b": ", sys::text(e)]);
            return 1;
        }
    };
    let ctl = match ctl_path {
        Some(p) => match sys::open(p, OFlags::WRONLY | OFlags::NONBLOCK, 0) {
            Ok(fd) => Some(fd),
            Err(e) => {
                say(&[b"cannot open ", p.to_bytes(), b": ", sys::text(e)]);
                None
            }
        },
        None => None,
    };
    // Signals become events, so every exit goes through the restore.
    let sigs = [libc::SIGWINCH, libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];
    sys::block_signals(&sigs);
    let Ok(sigfd) = sys::signalfd(&sigs) else {
        say(&[b"signalfd failed"]);
        return 1;
    };
    let tty = Tty::raw();
    send_size(ctl.as_ref());
    let code = pump(&fd, &sigfd, ctl.as_ref(), keys);
    tty.restore();
    code
}

fn pump(sock: &OwnedFd, sigfd: &OwnedFd, ctl: Option<&OwnedFd>, keys: Keys) -> c_int {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut m = Matcher::new(keys);
    let mut stdin_open = true;
    let mut buf = [0u8; crate::attach::RECORD + 1];
    loop {
        let mut p = [
            PollFd::new(sock, PollFlags::IN),
            PollFd::new(sigfd, PollFlags::IN),
            PollFd::from_borrowed_fd(sys::borrow(0), PollFlags::IN),
        ];
        let n = if stdin_open { 3 } else { 2 };
        match poll(&mut p[..n], None) {
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(_) => return 1,
        }
        let ready = [!p[0].revents().is_empty(), !p[1].revents().is_empty(), n == 3 && !p[2].revents().is_empty()];
        if ready[0] {
            match sys::retry(|| rustix::net::recv(sock, &mut buf, rustix::net::RecvFlags::empty())) {
                Ok((0, _)) | Err(Errno::CONNRESET) => return 0,
                Err(_) => return 1,
                Ok((n, _)) => {
                    let out = if buf[0] == crate::attach::STREAM_STDERR { 2 } else { 1 };
                    let _ = sys::write_all(sys::borrow(out), &buf[1..n.min(buf.len())]);
                }
            }
        }
        if ready[1] {
            match sys::next_signal(sigfd) {
                Some(libc::SIGWINCH) => send_size(ctl),
                Some(sig) => return 128 + sig,
                None => {}
            }
        }
        if ready[2] {
            let mut input = [0u8; 4096];
            match sys::read(sys::borrow(0), &mut input) {
                Ok(0) | Err(_) => {
                    stdin_open = false;
                    sock::shutdown_write(sock);
                }
                Ok(n) => {
                    let mut failed = false;
                    let detach = m.feed(&input[..n], &mut |b| {
                        if !b.is_empty()
                            && sys::retry(|| rustix::net::send(sock, b, rustix::net::SendFlags::NOSIGNAL)).is_err()
                        {
                            failed = true;
                        }
                    });
                    if detach {
                        return 0;
                    }
                    if failed {
                        return 1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let k = parse_keys(b"ctrl-p,ctrl-q").unwrap();
        assert_eq!(&k.seq[..k.len], &[16, 17]);
        let k = parse_keys(b"a,ctrl-[,ctrl-@").unwrap();
        assert_eq!(&k.seq[..k.len], &[b'a', 27, 0]);
        assert_eq!(parse_keys(b"").unwrap().len, 0);
        assert!(parse_keys(b"ctrl-1").is_none());
        assert!(parse_keys(b"ab").is_none());
        assert!(parse_keys(b"a,,b").is_none());
    }

    fn run(keys: &[u8], chunks: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut m = Matcher::new(parse_keys(keys).unwrap());
        let mut out = Vec::new();
        for c in chunks {
            if m.feed(c, &mut |b| out.extend_from_slice(b)) {
                return (out, true);
            }
        }
        (out, false)
    }

    #[test]
    fn matcher() {
        assert_eq!(run(b"ctrl-p,ctrl-q", &[b"ls\n"]), (b"ls\n".to_vec(), false));
        assert_eq!(run(b"ctrl-p,ctrl-q", &[b"ab\x10", b"\x11cd"]), (b"ab".to_vec(), true));
        assert_eq!(run(b"ctrl-p,ctrl-q", &[b"a\x10b"]), (b"a\x10b".to_vec(), false));
        assert_eq!(run(b"ctrl-p,ctrl-q", &[b"\x10\x10\x11"]), (b"\x10".to_vec(), true));
        assert_eq!(run(b"ctrl-p,ctrl-q", &[b"\x10", b"x"]), (b"\x10x".to_vec(), false));
        assert_eq!(run(b"", &[b"\x10\x11"]), (b"\x10\x11".to_vec(), false));
    }
}
