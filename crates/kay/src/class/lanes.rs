//! Shards, lanes and deterministic IDs: the parts of a class that senders on
//! any thread use.
//!
//! A class is split into `K` *shards*, each with its own instance store;
//! instance number `i` lives in shard `i % K`. Every shard has one inbox per
//! *sender lane*: lane 0 is code outside handlers (external `World`s), lane
//! `1 + g` is the handlers running in global shard `g`. A lane has exactly
//! one writer at a time — its shard's current thread, or the system's thread
//! between message cycles — so delivery order is a function of who sent
//! what, never of thread timing: a shard drains its lanes in lane order, each
//! lane first in, first out.
//!
//! IDs for spawns are handed out per (target shard, sender lane) without
//! coordination: lane `L`'s `k`-th block of local numbers in a shard is
//! block `k * MAX_LANES + L` (see `docs/architecture.md`). Numbers of dead
//! instances go back, at the end of a message cycle, to the lane that owns
//! their block, which reuses them with the next version.
//!
//! # Protocol
//! - Writers (`World`s) push with the single-writer reservation, then raise
//!   the lane's and the shard's [`PendingFlag`]s (plain stores of `true`).
//! - At the start of a message cycle (no writer runs), the system takes the
//!   pending shards and lanes, clears the flags and snapshots those inboxes.
//! - In the cycle, each shard drains its snapshots; its handlers push into
//!   the lanes they own. After the join, the system reclaims drained inboxes
//!   and hands freed IDs back to their lanes.

use std::ptr::NonNull;

use crate::id::{MAX_INSTANCE, MachineID, RawID, ShortTypeID};
use std::sync::Arc;

use crate::inbox::{Inbox, PENDING_GROUP, PendingFlag, PendingGroups};
use crate::store::index::BLOCK;
use crate::sync::{AtomicU32, Mutex, OnceBox, Ordering, Unpoisoned, UnsafeCell};

/// The most sender lanes: 1 (outside) + the shards of all classes.
pub(crate) const MAX_LANES: u32 = 256;

/// A sender lane: [`OUTSIDE`](SenderLane::OUTSIDE) for code outside
/// handlers, `1 + g` for the handlers of global shard `g`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct SenderLane(u32);

impl SenderLane {
    /// The lane of code outside handlers (outside `World`s).
    pub const OUTSIDE: SenderLane = SenderLane(0);

    /// The lane the handlers of `shard` send on.
    pub fn of(shard: GlobalShard) -> SenderLane {
        SenderLane(1 + shard.0)
    }

    /// The lane's number, for indexing and ID blocks.
    pub(crate) fn get(self) -> u32 {
        self.0
    }
}

/// A shard's index over the shards of all classes (registration order).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct GlobalShard(pub(crate) u32);

impl GlobalShard {
    /// Global shard `index`.
    pub fn new(index: u32) -> GlobalShard {
        GlobalShard(index)
    }

    /// The index, for tables by global shard.
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

const GROUP: usize = PENDING_GROUP;

/// `GROUP` lanes, each created on first use.
type LaneGroup = Vec<OnceBox<Lane>>;

/// The shard instance number `instance` lives in, of `shards` (no division
/// when `shards` is a power of two).
#[inline]
pub(crate) fn shard_number(instance: u32, shards: u32) -> u32 {
    if shards.is_power_of_two() {
        instance & (shards - 1)
    } else {
        instance % shards
    }
}

/// One sender's inbox into one shard, and the IDs it hands out there.
pub struct Lane {
    /// The records from this sender to this shard.
    pub inbox: Inbox,
    /// Raised by the writer after pushing; taken by the system between cycles.
    pending: PendingFlag,
    /// Which lane this is.
    index: SenderLane,
    /// Only the lane's writer, or the system between cycles, touches this.
    ids: UnsafeCell<LaneIds>,
}

// SAFETY: `inbox` and `pending` are thread-safe; `ids` is only touched by
// the lane's single writer or by the system between cycles (module docs),
// and cycles are ordered by joins, so accesses never overlap.
unsafe impl Sync for Lane {}

#[derive(Default)]
struct LaneIds {
    /// Reusable instance numbers, with their next version.
    free: Vec<(u32, u8)>,
    /// How many blocks this lane has taken in this shard.
    blocks: u32,
    next: u32,
    end: u32,
}

impl Lane {
    /// Whether this lane got records since the last call; clears the flag.
    /// Called only between message cycles.
    #[inline]
    pub fn take_pending(&self) -> bool {
        self.pending.take()
    }

    /// Which lane this is.
    #[inline]
    pub fn index(&self) -> SenderLane {
        self.index
    }

    fn new(index: SenderLane, inbox_chunk: usize, inbox_retain: usize) -> Lane {
        Lane {
            // SAFETY: the system snapshots lanes only between message
            // cycles, when no push is in flight and every push of the cycle
            // happened before (its workers have joined); statistics read
            // queue lengths only between calls (module docs, protocol).
            inbox: unsafe { Inbox::for_message_cycles(inbox_chunk, inbox_retain / inbox_chunk) },
            pending: PendingFlag::new(),
            index,
            ids: UnsafeCell::new(LaneIds::default()),
        }
    }

    /// Marks the lane (and its group of lanes, its shard, and the shard's
    /// group of shards) as having records to handle. Only the first push of
    /// a cycle goes past the lane's own flag.
    #[inline]
    pub fn mark_pending(&self, shard: &ShardShared) {
        if self.pending.raise() && shard.lane_groups.raise(self.index.get() as usize) {
            shard.raise_pending();
        }
    }

    /// An instance number and version in `shard` for a spawn from `lane`.
    ///
    /// # Safety
    /// Called only by this lane's writer (the `World` of lane `lane`).
    pub(crate) unsafe fn allocate(&self, shard: &ShardShared, lane: SenderLane) -> (u32, u8) {
        // SAFETY: the caller is the lane's only writer; nothing else touches
        // `ids` meanwhile (module docs).
        self.ids
            .with_mut(|ids| Self::allocate_in(unsafe { &mut *ids }, shard, lane))
    }

    /// `allocate` on the lane's `ids`.
    fn allocate_in(ids: &mut LaneIds, shard: &ShardShared, lane: SenderLane) -> (u32, u8) {
        if let Some(free) = ids.free.pop() {
            return free;
        }
        if ids.next == ids.end {
            let block = u64::from(ids.blocks) * u64::from(MAX_LANES) + u64::from(lane.get());
            ids.blocks += 1;
            let next = block * u64::from(BLOCK);
            let last = (next + u64::from(BLOCK)) * u64::from(shard.shards) + u64::from(shard.shard);
            assert!(
                last <= u64::from(MAX_INSTANCE),
                "{}: too many instances spawned from one sender into one shard",
                shard.class_name
            );
            ids.next = next as u32;
            ids.end = ids.next + BLOCK;
        }
        let local = ids.next;
        ids.next += 1;
        (local * shard.shards + shard.shard, 0)
    }

    /// Makes instance number `instance` available again with `version`.
    ///
    /// # Safety
    /// Called only between message cycles (no writer runs).
    unsafe fn release(&self, instance: u32, version: u8) {
        // SAFETY: between cycles nobody else touches `ids` (caller).
        self.ids
            .with_mut(|ids| unsafe { &mut *ids }.free.push((instance, version)));
    }
}

/// One shard of a class, as senders see it.
pub struct ShardShared {
    pub(crate) class_name: &'static str,
    /// This shard's number within its class.
    pub(crate) shard: u32,
    /// The number of shards of the class.
    pub(crate) shards: u32,
    /// This shard's global index: its handlers send on
    /// `SenderLane::of(global)`.
    pub(crate) global: GlobalShard,
    groups: Box<[OnceBox<LaneGroup>]>,
    /// Raised with the first pending lane of each group of lanes.
    lane_groups: PendingGroups,
    /// The system's flags over groups of global shards: raised with this
    /// shard's `pending`.
    shard_groups: Arc<PendingGroups>,
    /// The lanes created so far, and a counter of changes to that list.
    lanes_in_use: Mutex<Vec<SenderLane>>,
    lanes_changed: AtomicU32,
    pending: PendingFlag,
    /// Raised with `pending` when a broadcast record was pushed: a hint for
    /// estimating the shard's work (see `Shard::estimated_work`).
    broadcast: PendingFlag,
    inbox_chunk: usize,
    inbox_retain: usize,
}

impl ShardShared {
    /// Shard `shard` of `shards` of class `class_name`, with global index
    /// `global`; its lanes' inboxes have chunks of `inbox_chunk` bytes and
    /// keep `inbox_retain` bytes of them for reuse. `shard_groups` are the
    /// system's pending flags over groups of global shards.
    pub fn new(
        class_name: &'static str,
        shard: u32,
        shards: u32,
        global: GlobalShard,
        shard_groups: Arc<PendingGroups>,
        inbox_chunk: usize,
        inbox_retain: usize,
    ) -> Self {
        ShardShared {
            class_name,
            shard,
            shards,
            global,
            groups: (0..MAX_LANES as usize / GROUP)
                .map(|_| OnceBox::new())
                .collect(),
            lane_groups: PendingGroups::new(MAX_LANES as usize),
            shard_groups,
            lanes_in_use: Mutex::new(Vec::new()),
            lanes_changed: AtomicU32::new(0),
            pending: PendingFlag::new(),
            broadcast: PendingFlag::new(),
            inbox_chunk,
            inbox_retain,
        }
    }

    /// How many inbox chunks the class keeps for reuse over all its lanes
    /// (`Config::inbox_retain_bytes`).
    pub(crate) fn retain_chunks(&self) -> usize {
        self.inbox_retain / self.inbox_chunk
    }

    /// Whether instance number `instance` lives in this shard.
    #[inline]
    pub(crate) fn owns(&self, instance: u32) -> bool {
        shard_number(instance, self.shards) == self.shard
    }

    /// The inbox of sender lane `lane` into this shard, created on first use.
    pub fn lane(&self, lane: SenderLane) -> &Lane {
        let at = lane.get() as usize;
        let group = self.groups[at / GROUP]
            .get_or_init(|| Box::new((0..GROUP).map(|_| OnceBox::new()).collect()));
        group[at % GROUP].get_or_init(|| {
            let mut in_use = self.lanes_in_use.locked();
            let at = in_use.partition_point(|l| *l < lane);
            in_use.insert(at, lane);
            self.lanes_changed.fetch_add(1, Ordering::Release);
            Box::new(Lane::new(lane, self.inbox_chunk, self.inbox_retain))
        })
    }

    /// Notes that a broadcast record was pushed into this shard.
    #[inline]
    pub(crate) fn mark_broadcast(&self) {
        self.broadcast.raise();
    }

    /// Whether a broadcast was pushed since the last call; clears the flag.
    /// Called only between message cycles.
    pub(crate) fn take_broadcast(&self) -> bool {
        self.broadcast.take()
    }

    /// Whether any lane got records since the last call; clears the flag.
    /// Called only between message cycles.
    #[inline]
    pub fn take_pending(&self) -> bool {
        self.pending.take()
    }

    /// The lanes that exist, in lane order, if the set changed since `seen`
    /// (a count of changes the caller keeps).
    #[inline]
    pub fn lanes_if_changed(&self, seen: &mut u32) -> Option<Vec<NonNull<Lane>>> {
        let now = self.lanes_changed.load(Ordering::Acquire);
        if now == *seen {
            return None;
        }
        *seen = now;
        let lanes = self.lanes_in_use.locked().clone();
        Some(
            lanes
                .into_iter()
                .map(|l| NonNull::from(self.lane(l)))
                .collect(),
        )
    }

    /// Hands the number of dead instance `id` back to the lane that owns it.
    ///
    /// # Safety
    /// Called only between message cycles (no writer runs).
    pub(crate) unsafe fn release(&self, id: RawID) {
        let local = id.instance / self.shards;
        let lane = SenderLane((local / BLOCK) % MAX_LANES);
        // SAFETY: between cycles (caller).
        unsafe {
            self.lane(lane)
                .release(id.instance, id.version.wrapping_add(1))
        };
    }

    /// Makes the next message cycle visit this shard.
    #[inline]
    pub(crate) fn raise_pending(&self) {
        if self.pending.raise() {
            self.shard_groups.raise(self.global.index());
        }
    }

    /// Whether a lane of group `group` got records since the last call;
    /// clears the flag. Called only between message cycles.
    #[inline]
    pub(crate) fn take_lane_group(&self, group: usize) -> bool {
        self.lane_groups.take(group)
    }

    /// Bytes of inbox chunks held by all lanes (for statistics).
    pub(crate) fn inbox_bytes(&self) -> usize {
        let lanes = self.lanes_in_use.locked().clone();
        lanes
            .into_iter()
            .map(|l| self.lane(l).inbox.held_bytes())
            .sum()
    }

    /// Records waiting in all lanes (for statistics).
    pub(crate) fn queued(&self) -> usize {
        let lanes = self.lanes_in_use.locked().clone();
        lanes.into_iter().map(|l| self.lane(l).inbox.len()).sum()
    }
}

/// The parts of a class that senders on any thread use.
pub(crate) struct ClassShared {
    pub(crate) name: &'static str,
    pub(crate) type_id: ShortTypeID,
    pub(crate) shards: Box<[ShardShared]>,
}

impl ClassShared {
    pub(crate) fn new(
        name: &'static str,
        type_id: ShortTypeID,
        shards: u32,
        first_global: GlobalShard,
        shard_groups: &Arc<PendingGroups>,
        inbox_chunk: usize,
        inbox_retain: usize,
    ) -> Self {
        assert!(
            first_global.0 + shards < MAX_LANES,
            "registering {name} would exceed {} shards over all classes; lower Config::shards",
            MAX_LANES - 1
        );
        let shards = (0..shards)
            .map(|s| {
                let global = GlobalShard(first_global.0 + s);
                ShardShared::new(
                    name,
                    s,
                    shards,
                    global,
                    Arc::clone(shard_groups),
                    inbox_chunk,
                    inbox_retain,
                )
            })
            .collect();
        ClassShared {
            name,
            type_id,
            shards,
        }
    }

    /// The shard instance `instance` lives in.
    #[inline]
    pub(crate) fn shard_of(&self, instance: u32) -> &ShardShared {
        &self.shards[shard_number(instance, self.shards.len() as u32) as usize]
    }

    /// The ID of a new instance in `shard`, spawned from lane `lane`.
    ///
    /// # Safety
    /// Called only by lane `lane`'s writer.
    #[inline]
    pub(crate) unsafe fn allocate(
        &self,
        shard: &ShardShared,
        lane: &Lane,
        lane_index: SenderLane,
        machine: MachineID,
    ) -> RawID {
        // SAFETY: forwarded from the caller.
        let (instance, version) = unsafe { lane.allocate(shard, lane_index) };
        RawID::new(self.type_id, instance, machine, version)
    }
}
