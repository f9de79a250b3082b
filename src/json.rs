//! JSON, both ways, without an allocator.
//!
//! Writing: string escaping for the sync-pipe messages. The runtime's
//! error text is arbitrary bytes; the message must always be valid JSON,
//! so invalid UTF-8 becomes U+FFFD and control bytes become escapes. An
//! escape is never cut in half when the buffer fills.
//!
//! Reading: `lookup` finds the value at a path of object keys in a
//! document (an OCI config's annotations, a line of runc's log) by
//! scanning it once; nesting is tracked with a depth count, never by
//! recursion, and malformed input simply finds nothing.

use crate::buf::Buf;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Append `s` escaped (without quotes); stops at the first piece that does
/// not fit whole. Returns false when something was left out.
pub fn escape_into<const N: usize>(out: &mut Buf<N>, s: &[u8]) -> bool {
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            let mut tmp = [0u8; 6];
            let piece: &[u8] = match c {
                '"' => b"\\\"",
                '\\' => b"\\\\",
                '\n' => b"\\n",
                '\r' => b"\\r",
                '\t' => b"\\t",
                '\u{8}' => b"\\b",
                '\u{c}' => b"\\f",
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    let v = c as u32 as usize;
                    tmp = [b'\\', b'u', b'0', b'0', HEX[v >> 4], HEX[v & 15]];
                    &tmp
                }
                c => c.encode_utf8(&mut tmp).as_bytes(),
            };
            if out.room() < piece.len() {
                return false;
            }
            out.push(piece);
        }
        if !chunk.invalid().is_empty() {
            if out.room() < 3 {
                return false;
            }
            out.push("\u{fffd}".as_bytes());
        }
    }
    true
}

/// Skip white space from `i`.
fn ws(d: &[u8], mut i: usize) -> usize {
    while i < d.len() && matches!(d[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The end of the string that starts (with its quote) at `i`.
fn string_end(d: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    while i < d.len() {
        match d[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The end of the value that starts at `i` (any kind, nested ones too).
fn value_end(d: &[u8], i: usize) -> Option<usize> {
    let mut i = ws(d, i);
    match *d.get(i)? {
        b'"' => string_end(d, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            while i < d.len() {
                match d[i] {
                    b'"' => {
                        i = string_end(d, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            while i < d.len() && !matches!(d[i], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                i += 1;
            }
            Some(i)
        }
    }
}

/// The raw value (a string with its quotes, a number, an object...) of
/// `key` in the object that starts at `i`.
fn member<'d>(d: &'d [u8], i: usize, key: &[u8]) -> Option<(usize, &'d [u8])> {
    let mut i = ws(d, i);
    if d.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = ws(d, i);
        match d.get(i)? {
            b'}' => return None,
            b',' => {
                i += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let kend = string_end(d, i)?;
        let k = &d[i + 1..kend - 1];
        i = ws(d, kend);
        if d.get(i) != Some(&b':') {
            return None;
        }
        let vstart = ws(d, i + 1);
        let vend = value_end(d, vstart)?;
        if k == key {
            return Some((vstart, &d[vstart..vend]));
        }
        i = vend;
    }
}

/// The raw value at `path` (object keys from the top), if any.
pub fn lookup<'d>(d: &'d [u8], path: &[&[u8]]) -> Option<&'d [u8]> {
    let mut at = 0;
    let mut v: &[u8] = d;
    for key in path {
        let (start, val) = member(d, at, key)?;
        at = start;
        v = val;
    }
    Some(v)
}

/// The raw items of a JSON array value.
pub fn items(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut i = ws(v, 0);
    let ok = v.get(i) == Some(&b'[');
    i += 1;
    core::iter::from_fn(move || {
        if !ok {
            return None;
        }
        i = ws(v, i);
        if v.get(i) == Some(&b',') {
            i = ws(v, i + 1);
        }
        match v.get(i) {
            None | Some(b']') => None,
            Some(_) => {
                let end = value_end(v, i)?;
                let item = &v[i..end];
                i = end;
                Some(item)
            }
        }
    })
}

/// A JSON string value (with its quotes) unescaped into `out`; false when
/// it is not a string or did not fit. `\uXXXX` outside ASCII becomes
/// UTF-8 (surrogate pairs included).
pub fn unescape<const N: usize>(v: &[u8], out: &mut Buf<N>) -> bool {
    if v.len() < 2 || v[0] != b'"' || v[v.len() - 1] != b'"' {
        return false;
    }
    let s = &v[1..v.len() - 1];
    let mut i = 0;
    let mut ok = true;
    let hex4 = |s: &[u8]| -> Option<u32> {
        if s.len() < 4 {
            return None;
        }
        s[..4].iter().try_fold(0u32, |a, &c| Some(a * 16 + (c as char).to_digit(16)?))
    };
    while i < s.len() {
        if s[i] != b'\\' {
            ok &= out.push_byte(s[i]);
            i += 1;
            continue;
        }
        let Some(&e) = s.get(i + 1) else { return false };
        i += 2;
        let c = match e {
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'b' => 8,
            b'f' => 12,
            b'u' => {
                let Some(mut cp) = hex4(&s[i..]) else { return false };
                i += 4;
                if (0xd800..0xdc00).contains(&cp) && s.get(i) == Some(&b'\\') && s.get(i + 1) == Some(&b'u') {
                    if let Some(lo) = hex4(&s[i + 2..]) {
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo.wrapping_sub(0xdc00) & 0x3ff);
                        i += 6;
                    }
                }
                let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                let mut tmp = [0u8; 4];
                ok &= out.push(ch.encode_utf8(&mut tmp).as_bytes());
                continue;
            }
            c => c,
        };
        ok &= out.push_byte(c);
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &[u8]) -> String {
        let mut b: Buf<256> = Buf::new();
        assert!(escape_into(&mut b, s));
        String::from_utf8(b.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn escapes() {
        assert_eq!(esc(b"plain"), "plain");
        assert_eq!(esc(b"a\"b\\c"), "a\\\"b\\\\c");
        assert_eq!(esc(b"l1\nl2\t\r"), "l1\\nl2\\t\\r");
        assert_eq!(esc(b"\x00\x01\x1f\x7f"), "\\u0000\\u0001\\u001f\\u007f");
        assert_eq!(esc("h\u{e9}".as_bytes()), "h\u{e9}");
        assert_eq!(esc(b"\xff\xfeok"), "\u{fffd}\u{fffd}ok");
    }

    #[test]
    fn never_cuts_an_escape() {
        let mut b: Buf<4> = Buf::new();
        assert!(!escape_into(&mut b, b"abc\"d"));
        assert_eq!(b.as_bytes(), b"abc");
        let mut b: Buf<4> = Buf::new();
        assert!(!escape_into(&mut b, b"\x01"));
        assert_eq!(b.as_bytes(), b"");
    }

    #[test]
    fn lookups() {
        let doc = br#"{"ociVersion":"1.0.2","process":{"terminal":false,"args":["sh","-c","x}"]},
            "annotations": {"io.kubernetes.cri.sandbox-id" : "abc\"def", "n": 5}}"#;
        assert_eq!(lookup(doc, &[b"ociVersion"]), Some(&br#""1.0.2""#[..]));
        assert_eq!(lookup(doc, &[b"process", b"terminal"]), Some(&b"false"[..]));
        assert_eq!(lookup(doc, &[b"annotations", b"n"]), Some(&b"5"[..]));
        let v = lookup(doc, &[b"annotations", b"io.kubernetes.cri.sandbox-id"]).unwrap();
        let mut b: Buf<32> = Buf::new();
        assert!(unescape(v, &mut b));
        assert_eq!(b.as_bytes(), b"abc\"def");
        assert_eq!(lookup(doc, &[b"annotations", b"missing"]), None);
        assert_eq!(lookup(doc, &[b"process", b"args", b"x"]), None);
        for bad in [&b""[..], b"{", b"{\"a\"", b"{\"a\":", b"[1,2", b"{\"a\":\"x"] {
            assert_eq!(lookup(bad, &[b"a"]), None);
        }
    }

    #[test]
    fn array_items() {
        let v: Vec<&[u8]> = items(br#"[ {"a":[1,2]}, "x,]", 3 ]"#).collect();
        assert_eq!(v, vec![&br#"{"a":[1,2]}"#[..], br#""x,]""#, b"3"]);
        assert_eq!(items(b"[]").count(), 0);
        assert_eq!(items(b"{}").count(), 0);
        assert_eq!(items(b"[1,").count(), 1);
    }

    #[test]
    fn unescapes() {
        let mut b: Buf<64> = Buf::new();
        assert!(unescape(br#""a\n\u00e9\ud83d\ude00\/""#, &mut b));
        assert_eq!(b.as_bytes(), "a\n\u{e9}\u{1f600}/".as_bytes());
        b.clear();
        assert!(!unescape(b"nope", &mut b));
    }
}
