//! A process's output, from its sources (stdout and stderr pipes, or the
//! pty) to its sinks: the log first (it is the record), then journald,
//! then attach clients. Nothing read is held back: each read is written
//! out before the next.

use crate::attach::{self, Clients};
use crate::buf::Buf;
use crate::diag;
use crate::journal::Journal;
use crate::logfile::{Batch, LogFile, Stream, MAX_PAYLOAD};
use crate::sys::Errno;
use crate::timefmt;

pub struct Output<'a> {
    pub log: LogFile<'a>,
    pub journal: Option<Journal>,
    /// The log is failing (disk full...): said once, and once when it recovers.
    failing: bool,
}

/// Clients that could not take a record: bits of the stuck (full) ones
/// and of those whose peer has left.
#[derive(Default)]
pub struct Refused {
    pub stuck: u64,
    pub left: u64,
}

impl<'a> Output<'a> {
    pub fn new(log: LogFile<'a>, journal: Option<Journal>) -> Self {
        Output { log, journal, failing: false }
    }

    /// Bytes of output that could not be logged.
    pub fn lost(&self) -> u64 {
        self.log.lost + self.journal.as_ref().map_or(0, |j| j.lost)
    }

    /// One read's worth of output from `stream`, to the log (formatted
    /// into `batch`) and journald.
    pub fn record(&mut self, batch: &mut Batch<'_>, stream: Stream, data: &[u8]) {
        self.log.write(batch, stream, data, &timefmt::now());
        if let Some(j) = &mut self.journal {
            // In pieces of a log record's size at most, as the reads of
            // that size were (a longer line is a partial message).
            for piece in data.chunks(MAX_PAYLOAD) {
                j.write(stream, piece);
            }
        }
    }

    /// The end of a wake-up: what `batch` holds goes to the log. `lost` is
    /// what the log had lost when the wake-up began: losing more is said
    /// once, and once when a wake-up's writes succeed again.
    pub fn flush(&mut self, batch: &mut Batch<'_>, lost: u64) {
        let wrote = !batch.is_empty();
        self.log.flush(batch);
        if self.log.lost != lost && !self.failing {
            self.failing = true;
            let e = self.log.last_error.unwrap_or(Errno::IO);
            diag::warn_errno(
                b"cannot write the log, container output is being dropped (counted in the exit record)",
                e,
            );
        } else if self.log.lost == lost && self.failing && wrote {
            self.failing = false;
            let mut n: Buf<24> = Buf::new();
            n.push_u64(self.log.lost);
            diag::warn(&[b"the log is writable again; bytes lost so far: ", n.as_bytes()]);
        }
    }
}

/// The same read to every client that gets output, without waiting, in
/// records of at most `attach::RECORD` bytes.
pub fn to_clients(clients: &Clients, stream: Stream, data: &[u8]) -> Refused {
    let code = if stream == Stream::Stdout { attach::STREAM_STDOUT } else { attach::STREAM_STDERR };
    let mut r = Refused::default();
    for i in 0..attach::MAX_CLIENTS {
        if !clients.flow.gets_output(i) {
            continue;
        }
        let Some(fd) = clients.fd(i) else { continue };
        for chunk in data.chunks(attach::RECORD) {
            match attach::send_record(fd, code, chunk) {
                Ok(()) => continue,
                Err(Errno::AGAIN | Errno::NOBUFS) => r.stuck |= 1 << i,
                Err(_) => r.left |= 1 << i,
            }
            break;
        }
    }
    r
}
