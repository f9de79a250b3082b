//! Raw relays between a process's pty and a manager's pipes (containerd's
//! FIFOs): the pty's output to a FIFO, a FIFO's input to the pty.
//!
//! Nothing is held on the output side: the pty is read only as far as the
//! FIFO has room (`F_GETPIPE_SZ` less what is queued in it), so a write
//! never falls short, and a full FIFO stops the reading until it drains
//! (back-pressure on that one process, none on the others). The pty's
//! output goes by splice(2) where the kernel can do it, else through the
//! daemon's buffer. Input waits in a small window when the pty is full.

use crate::sys::{self, AsFd, Errno, OwnedFd};

/// Input read from the FIFO that the pty has not taken yet, at most.
pub const WINDOW: usize = 256;

pub struct Relay {
    /// Where the pty's output goes.
    pub out: Option<OwnedFd>,
    /// The output FIFO is full: the pty is not read until it drains.
    pub out_blocked: bool,
    /// splice(2) from the pty failed once with EINVAL: copy instead.
    no_splice: bool,
    /// Where the pty's input comes from.
    pub inp: Option<OwnedFd>,
    window: [u8; WINDOW],
    off: u16,
    len: u16,
}

/// What a relay step left to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// All done for now.
    Done,
    /// The destination is full: wait for it to be writable.
    Blocked,
    /// The source ended (or failed): let it go.
    Ended,
}

impl Relay {
    pub const fn new() -> Relay {
        Relay { out: None, out_blocked: false, no_splice: false, inp: None, window: [0; WINDOW], off: 0, len: 0 }
    }

    pub fn input_waits(&self) -> bool {
        self.len > 0
    }

    /// Bytes the output FIFO can take now.
    fn room(out: &OwnedFd) -> usize {
        let size = rustix::pipe::fcntl_getpipe_size(out).unwrap_or(65536);
        size.saturating_sub(sys::queued(out).unwrap_or(0) as usize)
    }

    /// Move what the pty has to the output FIFO, at most 8 rounds.
    pub fn output(&mut self, pty: &OwnedFd, buf: &mut [u8]) -> Step {
        let Some(out) = &self.out else { return Step::Done };
        for _ in 0..8 {
            let room = Self::room(out);
            if room == 0 {
                self.out_blocked = true;
                return Step::Blocked;
            }
            let n = if self.no_splice {
                let take = room.min(buf.len());
                Self::copy(pty, out, &mut buf[..take])
            } else {
                match rustix::pipe::splice(pty, None, out, None, room, rustix::pipe::SpliceFlags::NONBLOCK) {
                    Err(Errno::INVAL) => {
                        self.no_splice = true;
                        continue;
                    }
                    r => r,
                }
            };
            match n {
                Ok(0) => return Step::Ended,
                Ok(n) if n < room => return Step::Done,
                Ok(_) => {}
                Err(Errno::AGAIN) => return Step::Done,
                Err(Errno::INTR) => {}
                // EIO from a pty whose last user closed it, or a dead FIFO.
                Err(_) => return Step::Ended,
            }
        }
        Step::Done
    }

    /// One read into `buf` (sized to fit the FIFO), written whole.
    fn copy(from: &OwnedFd, to: &OwnedFd, buf: &mut [u8]) -> sys::Result<usize> {
        let n = sys::read(from, buf)?;
        if n > 0 {
            sys::write_all(to, &buf[..n])?;
        }
        Ok(n)
    }

    /// Move input from the FIFO to the pty: the window first, then at most
    /// one more read.
    pub fn input(&mut self, pty: impl AsFd) -> Step {
        let pty = pty.as_fd();
        if !self.flush(pty) {
            return Step::Blocked;
        }
        let Some(inp) = &self.inp else { return Step::Done };
        match sys::read(inp, &mut self.window) {
            Ok(0) => Step::Ended,
            Ok(n) => {
                self.off = 0;
                self.len = n as u16;
                if self.flush(pty) {
                    Step::Done
                } else {
                    Step::Blocked
                }
            }
            Err(Errno::AGAIN) => Step::Done,
            Err(_) => Step::Ended,
        }
    }

    /// Write the window to the pty; true when it is empty.
    pub fn flush(&mut self, pty: impl AsFd) -> bool {
        let pty = pty.as_fd();
        while self.len > 0 {
            let (o, l) = (self.off as usize, self.len as usize);
            match sys::write(pty, &self.window[o..o + l]) {
                Ok(n) => {
                    self.off += n as u16;
                    self.len -= n as u16;
                }
                Err(Errno::AGAIN) => return false,
                Err(_) => self.len = 0,
            }
        }
        true
    }
}

impl Default for Relay {
    fn default() -> Self {
        Self::new()
    }
}
