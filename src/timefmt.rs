//! RFC 3339 timestamps with nanoseconds, in UTC, without the C library's
//! time zone machinery (which would read and map /etc/localtime).
//! Podman parses them with Go's `2006-01-02T15:04:05.000000000Z07:00`.

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+00:00`
pub const LEN: usize = 35;
pub type Stamp = [u8; LEN];

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's
/// `civil_from_days`, valid for any i64 day count a clock can produce.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i64 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn put(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

pub fn format(sec: i64, nsec: i64) -> Stamp {
    let mut s = *b"0000-00-00T00:00:00.000000000+00:00";
    let days = sec.div_euclid(86_400);
    let secs = sec.rem_euclid(86_400) as u64;
    let (y, m, d) = civil_from_days(days);
    put(&mut s[0..4], y.clamp(0, 9999) as u64);
    put(&mut s[5..7], m as u64);
    put(&mut s[8..10], d as u64);
    put(&mut s[11..13], secs / 3600);
    put(&mut s[14..16], secs / 60 % 60);
    put(&mut s[17..19], secs % 60);
    put(&mut s[20..29], nsec.clamp(0, 999_999_999) as u64);
    s
}

pub fn now() -> Stamp {
    let (sec, nsec) = crate::sys::now();
    format(sec, nsec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_known_dates() {
        assert_eq!(&format(0, 0), b"1970-01-01T00:00:00.000000000+00:00");
        // 2026-11-28T19:33:42Z
        assert_eq!(&format(1_795_894_422, 123_456_789), b"2026-11-28T19:33:42.123456789+00:00");
        // leap day
        assert_eq!(&format(951_782_400, 1), b"2000-02-29T00:00:00.000000001+00:00");
        assert_eq!(&format(4_102_444_799, 999_999_999), b"2099-12-31T23:59:59.999999999+00:00");
    }

    #[test]
    fn agrees_with_std_for_many_days() {
        // Cross-check against a naive day walk over 60 years.
        let (mut y, mut m, mut d) = (1970i64, 1u32, 1u32);
        let mdays = |y: i64, m: u32| -> u32 {
            match m {
                2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            }
        };
        for day in 0..(60 * 366) {
            assert_eq!(civil_from_days(day), (y, m, d), "day {day}");
            d += 1;
            if d > mdays(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }
}
