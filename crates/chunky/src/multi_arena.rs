//! [`MultiArena`]: variably-sized items in power-of-two size classes.
//!
//! Bin `b` is an [`Arena`] of `16 << b`-byte slots stored under the ident
//! `{ident}_bin{b}`. Bins whose slots fit the configured chunk size use it;
//! bigger bins use chunks of exactly one slot, so items up to 1 GiB fit.
//! Bins are created when first used; the metadata records which exist.

use std::ptr::NonNull;

use crate::arena::{Arena, SlotIndex};
use crate::error::{Error, Result};
use crate::meta::{Handle, Kind, MetaReader, MetaWriter};
use crate::storage::{ChunkSize, MAX_IDENT_LEN, Storage};

/// The smallest slot size, and the alignment of every item.
const MIN_SLOT: usize = 16;
/// Bins `0..BIN_COUNT` hold items of up to `MIN_SLOT << (BIN_COUNT - 1)`
/// bytes, i.e. [`ChunkSize::MAX`].
const BIN_COUNT: usize = 27;
/// The longest bin ident suffix, `_bin26`.
const SUFFIX_LEN: usize = 6;

/// A size class of a [`MultiArena`]: bin `b` holds slots of `16 << b` bytes.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BinIndex(u8);

impl BinIndex {
    /// The bin for items of `size` bytes: the smallest whose slots hold it.
    pub fn for_size(size: usize) -> Result<BinIndex> {
        let max = MIN_SLOT << (BIN_COUNT - 1);
        if size > max {
            return Err(Error::ItemTooLarge {
                size: size as u64,
                max: max as u64,
            });
        }
        let slot = size.max(MIN_SLOT).next_power_of_two();
        Ok(BinIndex(
            (slot.trailing_zeros() - MIN_SLOT.trailing_zeros()) as u8,
        ))
    }

    /// The slot size of this bin in bytes.
    pub const fn slot_size(self) -> usize {
        MIN_SLOT << self.0
    }

    /// The bin number.
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// Where an item of a [`MultiArena`] lives: its bin and its slot there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MultiSlot {
    /// The size class.
    pub bin: BinIndex,
    /// The slot in the bin's arena.
    pub slot: SlotIndex,
}

/// Items of any size up to 1 GiB, each in a slot of the smallest fitting
/// power-of-two size class (at least 16 bytes, 16-byte aligned).
///
/// Each size class is an [`Arena`] reachable through [`MultiArena::bins`],
/// so a runtime can scan the items of one class densely. Reopening from a
/// persistent storage restores every bin.
#[derive(Debug)]
pub struct MultiArena {
    handle: Handle,
    chunk_size: ChunkSize,
    bins: Vec<Option<Arena>>,
}

impl MultiArena {
    /// Opens the multi-arena `ident` in `storage`, creating it empty if it
    /// does not exist. `chunk_size` is the chunk size of the bins whose slots
    /// fit it; it must be the one the multi-arena was created with.
    pub fn open(storage: &Storage, ident: &str, chunk_size: ChunkSize) -> Result<MultiArena> {
        if ident.len() > MAX_IDENT_LEN - SUFFIX_LEN {
            return Err(Error::InvalidIdent {
                ident: ident.to_owned(),
                reason: "it is too long for a MultiArena, which appends `_binNN` for its bins",
            });
        }
        let (handle, meta) = Handle::open(storage, ident)?;
        let mut multi = MultiArena {
            handle,
            chunk_size,
            bins: (0..BIN_COUNT).map(|_| None).collect(),
        };
        if let Some(meta) = meta
            && let Err(e) = multi.restore(&meta)
        {
            multi.handle.live = false;
            return Err(e);
        }
        Ok(multi)
    }

    fn restore(&mut self, meta: &[u8]) -> Result<()> {
        let mut r = MetaReader::new(&self.handle.ident, meta, Kind::MultiArena)?;
        r.chunk_size(self.chunk_size)?;
        let mask = r.u32()?;
        r.finish()?;
        if mask >> BIN_COUNT != 0 {
            return Err(Error::corrupt_meta(
                &self.handle.ident,
                format!("bin mask {mask:#x} names bins beyond {}", BIN_COUNT - 1),
            ));
        }
        for b in (0..BIN_COUNT).filter(|b| mask & (1 << b) != 0) {
            self.bins[b] = Some(self.open_bin(BinIndex(b as u8), true)?);
        }
        Ok(())
    }

    fn open_bin(&self, bin: BinIndex, must_exist: bool) -> Result<Arena> {
        let ident = format!("{}_bin{}", self.handle.ident, bin.0);
        let chunk_size = self.chunk_size.at_least(bin.slot_size())?;
        Arena::open_inner(
            &self.handle.storage,
            &ident,
            bin.slot_size(),
            chunk_size,
            must_exist,
        )
    }

    /// The ident the multi-arena is stored under.
    pub fn ident(&self) -> &str {
        &self.handle.ident
    }

    /// The number of live items in all bins.
    pub fn len(&self) -> usize {
        self.bins().map(|(_, arena)| arena.len()).sum()
    }

    /// Whether no item is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A slot for an item of `size` bytes, in the bin of
    /// [`BinIndex::for_size`]. Its bytes are unspecified.
    pub fn push(&mut self, size: usize) -> Result<MultiSlot> {
        let bin = BinIndex::for_size(size)?;
        let b = usize::from(bin.0);
        if self.bins[b].is_none() {
            self.bins[b] = Some(self.open_bin(bin, false)?);
        }
        let arena = self.bins[b].as_mut().expect("opened above");
        Ok(MultiSlot {
            bin,
            slot: arena.push()?,
        })
    }

    /// Gives `slot` back to its bin (see [`Arena::free`]).
    ///
    /// # Panics
    ///
    /// If the slot was never handed out.
    pub fn free(&mut self, slot: MultiSlot) {
        self.arena_mut(slot.bin).free(slot.slot);
    }

    /// The bytes of `slot` (the whole slot, which may be longer than the
    /// item), or `None` if it was never handed out.
    pub fn get(&self, slot: MultiSlot) -> Option<&[u8]> {
        self.bin(slot.bin)?.get(slot.slot)
    }

    /// The bytes of `slot` mutably, or `None` if it was never handed out.
    pub fn get_mut(&mut self, slot: MultiSlot) -> Option<&mut [u8]> {
        self.bin_mut(slot.bin)?.get_mut(slot.slot)
    }

    /// The bytes of `slot` (the whole slot).
    ///
    /// # Panics
    ///
    /// If the slot was never handed out.
    pub fn at(&self, slot: MultiSlot) -> &[u8] {
        self.arena(slot.bin).at(slot.slot)
    }

    /// The bytes of `slot`, mutably.
    ///
    /// # Panics
    ///
    /// If the slot was never handed out.
    pub fn at_mut(&mut self, slot: MultiSlot) -> &mut [u8] {
        self.arena_mut(slot.bin).at_mut(slot.slot)
    }

    /// A raw pointer to `slot`, valid while the multi-arena lives (see
    /// [`Arena::slot_ptr`]).
    ///
    /// # Panics
    ///
    /// If the slot was never handed out.
    pub fn slot_ptr(&self, slot: MultiSlot) -> NonNull<u8> {
        self.arena(slot.bin).slot_ptr(slot.slot)
    }

    /// The arena of `bin`, if it was ever used.
    pub fn bin(&self, bin: BinIndex) -> Option<&Arena> {
        self.bins.get(usize::from(bin.0))?.as_ref()
    }

    /// The arena of `bin` mutably, if it was ever used.
    pub fn bin_mut(&mut self, bin: BinIndex) -> Option<&mut Arena> {
        self.bins.get_mut(usize::from(bin.0))?.as_mut()
    }

    /// Every bin that was ever used, smallest first.
    pub fn bins(&self) -> impl Iterator<Item = (BinIndex, &Arena)> {
        self.bins
            .iter()
            .enumerate()
            .filter_map(|(b, arena)| Some((BinIndex(b as u8), arena.as_ref()?)))
    }

    /// Writes every bin back to disk, then the metadata.
    pub fn flush(&self) -> Result<()> {
        for (_, arena) in self.bins() {
            arena.flush()?;
        }
        self.handle.store(&self.meta())
    }

    /// Removes every bin and the metadata from the storage.
    pub fn destroy(mut self) -> Result<()> {
        self.handle.live = false;
        for arena in self.bins.iter_mut().filter_map(Option::take) {
            arena.destroy()?;
        }
        self.handle.storage.remove_meta(&self.handle.ident)
    }

    fn meta(&self) -> MetaWriter {
        let mask = self.bins().fold(0_u32, |m, (b, _)| m | 1 << b.0);
        let mut w = MetaWriter::new(Kind::MultiArena);
        w.u32(self.chunk_size.bytes() as u32).u32(mask);
        w
    }

    fn arena(&self, bin: BinIndex) -> &Arena {
        self.bin(bin)
            .unwrap_or_else(|| panic!("bin {} of `{}` is not in use", bin.0, self.handle.ident))
    }

    fn arena_mut(&mut self, bin: BinIndex) -> &mut Arena {
        let ident = &self.handle.ident;
        self.bins
            .get_mut(usize::from(bin.0))
            .and_then(Option::as_mut)
            .unwrap_or_else(|| panic!("bin {} of `{ident}` is not in use", bin.0))
    }
}

impl Drop for MultiArena {
    fn drop(&mut self) {
        // The bins write their own metadata when they drop, right after.
        let _ = self.handle.store(&self.meta());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes() {
        assert_eq!(BinIndex::for_size(0).unwrap(), BinIndex(0));
        assert_eq!(BinIndex::for_size(16).unwrap(), BinIndex(0));
        assert_eq!(BinIndex::for_size(17).unwrap(), BinIndex(1));
        assert_eq!(BinIndex::for_size(4096).unwrap().slot_size(), 4096);
        assert_eq!(BinIndex::for_size(1 << 30).unwrap(), BinIndex(26));
        assert!(matches!(
            BinIndex::for_size((1 << 30) + 1),
            Err(Error::ItemTooLarge { .. })
        ));
    }

    #[test]
    fn items_of_many_sizes_including_bigger_than_a_chunk() {
        let storage = Storage::heap();
        let mut m = MultiArena::open(&storage, "m", ChunkSize::MIN).unwrap();
        let sizes = [1, 16, 17, 100, 4096, 5000, 20_000];
        let slots: Vec<_> = sizes
            .iter()
            .map(|&size| {
                let slot = m.push(size).unwrap();
                m.at_mut(slot)[..size].fill(size as u8);
                assert_eq!(m.slot_ptr(slot).as_ptr() as usize % 16, 0);
                slot
            })
            .collect();
        for (&size, &slot) in sizes.iter().zip(&slots) {
            assert!(m.at(slot)[..size].iter().all(|&b| b == size as u8));
            assert!(m.at(slot).len() >= size);
        }
        assert_eq!(m.len(), sizes.len());
        assert_eq!(m.bin(BinIndex(0)).unwrap().len(), 2);
        m.free(slots[0]);
        assert_eq!(m.len(), sizes.len() - 1);
        let bins: Vec<_> = m.bins().map(|(b, _)| b.get()).collect();
        assert_eq!(bins, [0, 1, 3, 8, 9, 11]);
        drop(m);

        let m = MultiArena::open(&storage, "m", ChunkSize::MIN).unwrap();
        assert_eq!(m.len(), sizes.len() - 1);
        assert!(
            m.at(slots[6])[..20_000]
                .iter()
                .all(|&b| b == 20_000_u32 as u8)
        );
        m.destroy().unwrap();
        assert_eq!(storage.load_meta("m_bin0").unwrap(), None);
    }

    #[test]
    fn missing_bin_metadata_is_reported() {
        let storage = Storage::heap();
        let mut m = MultiArena::open(&storage, "m", ChunkSize::MIN).unwrap();
        m.push(8).unwrap();
        drop(m);
        storage.remove_meta("m_bin0").unwrap();
        assert!(matches!(
            MultiArena::open(&storage, "m", ChunkSize::MIN),
            Err(Error::CorruptMeta { .. })
        ));
    }

    #[test]
    fn long_idents_are_refused_up_front() {
        let ident = "x".repeat(MAX_IDENT_LEN - 2);
        assert!(matches!(
            MultiArena::open(&Storage::heap(), &ident, ChunkSize::MIN),
            Err(Error::InvalidIdent { .. })
        ));
    }
}
