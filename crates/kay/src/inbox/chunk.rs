//! The chunks an [`Inbox`](super::Inbox) stores its records in, and the
//! record format inside them. This is the inbox's one module that touches raw
//! memory: allocation, pointer arithmetic, and the casts from bytes to header
//! atomics and payload slices.
//!
//! A chunk is a small control block ([`Chunk`]: write cursor, link to the next
//! chunk, capacity) over a zero-initialised block of memory from a
//! [`chunky::Storage`]. The memory holds records back to back, each an 8-byte
//! header word followed by its payload, padded to 8 bytes:
//!
//! ```text
//! | header | payload ... pad | header | payload | header = END | (unused) |
//! 0        8                 24       32        40              48        cap
//! ```
//!
//! Header words ([`Slot`]): `0` = reserved but not yet written; `len << 2 | 1`
//! = a published record of `len` bytes; `len << 2 | 2` = an abandoned record
//! (its writer panicked; skipped by the reader); `3` = end of chunk, continue
//! in the next one.
//!
//! The physical memory is a chunky chunk of at least [`ChunkSize::MIN`]; the
//! logical capacity `cap` may be smaller (loom tests use 64 bytes so that
//! chunk transitions are explored).
//!
//! Under `--cfg kay_loom`, header words are loom atomics kept in a side table
//! (loom cannot make an atomic out of raw bytes), and each record has a loom
//! `UnsafeCell<()>` marking payload accesses, so loom reports a payload read
//! that is not ordered after its write.

use std::ptr::{self, NonNull};

use chunky::{ChunkIndex, ChunkSize, Storage};

use crate::sync::{AtomicPtr, AtomicU64, AtomicUsize, Ordering::Relaxed};
#[cfg(kay_loom)]
use crate::sync::{Ordering, UnsafeCell};

/// Bytes of a record header; also the alignment of every record.
pub(super) const HEADER: usize = 8;

/// The largest record payload: a record with its header must fit the largest
/// chunk chunky hands out (1 GiB).
pub const MAX_RECORD_SIZE: usize = ChunkSize::MAX.bytes() - HEADER;

/// The ident under which an inbox's [`ChunkSource`] names its chunks.
const IDENT: &str = "inbox";

const TAG_MASK: u64 = 0b11;
const TAG_RECORD: u64 = 0b01;
const TAG_ABANDONED: u64 = 0b10;
/// The header word that sends the reader on to the next chunk.
pub(super) const END_OF_CHUNK: u64 = 0b11;

/// The bytes a record of `size` payload bytes takes: header plus payload
/// rounded up to 8. `size` must be at most [`MAX_RECORD_SIZE`].
#[inline(always)]
pub(super) const fn record_size(size: usize) -> usize {
    HEADER + ((size + (HEADER - 1)) & !(HEADER - 1))
}

/// Bits of a header word that hold a record's length (after the 2 tag bits).
const LEN_MASK: u64 = (1 << 30) - 1;
/// Where a record's user tag sits in its header word.
const USER_TAG_SHIFT: u32 = 48;

/// The header word of a published record of `len` bytes carrying `tag`.
#[inline(always)]
pub(super) const fn record_word(len: usize, tag: u16) -> u64 {
    (tag as u64) << USER_TAG_SHIFT | (len as u64) << 2 | TAG_RECORD
}

/// The header word of a record whose writer panicked.
#[inline(always)]
pub(super) const fn abandoned_word(len: usize) -> u64 {
    (len as u64) << 2 | TAG_ABANDONED
}

/// What a header word says about its position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    /// Reserved by a writer that has not published yet (or, at or past the
    /// write cursor, not reserved at all).
    Unwritten,
    /// A published record of this many payload bytes, with its user tag.
    Record(usize, u16),
    /// A record of this many bytes whose writer panicked: skip it.
    Abandoned(usize),
    /// Nothing more in this chunk: continue in the next one.
    EndOfChunk,
}

impl Slot {
    /// Decodes a header word.
    #[inline(always)]
    pub(super) fn decode(word: u64) -> Slot {
        let len = ((word >> 2) & LEN_MASK) as usize;
        match word & TAG_MASK {
            TAG_RECORD => Slot::Record(len, (word >> USER_TAG_SHIFT) as u16),
            TAG_ABANDONED => Slot::Abandoned(len),
            END_OF_CHUNK => Slot::EndOfChunk,
            _ => Slot::Unwritten,
        }
    }
}

/// One chunk of an inbox: control block plus record memory.
///
/// Shared between threads through raw pointers; see the protocol in the
/// [module docs](super). `cap`, `data` and the memory's identity never change
/// while the chunk lives; the memory's bytes are written only by the writer
/// that reserved them, and by [`Chunk::reset`] when no one else accesses the
/// chunk.
#[repr(align(128))] // the cursor is hammered by writers: keep it off other data's lines
pub(super) struct Chunk {
    /// Write reservation: the offset of the next free byte. Grows past `cap`
    /// when writers find the chunk full.
    pub(super) cursor: AtomicUsize,
    /// The next chunk, null until a writer links one (set once per use).
    pub(super) next: AtomicPtr<Chunk>,
    cap: usize,
    data: NonNull<u8>,
    index: ChunkIndex,
    memory: chunky::Chunk,
    #[cfg(kay_loom)]
    headers: Box<[AtomicU64]>,
    #[cfg(kay_loom)]
    payloads: Box<[UnsafeCell<()>]>,
}

impl Chunk {
    /// The logical capacity in bytes (a multiple of 8).
    #[inline(always)]
    pub(super) fn cap(&self) -> usize {
        self.cap
    }

    /// The address of byte 0 of the record memory (for position checks only,
    /// never dereferenced).
    #[inline(always)]
    pub(super) fn data_addr(&self) -> usize {
        self.data.as_ptr().addr()
    }

    /// The end of what writers have reserved, capped at the capacity.
    #[inline(always)]
    pub(super) fn reserved_end(&self) -> usize {
        self.cursor.load(Relaxed).min(self.cap)
    }

    /// The header word of the record at `start`.
    ///
    /// # Safety
    ///
    /// `start` is a multiple of 8 and below `cap` (so the word is in bounds).
    #[inline(always)]
    pub(super) unsafe fn header(&self, start: usize) -> &AtomicU64 {
        debug_assert!(start.is_multiple_of(HEADER) && start < self.cap);
        #[cfg(not(kay_loom))]
        {
            // SAFETY: in bounds (caller) and 8-aligned (data is page-aligned,
            // start a multiple of 8); header words are only ever accessed
            // atomically while other threads may touch them (the payload
            // slices never cover them; `reset` runs with exclusive access).
            unsafe { AtomicU64::from_ptr(self.data.as_ptr().add(start).cast()) }
        }
        #[cfg(kay_loom)]
        {
            &self.headers[start / HEADER]
        }
    }

    /// The `len` payload bytes of the record at `start`, for its writer.
    ///
    /// # Safety
    ///
    /// `[start, start + record_size(len))` lies within `cap` and was reserved
    /// by the caller through `cursor` (so no one else accesses these bytes
    /// until the header is published), and the returned slice is dropped
    /// before the header is published.
    #[inline(always)]
    #[allow(
        clippy::mut_from_ref,
        reason = "exclusivity comes from the reservation"
    )]
    pub(super) unsafe fn payload_mut(&self, start: usize, len: usize) -> &mut [u8] {
        debug_assert!(start + record_size(len) <= self.cap);
        #[cfg(kay_loom)]
        self.payloads[start / HEADER].with_mut(|_| ());
        // SAFETY: in bounds and exclusively ours (caller); the memory is
        // initialised (zeroed by allocation or `reset`) and 8-aligned.
        unsafe { std::slice::from_raw_parts_mut(self.data.as_ptr().add(start + HEADER), len) }
    }

    /// The `len` payload bytes of the published record at `start`.
    ///
    /// # Safety
    ///
    /// The caller loaded this record's header with `Acquire` and found it
    /// published with length `len`; the slice is dropped before the chunk is
    /// reset or freed.
    #[inline(always)]
    pub(super) unsafe fn payload(&self, start: usize, len: usize) -> &[u8] {
        debug_assert!(start + record_size(len) <= self.cap);
        #[cfg(kay_loom)]
        self.payloads[start / HEADER].with(|_| ());
        // SAFETY: in bounds (the writer reserved it within cap); the writer's
        // writes happen before the published header the caller acquired, and
        // nobody writes these bytes again until `reset`.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr().add(start + HEADER), len) }
    }

    /// Makes the chunk as new: zeroes the bytes writers used (if `zero`;
    /// see `Inbox::for_message_cycles`), rewinds the cursor and unlinks the
    /// next chunk.
    ///
    /// # Safety
    ///
    /// No other thread accesses the chunk, and no slice from
    /// [`payload`](Chunk::payload) is alive.
    pub(super) unsafe fn reset(&self, zero: bool) {
        let used = self.reserved_end();
        if zero {
            // SAFETY: `used <= cap` bytes of our memory; access is exclusive
            // (caller), so plain writes cannot race with the atomic header
            // accesses of earlier pushes and drains.
            unsafe { ptr::write_bytes(self.data.as_ptr(), 0, used) };
            // Under loom the headers and the payloads' access tracking live
            // beside the bytes; unzeroed chunks keep their stale headers there
            // too, so the model sees what the real memory would hold.
            #[cfg(kay_loom)]
            for word in 0..used / HEADER {
                self.headers[word].store(0, Ordering::Relaxed);
                self.payloads[word].with_mut(|_| ());
            }
        }
        self.cursor.store(0, Relaxed);
        self.next.store(ptr::null_mut(), Relaxed);
    }
}

/// Where an inbox's chunks come from: a private [`chunky::Storage::heap`].
pub(super) struct ChunkSource {
    storage: Storage,
    chunk_size: usize,
    /// Names new chunks. Deliberately std even under loom: it takes part in
    /// no protocol, and keeping it out of the model keeps the model small.
    next_index: std::sync::atomic::AtomicU32,
    /// Chunks alive, for tests and statistics.
    live: std::sync::atomic::AtomicUsize,
}

impl ChunkSource {
    /// A source of chunks of `chunk_size` bytes (a power of two, at least
    /// 64, at most [`ChunkSize::MAX`]).
    pub(super) fn new(chunk_size: usize) -> ChunkSource {
        ChunkSource {
            storage: Storage::heap(),
            chunk_size,
            next_index: Default::default(),
            live: Default::default(),
        }
    }

    /// The default chunk capacity.
    pub(super) fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// The number of chunks alive.
    pub(super) fn live(&self) -> usize {
        self.live.load(Relaxed)
    }

    /// A fresh, zeroed, unlinked chunk with room for a record of `need` bytes
    /// (from [`record_size`]): of the default size, or the next power of two
    /// above `need` if that is bigger.
    ///
    /// # Panics
    ///
    /// If the memory cannot be allocated.
    pub(super) fn allocate(&self, need: usize) -> NonNull<Chunk> {
        let cap = need.next_power_of_two().max(self.chunk_size);
        let size = ChunkSize::MIN
            .at_least(cap)
            .unwrap_or_else(|err| panic!("inbox: no chunk of {cap} bytes: {err}"));
        let (index, memory) = loop {
            let index = ChunkIndex(self.next_index.fetch_add(1, Relaxed));
            match self.storage.create_chunk(IDENT, index, size) {
                Ok(memory) => break (index, memory),
                // The index wrapped around onto a chunk still in use.
                Err(chunky::Error::InUse { .. }) => continue,
                Err(err) => panic!("inbox: cannot allocate a chunk of {cap} bytes: {err}"),
            }
        };
        self.live.fetch_add(1, Relaxed);
        let chunk = Box::new(Chunk {
            cursor: AtomicUsize::new(0),
            next: AtomicPtr::new(ptr::null_mut()),
            cap,
            data: memory.ptr_at(0),
            index,
            memory,
            #[cfg(kay_loom)]
            headers: (0..cap / HEADER).map(|_| AtomicU64::new(0)).collect(),
            #[cfg(kay_loom)]
            payloads: (0..cap / HEADER).map(|_| UnsafeCell::new(())).collect(),
        });
        debug_assert!(chunk.memory.len() >= cap);
        NonNull::from(Box::leak(chunk))
    }

    /// Frees a chunk from [`allocate`](ChunkSource::allocate).
    ///
    /// # Safety
    ///
    /// `chunk` came from this source's `allocate`, is not freed yet, and no
    /// thread holds or will use a pointer to it (or a slice into it).
    pub(super) unsafe fn free(&self, chunk: NonNull<Chunk>) {
        // SAFETY: allocated as a leaked Box in `allocate`; unused (caller).
        let chunk = unsafe { Box::from_raw(chunk.as_ptr()) };
        let index = chunk.index;
        drop(chunk);
        self.live.fetch_sub(1, Relaxed);
        let removed = self.storage.remove_chunk(IDENT, index);
        debug_assert!(removed.is_ok(), "heap storage cannot fail to remove");
    }
}

#[cfg(all(test, not(kay_loom)))]
mod tests {
    use super::*;

    #[test]
    fn header_words_round_trip() {
        assert_eq!(Slot::decode(0), Slot::Unwritten);
        assert_eq!(Slot::decode(END_OF_CHUNK), Slot::EndOfChunk);
        for len in [0, 1, 7, 8, 300, MAX_RECORD_SIZE] {
            assert_eq!(Slot::decode(record_word(len, 7)), Slot::Record(len, 7));
            assert_eq!(Slot::decode(abandoned_word(len)), Slot::Abandoned(len));
        }
    }

    #[test]
    fn record_sizes_are_padded_to_8() {
        assert_eq!(record_size(0), 8);
        assert_eq!(record_size(1), 16);
        assert_eq!(record_size(8), 16);
        assert_eq!(record_size(9), 24);
        assert_eq!(record_size(MAX_RECORD_SIZE), ChunkSize::MAX.bytes());
    }

    #[test]
    fn chunks_are_sized_for_their_record_and_reset_to_zero() {
        let source = ChunkSource::new(64);
        let small = source.allocate(16);
        let big = source.allocate(5000);
        // SAFETY: both freshly allocated and only used here.
        unsafe {
            assert_eq!(small.as_ref().cap(), 64);
            assert_eq!(big.as_ref().cap(), 8192);
            let chunk = small.as_ref();
            chunk.cursor.store(24, Relaxed);
            chunk.payload_mut(0, 12).fill(7);
            chunk.header(0).store(record_word(12, 0), Relaxed);
            assert_eq!(chunk.payload(0, 12), &[7; 12]);
            chunk.reset(false);
            assert_eq!(chunk.payload(0, 12), &[7; 12], "kept without zeroing");
            assert_eq!(chunk.cursor.load(Relaxed), 0);
            chunk.cursor.store(24, Relaxed);
            chunk.reset(true);
            assert_eq!(chunk.header(0).load(Relaxed), 0);
            assert_eq!(chunk.payload_mut(0, 16), &[0; 16]);
            assert_eq!(chunk.cursor.load(Relaxed), 0);
            assert_eq!(source.live(), 2);
            source.free(small);
            source.free(big);
        }
        assert_eq!(source.live(), 0);
    }
}
