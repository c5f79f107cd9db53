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
//! coordination, from blocks of local numbers each lane takes alone (see
//! [`ids`](super::ids)). Numbers of dead instances go back, at the end of a
//! message cycle, to the lane that owns their block, which reuses them with
//! the next version.
//!
//! # Protocol
//! - Writers (`World`s) push with the single-writer reservation, then raise
//!   the lane's [`PendingFlag`] (a plain store of `true`). A cycle's first
//!   push into a lane tells the system (`World::note_pending`): a shard's
//!   handlers list the lane in their world, which the system reads after
//!   the cycle; outside code raises the shard's flag and its group's.
//! - At the start of a message cycle (no writer runs), the system takes the
//!   listed lanes and the outside lanes of the raised shards, clears their
//!   flags and snapshots those inboxes.
//! - In the cycle, each shard drains its snapshots; its handlers push into
//!   the lanes they own. After the join, the system reclaims drained inboxes
//!   and hands freed IDs back to their lanes.

use std::ptr::NonNull;
use std::sync::Arc;

use crate::class::ids::{Blocks, LaneIds, Source};
use crate::id::{MachineID, RawID, ShortTypeID};
use crate::inbox::{Inbox, PENDING_GROUP, PendingFlag, PendingGroups};
use crate::store::index::LocalInstance;
use crate::sync::{AtomicU32, Mutex, OnceBox, Ordering, Unpoisoned, UnsafeCell};

/// The most sender lanes: 1 (outside) + the shards of all classes.
pub(crate) const MAX_LANES: u32 = 1 << 14;

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

    /// Lane number `index`.
    pub(crate) fn from_index(index: u32) -> SenderLane {
        SenderLane(index)
    }
}

/// What the shards of a system share: pending flags over groups of
/// shards, which shards must settle their ID blocks after a cycle, and the
/// number of lanes.
#[derive(Debug)]
pub struct AllShards {
    /// Raised with a shard's pending flag by outside code (by global
    /// shard), and `outside` with it; shards' handlers list the shards
    /// they raised in their worlds instead.
    pending: PendingGroups,
    outside: PendingFlag,
    /// Raised when a lane took a block of a shard (by global shard).
    settle: PendingGroups,
    settle_any: PendingFlag,
    /// 1 + the shards of all classes; changes only between cycles.
    lanes: AtomicU32,
}

impl Default for AllShards {
    fn default() -> Self {
        AllShards::new()
    }
}

impl AllShards {
    /// For a system with no classes yet.
    pub fn new() -> AllShards {
        AllShards {
            pending: PendingGroups::new(MAX_LANES as usize),
            outside: PendingFlag::new(),
            settle: PendingGroups::new(MAX_LANES as usize),
            settle_any: PendingFlag::new(),
            lanes: AtomicU32::new(1),
        }
    }

    /// Notes that there are `lanes` lanes now (between cycles).
    pub(crate) fn set_lanes(&self, lanes: u32) {
        self.lanes.store(lanes, Ordering::Relaxed);
    }

    /// The number of groups of shards that hold registered shards.
    pub(crate) fn groups_in_use(&self) -> usize {
        (self.lanes.load(Ordering::Relaxed) as usize - 1).div_ceil(PENDING_GROUP)
    }

    fn raise_from_outside(&self, shard: GlobalShard) {
        if self.pending.raise(shard.index()) {
            self.outside.raise();
        }
    }

    /// Whether outside code made shards pending since the last call to
    /// [`take_outside`](Self::take_outside) (between cycles).
    pub(crate) fn outside_pending(&self) -> bool {
        self.outside.is_set()
    }

    /// Calls `raised` with each group of shards outside code made pending,
    /// and clears the flags. Between cycles only.
    #[inline]
    pub(crate) fn take_outside(&self, raised: impl FnMut(usize)) {
        if self.outside.is_set() {
            self.take_groups(&self.outside, &self.pending, raised);
        }
    }

    /// Calls `settle` on each group of shards (by global shard) that must
    /// settle their blocks, and clears the flags. Between cycles only.
    #[inline]
    pub(crate) fn take_settle(&self, settle: impl FnMut(usize)) {
        if self.settle_any.is_set() {
            self.take_groups(&self.settle_any, &self.settle, settle);
        }
    }

    /// Clears `any` and calls `f` with each raised group of `groups`. Out
    /// of line and cold: the callers' inline check of `any` is what every
    /// cycle pays.
    #[cold]
    #[inline(never)]
    fn take_groups(&self, any: &PendingFlag, groups: &PendingGroups, f: impl FnMut(usize)) {
        any.take();
        groups.take_each(self.groups_in_use(), f);
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

/// A lane that got the first record of a cycle from a shard's handlers,
/// listed in their world for the system to take (see
/// `World::note_pending`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RaisedLane {
    /// The receiving shard's global index (high half) and the sender lane
    /// (low half): sorted by it, a cycle's lanes come in global shard
    /// order, each shard's in lane order.
    pub(crate) key: u64,
    /// The lane (none for a shard raised only to resume kept records, that
    /// has no outside lane).
    pub(crate) lane: Option<NonNull<Lane>>,
}

impl RaisedLane {
    /// `lane`, of sender lane `sender`, into `shard`.
    #[inline]
    pub(crate) fn new(
        shard: GlobalShard,
        sender: SenderLane,
        lane: Option<NonNull<Lane>>,
    ) -> RaisedLane {
        RaisedLane {
            key: (shard.0 as u64) << 32 | sender.0 as u64,
            lane,
        }
    }

    /// The receiving shard.
    #[inline]
    pub(crate) fn shard(self) -> GlobalShard {
        GlobalShard((self.key >> 32) as u32)
    }
}

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

    /// Marks the lane as having records to handle. Returns whether its
    /// flag was just raised (the cycle's first push into it): the sender
    /// then tells the system (see `World::note_pending`).
    #[inline]
    pub fn mark_pending(&self) -> bool {
        self.pending.raise()
    }

    /// An instance number and version in `shard` for a spawn from this
    /// lane.
    ///
    /// # Panics
    /// If the shard has no numbers left for this lane (see
    /// [`ids`](super::ids) for the bound).
    ///
    /// # Safety
    /// Called only by this lane's writer.
    #[inline]
    pub(crate) unsafe fn allocate(&self, shard: &ShardShared) -> (u32, u8) {
        self.ids.with_mut(|ids| {
            // SAFETY: the caller is the lane's only writer; nothing else
            // touches `ids` meanwhile (module docs).
            let ids = unsafe { &mut *ids };
            if let Some(number) = ids.next_number(shard.shards, shard.shard) {
                return number;
            }
            if ids.take_spare() {
                // Its spares get topped up after the cycle.
                shard.mark_settle();
            } else {
                shard.take_block(ids, self.index);
            }
            ids.next_number(shard.shards, shard.shard)
                .expect("a fresh block has numbers")
        })
    }

    /// Runs `f` on the lane's numbers.
    ///
    /// # Safety
    /// Called only between message cycles (no writer runs).
    unsafe fn with_ids<R>(&self, f: impl FnOnce(&mut LaneIds) -> R) -> R {
        // SAFETY: between cycles nobody else touches `ids` (caller).
        self.ids.with_mut(|ids| f(unsafe { &mut *ids }))
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
    /// What the system's shards share (flags over groups of shards).
    all: Arc<AllShards>,
    /// The blocks of local instance numbers and their owners.
    blocks: Mutex<Blocks>,
    /// Raised when a lane took a block (the shard settles after the cycle).
    settle: PendingFlag,
    /// The lanes created so far, and how many there are.
    lanes_in_use: Mutex<Vec<SenderLane>>,
    lane_count: AtomicU32,
    /// Raised by outside code (with its group's flag in `all`), or by the
    /// system for a shard that must resume kept records.
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
    /// keep `inbox_retain` bytes of them for reuse. `all` is what the
    /// system's shards share.
    pub fn new(
        class_name: &'static str,
        shard: u32,
        shards: u32,
        global: GlobalShard,
        all: Arc<AllShards>,
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
            all,
            blocks: Mutex::new(Blocks::new(shard, shards)),
            settle: PendingFlag::new(),
            lanes_in_use: Mutex::new(Vec::new()),
            lane_count: AtomicU32::new(0),
            pending: PendingFlag::new(),
            broadcast: PendingFlag::new(),
            inbox_chunk,
            inbox_retain,
        }
    }

    /// How many finished inbox chunks each lane into this shard keeps for
    /// reuse: its even share of the class's retention budget
    /// (`Config::inbox_retain_bytes`, split over the class's shards and
    /// each shard's lanes), at least one. Between cycles only.
    pub(crate) fn keep_chunks(&self) -> usize {
        let lanes = self.lane_count.load(Ordering::Relaxed).max(1) as usize;
        (self.inbox_retain / self.inbox_chunk / (self.shards as usize * lanes)).max(1)
    }

    /// Writes the shard's ID state for a snapshot: its blocks, then every
    /// lane created so far with its numbers.
    ///
    /// # Safety
    /// Between message cycles (no lane's writer runs).
    pub(crate) unsafe fn encode_ids(&self, out: &mut crate::persist::bytes::Writer) {
        self.blocks.locked().encode(out);
        let lanes = self.lanes_in_use.locked().clone();
        out.len(lanes.len());
        for lane in lanes {
            out.u32(lane.get());
            // SAFETY: between cycles (caller).
            unsafe { self.lane(lane).with_ids(|ids| ids.encode(out)) };
        }
    }

    /// Reads what [`encode_ids`](Self::encode_ids) wrote, without applying
    /// it; `lanes` is the system's number of sender lanes.
    pub(crate) fn decode_ids(
        &self,
        input: &mut crate::persist::bytes::Reader<'_>,
        lanes: u32,
    ) -> Result<(Blocks, Vec<(SenderLane, LaneIds)>), String> {
        let blocks = Blocks::decode(input, self.shard, self.shards)?;
        let count = input.len(16, "the lane count")?;
        let mut lane_ids = Vec::with_capacity(count);
        for _ in 0..count {
            let lane = input.u32("a lane")?;
            if lane >= lanes
                || lane_ids
                    .last()
                    .is_some_and(|(l, _): &(SenderLane, _)| l.get() >= lane)
            {
                return Err(format!(
                    "lane {lane} out of order or beyond the {lanes} lanes"
                ));
            }
            lane_ids.push((SenderLane(lane), LaneIds::decode(input)?));
        }
        Ok((blocks, lane_ids))
    }

    /// Installs ID state read by [`decode_ids`](Self::decode_ids) (and
    /// checked against the loaded instances).
    ///
    /// # Safety
    /// Between message cycles (no lane's writer runs).
    pub(crate) unsafe fn install_ids(&self, blocks: Blocks, lane_ids: Vec<(SenderLane, LaneIds)>) {
        *self.blocks.locked() = blocks;
        for (lane, ids) in lane_ids {
            // SAFETY: between cycles (caller).
            unsafe { self.lane(lane).with_ids(|slot| *slot = ids) };
        }
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
            self.lane_count.fetch_add(1, Ordering::Relaxed);
            Box::new(Lane::new(lane, self.inbox_chunk, self.inbox_retain))
        })
    }

    /// The inbox of sender lane `lane` into this shard, if it was created.
    pub(crate) fn existing_lane(&self, lane: SenderLane) -> Option<&Lane> {
        let at = lane.get() as usize;
        self.groups[at / GROUP].get()?[at % GROUP].get()
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

    /// Whether outside code sent into this shard (or the system wants it
    /// to resume kept records) since the last call; clears the flag.
    /// Called only between message cycles.
    #[inline]
    pub fn take_pending(&self) -> bool {
        self.pending.take()
    }

    /// Hands the numbers of dead instances `ids` (of this shard) back to
    /// the lanes that own their blocks.
    ///
    /// # Safety
    /// Called only between message cycles (no writer runs).
    pub(crate) unsafe fn release(&self, ids: impl Iterator<Item = RawID>) {
        let blocks = self.blocks.locked();
        for id in ids {
            debug_assert!(self.owns(id.instance));
            let Some(owner) = blocks.owner(LocalInstance::of(id.instance, self.shards)) else {
                debug_assert!(false, "the block of {id:?} has an owner");
                continue;
            };
            // SAFETY: between cycles (caller).
            unsafe {
                self.lane(owner)
                    .with_ids(|ids| ids.free.push((id.instance, id.version.wrapping_add(1))))
            };
        }
    }

    /// Gives `ids` (of lane `lane`, which has no numbers and no spares
    /// left) a block: granted at once to the outside lane while the
    /// shard's stripe is not in use, else from the stripe (and then the
    /// shard settles after the cycle).
    #[cold]
    fn take_block(&self, ids: &mut LaneIds, lane: SenderLane) {
        let mut blocks = self.blocks.locked();
        let source = if lane == SenderLane::OUTSIDE && blocks.can_grant() {
            Source::Grant(&mut blocks)
        } else {
            self.mark_settle();
            Source::Stripe(&mut blocks, self.all.lanes.load(Ordering::Relaxed))
        };
        if ids.take_block(lane, source).is_none() {
            drop(blocks);
            panic!(
                "{}: shard {} has no instance numbers left for spawns from this sender in this \
                 message cycle (see the limits in kay's crate docs)",
                self.class_name, self.shard
            );
        }
    }

    /// Notes that a lane took a block: the shard settles after the cycle.
    #[inline]
    fn mark_settle(&self) {
        if self.settle.raise() && self.all.settle.raise(self.global.index()) {
            self.all.settle_any.raise();
        }
    }

    /// After a cycle in which lanes took blocks: records who owns the
    /// stripe blocks taken, frees the positions nobody took, and tops up
    /// the spares of lanes that took blocks, in lane order (see
    /// [`ids`](super::ids)).
    ///
    /// # Safety
    /// Called only between message cycles (no writer runs).
    pub(crate) unsafe fn settle(&self) {
        if !self.settle.take() {
            return;
        }
        let lanes = self.lanes_in_use.locked().clone();
        let mut blocks = self.blocks.locked();
        let mut striped = Vec::new();
        for &lane in &lanes {
            // SAFETY: between cycles (caller).
            striped.extend(unsafe {
                self.lane(lane)
                    .with_ids(|ids| blocks.record_striped(lane, ids))
            });
        }
        blocks.free_untaken(striped);
        for &lane in &lanes {
            // SAFETY: between cycles (caller).
            unsafe { self.lane(lane).with_ids(|ids| blocks.top_up(lane, ids)) };
        }
    }

    /// Hands every record waiting in the shard's lanes to `f` (its sender
    /// lane, tag and bytes), lane after lane in lane order, each lane's in
    /// order: the order the next cycle handles them in.
    ///
    /// # Safety
    /// Between message cycles (no lane's writer or reader runs).
    pub(crate) unsafe fn for_each_waiting(&self, mut f: impl FnMut(SenderLane, u16, &[u8])) {
        let mut lanes = self.lanes_in_use.locked().clone();
        lanes.sort_unstable_by_key(|lane| lane.get());
        for lane in lanes {
            // SAFETY: between cycles (caller).
            unsafe { (self.lane(lane).inbox).for_each_waiting(|tag, record| f(lane, tag, record)) };
        }
    }

    /// Makes the next message cycle visit this shard, from outside
    /// handlers (the system's thread): raises its flag, its group's flag
    /// and the flag that makes the system scan the groups.
    #[inline]
    pub(crate) fn raise_from_outside(&self) {
        if self.pending.raise() {
            self.all.raise_from_outside(self.global);
        }
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
        all: &Arc<AllShards>,
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
                    Arc::clone(all),
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

    /// The ID of a new instance in `shard`, spawned from `lane`.
    ///
    /// # Safety
    /// Called only by `lane`'s writer.
    #[inline]
    pub(crate) unsafe fn allocate(
        &self,
        shard: &ShardShared,
        lane: &Lane,
        machine: MachineID,
    ) -> RawID {
        // SAFETY: forwarded from the caller.
        let (instance, version) = unsafe { lane.allocate(shard) };
        RawID::new(self.type_id, instance, machine, version)
    }
}
