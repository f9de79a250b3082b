//! Pacing a process's output pipes while it floods them.
//!
//! A container that writes without pause is slower than the daemon reading
//! it, so the daemon would wake for every few KiB it writes, and the
//! kernel's cost is per wake-up (epoll_wait, read, write), not per byte.
//! So a pipe that gives data again within a pause of the last is left
//! alone for a pause before it is read again: meanwhile it fills (grown to
//! `FLOOD_PIPE` for the flood, so the writer need not wait), and the next
//! wake-up takes it in a few large reads and writes it in a few large
//! writes. The pause starts at `PAUSE_MS`; a pause that gave little (a
//! writer slowed down by a busy machine, or by many floods at once) doubles,
//! up to `MAX_PAUSE_MS`, and one that nearly filled the pipe halves, so
//! each wake-up carries a large batch and the pipe does not fill. A pipe
//! that was quiet is read at once, so a line now and then is logged as soon
//! as it is written; during a flood, at most `MAX_PAUSE_MS` late. Nothing
//! that was read waits: the pause is before the read. At the idle trim a
//! grown pipe goes back to `IDLE_PIPE`, which is also its size while the
//! process is quiet.
//!
//! The state is plain logic; the process applies it to its descriptors.

/// How long a flooding pipe is left to fill, ms: at first, and at least.
pub const PAUSE_MS: u64 = 2;
/// At most.
pub const MAX_PAUSE_MS: u64 = 32;
/// A pause that gave less than this doubles; one that gave more than
/// `HIGH` halves.
const LOW: usize = 64 * 1024;
const HIGH: usize = FLOOD_PIPE / 2;
/// A pipe's size during a flood: what a fast writer fills in `PAUSE_MS`.
/// The kernel's array of page slots for it (256 × 40 bytes) is charged to
/// the daemon while it lasts; the pages themselves to the writer.
pub const FLOOD_PIPE: usize = 1 << 20;
/// A pipe's size while quiet: one page (the kernel's default of 16 page
/// slots costs about 1 KiB more per pipe).
pub const IDLE_PIPE: usize = 4096;

/// A process's output pipes: stdout is source 0, stderr 1.
pub const SOURCES: usize = 2;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pace {
    /// When a read last found data (monotonic ms; 0: never).
    last: u64,
    /// When the paused sources are read again (monotonic ms).
    pub resume: Option<u64>,
    /// Sources paused (bit per source).
    paused: u8,
    /// Sources whose pipe is grown for a flood.
    grown: u8,
    /// The pause now, ms (0: `PAUSE_MS`).
    pause: u8,
}

/// What to do with a source after a wake-up's reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct After {
    /// Stop watching it until `Pace::resume`.
    pub pause: bool,
    /// Grow its pipe to `FLOOD_PIPE` (then call `grown`).
    pub grow: bool,
}

impl Pace {
    pub const fn new() -> Pace {
        Pace { last: 0, resume: None, paused: 0, grown: 0, pause: 0 }
    }

    /// A wake-up at `now` read `bytes` from `source`, the largest read
    /// `most` bytes.
    pub fn after_reads(&mut self, source: usize, now: u64, bytes: usize, most: usize) -> After {
        let bit = 1u8 << source;
        if bytes == 0 {
            return After::default();
        }
        // A read that took a whole quiet-size pipe found it full, or nearly.
        let grow = most >= IDLE_PIPE && self.grown & bit == 0;
        let pause = self.pause();
        // Data again within a pause (and a little) of the last read: it
        // keeps flooding.
        let flooding = self.last != 0 && now.saturating_sub(self.last) <= pause + PAUSE_MS;
        self.last = now.max(1);
        if !flooding {
            self.pause = 0;
            return After { pause: false, grow };
        }
        let next = if bytes < LOW {
            (pause * 2).min(MAX_PAUSE_MS)
        } else if bytes > HIGH {
            (pause / 2).max(PAUSE_MS)
        } else {
            pause
        };
        self.pause = next as u8;
        self.paused |= bit;
        if self.resume.is_none() {
            self.resume = Some(now + next);
        }
        After { pause: true, grow }
    }

    /// The pipe of `source` was grown.
    pub fn grown(&mut self, source: usize) {
        self.grown |= 1 << source;
    }

    /// Sources to watch again (bits) if their pause is over at `now`.
    pub fn due(&mut self, now: u64) -> u8 {
        match self.resume {
            Some(t) if t <= now => {
                self.resume = None;
                core::mem::take(&mut self.paused)
            }
            _ => 0,
        }
    }

    /// The pause now, ms.
    pub fn pause(&self) -> u64 {
        if self.pause == 0 {
            PAUSE_MS
        } else {
            self.pause as u64
        }
    }

    pub fn is_paused(&self, source: usize) -> bool {
        self.paused & (1 << source) != 0
    }

    /// Sources whose pipe is to be shrunk at the idle trim (bits); a
    /// source that could not be shrunk is marked again with `grown`.
    pub fn shrink(&mut self) -> u8 {
        core::mem::take(&mut self.grown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_source_is_read_at_once() {
        let mut p = Pace::new();
        // A line now and then: never paused, never grown.
        for t in [1000, 1100, 1200, 5000] {
            assert_eq!(p.after_reads(0, t, 80, 80), After { pause: false, grow: false });
        }
        assert_eq!(p.resume, None);
        assert_eq!(p.due(u64::MAX), 0);
    }

    #[test]
    fn a_flood_is_paused_then_resumed() {
        let mut p = Pace::new();
        const BIG: usize = 256 << 10;
        assert_eq!(p.after_reads(0, 1000, 4096, 4096), After { pause: false, grow: true });
        p.grown(0);
        // Data again within a pause: paused for PAUSE_MS (a large read
        // keeps the pause as it is).
        assert_eq!(p.after_reads(0, 1001, BIG, 65536), After { pause: true, grow: false });
        assert!(p.is_paused(0) && !p.is_paused(1));
        assert_eq!(p.resume, Some(1001 + PAUSE_MS));
        // stderr while stdout floods: paused with it, same resume time
        // (and its pipe grown: a whole page came at once).
        assert_eq!(p.after_reads(1, 1002, BIG, 65536), After { pause: true, grow: true });
        assert_eq!(p.resume, Some(1001 + PAUSE_MS));
        assert_eq!(p.due(1001 + PAUSE_MS - 1), 0);
        assert_eq!(p.due(1001 + PAUSE_MS), 0b11);
        assert_eq!(p.resume, None);
        assert!(!p.is_paused(0));
        // The read at the resume is still the flood: paused again at once.
        assert!(p.after_reads(0, 1001 + PAUSE_MS, BIG, 65536).pause);
        // Grown pipes go back at the trim, once.
        assert_eq!(p.shrink(), 0b01);
        assert_eq!(p.shrink(), 0);
    }

    #[test]
    fn the_pause_grows_while_a_flood_gives_little_and_shrinks_when_the_pipe_fills() {
        let mut p = Pace::new();
        p.after_reads(0, 1000, 100, 100);
        let mut t = 1000;
        let mut seen = Vec::new();
        // A slowed writer: a few KiB per pause.
        for _ in 0..8 {
            t += p.pause();
            assert!(p.after_reads(0, t, 4096, 4096).pause);
            seen.push(p.pause());
            p.due(u64::MAX);
        }
        assert_eq!(seen, [4, 8, 16, 32, 32, 32, 32, 32]);
        // A pause that nearly fills the grown pipe halves, down to the least.
        for want in [16, 8, 4, 2, 2] {
            t += p.pause();
            assert!(p.after_reads(0, t, FLOOD_PIPE * 3 / 4, 65536).pause);
            assert_eq!(p.pause(), want);
            p.due(u64::MAX);
        }
        // Quiet for longer than a pause: the next read is at once, and the
        // pause starts again from the least.
        t += 10 * MAX_PAUSE_MS;
        assert!(!p.after_reads(0, t, 4096, 4096).pause);
        assert_eq!(p.pause(), PAUSE_MS);
    }

    #[test]
    fn nothing_read_changes_nothing() {
        let mut p = Pace::new();
        assert_eq!(p.after_reads(0, 0, 0, 0), After::default());
        assert_eq!(p, Pace::new());
        // A clock at 0 still counts as a read.
        p.after_reads(0, 0, 1, 1);
        assert!(p.after_reads(0, 1, 1, 1).pause);
    }
}
