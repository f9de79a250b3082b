//! JSON string escaping for the sync-pipe messages. The runtime's error
//! text is arbitrary bytes; the message must always be valid JSON, so
//! invalid UTF-8 becomes U+FFFD and control bytes become escapes. An escape
//! is never cut in half when the buffer fills.

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
}
