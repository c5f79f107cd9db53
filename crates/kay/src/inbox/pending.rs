//! [`PendingFlag`]: "this inbox (or shard) got records since the last
//! message cycle began", the signal of the hand-off between cycles.
//!
//! # Protocol
//! - During a cycle, writers [`raise`](PendingFlag::raise) the flags of what
//!   they pushed to: a plain load and, if it was clear, a plain store of
//!   `true`. Every writer stores the same value, so racing writers need no
//!   read-modify-write (and no locked instruction).
//! - Between cycles (after the workers have joined, so every raise of the
//!   cycle happens-before), the system [`take`](PendingFlag::take)s each
//!   flag: reads and clears it with plain accesses, as no writer runs.
//! - The joins (and the spawns of the next cycle) order these accesses, so
//!   `Relaxed` suffices: the flag itself carries no data.
//!
//! The loom model `tests/inbox_loom.rs` (`cycles_hand_off_lanes_to_workers`)
//! runs this protocol with real inboxes and worker threads.

use crate::sync::{AtomicBool, Ordering::Relaxed};

/// Whether something got records since the last cycle began.
#[derive(Debug)]
pub struct PendingFlag(AtomicBool);

impl Default for PendingFlag {
    fn default() -> Self {
        PendingFlag::new()
    }
}

impl PendingFlag {
    /// A clear flag.
    pub fn new() -> PendingFlag {
        PendingFlag(AtomicBool::new(false))
    }

    /// Sets the flag; returns whether it was clear (so that the caller
    /// raises the flags above it only once per cycle). Callable from any
    /// thread during a cycle.
    #[inline]
    pub fn raise(&self) -> bool {
        let was_clear = !self.0.load(Relaxed);
        if was_clear {
            self.0.store(true, Relaxed);
        }
        was_clear
    }

    /// Whether the flag is set (without clearing it). Only between cycles,
    /// as for [`take`](PendingFlag::take).
    #[inline]
    pub fn is_set(&self) -> bool {
        self.0.load(Relaxed)
    }

    /// Reads and clears the flag. Only between cycles: no
    /// [`raise`](PendingFlag::raise) may run concurrently, and every raise
    /// to be seen happens-before this call (e.g. the workers were joined).
    #[inline]
    pub fn take(&self) -> bool {
        let set = self.0.load(Relaxed);
        if set {
            self.0.store(false, Relaxed);
        }
        set
    }
}

/// Items per group of [`PendingGroups`].
pub const PENDING_GROUP: usize = 64;

/// One [`PendingFlag`] per group of [`PENDING_GROUP`] items (the shards of
/// a system, or the sender lanes into a shard): raised with the first item
/// of its group to be raised in a cycle, so that between cycles only the
/// groups with work are visited, and idle items cost nothing.
///
/// Same protocol as [`PendingFlag`]: raised during a cycle, taken between
/// cycles.
#[derive(Debug)]
pub struct PendingGroups {
    groups: Box<[PendingFlag]>,
}

impl PendingGroups {
    /// Flags for items `0..items`.
    pub fn new(items: usize) -> PendingGroups {
        PendingGroups {
            groups: (0..items.div_ceil(PENDING_GROUP))
                .map(|_| PendingFlag::new())
                .collect(),
        }
    }

    /// Raises the flag of `item`'s group; returns whether it was clear.
    #[inline]
    pub fn raise(&self, item: usize) -> bool {
        self.groups[item / PENDING_GROUP].raise()
    }

    /// Whether group `group`'s flag is set; clears it. Between cycles only.
    #[inline]
    pub fn take(&self, group: usize) -> bool {
        self.groups[group].take()
    }

    /// Calls `f` with each of groups `0..groups` whose flag is set, and
    /// clears those flags. Between cycles only.
    pub fn take_each(&self, groups: usize, mut f: impl FnMut(usize)) {
        for group in 0..groups {
            if self.take(group) {
                f(group);
            }
        }
    }
}
