//! The daemon's processes: a fixed-capacity table of `Proc` values (and
//! any front end's own per-process values, in a table of the same shape).
//! A slot costs memory only once used (a table lives in .bss, and a slot's
//! pages are touched when a value is put there); the capacity is the front
//! end's choice, up to `CAPACITY`.

use core::mem::MaybeUninit;

use crate::process::Proc;

/// Slots in the table: a bound, not a guess (the containerd front end
/// refuses a process beyond it, with a clear message).
pub const CAPACITY: usize = 64;

/// Slots of `T`; all zero bytes is an empty table (so it can live in .bss).
#[repr(C)]
pub struct Slots<T> {
    /// Bit i: slot i holds a value.
    used: u64,
    /// How many slots the front end allows (1 for conmon's).
    cap: usize,
    slots: [MaybeUninit<T>; CAPACITY],
}

/// The daemon's processes.
pub type Table<'a> = Slots<Proc<'a>>;

/// Where slot 0 starts within the table.
pub const SLOTS_OFFSET: usize = core::mem::offset_of!(Table<'static>, slots);

impl<T> Slots<T> {
    /// No slot used, no capacity yet.
    pub const EMPTY: Slots<T> = Slots { used: 0, cap: 0, slots: [const { MaybeUninit::uninit() }; CAPACITY] };

    /// Allow `cap` slots (at most CAPACITY).
    pub fn set_capacity(&mut self, cap: usize) {
        self.cap = cap.min(CAPACITY);
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// A free slot's index, if any.
    pub fn free_slot(&self) -> Option<usize> {
        (0..self.cap).find(|&i| self.used & (1 << i) == 0)
    }

    /// Put `p` in slot `i` (which must be free); false when it is not.
    pub fn put(&mut self, i: usize, p: T) -> bool {
        if i >= self.cap || self.used & (1 << i) != 0 {
            return false;
        }
        self.slots[i].write(p);
        self.used |= 1 << i;
        true
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        if i < CAPACITY && self.used & (1 << i) != 0 {
            // SAFETY: a set bit means the slot was written by `put` and
            // not yet dropped by `remove`.
            Some(unsafe { self.slots[i].assume_init_ref() })
        } else {
            None
        }
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        if i < CAPACITY && self.used & (1 << i) != 0 {
            // SAFETY: as in `get`.
            Some(unsafe { self.slots[i].assume_init_mut() })
        } else {
            None
        }
    }

    /// Drop the value in slot `i`, closing whatever it holds.
    pub fn remove(&mut self, i: usize) {
        if i < CAPACITY && self.used & (1 << i) != 0 {
            self.used &= !(1 << i);
            // SAFETY: the slot held a value (bit was set); the bit is
            // cleared first, so it is dropped once.
            unsafe { self.slots[i].assume_init_drop() };
        }
    }

    /// The used slots' indices.
    pub fn used(&self) -> impl Iterator<Item = usize> + 'static {
        let used = self.used;
        (0..CAPACITY).filter(move |i| used & (1 << i) != 0)
    }

    pub fn count(&self) -> usize {
        self.used.count_ones() as usize
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        use core::mem::size_of;
        eprintln!(
            "Proc {} Daemon {} Table {} Clients {} Output {} Journal {} LogFile {} Console {} Ctl {} Oom {} Stdio {} Flow {}",
            size_of::<crate::process::Proc>(),
            size_of::<crate::daemon::Daemon>(),
            size_of::<super::Table>(),
            size_of::<crate::attach::Clients>(),
            size_of::<crate::output::Output>(),
            size_of::<crate::journal::Journal>(),
            size_of::<crate::logfile::LogFile>(),
            size_of::<crate::tty::Console>(),
            size_of::<crate::ctl::Ctl>(),
            size_of::<crate::oom::Oom>(),
            size_of::<crate::process::Stdio>(),
            size_of::<crate::attach::Flow>(),
        );
    }
}
