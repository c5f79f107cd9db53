//! The index of an instance store: instance number → (bin, slot, version).
//!
//! Instance numbers of a class are `local * shards + shard`; a shard's store
//! indexes its own instances by `local`. Local numbers are handed out in
//! blocks of [`BLOCK`] per sender lane (see `docs/multicore.md`), so they can
//! be sparse: the index is two-level, a table of lazily allocated blocks.

/// Local instance numbers per index block (and per ID allocation block).
pub(crate) const BLOCK: u32 = 1024;

/// Where an instance lives.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Location {
    pub(crate) slot: u32,
    pub(crate) bin: u8,
    pub(crate) version: u8,
}

const NO_BIN: u8 = u8::MAX;
const VACANT: Location = Location {
    slot: 0,
    bin: NO_BIN,
    version: 0,
};

impl Location {
    fn is_live(&self) -> bool {
        self.bin != NO_BIN
    }
}

/// Maps instance numbers of one shard to locations.
pub(crate) struct Index {
    shards: u32,
    /// `log2(shards)` if `shards` is a power of two: no division per lookup.
    shard_shift: Option<u32>,
    blocks: Vec<Option<Box<[Location; BLOCK as usize]>>>,
}

impl Index {
    pub(crate) fn new(shards: u32) -> Self {
        assert!(shards > 0);
        Index {
            shards,
            shard_shift: shards.is_power_of_two().then(|| shards.trailing_zeros()),
            blocks: Vec::new(),
        }
    }

    #[inline]
    fn local(&self, instance: u32) -> u32 {
        match self.shard_shift {
            Some(shift) => instance >> shift,
            None => instance / self.shards,
        }
    }

    #[inline]
    fn position(&self, instance: u32) -> (usize, usize) {
        let local = self.local(instance);
        ((local / BLOCK) as usize, (local % BLOCK) as usize)
    }

    /// The entry of `instance`, if it has ever been set (live or not).
    #[inline]
    pub(crate) fn entry(&self, instance: u32) -> Option<&Location> {
        let (block, at) = self.position(instance);
        self.blocks.get(block)?.as_ref().map(|b| &b[at])
    }

    /// The location of live instance `instance`.
    #[inline]
    pub(crate) fn live(&self, instance: u32) -> Option<Location> {
        self.entry(instance).copied().filter(Location::is_live)
    }

    /// Sets the location of `instance` (allocating its block if needed).
    pub(crate) fn set(&mut self, instance: u32, location: Location) {
        let (block, at) = self.position(instance);
        if self.blocks.len() <= block {
            self.blocks.resize_with(block + 1, || None);
        }
        self.blocks[block].get_or_insert_with(|| Box::new([VACANT; BLOCK as usize]))[at] = location;
    }

    /// Marks `instance` as not live.
    pub(crate) fn vacate(&mut self, instance: u32) {
        self.set(instance, VACANT);
    }

    /// Moves live instance `instance` to `slot` of the same bin.
    pub(crate) fn set_slot(&mut self, instance: u32, slot: u32) {
        let (block, at) = self.position(instance);
        if let Some(Some(b)) = self.blocks.get_mut(block) {
            b[at].slot = slot;
        }
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
            for (i, instance) in [shards - 1, far].into_iter().enumerate() {
                assert!(index.live(instance).is_none());
                index.set(
                    instance,
                    Location {
                        slot: i as u32,
                        bin: 0,
                        version: 3,
                    },
                );
                assert_eq!(index.live(instance).unwrap().slot, i as u32);
            }
            index.set_slot(far, 9);
            assert_eq!(index.live(far).unwrap().slot, 9);
            index.vacate(far);
            assert!(index.live(far).is_none());
            assert!(index.entry(far).is_some());
        }
    }
}
