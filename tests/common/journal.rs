//! A stand-in for journald's native socket: a datagram socket the shim is
//! pointed at (`$SHIMLET_JOURNAL_SOCKET`), and the fields of what arrives.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

/// One journal record: its fields in order, values as bytes.
#[derive(Debug, Clone)]
pub struct Entry(pub Vec<(String, Vec<u8>)>);

impl Entry {
    /// Parses the native protocol: `NAME=VALUE\n`, or `NAME\n` + 64-bit
    /// little-endian length + bytes + `\n`.
    pub fn parse(mut d: &[u8]) -> Result<Entry, String> {
        let mut fields = vec![];
        while !d.is_empty() {
            let nl = d.iter().position(|&b| b == b'\n').ok_or("a field without its newline")?;
            let line = &d[..nl];
            if let Some(eq) = line.iter().position(|&b| b == b'=') {
                fields.push((String::from_utf8_lossy(&line[..eq]).into_owned(), line[eq + 1..].to_vec()));
                d = &d[nl + 1..];
            } else {
                let rest = &d[nl + 1..];
                if rest.len() < 8 {
                    return Err("a binary field without its length".into());
                }
                let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
                if rest.len() < 8 + len + 1 || rest[8 + len] != b'\n' {
                    return Err("a binary field cut short".into());
                }
                fields.push((String::from_utf8_lossy(line).into_owned(), rest[8..8 + len].to_vec()));
                d = &rest[8 + len + 1..];
            }
        }
        Ok(Entry(fields))
    }

    pub fn get(&self, k: &str) -> Option<&[u8]> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| &v[..])
    }

    pub fn text(&self, k: &str) -> Option<String> {
        self.get(k).map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// The listening end.
pub struct JournalSink {
    sock: UnixDatagram,
}

impl JournalSink {
    pub fn bind(path: &Path) -> JournalSink {
        let sock = UnixDatagram::bind(path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        JournalSink { sock }
    }

    /// The next record (fails the test after 20 s without one).
    pub fn next(&self) -> Entry {
        let mut b = vec![0u8; 65536];
        let n = self.sock.recv(&mut b).expect("a journal datagram within 20 s");
        Entry::parse(&b[..n]).unwrap_or_else(|e| panic!("a malformed journal datagram ({e}): {:?}", &b[..n]))
    }

    /// Records until one whose MESSAGE is `last`.
    pub fn until(&self, last: &str) -> Vec<Entry> {
        self.until_all(&[last])
    }

    /// Records until each of `messages` has come (streams interleave in
    /// any order).
    pub fn until_all(&self, messages: &[&str]) -> Vec<Entry> {
        let mut v: Vec<Entry> = vec![];
        while !messages.iter().all(|m| v.iter().any(|e| e.get("MESSAGE") == Some(m.as_bytes()))) {
            v.push(self.next());
        }
        v
    }
}
