//! Terminals: the console socket the runtime sends the pty master over,
//! and the master's settings (ONLCR, window size).

use core::ffi::CStr;

use crate::buf::Buf;
use crate::sock;
use crate::sys::{self, AsFd, OwnedFd};

/// The console socket of one process being created on a terminal:
/// `$TMPDIR` (or /tmp) `/shimlet-console-PID-SLOT`. It must stay short:
/// the runtime connects to it by name (108-byte limit).
pub struct Console {
    pub listen: OwnedFd,
    /// The runtime's connection, until the pty arrives on it.
    pub conn: Option<OwnedFd>,
    dir: OwnedFd,
    name: Buf<48>,
    path: Buf<108>,
}

impl Console {
    pub fn make(slot: usize) -> sys::Result<Console> {
        let dir: &[u8] = match sys::getenv(c"TMPDIR") {
            Some(t) if !t.is_empty() && t.to_bytes().len() <= 60 => t.to_bytes(),
            _ => b"/tmp",
        };
        let mut name: Buf<48> = Buf::new();
        name.push(b"shimlet-console-");
        name.push_u64(sys::getpid() as u64);
        name.push(b"-");
        name.push_u64(slot as u64);
        let mut path: Buf<108> = Buf::new();
        let mut d: Buf<64> = Buf::new();
        d.push(dir);
        if !(path.push(dir) && path.push(b"/") && path.push(name.as_bytes()) && path.room() > 0) {
            return Err(sys::Errno::NAMETOOLONG);
        }
        let dirfd = sys::open_dir(d.as_cstr().ok_or(sys::Errno::NAMETOOLONG)?)?;
        let n = name.as_cstr().ok_or(sys::Errno::NAMETOOLONG)?;
        let listen = sock::listen_at(dirfd.as_fd(), n, sock::STREAM, 1, 0o700)?;
        Ok(Console { listen, conn: None, dir: dirfd, name, path })
    }

    /// The path the runtime is given as `--console-socket`.
    pub fn path(&mut self) -> &CStr {
        self.path.as_cstr().unwrap_or(c"")
    }

    /// Accept the runtime's connection (replacing an earlier one).
    pub fn accept(&mut self) -> Option<&OwnedFd> {
        let fd = sock::accept(&self.listen)?;
        self.conn = Some(fd);
        self.conn.as_ref()
    }

    /// The pty master, once it has arrived. Ok(None): not yet. Err: the
    /// connection failed and is closed.
    pub fn receive(&mut self) -> sys::Result<Option<OwnedFd>> {
        let Some(conn) = &self.conn else { return Ok(None) };
        match sock::recv_fd(conn) {
            Ok(got) => Ok(got),
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }

    pub fn remove(&mut self) {
        if let Some(n) = self.name.as_cstr() {
            let _ = sys::unlinkat(&self.dir, n);
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Settings of a pty master as it arrives: non-blocking, ONLCR, and the
/// size asked for before it came.
pub fn adopt_pty(fd: &OwnedFd, size: Option<(u16, u16)>) {
    let _ = sys::set_nonblock(fd);
    sys::tty_onlcr(fd);
    if let Some((rows, cols)) = size {
        let _ = sys::tty_resize(fd, rows, cols);
    }
}
