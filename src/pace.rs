//! Pacing a process's output pipes while it floods them.
//!
//! A container that writes without pause is slower than the daemon reading
//! it, so the daemon would wake for every few KiB it writes, and the
//! kernel's cost is per wake-up (epoll_wait, read, write), not per byte.
//! So a pipe that gave data less than `PAUSE_MS` ago is left alone for
//! `PAUSE_MS` before it is read again: meanwhile it fills (grown to
//! `FLOOD_PIPE` for the flood, so the writer need not wait), and the next
//! wake-up takes it in a few large reads and writes it in a few large
//! writes. A pipe that was quiet is read at once, so a line now and then
//! is logged as soon as it is written. Nothing that was read waits: the
//! pause is before the read. At the idle trim a grown pipe goes back to
//! `IDLE_PIPE`, which is also its size while the process is quiet.
//!
//! The state is plain logic; the process applies it to its descriptors.

/// How long a flooding pipe is left to fill, ms.
pub const PAUSE_MS: u64 = 2;
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
        Pace { last: 0, resume: None, paused: 0, grown: 0 }
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
        let flooding = self.last != 0 && now.saturating_sub(self.last) < PAUSE_MS;
        self.last = now.max(1);
        if !flooding {
            return After { pause: false, grow };
        }
        self.paused |= bit;
        if self.resume.is_none() {
            self.resume = Some(now + PAUSE_MS);
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
        assert_eq!(p.after_reads(0, 1000, 4096, 4096), After { pause: false, grow: true });
        p.grown(0);
        // Data again within PAUSE_MS: paused until 1001 + PAUSE_MS.
        assert_eq!(p.after_reads(0, 1001, 4096, 4096), After { pause: true, grow: false });
        assert!(p.is_paused(0) && !p.is_paused(1));
        assert_eq!(p.resume, Some(1001 + PAUSE_MS));
        // stderr while stdout floods: paused with it, same resume time.
        assert_eq!(p.after_reads(1, 1002, 10, 10), After { pause: true, grow: false });
        assert_eq!(p.resume, Some(1001 + PAUSE_MS));
        assert_eq!(p.due(1001 + PAUSE_MS - 1), 0);
        assert_eq!(p.due(1001 + PAUSE_MS), 0b11);
        assert_eq!(p.resume, None);
        assert!(!p.is_paused(0));
        // Grown pipes go back at the trim, once.
        assert_eq!(p.shrink(), 0b01);
        assert_eq!(p.shrink(), 0);
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
