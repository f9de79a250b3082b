//! A process's output, from its sources (stdout and stderr pipes, or the
//! pty) to its sinks: the log first (it is the record), then journald,
//! then attach clients. Nothing read is held back: each read is written
//! out before the next.

use crate::attach::{self, Clients};
use crate::buf::Buf;
use crate::diag;
use crate::journal::Journal;
use crate::logfile::{LogFile, Stream};
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

    /// One read's worth of output from `stream`, to the log and journald.
    pub fn record(&mut self, stream: Stream, data: &[u8]) {
        let lost = self.log.lost;
        self.log.write(stream, data, &timefmt::now());
        if let Some(j) = &mut self.journal {
            j.write(stream, data);
        }
        if self.log.lost != lost && !self.failing {
            self.failing = true;
            let e = self.log.last_error.unwrap_or(Errno::IO);
            diag::warn_errno(
                b"cannot write the log, container output is being dropped (counted in the exit record)",
                e,
            );
        } else if self.log.lost == lost && self.failing {
            self.failing = false;
            let mut n: Buf<24> = Buf::new();
            n.push_u64(self.log.lost);
            diag::warn(&[b"the log is writable again; bytes lost so far: ", n.as_bytes()]);
        }
    }
}

/// The same read to every client that gets output, without waiting.
pub fn to_clients(clients: &Clients, stream: Stream, data: &[u8]) -> Refused {
    let code = if stream == Stream::Stdout { attach::STREAM_STDOUT } else { attach::STREAM_STDERR };
    let mut r = Refused::default();
    for i in 0..attach::MAX_CLIENTS {
        if !clients.flow.gets_output(i) {
            continue;
        }
        let Some(fd) = clients.fd(i) else { continue };
        match attach::send_record(fd, code, data) {
            Ok(()) => {}
            Err(Errno::AGAIN | Errno::NOBUFS) => r.stuck |= 1 << i,
            Err(_) => r.left |= 1 << i,
        }
    }
    r
}
