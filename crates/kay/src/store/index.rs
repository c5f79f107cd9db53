//! The index of an instance store: instance number → where the instance is.
//!
//! Instance numbers of a class are `local * shards + shard`; a shard's store
//! indexes its own instances by `local`. Local numbers are handed out in
//! blocks of [`BLOCK`] per sender lane (see `docs/architecture.md`), so they can
//! be sparse: the index is two-level, a table of lazily allocated blocks.
//!
//! An entry is one packed `u64`: the address of the instance's slot (slots
//! never move: chunks stay where they are), its bin and its version. A
//! message thus finds its recipient with one load from the index and no
//! arithmetic over bins and chunks; the entry is rewritten whenever an
//! instance moves to another slot (swap-remove, re-compaction).

/// Local instance numbers per index block (and per ID allocation block).
pub(crate) const BLOCK: u32 = 1024;

/// An instance's number within its shard: instance number `i` of a class
/// of `shards` shards is local number `i / shards` of shard `i % shards`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Default)]
pub(crate) struct LocalInstance(pub(crate) u32);

impl LocalInstance {
    /// The local number of instance number `instance` (of `shards` shards).
    #[inline]
    pub(crate) fn of(instance: u32, shards: u32) -> LocalInstance {
        LocalInstance(instance / shards)
    }

    /// The first local number of block `block`.
    #[inline]
    pub(crate) fn first_of(block: u32) -> LocalInstance {
        LocalInstance(block * BLOCK)
    }

    /// The instance number of this local number in shard `shard` of
    /// `shards`.
    #[inline]
    pub(crate) fn instance(self, shard: u32, shards: u32) -> u32 {
        self.0 * shards + shard
    }

    /// The block it lies in.
    #[inline]
    pub(crate) fn block(self) -> u32 {
        self.0 / BLOCK
    }

    /// Its position within its block.
    #[inline]
    pub(crate) fn offset(self) -> u32 {
        self.0 % BLOCK
    }

    /// The next local number.
    #[inline]
    pub(crate) fn next(self) -> LocalInstance {
        LocalInstance(self.0 + 1)
    }
}

/// Where an instance lives: its slot's address, bin and version.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Location {
    pub(crate) ptr: *mut u8,
    pub(crate) bin: u8,
    pub(crate) version: u8,
}

/// A packed [`Location`]: `address << 16 | bin << 8 | version`; 0 is vacant
/// (no slot is at address 0).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Entry(u64);

/// Slot addresses must fit in the 48 bits an entry keeps.
const ADDRESS_LIMIT: usize = 1 << 48;

impl Entry {
    const VACANT: Entry = Entry(0);

    #[inline]
    fn pack(location: Location) -> Entry {
        let address = location.ptr.expose_provenance();
        assert!(
            address != 0 && address < ADDRESS_LIMIT,
            "instance slot address {address:#x} outside the 48-bit range the index keeps"
        );
        Entry((address as u64) << 16 | u64::from(location.bin) << 8 | u64::from(location.version))
    }

    /// The same entry (bin, version) for the slot at `ptr`.
    #[inline]
    fn with_ptr(self, ptr: *mut u8) -> Entry {
        let Location { bin, version, .. } = self.unpack();
        Entry::pack(Location { ptr, bin, version })
    }

    #[inline]
    fn is_live(self) -> bool {
        self.0 != 0
    }

    /// The slot's address (null if vacant).
    #[inline]
    pub(crate) fn ptr(self) -> *mut u8 {
        // The address round-trips exactly: it is below 2^48 (checked in `pack`).
        std::ptr::with_exposed_provenance_mut((self.0 >> 16) as usize)
    }

    #[inline]
    pub(crate) fn version(self) -> u8 {
        self.0 as u8
    }

    #[inline]
    fn unpack(self) -> Location {
        Location {
            ptr: self.ptr(),
            bin: (self.0 >> 8) as u8,
            version: self.version(),
        }
    }
}

/// How a shard's instance numbers map to its local numbers (see
/// [`LocalInstance`]): what [`Index`] and [`Seen`] share.
#[derive(Clone, Copy)]
struct Numbering {
    shards: u32,
    /// `log2(shards)` if `shards` is a power of two: no division per lookup.
    shift: Option<u32>,
}

impl Numbering {
    fn new(shards: u32) -> Numbering {
        assert!(shards > 0);
        Numbering {
            shards,
            shift: shards.is_power_of_two().then(|| shards.trailing_zeros()),
        }
    }

    /// The local number of instance number `instance`.
    #[inline]
    fn local(self, instance: u32) -> LocalInstance {
        match self.shift {
            Some(shift) => LocalInstance(instance >> shift),
            None => LocalInstance::of(instance, self.shards),
        }
    }
}

/// Maps instance numbers of one shard to locations.
pub(crate) struct Index {
    numbering: Numbering,
    /// Block number → where its entries are in `entries` ([`NO_BLOCK`]: no
    /// entries yet).
    blocks: Vec<u32>,
    /// The entries of the blocks made so far, in the order they were made:
    /// one allocation, in huge pages where the system gives them (a load
    /// makes its blocks one after the other; fresh memory in 4 KiB pages
    /// costs a fault per page).
    entries: Vec<[Entry; BLOCK as usize]>,
}

/// A block without entries: never an index into `entries` (which holds
/// fewer than 2^32 / [`BLOCK`] blocks), so looking it up finds nothing.
const NO_BLOCK: u32 = u32::MAX;

impl Index {
    pub(crate) fn new(shards: u32) -> Self {
        Index {
            numbering: Numbering::new(shards),
            blocks: Vec::new(),
            entries: Vec::new(),
        }
    }

    /// The entries of block `block`, made (vacant) if it has none yet.
    fn block_mut(&mut self, block: usize) -> &mut [Entry; BLOCK as usize] {
        if self.blocks.len() <= block {
            self.blocks.resize(block + 1, NO_BLOCK);
        }
        if self.blocks[block] == NO_BLOCK {
            if self.entries.len() == self.entries.capacity() {
                self.entries.reserve(1);
                chunky::storage::advise_huge_pages(self.entries.spare_capacity_mut());
            }
            self.blocks[block] = self.entries.len() as u32;
            self.entries.push([Entry::VACANT; BLOCK as usize]);
        }
        &mut self.entries[self.blocks[block] as usize]
    }

    #[inline]
    fn position(&self, instance: u32) -> (usize, usize) {
        let local = self.numbering.local(instance);
        (local.block() as usize, local.offset() as usize)
    }

    /// The entry of `instance`, if its block exists (live or not).
    #[inline]
    pub(crate) fn entry(&self, instance: u32) -> Option<&Entry> {
        let (block, at) = self.position(instance);
        // `NO_BLOCK` is past the end of `entries`.
        let entries = self.entries.get(*self.blocks.get(block)? as usize)?;
        Some(&entries[at])
    }

    /// The slot of live instance `instance` if its version is `version`.
    #[inline]
    pub(crate) fn find(&self, instance: u32, version: u8) -> Option<*mut u8> {
        let entry = *self.entry(instance)?;
        (entry.is_live() && entry.version() == version).then(|| entry.ptr())
    }

    /// The location of live instance `instance` if its version is `version`.
    #[inline]
    pub(crate) fn find_location(&self, instance: u32, version: u8) -> Option<Location> {
        let entry = *self.entry(instance)?;
        (entry.is_live() && entry.version() == version).then(|| entry.unpack())
    }

    /// The location of live instance `instance`.
    #[inline]
    pub(crate) fn live(&self, instance: u32) -> Option<Location> {
        self.entry(instance)
            .copied()
            .filter(|e| e.is_live())
            .map(Entry::unpack)
    }

    /// Sets the location of `instance` (allocating its block if needed).
    pub(crate) fn set(&mut self, instance: u32, location: Location) {
        self.put(instance, Entry::pack(location));
    }

    /// Indexes a run of slots being loaded: instance `ids[j]` at slot
    /// `base + j * slot_size` of bin `bin`, in order; stops at the first
    /// one live already (its position, `None`) or in a block `check_block`
    /// refuses (its position and the refusal; asked once per block the
    /// run enters, before the block is made). The current block stays at
    /// hand from one instance to the next (a run holds whole blocks,
    /// mostly), and the entries are counted up from the first rather than
    /// packed one by one.
    ///
    /// # Panics
    ///
    /// If the run's slots lie at address 0 or beyond the 48 bits an entry
    /// keeps.
    pub(crate) fn insert_run<E>(
        &mut self,
        ids: &[crate::id::RawID],
        base: *mut u8,
        slot_size: usize,
        bin: u8,
        mut check_block: impl FnMut(LocalInstance) -> Result<(), E>,
    ) -> Result<(), (usize, Option<E>)> {
        let numbering = self.numbering;
        let address = base.expose_provenance();
        let end = ids
            .len()
            .checked_mul(slot_size)
            .and_then(|bytes| address.checked_add(bytes));
        assert!(
            address != 0 && end.is_some_and(|end| end < ADDRESS_LIMIT),
            "instance slots at {address:#x} outside the 48-bit range the index keeps"
        );
        // `Entry::pack` of slot `j`: the address counts up by the slot
        // size in the bits above the bin and version (it stays below 2^48).
        let first = Entry::pack(Location {
            ptr: base,
            bin,
            version: 0,
        })
        .0;
        let step = (slot_size as u64) << 16;
        let mut j = 0;
        while j < ids.len() {
            let local = numbering.local(ids[j].instance);
            let block = local.block();
            check_block(local).map_err(|e| (j, Some(e)))?;
            let entries = self.block_mut(block as usize);
            let mut bits = first + j as u64 * step;
            while let Some(id) = ids.get(j) {
                let local = numbering.local(id.instance);
                if local.block() != block {
                    break;
                }
                let entry = &mut entries[local.offset() as usize];
                if entry.is_live() {
                    return Err((j, None));
                }
                *entry = Entry(bits | u64::from(id.version));
                bits += step;
                j += 1;
            }
        }
        Ok(())
    }

    fn put(&mut self, instance: u32, entry: Entry) {
        let (block, at) = self.position(instance);
        self.block_mut(block)[at] = entry;
    }

    /// The number of shards.
    pub(crate) fn shards(&self) -> u32 {
        self.numbering.shards
    }

    /// Marks `instance` as not live.
    pub(crate) fn vacate(&mut self, instance: u32) {
        self.put(instance, Entry::VACANT);
    }

    /// Moves live instance `instance` to slot `ptr` of the same bin.
    pub(crate) fn set_ptr(&mut self, instance: u32, ptr: *mut u8) {
        let (block, at) = self.position(instance);
        if let Some(&i) = self.blocks.get(block)
            && let Some(b) = self.entries.get_mut(i as usize)
            && b[at].is_live()
        {
            b[at] = b[at].with_ptr(ptr);
        }
    }
}

/// The local numbers a load met, a bit each, block by block: what the
/// load checks IDs against (each once, in a block handed out) without
/// building the [`Index`] yet, which it builds later from the instances
/// themselves (`Store::settle`): 1 bit per instance in the cache rather
/// than 8 bytes in fresh memory.
pub(crate) struct Seen {
    numbering: Numbering,
    blocks: Vec<Option<Box<[u64; BLOCK as usize / 64]>>>,
}

impl Seen {
    pub(crate) fn new(shards: u32) -> Seen {
        Seen {
            numbering: Numbering::new(shards),
            blocks: Vec::new(),
        }
    }

    /// Marks the instances `ids` as met, in order; stops at the first one
    /// met already (its position, `None`) or in a block `check_block`
    /// refuses (its position and the refusal; asked once per block the
    /// run enters, before the block is made), as [`Index::insert_run`].
    pub(crate) fn insert_run<E>(
        &mut self,
        ids: &[crate::id::RawID],
        mut check_block: impl FnMut(LocalInstance) -> Result<(), E>,
    ) -> Result<(), (usize, Option<E>)> {
        let numbering = self.numbering;
        let mut j = 0;
        while j < ids.len() {
            let local = numbering.local(ids[j].instance);
            let block = local.block();
            check_block(local).map_err(|e| (j, Some(e)))?;
            let at = block as usize;
            if self.blocks.len() <= at {
                self.blocks.resize_with(at + 1, || None);
            }
            let bits = self.blocks[at].get_or_insert_with(|| Box::new([0; BLOCK as usize / 64]));
            // Mostly the instances come in order of their numbers (spawned
            // in turn, none removed since): checked with one pass that has
            // no branch per instance, and their bits set a word at a time.
            let start = local.offset() as usize;
            let span = &ids[j..ids.len().min(j + (BLOCK as usize - start))];
            let stride = u64::from(numbering.shards);
            let origin = u64::from(ids[j].instance);
            let in_order = (span.iter().zip(0u64..)).fold(true, |all, (id, k)| {
                all & (u64::from(id.instance) == origin + k * stride)
            });
            if in_order {
                let masks = (start / 64..=(start + span.len() - 1) / 64).map(|w| {
                    let from = start.max(w * 64) - w * 64;
                    let to = (start + span.len()).min(w * 64 + 64) - w * 64;
                    let mask = if to - from == 64 {
                        u64::MAX
                    } else {
                        ((1u64 << (to - from)) - 1) << from
                    };
                    (w, mask)
                });
                if masks.clone().all(|(w, mask)| bits[w] & mask == 0) {
                    masks.for_each(|(w, mask)| bits[w] |= mask);
                    j += span.len();
                    continue;
                }
            }
            // The word at hand is kept in a register (`word`: what it held,
            // `met`: bits set since), stored when the run moves on: no
            // chain of stores and loads through memory per instance.
            let (mut at_word, mut word, mut met) = (usize::MAX, 0u64, 0u64);
            while let Some(id) = ids.get(j) {
                let local = numbering.local(id.instance);
                if local.block() != block {
                    break;
                }
                let (w, bit) = (local.offset() as usize / 64, 1u64 << (local.offset() % 64));
                if w != at_word {
                    if let Some(stored) = bits.get_mut(at_word) {
                        *stored = word | met;
                    }
                    (at_word, word, met) = (w, bits[w], 0);
                }
                if (word | met) & bit != 0 {
                    bits[w] = word | met;
                    return Err((j, None));
                }
                met |= bit;
                j += 1;
            }
            if let Some(stored) = bits.get_mut(at_word) {
                *stored = word | met;
            }
        }
        Ok(())
    }

    /// Whether instance number `instance` was met.
    pub(crate) fn contains(&self, instance: u32) -> bool {
        let local = self.numbering.local(instance);
        let (word, bit) = (local.offset() as usize / 64, local.offset() % 64);
        (self.blocks.get(local.block() as usize))
            .and_then(|b| b.as_ref())
            .is_some_and(|b| b[word] >> bit & 1 == 1)
    }

    /// The blocks of local numbers met, in order.
    pub(crate) fn live_blocks(&self) -> Vec<u32> {
        (self.blocks.iter().enumerate())
            .filter(|(_, b)| b.as_ref().is_some_and(|b| b.iter().any(|&w| w != 0)))
            .map(|(block, _)| block as u32)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_instances_in_any_shard_count() {
        for shards in [1, 3, 4, 7] {
            let mut index = Index::new(shards);
            let far = (5 * BLOCK * 256 + 17) * shards + (shards - 1);
            let mut slots = [0u64; 4];
            let base = slots.as_mut_ptr().cast::<u8>();
            for (i, instance) in [shards - 1, far].into_iter().enumerate() {
                assert!(index.live(instance).is_none());
                let ptr = base.wrapping_add(8 * i);
                index.set(
                    instance,
                    Location {
                        ptr,
                        bin: 2,
                        version: 3,
                    },
                );
                assert_eq!(index.live(instance).unwrap().ptr, ptr);
                assert_eq!(index.live(instance).unwrap().bin, 2);
                assert_eq!(index.find(instance, 3), Some(ptr));
                assert_eq!(index.find(instance, 4), None, "a stale version misses");
            }
            let moved = base.wrapping_add(24);
            index.set_ptr(far, moved);
            assert_eq!(index.live(far).unwrap().ptr, moved);
            assert_eq!(index.live(far).unwrap().version, 3);
            index.vacate(far);
            assert!(index.live(far).is_none());
            assert_eq!(index.find(far, 3), None);
            assert!(index.entry(far).is_some());
        }
    }

    use proptest::prelude::*;

    /// Runs of instance numbers as loads meet them: in order, shuffled or
    /// with one repeated, across blocks.
    fn runs() -> impl Strategy<Value = (u32, Vec<Vec<u32>>)> {
        let run = (
            0u32..3 * BLOCK,
            1usize..2 * BLOCK as usize,
            0u8..4,
            any::<u64>(),
        );
        (1u32..6, prop::collection::vec(run, 1..5)).prop_map(|(shards, runs)| {
            let runs = runs
                .into_iter()
                .map(|(first, len, kind, seed)| {
                    let mut locals: Vec<u32> = (first..first + len as u32).collect();
                    match kind {
                        // Shuffled.
                        1 => {
                            let mut x = seed | 1;
                            for i in (1..locals.len()).rev() {
                                x ^= x << 13;
                                x ^= x >> 7;
                                x ^= x << 17;
                                locals.swap(i, (x % (i as u64 + 1)) as usize);
                            }
                        }
                        // One repeated further on.
                        2 if len > 1 => {
                            let at = (seed % (len as u64 - 1)) as usize;
                            locals[len - 1] = locals[at];
                        }
                        _ => {}
                    }
                    locals
                        .into_iter()
                        .map(|l| l * shards + shards - 1)
                        .collect()
                })
                .collect();
            (shards, runs)
        })
    }

    proptest! {
        /// `insert_run` indexes what a map from instance to slot would,
        /// stops where an instance is live already or its block refused,
        /// and leaves the instances before that indexed; `Seen` (what a
        /// load checks IDs with) stops at the same place and holds the same
        /// instances.
        #[test]
        fn insert_run_indexes_as_a_map_would((shards, runs) in runs(), refused in 0u32..4) {
            let mut index = Index::new(shards);
            let mut seen = Seen::new(shards);
            let mut model = std::collections::HashMap::new();
            let mut memory = vec![0u64; 4 * BLOCK as usize];
            for (r, run) in runs.iter().enumerate() {
                let ids: Vec<crate::id::RawID> = run
                    .iter()
                    .map(|&i| crate::id::RawID::new(crate::id::ShortTypeID::new(1), i, crate::id::MachineID(0), (i % 7) as u8))
                    .collect();
                let base = memory.as_mut_ptr().cast::<u8>().wrapping_add(r * 8);
                let refuse = |local: LocalInstance| {
                    if local.block() == refused + 2 { Err(()) } else { Ok(()) }
                };
                let outcome = index.insert_run(&ids, base, 16, 3, refuse);
                // The load's check of the same IDs says the same.
                prop_assert_eq!(seen.insert_run(&ids, refuse), outcome);
                // The model: in order, until an instance is live or refused.
                let mut expected = Ok(());
                for (j, id) in ids.iter().enumerate() {
                    if (id.instance / shards) / BLOCK == refused + 2 {
                        expected = Err((j, Some(())));
                        break;
                    }
                    if model.contains_key(&id.instance) {
                        expected = Err((j, None));
                        break;
                    }
                    model.insert(id.instance, (base.wrapping_add(j * 16), id.version));
                }
                prop_assert_eq!(outcome, expected);
                if outcome.is_err() {
                    break;
                }
            }
            for (&instance, &(ptr, version)) in &model {
                prop_assert!(seen.contains(instance));
                let location = index.live(instance).expect("indexed");
                prop_assert_eq!(location.ptr, ptr);
                prop_assert_eq!(location.version, version);
                prop_assert_eq!(location.bin, 3);
            }
        }
    }
}
