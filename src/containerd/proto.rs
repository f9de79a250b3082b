//! Protocol buffers without an allocator: a reader that walks the fields
//! of a message borrowed from the receive buffer, and a writer that
//! appends fields to a fixed buffer. Nested messages are written by
//! reserving their length (one byte, or more when they grow) and
//! patching it when the message ends, so no message is built twice.
//!
//! Only what containerd's messages use: varints (bool, enum, int32,
//! uint32, int64, uint64), length-delimited (string, bytes, message),
//! and, when reading, the fixed 32/64-bit wire types are skipped.

/// Wire types.
pub const VARINT: u8 = 0;
pub const I64: u8 = 1;
pub const LEN: u8 = 2;
pub const I32: u8 = 5;

/// One field as read: its number and value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// A fixed-size field (skipped by every message here).
    Fixed(u64),
}

impl<'a> Value<'a> {
    pub fn u64(self) -> u64 {
        match self {
            Value::Varint(v) | Value::Fixed(v) => v,
            Value::Bytes(_) => 0,
        }
    }
    pub fn u32(self) -> u32 {
        self.u64() as u32
    }
    pub fn bool(self) -> bool {
        self.u64() != 0
    }
    pub fn bytes(self) -> &'a [u8] {
        match self {
            Value::Bytes(b) => b,
            _ => &[],
        }
    }
}

/// A malformed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// The fields of one message, in order.
pub struct Reader<'a> {
    data: &'a [u8],
    failed: bool,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, failed: false }
    }

    /// Whether reading stopped at malformed input (rather than its end).
    pub fn failed(&self) -> bool {
        self.failed
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self.data.split_first()?;
            self.data = rest;
            v |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.data.len() {
            return None;
        }
        let (a, b) = self.data.split_at(n);
        self.data = b;
        Some(a)
    }

    fn field(&mut self) -> Option<(u32, Value<'a>)> {
        if self.data.is_empty() {
            return None;
        }
        let key = self.varint()?;
        let (num, wt) = ((key >> 3) as u32, (key & 7) as u8);
        if num == 0 {
            return None;
        }
        let v = match wt {
            VARINT => Value::Varint(self.varint()?),
            LEN => {
                let n = self.varint()?;
                Value::Bytes(self.take(usize::try_from(n).ok()?)?)
            }
            I64 => {
                let b = self.take(8)?;
                Value::Fixed(u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            }
            I32 => {
                let b = self.take(4)?;
                Value::Fixed(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64)
            }
            _ => return None,
        };
        Some((num, v))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = (u32, Value<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let before = self.data.len();
        let r = self.field();
        if r.is_none() && before > 0 {
            self.failed = true;
        }
        r
    }
}

/// Read every field of `data` with `f`; Err when it is malformed. (One
/// copy of the loop for every caller: `f` is called through a reference.)
pub fn each<'a>(data: &'a [u8], mut f: impl FnMut(u32, Value<'a>)) -> Result<(), Malformed> {
    each_dyn(data, &mut f)
}

#[inline(never)]
fn each_dyn<'a>(data: &'a [u8], f: &mut dyn FnMut(u32, Value<'a>)) -> Result<(), Malformed> {
    let mut r = Reader::new(data);
    for (n, v) in r.by_ref() {
        f(n, v);
    }
    if r.failed() {
        Err(Malformed)
    } else {
        Ok(())
    }
}

/// A message being written into `buf`. Writes that do not fit set
/// `overflow` and are dropped; the caller checks it once at the end.
pub struct Writer<'b> {
    buf: &'b mut [u8],
    len: usize,
    pub overflow: bool,
}

/// The start of a nested message: where its length goes.
#[must_use]
pub struct Open {
    at: usize,
}

impl<'b> Writer<'b> {
    pub fn new(buf: &'b mut [u8]) -> Self {
        Writer { buf, len: 0, overflow: false }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    #[inline(never)]
    fn put(&mut self, b: &[u8]) {
        if self.overflow || self.len + b.len() > self.buf.len() {
            self.overflow = true;
            return;
        }
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }

    #[inline(never)]
    fn put_varint(&mut self, mut v: u64) {
        let mut tmp = [0u8; 10];
        let mut n = 0;
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                tmp[n] = b;
                n += 1;
                break;
            }
            tmp[n] = b | 0x80;
            n += 1;
        }
        self.put(&tmp[..n]);
    }

    fn key(&mut self, field: u32, wt: u8) {
        self.put_varint(((field as u64) << 3) | wt as u64);
    }

    /// A varint field; zero is omitted (proto3).
    #[inline(never)]
    pub fn uint(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.key(field, VARINT);
            self.put_varint(v);
        }
    }

    /// Bytes already encoded (a message stored whole).
    pub fn raw(&mut self, b: &[u8]) {
        self.put(b);
    }

    /// A bare varint, as the elements of a packed repeated field are.
    pub fn uint_raw(&mut self, v: u64) {
        self.put_varint(v);
    }

    /// A signed int64/int32 field (two's complement varint); zero omitted.
    pub fn int(&mut self, field: u32, v: i64) {
        self.uint(field, v as u64);
    }

    pub fn bool(&mut self, field: u32, v: bool) {
        self.uint(field, v as u64);
    }

    /// A string or bytes field; empty is omitted (proto3).
    pub fn bytes(&mut self, field: u32, v: &[u8]) {
        if !v.is_empty() {
            self.bytes_always(field, v);
        }
    }

    /// A length-delimited field written even when empty (an empty
    /// sub-message that must be present).
    #[inline(never)]
    pub fn bytes_always(&mut self, field: u32, v: &[u8]) {
        self.key(field, LEN);
        self.put_varint(v.len() as u64);
        self.put(v);
    }

    /// Begin a nested message in `field`; finish it with `close`.
    #[inline(never)]
    pub fn open(&mut self, field: u32) -> Open {
        self.key(field, LEN);
        let at = self.len;
        // One byte of length, grown by `close` when the message is longer.
        self.put(&[0]);
        Open { at }
    }

    /// End a nested message: write its length where `open` left room.
    #[inline(never)]
    pub fn close(&mut self, o: Open) {
        if self.overflow {
            return;
        }
        let body = self.len - o.at - 1;
        let mut tmp = [0u8; 10];
        let mut n = 0;
        let mut v = body as u64;
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            tmp[n] = if v == 0 { b } else { b | 0x80 };
            n += 1;
            if v == 0 {
                break;
            }
        }
        if n > 1 {
            // Shift the body right to make room for a longer length.
            if self.len + n - 1 > self.buf.len() {
                self.overflow = true;
                return;
            }
            self.buf.copy_within(o.at + 1..self.len, o.at + n);
            self.len += n - 1;
        }
        self.buf[o.at..o.at + n].copy_from_slice(&tmp[..n]);
    }

    /// A google.protobuf.Timestamp field (written even at zero seconds:
    /// a timestamp that must be there).
    pub fn timestamp(&mut self, field: u32, secs: i64, nanos: i32) {
        let o = self.open(field);
        self.int(1, secs);
        self.int(2, nanos as i64);
        self.close(o);
    }

    /// A google.protobuf.Any field holding the message `write` writes.
    pub fn any(&mut self, field: u32, type_url: &[u8], write: impl FnOnce(&mut Writer<'_>)) {
        let o = self.open(field);
        self.bytes(1, type_url);
        let v = self.open(2);
        write(self);
        self.close(v);
        self.close(o);
    }
}

/// Go's zero `time.Time` (0001-01-01), which containerd reads as "not
/// exited".
pub const ZERO_TIME_SECS: i64 = -62_135_596_800;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_strings_round_trip() {
        let mut b = [0u8; 64];
        let mut w = Writer::new(&mut b);
        w.uint(1, 300);
        w.bytes(2, b"hi");
        w.uint(3, 0); // omitted
        w.int(4, -1);
        w.bool(5, true);
        assert!(!w.overflow);
        let bytes = w.as_bytes().to_vec();
        assert_eq!(&bytes[..3], &[0x08, 0xac, 0x02]);
        let fields: Vec<_> = Reader::new(&bytes).collect();
        assert_eq!(
            fields,
            vec![
                (1, Value::Varint(300)),
                (2, Value::Bytes(b"hi")),
                (4, Value::Varint(u64::MAX)),
                (5, Value::Varint(1))
            ]
        );
    }

    #[test]
    fn nested_messages_grow_their_length() {
        let mut b = [0u8; 512];
        let mut w = Writer::new(&mut b);
        let o = w.open(3);
        w.bytes(1, &[b'x'; 200]);
        w.close(o);
        w.uint(4, 7);
        let bytes = w.as_bytes().to_vec();
        let fields: Vec<_> = Reader::new(&bytes).collect();
        assert_eq!(fields.len(), 2);
        let Value::Bytes(inner) = fields[0].1 else { panic!() };
        assert_eq!(inner.len(), 203);
        assert_eq!(Reader::new(inner).next(), Some((1, Value::Bytes(&[b'x'; 200][..]))));
        assert_eq!(fields[1], (4, Value::Varint(7)));
    }

    #[test]
    fn zero_time_is_the_bytes_containerd_sends() {
        // Observed from runc-v2: State's exited_at for a running task.
        let mut b = [0u8; 32];
        let mut w = Writer::new(&mut b);
        w.timestamp(10, ZERO_TIME_SECS, 0);
        assert_eq!(w.as_bytes(), &[0x52, 0x0b, 0x08, 0x80, 0x92, 0xb8, 0xc3, 0x98, 0xfe, 0xff, 0xff, 0xff, 0x01]);
    }

    #[test]
    fn overflow_is_reported_not_panicked() {
        let mut b = [0u8; 4];
        let mut w = Writer::new(&mut b);
        w.bytes(1, b"too long");
        assert!(w.overflow);
        let o = w.open(2);
        w.close(o);
        assert!(w.overflow);
    }

    #[test]
    fn malformed_input_stops_reading() {
        for bad in [&[0x0a, 0x05, b'a'][..], &[0x08][..], &[0x0f, 0][..], &[0x00, 0x01][..], &[0xff; 11][..]] {
            assert_eq!(each(bad, |_, _| {}), Err(Malformed), "{bad:?}");
        }
        // Fixed fields are skipped, not refused.
        assert_eq!(each(&[0x09, 1, 2, 3, 4, 5, 6, 7, 8, 0x15, 1, 2, 3, 4], |_, _| {}), Ok(()));
    }

    #[test]
    fn fuzzed_input_never_panics() {
        let mut seed = 0x1234_5678u32;
        for len in 0..64 {
            for _ in 0..200 {
                let v: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 17;
                        seed ^= seed << 5;
                        seed as u8
                    })
                    .collect();
                let _ = each(&v, |_, v| {
                    let _ = (v.u64(), v.bytes());
                });
            }
        }
    }
}
