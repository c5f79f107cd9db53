//! Deterministic instance numbers: which sender hands out which numbers of
//! a shard, without coordination during a message cycle.
//!
//! A shard's *local* numbers (instance `local * shards + shard`) are cut
//! into blocks of [`BLOCK`]. Each sender lane into the shard hands out
//! numbers from one block at a time, alone, and reuses the numbers of its
//! instances that died (with the next version). Where a lane's next block
//! comes from:
//!
//! 1. **Its spare blocks**, granted between message cycles: a lane that took
//!    blocks in a cycle gets twice as many spares for the next one (up to
//!    [`MAX_SPARE`]), so a steady spawner never waits for a grant.
//! 2. **Outside handlers** (lane 0, on the system's thread): the shard
//!    grants a block at once, unless a lane took a stripe block since the
//!    shard last settled (which only happens inside a cycle).
//! 3. **During a cycle, beyond the spares: the stripe.** The stripe is the
//!    list of the shard's free blocks (lowest first) followed by the blocks
//!    never handed out; it does not change during a cycle. Lane `l`'s
//!    `k`-th block of the cycle is stripe position `k * lanes + l`, where
//!    `lanes` is the number of lanes of the system (which only registering
//!    a class changes, between cycles). No two lanes meet, whatever the
//!    threads, so the numbers are the same on every run and thread count.
//!
//! After a cycle in which lanes took blocks, the shard *settles*: it records
//! who owns the stripe blocks taken, gives the positions no lane took back
//! to the free list, and tops up the spares, all in lane order. Dead
//! instances' numbers go back to the lane owning their block.
//!
//! The one bound: in one cycle, a lane can take at most `(free blocks +
//! blocks never handed out) / lanes` stripe blocks from a shard (beyond its
//! spares). With 4 shards and 1,000 classes (4,001 lanes) that is still a
//! quarter of a million instances per shard per cycle, and it only binds a
//! handler that suddenly spawns far more than in its last spawning cycle.

use crate::class::lanes::SenderLane;
use crate::id::MAX_INSTANCE;
use crate::store::index::{BLOCK, LocalInstance};

/// The most spare blocks a lane is granted at once.
pub(crate) const MAX_SPARE: usize = 1024;

/// A lane's numbers in one shard: used only by the lane's single writer,
/// or by the system between cycles.
#[derive(Default)]
pub(crate) struct LaneIds {
    /// Reusable instance numbers, with their next version.
    pub(crate) free: Vec<(u32, u8)>,
    /// The local numbers of the current block not handed out yet.
    next: LocalInstance,
    end: LocalInstance,
    /// Spare blocks, the next one last.
    spare: Vec<u32>,
    /// Blocks taken since the last settle (for the top-up).
    taken: u32,
    /// Stripe blocks taken in this cycle, in order.
    striped: Vec<u32>,
}

/// Where a lane's next block comes from, when it has no spare.
pub(crate) enum Source<'a> {
    /// Between cycles: a block granted at once.
    Grant(&'a mut Blocks),
    /// During a cycle: the stripe, with the system's number of lanes.
    Stripe(&'a mut Blocks, u32),
}

impl LaneIds {
    /// A reusable number, or the next of the current block; `None` if
    /// the lane must take a block first.
    #[inline]
    pub(crate) fn next_number(&mut self, shards: u32, shard: u32) -> Option<(u32, u8)> {
        if let Some(free) = self.free.pop() {
            return Some(free);
        }
        if self.next == self.end {
            return None;
        }
        let local = self.next;
        self.next = local.next();
        Some((local.instance(shard, shards), 0))
    }

    /// Starts the next spare block; `false` if there is none.
    #[inline]
    pub(crate) fn take_spare(&mut self) -> bool {
        let Some(block) = self.spare.pop() else {
            return false;
        };
        self.start(block);
        self.taken += 1;
        true
    }

    /// Takes the next block from `source` (the lane has neither reusable
    /// numbers nor spares). Returns `None` if the shard has no block left
    /// for this lane.
    pub(crate) fn take_block(&mut self, lane: SenderLane, source: Source<'_>) -> Option<()> {
        let block = match source {
            Source::Grant(blocks) => blocks.grant(lane)?,
            Source::Stripe(blocks, lanes) => {
                let position = self.striped.len() as u64 * u64::from(lanes) + u64::from(lane.get());
                let block = blocks.stripe(position)?;
                self.striped.push(block);
                self.taken += 1;
                block
            }
        };
        self.start(block);
        Some(())
    }

    fn start(&mut self, block: u32) {
        self.next = LocalInstance::first_of(block);
        self.end = LocalInstance::first_of(block + 1);
    }
}

/// A shard's blocks of local numbers: who owns which, and which are free.
/// Changed only between cycles; during a cycle, lanes read the stripe.
pub(crate) struct Blocks {
    /// Free blocks below `frontier`, highest first (the lowest is last).
    free: Vec<u32>,
    /// Blocks from here on were never handed out.
    frontier: u32,
    /// The number of whole blocks of the shard's local numbers.
    top: u32,
    /// The owning lane of each block below `frontier` (`u32::MAX`: none).
    owners: Vec<u32>,
    /// Whether a lane took a stripe block since the last settle: the
    /// stripe must not change until then, so no block is granted.
    striping: bool,
}

impl Blocks {
    /// The blocks of shard `shard` of `shards`.
    pub(crate) fn new(shard: u32, shards: u32) -> Blocks {
        // Local number `l` is instance `l * shards + shard`, at most
        // `MAX_INSTANCE`.
        let locals = u64::from((MAX_INSTANCE - shard) / shards) + 1;
        Blocks {
            free: Vec::new(),
            frontier: 0,
            top: (locals / u64::from(BLOCK)) as u32,
            owners: Vec::new(),
            striping: false,
        }
    }

    /// Stripe position `position`: the free blocks, lowest first, then the
    /// blocks never handed out.
    fn stripe(&mut self, position: u64) -> Option<u32> {
        self.striping = true;
        let free = self.free.len() as u64;
        let block = if position < free {
            self.free[(free - 1 - position) as usize]
        } else {
            u32::try_from(u64::from(self.frontier) + (position - free)).ok()?
        };
        (block < self.top).then_some(block)
    }

    /// Whether a block can be granted at once: no lane took a stripe block
    /// since the last settle. (Outside a cycle that always holds, as the
    /// system settles after every cycle in which lanes took blocks.)
    pub(crate) fn can_grant(&self) -> bool {
        !self.striping
    }

    /// Grants a block to `lane`: the lowest free one, or a new one.
    fn grant(&mut self, lane: SenderLane) -> Option<u32> {
        debug_assert!(!self.striping, "no grants while the stripe is in use");
        let block = match self.free.pop() {
            Some(block) => block,
            None if self.frontier < self.top => {
                self.frontier += 1;
                self.frontier - 1
            }
            None => return None,
        };
        self.set_owner(block, lane);
        Some(block)
    }

    fn set_owner(&mut self, block: u32, lane: SenderLane) {
        let at = block as usize;
        if self.owners.len() <= at {
            self.owners.resize(at + 1, u32::MAX);
        }
        self.owners[at] = lane.get();
    }

    /// The lane owning the block of local number `local`.
    pub(crate) fn owner(&self, local: LocalInstance) -> Option<SenderLane> {
        match self.owners.get(local.block() as usize) {
            Some(&lane) if lane != u32::MAX => Some(SenderLane::from_index(lane)),
            _ => None,
        }
    }

    /// After a cycle, step 1 for each lane (in lane order): records that
    /// `lane` owns the stripe blocks it took; returns them.
    pub(crate) fn record_striped(&mut self, lane: SenderLane, ids: &mut LaneIds) -> Vec<u32> {
        for &block in &ids.striped {
            self.set_owner(block, lane);
        }
        std::mem::take(&mut ids.striped)
    }

    /// Step 2: frees the stripe positions below the highest one taken that
    /// no lane took (`striped`: every lane's stripe blocks of the cycle).
    pub(crate) fn free_untaken(&mut self, mut striped: Vec<u32>) {
        self.striping = false;
        let Some(&highest) = striped.iter().max() else {
            return;
        };
        striped.sort_unstable();
        // The free list, highest first, with the blocks up to the highest
        // one taken (now handed out or freed) in front.
        let mut free: Vec<u32> = if highest >= self.frontier {
            (self.frontier..=highest).rev().collect()
        } else {
            Vec::new()
        };
        self.frontier = self.frontier.max(highest + 1);
        free.append(&mut self.free);
        free.retain(|block| striped.binary_search(block).is_err());
        self.free = free;
    }

    /// Step 3 for each lane (in lane order): tops up the spares of a lane
    /// that took blocks, to twice as many as it took (up to [`MAX_SPARE`]).
    pub(crate) fn top_up(&mut self, lane: SenderLane, ids: &mut LaneIds) {
        if ids.taken == 0 {
            return;
        }
        let want = (2 * ids.taken as usize).min(MAX_SPARE);
        ids.taken = 0;
        while ids.spare.len() < want {
            let Some(block) = self.grant(lane) else { break };
            // The lowest block is used first.
            ids.spare.insert(0, block);
        }
    }

    /// Steps 1 to 3 over `lanes` (in lane order).
    #[cfg(test)]
    fn settle(&mut self, lanes: &mut [(SenderLane, &mut LaneIds)]) {
        let mut striped = Vec::new();
        for (lane, ids) in lanes.iter_mut() {
            striped.extend(self.record_striped(*lane, ids));
        }
        self.free_untaken(striped);
        for (lane, ids) in lanes.iter_mut() {
            self.top_up(*lane, ids);
        }
    }
}

/// Snapshots of the ID state (see `crate::persist`): written between
/// cycles (no stripe in use, nothing taken since the last settle), and
/// checked on load against the instances loaded, so that damaged or
/// planted bytes can never make two live instances share a number.
mod persist {
    use std::collections::BTreeSet;

    use super::*;
    use crate::persist::bytes::{ReadResult, Reader, Writer};

    impl LaneIds {
        pub(crate) fn encode(&self, out: &mut Writer) {
            debug_assert!(self.striped.is_empty() && self.taken == 0);
            out.len(self.free.len());
            for &(number, version) in &self.free {
                out.u32(number);
                out.u8(version);
            }
            out.u32(self.next.0);
            out.u32(self.end.0);
            out.u32s(&self.spare);
        }

        pub(crate) fn decode(input: &mut Reader<'_>) -> ReadResult<LaneIds> {
            let count = input.len(5, "a lane's reusable numbers")?;
            let free = (0..count)
                .map(|_| Ok((input.u32("a reusable number")?, input.u8("its version")?)))
                .collect::<ReadResult<Vec<_>>>()?;
            Ok(LaneIds {
                free,
                next: LocalInstance(input.u32("a lane's next number")?),
                end: LocalInstance(input.u32("a lane's block end")?),
                spare: input.u32s("a lane's spare blocks")?,
                taken: 0,
                striped: Vec::new(),
            })
        }
    }

    impl Blocks {
        pub(crate) fn encode(&self, out: &mut Writer) {
            debug_assert!(!self.striping);
            out.u32s(&self.free);
            out.u32(self.frontier);
            out.u32s(&self.owners);
        }

        /// Reads a shard's blocks (shard `shard` of `shards`).
        pub(crate) fn decode(
            input: &mut Reader<'_>,
            shard: u32,
            shards: u32,
        ) -> ReadResult<Blocks> {
            let mut blocks = Blocks::new(shard, shards);
            blocks.free = input.u32s("the free blocks")?;
            blocks.frontier = input.u32("the block frontier")?;
            blocks.owners = input.u32s("the block owners")?;
            if blocks.frontier > blocks.top {
                return Err(format!(
                    "block frontier {} beyond the {} blocks",
                    blocks.frontier, blocks.top
                ));
            }
            Ok(blocks)
        }
    }

    /// Checks a shard's ID state (`blocks`, and each lane's numbers) against
    /// the instances loaded into it: `live_blocks` (sorted) hold live
    /// instances and `is_live(local)` says whether a number is taken.
    /// `lanes` is the number of sender lanes of the system. `spawns` are
    /// the recipients of the spawns waiting in the shard's inboxes: each
    /// number handed out and never to be handed out again (in a block a
    /// lane owns, not free or spare, below its lane's next number if the
    /// block is the lane's current one, not reusable), not live, and
    /// spawned once, so that it creates a fresh instance where nothing is.
    pub(crate) fn check(
        blocks: &Blocks,
        lane_ids: &[(SenderLane, &LaneIds)],
        (live_blocks, spawns): (&[u32], &[crate::id::RawID]),
        is_live: impl Fn(LocalInstance) -> bool,
        lanes: u32,
        (shard, shards): (u32, u32),
    ) -> Result<(), String> {
        let mut used = BTreeSet::new();
        let mut claim = |block: u32, what: &str| {
            if block >= blocks.frontier {
                return Err(format!("{what} block {block} was never handed out"));
            }
            if !used.insert(block) {
                return Err(format!("block {block} is listed twice"));
            }
            Ok(())
        };
        for &block in &blocks.free {
            claim(block, "free")?;
            if blocks
                .owners
                .get(block as usize)
                .is_some_and(|&o| o != u32::MAX)
            {
                return Err(format!("free block {block} has an owner"));
            }
        }
        for &owner in &blocks.owners {
            if owner != u32::MAX && owner >= lanes {
                return Err(format!(
                    "a block is owned by lane {owner}, of {lanes} lanes"
                ));
            }
        }
        let mut numbers = BTreeSet::new();
        for &(lane, ids) in lane_ids {
            let owned = |block: u32| blocks.owners.get(block as usize) == Some(&lane.get());
            for &block in &ids.spare {
                claim(block, "spare")?;
                if !owned(block) {
                    return Err(format!(
                        "lane {} holds spare block {block} it does not own",
                        lane.get()
                    ));
                }
            }
            if ids.next > ids.end {
                return Err(format!(
                    "lane {}: next number beyond its block's end",
                    lane.get()
                ));
            }
            if ids.next < ids.end {
                let block = ids.next.block();
                if ids.end != LocalInstance::first_of(block + 1) || !owned(block) {
                    return Err(format!(
                        "lane {}: its current block is not one it owns",
                        lane.get()
                    ));
                }
                claim(block, "current")?;
                let mut local = ids.next;
                while local < ids.end {
                    if is_live(local) {
                        return Err(format!(
                            "lane {}: number {} is live but not handed out",
                            lane.get(),
                            local.0
                        ));
                    }
                    local = local.next();
                }
            }
            for &(number, _) in &ids.free {
                if !numbers.insert(number) {
                    return Err(format!("number {number} is reusable twice"));
                }
            }
        }
        // Reusable numbers: dead, in blocks their lane owns.
        for &(lane, ids) in lane_ids {
            for &(number, _) in &ids.free {
                if number % shards != shard || number > crate::id::MAX_INSTANCE {
                    return Err(format!(
                        "lane {} would reuse number {number}, not of this shard",
                        lane.get()
                    ));
                }
                let local = LocalInstance::of(number, shards);
                if blocks.owners.get(local.block() as usize) != Some(&lane.get()) {
                    return Err(format!(
                        "lane {} would reuse number {number}, of a block it does not own",
                        lane.get()
                    ));
                }
                if is_live(local) {
                    return Err(format!("number {number} is live and reusable"));
                }
            }
        }
        // Free and spare blocks, in a set: a planted file may list many,
        // and each live block is checked against all of them.
        let idle: BTreeSet<u32> = (blocks.free.iter())
            .chain(lane_ids.iter().flat_map(|(_, ids)| ids.spare.iter()))
            .copied()
            .collect();
        for &block in live_blocks {
            if blocks
                .owners
                .get(block as usize)
                .is_none_or(|&o| o == u32::MAX)
            {
                return Err(format!(
                    "live instances in block {block}, which nobody owns"
                ));
            }
            if idle.contains(&block) {
                return Err(format!(
                    "live instances in block {block}, which is free or spare"
                ));
            }
        }
        let mut spawned = BTreeSet::new();
        for id in spawns {
            let number = id.instance;
            if number % shards != shard || number > crate::id::MAX_INSTANCE {
                return Err(format!("a spawn of {id} waits here, not of this shard"));
            }
            let local = LocalInstance::of(number, shards);
            let block = local.block();
            let Some(owner) = blocks.owner(local) else {
                return Err(format!("a spawn of {id} waits, in a block nobody owns"));
            };
            let handed_out = !idle.contains(&block)
                && (lane_ids.iter())
                    .find(|(lane, _)| *lane == owner)
                    .is_none_or(|(_, ids)| {
                        ids.next >= ids.end || ids.next.block() != block || local < ids.next
                    });
            if !handed_out || numbers.contains(&number) {
                return Err(format!("a spawn of {id} waits, of a number not handed out"));
            }
            if is_live(local) {
                return Err(format!("a spawn of {id} waits, of a live number"));
            }
            if !spawned.insert(number) {
                return Err(format!("{id} is spawned twice"));
            }
        }
        Ok(())
    }
}

pub(crate) use persist::check as check_loaded;

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(l: u32) -> SenderLane {
        SenderLane::from_index(l)
    }

    /// Takes `n` numbers for `lane` during a cycle (`lanes` lanes).
    fn take_in_cycle(
        ids: &mut LaneIds,
        blocks: &mut Blocks,
        l: u32,
        lanes: u32,
        n: usize,
    ) -> Vec<u32> {
        (0..n)
            .map(|_| match ids.next_number(1, 0) {
                Some((number, _)) => number,
                None => {
                    if !ids.take_spare() {
                        ids.take_block(lane(l), Source::Stripe(blocks, lanes))
                            .expect("a block");
                    }
                    ids.next_number(1, 0).unwrap().0
                }
            })
            .collect()
    }

    /// Three lanes take numbers in one cycle in any interleaving and never
    /// meet; after settling, each owns its blocks, the positions nobody
    /// took are free again, and lanes that took blocks got spares, so the
    /// next cycle's numbers come without the stripe.
    #[test]
    fn lanes_never_meet_and_the_stripe_is_settled() {
        let mut blocks = Blocks::new(0, 1);
        let mut ids: Vec<LaneIds> = (0..3).map(|_| LaneIds::default()).collect();
        let sizes = [3 * BLOCK as usize + 5, 0, BLOCK as usize + 1];
        let mut all = Vec::new();
        for (l, n) in sizes.iter().enumerate() {
            all.extend(take_in_cycle(&mut ids[l], &mut blocks, l as u32, 3, *n));
        }
        let mut sorted = all.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), all.len(), "no number handed out twice");
        // Lane 0 took stripe positions 0, 3, 6, 9; lane 2 positions 2, 5.
        assert_eq!(ids[0].striped, [0, 3, 6, 9]);
        assert_eq!(ids[2].striped, [2, 5]);
        let mut lanes: Vec<_> = ids
            .iter_mut()
            .enumerate()
            .map(|(l, i)| (lane(l as u32), i))
            .collect();
        blocks.settle(&mut lanes);
        assert_eq!(blocks.owner(LocalInstance::of(9 * BLOCK, 1)), Some(lane(0)));
        assert_eq!(
            blocks.owner(LocalInstance::of(5 * BLOCK + 7, 1)),
            Some(lane(2))
        );
        // Positions 1, 4, 7, 8 were not taken: free again, they went to
        // the spares first (lane 0 took 4 blocks and gets 8 spares, lane 2
        // took two and gets 4), then blocks from the frontier.
        assert_eq!(ids[0].spare, [13, 12, 11, 10, 8, 7, 4, 1]);
        assert_eq!(ids[2].spare, [17, 16, 15, 14]);
        assert!(ids[1].spare.is_empty());
        assert!(blocks.free.is_empty());
        assert_eq!(blocks.frontier, 18);
        assert_eq!(blocks.owner(LocalInstance::of(BLOCK + 3, 1)), Some(lane(0)));
        assert_eq!(
            blocks.owner(LocalInstance::of(17 * BLOCK, 1)),
            Some(lane(2))
        );
        // The next cycle: lane 0 takes a few blocks more from its spares.
        let more = take_in_cycle(&mut ids[0], &mut blocks, 0, 3, 2 * BLOCK as usize);
        assert!(ids[0].striped.is_empty());
        sorted.extend(more);
        let n = sorted.len();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), n);
    }

    /// The stripe ends at the shard's last whole block: a lane then gets no
    /// block (and the spawn reports it) instead of a number twice.
    #[test]
    fn the_stripe_ends_at_the_last_block() {
        let mut blocks = Blocks::new(0, 1 << 20);
        assert_eq!(blocks.top, 4);
        let mut ids = LaneIds::default();
        for _ in 0..2 {
            ids.take_block(lane(1), Source::Stripe(&mut blocks, 2))
                .unwrap();
        }
        assert_eq!(ids.striped, [1, 3]);
        assert!(
            ids.take_block(lane(1), Source::Stripe(&mut blocks, 2))
                .is_none()
        );
    }

    /// Stripe positions nobody took are free again, and granted first.
    #[test]
    fn grants_reuse_free_blocks_lowest_first() {
        let mut blocks = Blocks::new(0, 1);
        let mut ids = LaneIds::default();
        ids.take_block(lane(1), Source::Stripe(&mut blocks, 4))
            .unwrap();
        assert_eq!(ids.striped, [1]);
        blocks.settle(&mut [(lane(1), &mut ids)]);
        // Block 0 was skipped by the stripe and is free again: the spares
        // (two, for the one block taken) take it first, then block 2.
        assert_eq!(ids.spare, [2, 0]);
        assert_eq!(blocks.owner(LocalInstance::of(0, 1)), Some(lane(1)));
        assert_eq!(blocks.grant(lane(0)), Some(3));
        assert_eq!(
            blocks.owner(LocalInstance::of(3 * BLOCK + 5, 1)),
            Some(lane(0))
        );
    }

    /// One sender can get every block of a shard: its class's whole `u32`
    /// instance space, whatever the number of lanes (outside handlers;
    /// handlers get the blocks as spares over cycles).
    #[test]
    fn one_sender_can_have_every_block() {
        let shards = 4;
        let mut blocks = Blocks::new(0, shards);
        let mut n = 0u64;
        while blocks.grant(lane(0)).is_some() {
            n += 1;
        }
        assert_eq!(n, u64::from(blocks.top));
        // Shard 0 of 4 has 2^30 local numbers, up to instance `2^32 - 4`
        // (below the broadcast markers): all of them in whole blocks.
        assert_eq!(n * u64::from(BLOCK), 1 << 30);
        assert_eq!(
            blocks.owner(LocalInstance::of((1 << 30) - 1, 1)),
            Some(lane(0))
        );
        // Shard 3's last block would reach past `MAX_INSTANCE`: it has one
        // block less.
        assert_eq!(Blocks::new(3, shards).top, blocks.top - 1);
    }

    /// A snapshot's ID state that would hand out a live number again, or
    /// give a block to two lanes, is refused on load (`check_loaded`).
    #[test]
    fn loaded_id_state_that_would_reuse_a_live_number_is_refused() {
        use crate::persist::bytes::{Reader, Writer};
        // Lane 1 took block 0 and handed out numbers 0..10; 3 and 7 died
        // and are reusable; it has spare block 1. Live: 0..10 but 3 and 7.
        let mut blocks = Blocks::new(0, 1);
        let mut ids = LaneIds::default();
        ids.take_block(lane(1), Source::Grant(&mut blocks)).unwrap();
        for _ in 0..10 {
            ids.next_number(1, 0).unwrap();
        }
        ids.free = vec![(3, 1), (7, 1)];
        ids.spare = vec![blocks.grant(lane(1)).unwrap()];
        let live = |l: LocalInstance| l.0 < 10 && l.0 != 3 && l.0 != 7;
        let ok = |b: &Blocks, i: &LaneIds| {
            check_loaded(b, &[(lane(1), i)], (&[0], &[]), live, 4, (0, 1))
        };
        ok(&blocks, &ids).unwrap();
        // What a snapshot writes reads back the same.
        let mut out = Writer::default();
        blocks.encode(&mut out);
        ids.encode(&mut out);
        let mut input = Reader::new(&out.bytes);
        let blocks2 = Blocks::decode(&mut input, 0, 1).unwrap();
        let ids2 = LaneIds::decode(&mut input).unwrap();
        input.finish("test").unwrap();
        ok(&blocks2, &ids2).unwrap();

        let mut bad = LaneIds::decode(&mut Reader::new(&{
            let mut w = Writer::default();
            ids.encode(&mut w);
            w.bytes
        }))
        .unwrap();
        bad.free.push((5, 1));
        assert!(ok(&blocks, &bad).unwrap_err().contains("live and reusable"));
        bad.free = vec![(3, 1), (3, 2)];
        assert!(ok(&blocks, &bad).unwrap_err().contains("reusable twice"));
        bad.free = vec![(3, 1)];
        bad.next = LocalInstance(5);
        assert!(
            ok(&blocks, &bad)
                .unwrap_err()
                .contains("live but not handed out")
        );
        bad.next = LocalInstance(10);
        bad.spare = vec![0];
        assert!(ok(&blocks, &bad).unwrap_err().contains("listed twice"));
        bad.spare = vec![5];
        assert!(ok(&blocks, &bad).unwrap_err().contains("never handed out"));
        // Live instances in a block nobody owns.
        assert!(
            check_loaded(&blocks, &[(lane(1), &ids)], (&[0, 1], &[]), live, 4, (0, 1))
                .unwrap_err()
                .contains("free or spare")
        );
        let mut unowned = Blocks::new(0, 1);
        unowned.frontier = 3;
        assert!(
            check_loaded(&unowned, &[], (&[2], &[]), live, 4, (0, 1))
                .unwrap_err()
                .contains("nobody owns")
        );
        // A lane beyond the system's lanes.
        assert!(
            check_loaded(&blocks, &[(lane(1), &ids)], (&[0], &[]), live, 1, (0, 1))
                .unwrap_err()
                .contains("of 1 lanes")
        );
    }
}
