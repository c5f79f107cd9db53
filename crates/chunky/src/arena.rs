//! [`Arena`]: fixed-size slots in chunks, with a free list.
//!
//! Slot `i` lives in chunk `i / slots_per_chunk` at byte
//! `(i % slots_per_chunk) * slot_size`. Chunks are allocated as the arena
//! grows and never move, so [`Arena::slot_ptr`] stays valid while the arena
//! lives.
//!
//! Freeing the last slot shrinks the arena; freeing any other slot pushes it
//! onto an intrusive free list: the first 4 bytes of a free slot hold the
//! index of the next free slot (little-endian), and the metadata holds the
//! head. [`Arena::push`] pops the free list first. A runtime that wants its
//! slots dense (for linear scans) moves the last live slot into a hole and
//! then frees the last slot, so the free list stays empty.

use std::ptr::NonNull;

use crate::error::{Error, Result};
use crate::meta::{Handle, Kind, MetaReader, MetaWriter};
use crate::storage::{Chunk, ChunkIndex, ChunkSize, Storage};

/// The index of a slot in an [`Arena`].
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotIndex(u32);

impl SlotIndex {
    /// The slot with index `index`.
    pub const fn new(index: u32) -> SlotIndex {
        SlotIndex(index)
    }

    /// The index as a `u32`.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The index as a `usize`, for indexing.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Marks the end of the free list; also one past the largest slot index.
const NO_SLOT: u32 = u32::MAX;

/// Fixed-size slots in chunks from a [`Storage`], persisted under an ident.
///
/// Slot size is rounded up to a multiple of 8 (at least 8), so slots are
/// 8-byte aligned; a slot size that is a power of two `p` gives `p`-aligned
/// slots (up to 4096). The bytes of a new slot are unspecified (zero in a
/// fresh chunk, the old contents in a reused one) but always initialised.
///
/// With a persistent storage the arena reopens from its ident with the same
/// slots, free list included; the metadata is written by [`Arena::flush`] and
/// on drop.
#[derive(Debug)]
pub struct Arena {
    handle: Handle,
    slot_size: usize,
    chunk_size: ChunkSize,
    slots_per_chunk: u32,
    /// `log2(slots_per_chunk)` when it is a power of two (the common case of
    /// power-of-two slot sizes), so locating a slot needs no division.
    slots_per_chunk_shift: Option<u32>,
    chunks: Vec<Chunk>,
    /// One past the highest slot handed out.
    end: u32,
    free_head: u32,
    free_len: u32,
}

impl Arena {
    /// Opens the arena `ident` in `storage`, creating it empty if it does not
    /// exist. A reopened arena must be opened with the `slot_size` (after
    /// rounding) and `chunk_size` it was created with.
    pub fn open(
        storage: &Storage,
        ident: &str,
        slot_size: usize,
        chunk_size: ChunkSize,
    ) -> Result<Arena> {
        Self::open_inner(storage, ident, slot_size, chunk_size, false)
    }

    /// As [`Arena::open`]; with `must_exist`, missing metadata is an error.
    pub(crate) fn open_inner(
        storage: &Storage,
        ident: &str,
        slot_size: usize,
        chunk_size: ChunkSize,
        must_exist: bool,
    ) -> Result<Arena> {
        let slot_size = slot_size.max(8).next_multiple_of(8);
        if slot_size > chunk_size.bytes() {
            return Err(Error::ItemTooLarge {
                size: slot_size as u64,
                max: chunk_size.bytes() as u64,
            });
        }
        let (handle, meta) = Handle::open(storage, ident)?;
        let mut arena = Arena {
            handle,
            slot_size,
            chunk_size,
            slots_per_chunk: (chunk_size.bytes() / slot_size) as u32,
            slots_per_chunk_shift: {
                let per_chunk = (chunk_size.bytes() / slot_size) as u32;
                per_chunk
                    .is_power_of_two()
                    .then(|| per_chunk.trailing_zeros())
            },
            chunks: Vec::new(),
            end: 0,
            free_head: NO_SLOT,
            free_len: 0,
        };
        let restored = match meta {
            Some(meta) => arena.restore(&meta),
            None if must_exist => Err(Error::corrupt_meta(ident, "the metadata file is missing")),
            None => Ok(()),
        };
        if let Err(e) = restored {
            // Leave the stored files as they are.
            arena.handle.live = false;
            return Err(e);
        }
        Ok(arena)
    }

    fn restore(&mut self, meta: &[u8]) -> Result<()> {
        let ident = self.handle.ident.clone();
        let mut r = MetaReader::new(&ident, meta, Kind::Arena)?;
        r.chunk_size(self.chunk_size)?;
        let slot_size = r.u32()?;
        r.expect("slot size", u64::from(slot_size), self.slot_size as u64)?;
        self.end = r.u32()?;
        self.free_head = r.u32()?;
        self.free_len = r.u32()?;
        let chunk_count = r.u32()?;
        r.finish()?;

        let capacity = u64::from(chunk_count) * u64::from(self.slots_per_chunk);
        if u64::from(self.end) > capacity || self.end == NO_SLOT {
            return Err(Error::corrupt_meta(
                &ident,
                format!("{} slots do not fit {chunk_count} chunks", self.end),
            ));
        }
        for index in 0..chunk_count {
            let chunk = self.handle.storage.open_chunk(&ident, ChunkIndex(index))?;
            if chunk.len() != self.chunk_size.bytes() {
                return Err(Error::corrupt_data(
                    &ident,
                    format!(
                        "chunk {index} has {} bytes, expected {}",
                        chunk.len(),
                        self.chunk_size.bytes()
                    ),
                ));
            }
            self.chunks.push(chunk);
        }
        self.check_free_list()
    }

    /// Walks the free list: exactly `free_len` distinct in-range slots. A
    /// list that ends in `NO_SLOT` after `free_len` steps has no repeats;
    /// `free_len` is bounded by the slots first, so the walk is linear in
    /// the arena's size whatever the metadata claims.
    fn check_free_list(&self) -> Result<()> {
        if self.free_len > self.end {
            return Err(Error::corrupt_meta(
                &self.handle.ident,
                format!(
                    "{} free slots recorded among {} slots",
                    self.free_len, self.end
                ),
            ));
        }
        let mut at = self.free_head;
        for _ in 0..self.free_len {
            if at >= self.end {
                return Err(Error::corrupt_data(
                    &self.handle.ident,
                    format!("free list reaches slot {at}, beyond the {} slots", self.end),
                ));
            }
            at = self.link(at);
        }
        if at != NO_SLOT {
            return Err(Error::corrupt_data(
                &self.handle.ident,
                format!(
                    "free list is longer than its recorded {} slots",
                    self.free_len
                ),
            ));
        }
        Ok(())
    }

    /// The ident the arena is stored under.
    pub fn ident(&self) -> &str {
        &self.handle.ident
    }

    /// The size of every slot in bytes (a multiple of 8).
    #[inline]
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// The size of the arena's chunks.
    pub fn chunk_size(&self) -> ChunkSize {
        self.chunk_size
    }

    /// The number of live slots.
    pub fn len(&self) -> usize {
        (self.end - self.free_len) as usize
    }

    /// Whether no slot is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One past the highest slot index handed out: every slot below is live
    /// or on the free list. Equals [`Arena::len`] when the free list is
    /// empty, i.e. when the arena is dense.
    #[inline]
    pub fn slot_count(&self) -> usize {
        self.end as usize
    }

    /// The number of slots on the free list.
    pub fn free_len(&self) -> usize {
        self.free_len as usize
    }

    /// All slot indices below [`Arena::slot_count`], in order; in a dense
    /// arena these are exactly the live slots.
    pub fn indices(&self) -> impl ExactSizeIterator<Item = SlotIndex> + use<> {
        (0..self.end).map(SlotIndex)
    }

    /// Hands out a slot: the most recently freed one, else a new one at the
    /// end (allocating a chunk when the last one is full).
    pub fn push(&mut self) -> Result<SlotIndex> {
        if self.free_head != NO_SLOT {
            let index = self.free_head;
            let next = self.link(index);
            self.free_len -= 1;
            if self.free_len == 0 || next >= self.end {
                // `next >= end` means a freed slot was written to; its link
                // is lost, and so are the slots behind it (leaked, not reused).
                self.free_head = NO_SLOT;
                self.free_len = 0;
            } else {
                self.free_head = next;
            }
            return Ok(SlotIndex(index));
        }
        if self.end == NO_SLOT {
            return Err(Error::CapacityExceeded {
                ident: self.handle.ident.clone(),
                what: "slots",
            });
        }
        if self.end as usize == self.chunks.len() * self.slots_per_chunk as usize {
            let index = ChunkIndex(self.chunks.len() as u32);
            let chunk =
                self.handle
                    .storage
                    .create_chunk(&self.handle.ident, index, self.chunk_size)?;
            self.chunks.push(chunk);
        }
        self.end += 1;
        Ok(SlotIndex(self.end - 1))
    }

    /// Gives `index` back. Freeing the last slot shrinks the arena; any other
    /// slot goes onto the free list, and its first 4 bytes are overwritten.
    ///
    /// Freeing a slot twice, or writing to a freed slot, is a logic error: a
    /// slot may then be handed out twice or leaked, but memory stays safe.
    ///
    /// # Panics
    ///
    /// If `index` is not below [`Arena::slot_count`].
    pub fn free(&mut self, index: SlotIndex) {
        self.check(index);
        if index.0 == self.end - 1 {
            self.end -= 1;
        } else {
            let next = self.free_head;
            self.at_mut(index)[..4].copy_from_slice(&next.to_le_bytes());
            self.free_head = index.0;
            self.free_len += 1;
        }
    }

    /// The bytes of slot `index`, or `None` if it is not below
    /// [`Arena::slot_count`].
    pub fn get(&self, index: SlotIndex) -> Option<&[u8]> {
        (index.0 < self.end).then(|| self.at(index))
    }

    /// The bytes of slot `index` mutably, or `None` if it is not below
    /// [`Arena::slot_count`].
    pub fn get_mut(&mut self, index: SlotIndex) -> Option<&mut [u8]> {
        (index.0 < self.end).then(|| self.at_mut(index))
    }

    /// The bytes of slot `index`.
    ///
    /// # Panics
    ///
    /// If `index` is not below [`Arena::slot_count`].
    pub fn at(&self, index: SlotIndex) -> &[u8] {
        self.check(index);
        let (chunk, offset) = self.locate(index);
        self.chunks[chunk].bytes(offset..offset + self.slot_size)
    }

    /// The bytes of slot `index`, mutably.
    ///
    /// # Panics
    ///
    /// If `index` is not below [`Arena::slot_count`].
    pub fn at_mut(&mut self, index: SlotIndex) -> &mut [u8] {
        self.check(index);
        let (chunk, offset) = self.locate(index);
        self.chunks[chunk].bytes_mut(offset..offset + self.slot_size)
    }

    /// A raw pointer to slot `index`, valid while the arena lives (slots
    /// never move). Reading or writing through it is the caller's
    /// responsibility; it must not overlap a reference from
    /// [`Arena::at`]/[`Arena::at_mut`] in use at the same time.
    ///
    /// # Panics
    ///
    /// If `index` is not below [`Arena::slot_count`].
    #[inline]
    pub fn slot_ptr(&self, index: SlotIndex) -> NonNull<u8> {
        self.check(index);
        let (chunk, offset) = self.locate(index);
        self.chunks[chunk].ptr_at(offset)
    }

    /// How many slots one chunk holds.
    pub fn slots_per_chunk(&self) -> usize {
        self.slots_per_chunk as usize
    }

    /// The run of consecutive slots that starts at `index` and lies in one
    /// chunk, cut off at `end` (at most [`Arena::slot_count`]): a pointer to
    /// slot `index` and the number of slots in the run. Slot `index + k` of the
    /// run is at `ptr + k * slot_size`. Used for dense scans without a
    /// division per slot.
    ///
    /// # Panics
    ///
    /// If `index >= end` or `end` is beyond [`Arena::slot_count`].
    #[inline]
    pub fn run_at(&self, index: SlotIndex, end: usize) -> (NonNull<u8>, usize) {
        assert!(
            end <= self.end as usize && (index.0 as usize) < end,
            "run {}..{end} out of bounds: `{}` has {} slots",
            index.0,
            self.handle.ident,
            self.end
        );
        let in_chunk = self.slots_per_chunk - index.0 % self.slots_per_chunk;
        let len = (in_chunk as usize).min(end - index.0 as usize);
        (self.slot_ptr(index), len)
    }

    /// The bytes of every slot below [`Arena::slot_count`], as one slice
    /// per chunk in slot order (freed slots included): what a snapshot of
    /// a dense arena copies, without a copy into one buffer.
    pub fn used_runs(&self) -> impl DoubleEndedIterator<Item = &[u8]> {
        let used = self.used_bytes();
        (self.chunks.iter().enumerate())
            .filter_map(move |(k, chunk)| used(k).map(|bytes| chunk.bytes(0..bytes)))
    }

    /// The bytes of chunk `k` below [`Arena::slot_count`] (`None` if none).
    fn used_bytes(&self) -> impl Fn(usize) -> Option<usize> + use<> {
        let per_chunk = self.slots_per_chunk as usize;
        let (end, slot_size) = (self.end as usize, self.slot_size);
        move |k| {
            let slots = end.saturating_sub(k * per_chunk).min(per_chunk);
            (slots > 0).then_some(slots * slot_size)
        }
    }

    /// The bytes of every slot below [`Arena::slot_count`] mutably, one
    /// slice per chunk in slot order (see [`used_runs`](Self::used_runs)).
    pub fn used_runs_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut [u8]> {
        let used = self.used_bytes();
        (self.chunks.iter_mut().enumerate())
            .filter_map(move |(k, chunk)| used(k).map(|bytes| chunk.bytes_mut(0..bytes)))
    }

    /// Appends `chunk`, made elsewhere (e.g. mapped from a snapshot by
    /// [`FileReader::map_into`](crate::FileReader::map_into)), as the
    /// arena's next chunk, its first `slots` slots handed out (their bytes
    /// are the chunk's). The arena's chunks so far must be full, and
    /// `chunk` must be of the arena's chunk size.
    ///
    /// The chunk is not part of the arena's storage: an arena with adopted
    /// chunks cannot be reopened from its storage (it reports the chunk
    /// missing), so adopt into arenas that are not meant to be reopened.
    pub fn adopt(&mut self, chunk: Chunk, slots: usize) -> Result<()> {
        let full = self.chunks.len() as u64 * u64::from(self.slots_per_chunk);
        let fits = chunk.len() == self.chunk_size.bytes()
            && slots <= self.slots_per_chunk as usize
            && u64::from(self.end) == full
            && full + (slots as u64) < u64::from(NO_SLOT);
        if !fits {
            return Err(Error::corrupt_data(
                &self.handle.ident,
                format!(
                    "cannot adopt a chunk of {} bytes with {slots} slots after {} slots in {} chunks",
                    chunk.len(),
                    self.end,
                    self.chunks.len()
                ),
            ));
        }
        self.chunks.push(chunk);
        self.end += slots as u32;
        Ok(())
    }

    /// Copies the chunks mapped from files (adopted from
    /// [`FileReader::map_into`](crate::FileReader::map_into)) into memory
    /// of the process's own, in place (see
    /// [`privatize`](crate::storage::privatize)): before writing much of
    /// them. Returns the bytes copied.
    pub fn privatize(&mut self) -> Result<usize> {
        crate::storage::privatize(&mut self.chunks)
            .map_err(|e| Error::io(format!("(memory of {})", self.handle.ident), e))
    }

    /// Writes the chunks back to disk, then the metadata.
    pub fn flush(&self) -> Result<()> {
        for chunk in &self.chunks {
            chunk
                .flush()
                .map_err(|e| Error::io(&self.handle.ident, e))?;
        }
        self.handle.store(&self.meta())
    }

    /// Removes the arena's chunks and metadata from the storage.
    pub fn destroy(mut self) -> Result<()> {
        self.handle.live = false;
        let count = self.chunks.len() as u32;
        self.chunks.clear();
        for index in 0..count {
            (self.handle.storage).remove_chunk(&self.handle.ident, ChunkIndex(index))?;
        }
        self.handle.storage.remove_meta(&self.handle.ident)
    }

    fn meta(&self) -> MetaWriter {
        let mut w = MetaWriter::new(Kind::Arena);
        w.u32(self.chunk_size.bytes() as u32)
            .u32(self.slot_size as u32)
            .u32(self.end)
            .u32(self.free_head)
            .u32(self.free_len)
            .u32(self.chunks.len() as u32);
        w
    }

    #[inline]
    fn check(&self, index: SlotIndex) {
        if index.0 >= self.end {
            self.out_of_bounds(index);
        }
    }

    #[cold]
    #[inline(never)]
    fn out_of_bounds(&self, index: SlotIndex) -> ! {
        panic!(
            "slot {} out of bounds: `{}` has {} slots",
            index.0, self.handle.ident, self.end
        );
    }

    #[inline]
    fn locate(&self, index: SlotIndex) -> (usize, usize) {
        let (chunk, slot) = match self.slots_per_chunk_shift {
            Some(shift) => (index.0 >> shift, index.0 & (self.slots_per_chunk - 1)),
            None => (
                index.0 / self.slots_per_chunk,
                index.0 % self.slots_per_chunk,
            ),
        };
        (chunk as usize, slot as usize * self.slot_size)
    }

    /// The free-list link stored in free slot `index`.
    fn link(&self, index: u32) -> u32 {
        let bytes = self.at(SlotIndex(index));
        u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // Errors cannot be reported here; `flush` reports them.
        let _ = self.handle.store(&self.meta());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arena(slot: usize) -> Arena {
        Arena::open(&Storage::heap(), "a", slot, ChunkSize::MIN).unwrap()
    }

    #[test]
    fn slot_sizes_round_up() {
        assert_eq!(arena(1).slot_size(), 8);
        assert_eq!(arena(9).slot_size(), 16);
        assert_eq!(arena(4096).slot_size(), 4096);
        assert!(matches!(
            Arena::open(&Storage::heap(), "a", 4097, ChunkSize::MIN),
            Err(Error::ItemTooLarge { .. })
        ));
    }

    #[test]
    fn push_spans_chunks_and_slots_stay_put() {
        let mut a = arena(24);
        let per_chunk = 4096 / 24;
        let first = a.push().unwrap();
        let ptr = a.slot_ptr(first);
        for i in 1..(per_chunk * 3) as u32 {
            let s = a.push().unwrap();
            assert_eq!(s.get(), i);
            a.at_mut(s)[..4].copy_from_slice(&i.to_le_bytes());
        }
        assert_eq!(a.slot_ptr(first), ptr);
        assert_eq!(a.chunks.len(), 3);
        for i in 1..(per_chunk * 3) as u32 {
            assert_eq!(a.at(SlotIndex(i))[..4], i.to_le_bytes());
            assert_eq!(a.slot_ptr(SlotIndex(i)).as_ptr() as usize % 8, 0);
        }
    }

    #[test]
    fn free_list_reuses_most_recent_and_last_slot_shrinks() {
        let mut a = arena(8);
        let s: Vec<_> = (0..5).map(|_| a.push().unwrap()).collect();
        a.free(s[1]);
        a.free(s[3]);
        assert_eq!((a.len(), a.free_len(), a.slot_count()), (3, 2, 5));
        a.free(s[4]);
        assert_eq!((a.len(), a.slot_count()), (2, 4));
        assert_eq!(a.push().unwrap(), s[3]);
        assert_eq!(a.push().unwrap(), s[1]);
        assert_eq!(a.push().unwrap(), s[4]);
        assert_eq!(a.free_len(), 0);
        assert_eq!(a.indices().len(), 5);
    }

    #[test]
    fn scribbled_free_slot_leaks_instead_of_breaking() {
        let mut a = arena(8);
        let s: Vec<_> = (0..4).map(|_| a.push().unwrap()).collect();
        a.free(s[0]);
        a.free(s[1]);
        a.at_mut(s[1]).fill(0xff);
        assert_eq!(a.push().unwrap(), s[1]);
        assert_eq!(a.free_len(), 0);
        assert_eq!(a.push().unwrap(), SlotIndex(4));
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn at_out_of_bounds_panics() {
        arena(8).at(SlotIndex(0));
    }

    #[test]
    fn reopen_from_heap_and_destroy() {
        let storage = Storage::heap();
        let mut a = Arena::open(&storage, "a", 16, ChunkSize::MIN).unwrap();
        let s = a.push().unwrap();
        a.at_mut(s).copy_from_slice(&[7; 16]);
        a.push().unwrap();
        a.push().unwrap();
        a.free(SlotIndex(1));
        assert!(matches!(
            Arena::open(&storage, "a", 16, ChunkSize::MIN),
            Err(Error::InUse { .. })
        ));
        drop(a);
        let a = Arena::open(&storage, "a", 16, ChunkSize::MIN).unwrap();
        assert_eq!((a.len(), a.free_len()), (2, 1));
        assert_eq!(a.at(s), &[7; 16]);
        // Idents are per storage.
        Arena::open(&Storage::heap(), "a", 16, ChunkSize::MIN).unwrap();
        Arena::open(&storage, "b", 16, ChunkSize::MIN).unwrap();
        a.destroy().unwrap();
        let a = Arena::open(&storage, "a", 16, ChunkSize::MIN).unwrap();
        assert_eq!(a.slot_count(), 0);
    }

    #[test]
    fn reopen_with_other_settings_is_refused() {
        let storage = Storage::heap();
        drop(Arena::open(&storage, "a", 16, ChunkSize::MIN).unwrap());
        assert!(matches!(
            Arena::open(&storage, "a", 32, ChunkSize::MIN),
            Err(Error::LayoutMismatch {
                what: "slot size",
                ..
            })
        ));
        assert!(matches!(
            Arena::open(&storage, "a", 16, ChunkSize::DEFAULT),
            Err(Error::LayoutMismatch {
                what: "chunk size",
                ..
            })
        ));
        // The failed opens did not overwrite the metadata.
        Arena::open(&storage, "a", 16, ChunkSize::MIN).unwrap();
    }
}
