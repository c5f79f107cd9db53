//! The inbox of an actor class: an unbounded, multi-writer, single-reader,
//! lock-free queue of variable-size byte records, stored back to back in
//! chunks of memory.
//!
//! Writers are actor handlers on any thread ([`Inbox::push_with`], `&self`).
//! The reader is the class's owner, which [drains](Inbox::drain) the inbox
//! once per message cycle: it gets every record published before the drain
//! began; records pushed meanwhile (also by its own callback) wait for the
//! next drain. Records of one sender keep their order. Between cycles, when
//! nothing pushes or drains, [`Inbox::reclaim`] recycles finished chunks.
//!
//! # Layout
//!
//! A singly linked list of chunks (the `chunk` module has the record format):
//!
//! ```text
//!  oldest ──> ... ──> reader's chunk ──> ... ──> tail ──> pooled ──> pooled ──> null
//!  (read, awaiting       (read position:              (writers reserve     (empty, zeroed,
//!   reclaim)              chunk + offset)               here)                ready for writers)
//! ```
//!
//! Every chunk before `tail` is *closed*: its cursor is past its capacity, so
//! every byte below the capacity belongs to some reservation, and nothing new
//! is ever reserved in it.
//!
//! # Protocol
//!
//! **Push** (any thread, `&self`):
//!
//! 1. `c = tail.load(Acquire)` (Acquire: see the chunk's initialisation).
//! 2. `start = c.cursor.fetch_add(size, Relaxed)`, with `size` = 8-byte
//!    header + payload rounded up to 8. The cursor's modification order
//!    hands every writer a disjoint range.
//! 3. *Fast path*, `start + size <= c.cap`: write the payload into the
//!    (zeroed) range, then `header.store(len << 2 | 1, Release)`. Done: one
//!    RMW and one Release store.
//! 4. *Slow path*, the record does not fit: `c` is now closed. If `start <
//!    c.cap`, store `END_OF_CHUNK` in the header at `start` (that range is
//!    ours, and `start + 8 <= cap` since both are multiples of 8).
//! 5. `n = c.next.load(Acquire)`; if null, allocate a chunk with room for the
//!    record (or reuse our spare) and `CAS(c.next, null -> new, AcqRel)`; if
//!    another writer won, keep ours as spare and use the winner.
//! 6. `CAS(tail, c -> n, AcqRel)`. Whether it succeeds or fails (someone
//!    else advanced it), `tail` is now at or past `n`; continue with the
//!    value it holds and go to 2. Free the spare once the record is placed.
//!
//! The tail only moves from a chunk to that chunk's `next`, and only after a
//! writer closed the chunk (steps 4–6), so a chunk is never left half-full
//! behind the tail. A writer whose closure panics stores an *abandoned*
//! header instead, so the reader never stalls on it. A record bigger than
//! the next chunk (say, a pooled one) closes it without using it and moves
//! on to a chunk allocated for its size; subsequent records fill the rest of
//! that bigger chunk. A push from inside another push's `write` is fine: it
//! reserves after the outer record, which the reader waits for.
//!
//! **Drain** (the single reader):
//!
//! 1. Snapshot: `t = tail.load(Acquire)`, `end = min(t.cursor, t.cap)`. Any
//!    push that happens-before the drain reserved below `end` in `t` or in a
//!    chunk before `t` (coherence on `tail` and `cursor`); any push that
//!    starts after it (e.g. from the drain's callback) reserves at or past
//!    `end` in `t`, or in a chunk after `t`.
//! 2. From the read position, load each header with `Acquire` (which
//!    synchronises with the writer's Release, making its payload visible):
//!    a record is handed to the callback; an abandoned record is skipped; a
//!    `0` header is reserved but not yet published: stop, and resume there
//!    next time (this keeps FIFO order).
//! 3. At `END_OF_CHUNK` or at the capacity: if the chunk is `t`, stop (what
//!    follows was pushed after the snapshot); else move to `c.next`, which
//!    is non-null because the tail only passed `c` after a writer saw
//!    `c.next` set (the Release/Acquire chain on `tail` carries it here).
//! 4. In `t`, stop at `end`.
//! 5. Publish the read position (`addr`, then `chunk`, Release) for
//!    [`Inbox::len`] and [`Inbox::is_empty`]; this also happens if the
//!    callback panics (the record it got counts as handed out).
//!
//! The reader never frees anything: a slow writer may still hold a stale
//! `tail` pointer to a chunk the reader has finished.
//!
//! **Reclaim** (no push, drain, `len` or `is_empty` in progress): the chunks
//! from `oldest` up to (excluding) the reader's chunk are finished. Up to
//! the pool limit ([`POOL_CHUNKS`] by default) default-size ones are reset
//! (used bytes zeroed, cursor 0) and linked right behind the tail, most
//! recently zeroed first, where writers find them in step 5 without
//! allocating; the rest are freed. An inbox made with
//! [`Inbox::for_message_cycles`] pools chunks without zeroing them: its
//! snapshots are only taken when every earlier push has returned, so a
//! reader never needs a zero header to stop at. No ABA: a
//! chunk's memory is only reused here, when no thread holds a pointer to it.
//!
//! Memory comes from a private [`chunky::Storage::heap`]; allocating a chunk
//! goes through chunky's storage (a mutex and the global allocator), which
//! happens only when a chunk fills and the pool is empty.

mod chunk;
mod pending;

pub(crate) mod record;

use std::fmt;
use std::mem;
use std::ops::Deref;
use std::ptr::{self, NonNull};

use self::chunk::{
    Chunk, ChunkSource, END_OF_CHUNK, Slot, abandoned_word, record_size, record_word,
};
#[cfg(debug_assertions)]
use crate::sync::AtomicBool;
use crate::sync::{
    AtomicPtr, AtomicU64, AtomicUsize,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
    spin_loop,
};

pub use self::chunk::MAX_RECORD_SIZE;
pub use self::pending::{PENDING_GROUP, PendingFlag, PendingGroups};

/// The smallest chunk size [`Inbox::new`] accepts.
pub const MIN_CHUNK_SIZE: usize = 64;

/// How many finished default-size chunks [`Inbox::reclaim`] keeps for reuse
/// by default (see [`Inbox::with_pool_limit`]).
pub const POOL_CHUNKS: usize = 4;

/// The end of what was published in an inbox at some moment (see
/// [`Inbox::snapshot`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    tail: *mut Chunk,
    end: usize,
}

// SAFETY: a position is only compared and read back by the inbox that made
// it; the pointer is never dereferenced without the inbox's own guarantees.
unsafe impl Send for Position {}

/// An unbounded, multi-writer, single-reader, lock-free queue of byte
/// records; see the module docs (`inbox/mod.rs`) for the protocol.
///
/// `Send + Sync`: all shared state is atomic; the raw chunk pointers inside
/// are only dereferenced under the protocol above.
pub struct Inbox {
    /// The chunk writers reserve in. Read by every push, written rarely.
    tail: CachePadded<AtomicPtr<Chunk>>,
    /// The reader's side.
    read: CachePadded<ReadPosition>,
    chunks: ChunkSource,
    /// How many finished chunks `reclaim` keeps for reuse.
    pool_limit: usize,
    /// Whether `reclaim` zeroes the chunks it pools (see
    /// [`Inbox::for_message_cycles`]).
    zero_pooled: bool,
    /// Catches a drain started from inside a drain's callback.
    #[cfg(debug_assertions)]
    draining: AtomicBool,
}

/// The reader's position, and where the finished chunks begin.
struct ReadPosition {
    /// The chunk the reader is in. Written by drains, read by anyone.
    chunk: AtomicPtr<Chunk>,
    /// The address of the next header to read in `chunk` (an address rather
    /// than an offset, so that a reader of both fields can tell whether they
    /// belong together: the address lies inside the chunk's memory).
    addr: AtomicUsize,
    /// The first chunk not yet reclaimed. Only `reclaim` and drop use it.
    oldest: AtomicPtr<Chunk>,
}

/// Keeps its value on its own cache lines, away from unrelated writes.
#[repr(align(128))]
struct CachePadded<T>(T);

impl<T> Deref for CachePadded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl Inbox {
    /// An empty inbox whose chunks hold `chunk_size` bytes (a power of two
    /// from [`MIN_CHUNK_SIZE`] to 1 GiB). Records bigger than a chunk get a
    /// dedicated larger chunk.
    ///
    /// # Panics
    ///
    /// If `chunk_size` is not such a power of two, or the first chunk cannot
    /// be allocated.
    pub fn new(chunk_size: usize) -> Inbox {
        Inbox::with_pool_limit(chunk_size, POOL_CHUNKS)
    }

    /// Like [`Inbox::new`], keeping up to `pool_limit` finished default-size
    /// chunks for reuse instead of [`POOL_CHUNKS`]. Like a `Vec`'s capacity,
    /// a larger pool keeps the memory of bursts, so that later bursts of the
    /// same size neither allocate nor fault fresh pages in.
    pub fn with_pool_limit(chunk_size: usize, pool_limit: usize) -> Inbox {
        assert!(
            chunk_size.is_power_of_two()
                && (MIN_CHUNK_SIZE..=MAX_RECORD_SIZE + chunk::HEADER).contains(&chunk_size),
            "inbox chunk size {chunk_size} must be a power of two from {MIN_CHUNK_SIZE} to 1 GiB"
        );
        let chunks = ChunkSource::new(chunk_size);
        let first = chunks.allocate(chunk_size);
        // SAFETY: freshly allocated, alive until dropped by the inbox.
        let addr = unsafe { first.as_ref() }.data_addr();
        let first = first.as_ptr();
        Inbox {
            tail: CachePadded(AtomicPtr::new(first)),
            read: CachePadded(ReadPosition {
                chunk: AtomicPtr::new(first),
                addr: AtomicUsize::new(addr),
                oldest: AtomicPtr::new(first),
            }),
            chunks,
            pool_limit: pool_limit.max(1),
            zero_pooled: true,
            #[cfg(debug_assertions)]
            draining: AtomicBool::new(false),
        }
    }

    /// Like [`Inbox::with_pool_limit`], for an inbox that is snapshotted
    /// only between message cycles: pooled chunks are reused without being
    /// zeroed first, which saves a pass over every byte of every message.
    ///
    /// Zeroed memory is what lets a reader stop at a record that is reserved
    /// but not yet published (its header is still 0). Without it, a reader
    /// must never meet such a record: every record below a snapshot's end
    /// must be published when the snapshot is taken. The bytes handed to a
    /// `write` closure hold stale data instead of zeros.
    ///
    /// # Safety
    ///
    /// Every [`snapshot`](Inbox::snapshot) (and [`drain`](Inbox::drain),
    /// which takes one) happens after every push that started before it has
    /// returned, ordered by synchronisation (e.g. pushes in one message
    /// cycle, snapshots after joining its workers); [`Inbox::len`] and
    /// [`Inbox::is_empty`] likewise never run concurrently with a push.
    pub unsafe fn for_message_cycles(chunk_size: usize, pool_limit: usize) -> Inbox {
        let mut inbox = Inbox::with_pool_limit(chunk_size, pool_limit);
        inbox.zero_pooled = false;
        inbox
    }

    /// Appends one record of `size` bytes: reserves room for it (8-aligned,
    /// padded to a multiple of 8), calls `write` with exactly `size` zeroed,
    /// 8-aligned bytes to fill in, then publishes the record.
    ///
    /// Lock-free and callable from any number of threads at once. The
    /// common case is one `fetch_add`, the writes, and one `Release` store;
    /// only when a chunk is full does it link the next chunk (taken from the
    /// pool, or allocated).
    ///
    /// `write` may itself push to this inbox: the inner record comes after
    /// this one (the reader waits for this one to be published first). If
    /// `write` panics, the record is dropped (skipped by the reader) and the
    /// panic goes on.
    ///
    /// # Panics
    ///
    /// If `size` exceeds [`MAX_RECORD_SIZE`], or a needed chunk cannot be
    /// allocated.
    #[inline]
    pub fn push_with(&self, size: usize, write: impl FnOnce(&mut [u8])) {
        // The `fetch_add` hands every writer a disjoint range.
        self.push_reserved(
            size,
            0,
            |cursor, need| cursor.fetch_add(need, Relaxed),
            write,
        );
    }

    /// [`Inbox::push_with`] for an inbox that only one thread pushes to: the
    /// reservation is a plain load and store of the cursor instead of a
    /// `fetch_add`, which spares the full memory barrier of a locked
    /// instruction. The reader's side of the protocol is unchanged.
    ///
    /// The record carries `tag` (handed to [`Inbox::drain_to_tagged`]) in its
    /// header word, so small records need no header of their own.
    ///
    /// # Safety
    ///
    /// No other push to this inbox (either kind) runs at the same time:
    /// all pushes happen on one thread, or are ordered by synchronisation.
    #[inline]
    pub unsafe fn push_with_unshared(&self, size: usize, tag: u16, write: impl FnOnce(&mut [u8])) {
        // No other push runs (caller), so load-then-store reserves exactly
        // like the `fetch_add` of `push_with` would.
        let reserve = |cursor: &AtomicUsize, need| {
            let start = cursor.load(Relaxed);
            cursor.store(start + need, Relaxed);
            start
        };
        self.push_reserved(size, tag, reserve, write);
    }

    /// Steps 1–3 of the push protocol, with the reservation of step 2 done
    /// by `reserve` (cursor, bytes needed) → start.
    #[inline(always)]
    fn push_reserved(
        &self,
        size: usize,
        tag: u16,
        reserve: impl FnOnce(&AtomicUsize, usize) -> usize,
        write: impl FnOnce(&mut [u8]),
    ) {
        assert!(
            size <= MAX_RECORD_SIZE,
            "inbox record of {size} bytes exceeds the maximum of {MAX_RECORD_SIZE}"
        );
        let need = record_size(size);
        let tail = self.tail.load(Acquire);
        // SAFETY: `tail` always points to a live chunk: chunks are freed only
        // by `reclaim` (never the tail or beyond) and drop.
        let chunk = unsafe { &*tail };
        let start = reserve(&chunk.cursor, need);
        if fits(start, need, chunk.cap()) {
            // SAFETY: the reservation gave [start, start + need) to us alone,
            // and it lies within the capacity.
            unsafe { publish(chunk, start, size, tag, write) };
        } else {
            let (chunk, start) = self.push_slow(tail, start, size);
            // SAFETY: `push_slow` reserved [start, start + need) in `chunk`
            // for us alone, within the capacity; the chunk is alive (it is
            // the tail or linked from it, see `push_with`).
            unsafe { publish(&*chunk, start, size, tag, write) };
        }
    }

    /// Steps 4–6 of the push protocol: close the full chunk, move on, retry;
    /// returns the chunk and start of the reservation that fit, for the
    /// caller to publish into. Not generic over the record's writer, so it
    /// exists once, not once per message type.
    #[cold]
    #[inline(never)]
    fn push_slow(
        &self,
        mut tail: *mut Chunk,
        mut start: usize,
        size: usize,
    ) -> (*const Chunk, usize) {
        let need = record_size(size);
        let mut spare = None;
        let chunk = loop {
            // SAFETY: `tail` was the tail at some point or linked from it:
            // alive while pushes are in progress (see `push_with`).
            let chunk = unsafe { &*tail };
            if start < chunk.cap() {
                // SAFETY: [start, cap) is part of our reservation, and start
                // is a multiple of 8 below cap.
                unsafe { chunk.header(start) }.store(END_OF_CHUNK, Release);
            }
            let next = self.next_chunk(chunk, need, &mut spare);
            tail = match self.tail.compare_exchange(tail, next, AcqRel, Acquire) {
                Ok(_) => next,
                Err(moved_on) => moved_on,
            };
            // SAFETY: as above.
            let chunk = unsafe { &*tail };
            start = chunk.cursor.fetch_add(need, Relaxed);
            if fits(start, need, chunk.cap()) {
                break chunk;
            }
        };
        if let Some(spare) = spare {
            // SAFETY: the spare was never linked, so no one else knows it.
            unsafe { self.chunks.free(spare) };
        }
        // Reserved by the fetch_add that fit, within the capacity.
        (chunk, start)
    }

    /// The chunk after `chunk`, linking one with room for `need` bytes
    /// (`spare`, or a new one) if there is none yet.
    fn next_chunk(
        &self,
        chunk: &Chunk,
        need: usize,
        spare: &mut Option<NonNull<Chunk>>,
    ) -> *mut Chunk {
        let next = chunk.next.load(Acquire);
        if !next.is_null() {
            return next;
        }
        let new = spare.take().unwrap_or_else(|| self.chunks.allocate(need));
        match chunk
            .next
            .compare_exchange(ptr::null_mut(), new.as_ptr(), AcqRel, Acquire)
        {
            Ok(_) => new.as_ptr(),
            Err(winner) => {
                *spare = Some(new);
                winner
            }
        }
    }

    /// Marks the end of what is published now: a later [`Inbox::drain_to`]
    /// with this position hands out exactly the records published before
    /// this call (and not yet drained). A message cycle snapshots every
    /// inbox before handling any, so that messages sent during the cycle
    /// wait for the next one.
    pub fn snapshot(&self) -> Position {
        let tail = self.tail.load(Acquire);
        // SAFETY: the tail is always alive (see `push_with`).
        let end = unsafe { &*tail }.reserved_end();
        Position { tail, end }
    }

    /// How many bytes of records lie between the reader and `until` (a
    /// snapshot of this inbox), if both are in the same chunk; `None` if
    /// the records span chunks. Only the reader may call this, between its
    /// drains.
    #[inline]
    pub fn bytes_before(&self, until: Position) -> Option<usize> {
        let chunk = self.read.chunk.load(Relaxed);
        if chunk != until.tail {
            return None;
        }
        // SAFETY: the reader's chunk is alive (see `drain`).
        let base = unsafe { &*chunk }.data_addr();
        Some(
            until
                .end
                .saturating_sub(self.read.addr.load(Relaxed) - base),
        )
    }

    /// Like [`bytes_before`](Inbox::bytes_before), also when the records
    /// span chunks: the bytes from the reader to the end of its chunk, the
    /// capacity of every chunk between, and the tail's bytes up to `until`
    /// (an upper bound: chunks end with unused room). Only the reader may
    /// call this, between its drains, and no push may run meanwhile (the
    /// chunk links are read with relaxed loads).
    pub fn bytes_before_spanning(&self, until: Position) -> usize {
        if let Some(bytes) = self.bytes_before(until) {
            return bytes;
        }
        let mut chunk = self.read.chunk.load(Relaxed);
        // SAFETY: the reader's chunk is alive (see `drain`).
        let first = unsafe { &*chunk };
        let mut bytes = first
            .cap()
            .saturating_sub(self.read.addr.load(Relaxed) - first.data_addr());
        loop {
            // SAFETY: chunks from the reader's to the tail are alive and
            // linked (the caller runs between drains, with no push).
            let next = unsafe { &*chunk }.next.load(Relaxed);
            if next.is_null() {
                return bytes;
            }
            chunk = next;
            if chunk == until.tail {
                return bytes + until.end;
            }
            // SAFETY: as above.
            bytes += unsafe { &*chunk }.cap();
        }
    }

    /// Hands each record published before this call to `f`, in order, and
    /// returns how many it handed out.
    ///
    /// Records pushed while draining, also from inside `f`, are left for the
    /// next drain. Stops early, keeping order, at a record that is reserved
    /// but not yet published. Each slice is 8-aligned and as long as pushed.
    /// If `f` panics, the records before and including the one it got count
    /// as drained.
    ///
    /// # Safety
    ///
    /// No other drain of this inbox runs at the same time (on any thread, or
    /// from inside `f`), and no `reclaim`; drains on different threads must
    /// be ordered by synchronisation (a lock, a join, a channel).
    pub unsafe fn drain(&self, f: impl FnMut(&[u8])) -> usize {
        let until = self.snapshot();
        // SAFETY: forwarded from the caller; the snapshot was just taken.
        unsafe { self.drain_to(until, f) }
    }

    /// Like [`Inbox::drain`], but hands out only the records published
    /// before `until` was taken with [`Inbox::snapshot`].
    ///
    /// The record slices stay valid (and unchanged) until the next
    /// [`Inbox::reclaim`], also after `f` returns: the reader never frees
    /// or reuses memory by itself.
    ///
    /// # Safety
    ///
    /// As for [`Inbox::drain`]; also, `until` is a snapshot of this inbox,
    /// and no `reclaim` ran since it was taken.
    pub unsafe fn drain_to(&self, until: Position, mut f: impl FnMut(&[u8])) -> usize {
        // SAFETY: forwarded from the caller.
        unsafe { self.drain_to_tagged(until, |_, record| f(record)) }
    }

    /// Like [`Inbox::drain_to`], also handing out each record's tag (given to
    /// [`Inbox::push_with_unshared`]; 0 for [`Inbox::push_with`]).
    ///
    /// # Safety
    ///
    /// As for [`Inbox::drain_to`].
    #[inline(always)]
    pub unsafe fn drain_to_tagged(&self, until: Position, f: impl FnMut(u16, &[u8])) -> usize {
        let mut handed = 0;
        // SAFETY: forwarded from the caller.
        unsafe { self.drain_counted(until, &mut handed, f) };
        handed
    }

    /// Like [`Inbox::drain_to_tagged`], adding the number of records handed
    /// out to `handed`, also when `f` panics (the record it panicked on
    /// counts: the read position is already behind it). A reader that
    /// catches the panic can drain on from there and count on.
    ///
    /// # Safety
    ///
    /// As for [`Inbox::drain_to`].
    #[inline(always)]
    pub unsafe fn drain_counted(
        &self,
        until: Position,
        handed: &mut usize,
        mut f: impl FnMut(u16, &[u8]),
    ) {
        #[cfg(debug_assertions)]
        let _draining = DrainingFlag::raise(&self.draining);
        let Position {
            tail,
            end: tail_end,
        } = until;
        let mut at = Reading::start(&self.read, handed);
        loop {
            // SAFETY: the reader's chunk is alive: `reclaim` frees only chunks
            // before it, and does not run concurrently (caller).
            let chunk = unsafe { &*at.chunk };
            let limit = if at.chunk == tail {
                tail_end
            } else {
                chunk.cap()
            };
            while at.offset < limit {
                // SAFETY: `offset` is a multiple of 8 (records are padded)
                // below `limit <= cap`.
                let word = unsafe { chunk.header(at.offset) }.load(Acquire);
                match Slot::decode(word) {
                    Slot::Record(len, tag) => {
                        let start = at.offset;
                        at.offset += record_size(len);
                        at.handed += 1;
                        // SAFETY: published, as the Acquire load shows; the
                        // slice lives only during `f`, before any reclaim.
                        f(tag, unsafe { chunk.payload(start, len) });
                    }
                    Slot::Abandoned(len) => at.offset += record_size(len),
                    Slot::Unwritten => return,
                    Slot::EndOfChunk => break,
                }
            }
            if at.chunk == tail {
                return;
            }
            // Closed chunk done: it lies before the snapshot's tail, so its
            // successor is linked (protocol, drain step 3).
            let next = chunk.next.load(Acquire);
            debug_assert!(!next.is_null(), "a chunk before the tail has a successor");
            if next.is_null() {
                return;
            }
            at.chunk = next;
            at.offset = 0;
        }
    }

    /// Whether no record is waiting. Cheap (compares positions), and only a
    /// hint while other threads push or drain; exact when nothing runs
    /// concurrently, except that records whose writer panicked count as
    /// waiting until drained.
    pub fn is_empty(&self) -> bool {
        let tail = self.tail.load(Acquire);
        if self.read.chunk.load(Acquire) != tail {
            return false;
        }
        let addr = self.read.addr.load(Acquire);
        // SAFETY: the tail is always alive (see `push_with`).
        let chunk = unsafe { &*tail };
        match addr.checked_sub(chunk.data_addr()) {
            Some(offset) if offset <= chunk.cap() => offset >= chunk.reserved_end(),
            _ => false, // the reader is moving: not a consistent pair
        }
    }

    /// The number of records waiting, counted by walking the published
    /// records from the read position; for statistics only (it may be stale
    /// while other threads push or drain).
    pub fn len(&self) -> usize {
        let mut count = 0;
        self.walk_waiting(|_, _, _, _| count += 1);
        count
    }

    /// Hands each waiting record (not drained yet) to `f` with its tag, in
    /// order, without draining it: for a snapshot of the inbox.
    ///
    /// # Safety
    ///
    /// No push, drain or `reclaim` of this inbox runs meanwhile (on any
    /// thread), nor from inside `f`: every record pushed so far is
    /// published, and nothing moves.
    pub unsafe fn for_each_waiting(&self, mut f: impl FnMut(u16, &[u8])) {
        self.walk_waiting(|chunk, start, len, tag| {
            // SAFETY: published (the walk acquired its header); nothing
            // writes or reclaims it meanwhile (caller).
            f(tag, unsafe { chunk.payload(start, len) })
        });
    }

    /// Calls `f` with each published record from the read position (its
    /// chunk, offset, length and tag), in order; stops at the first
    /// reserved but unpublished one.
    fn walk_waiting(&self, mut f: impl FnMut(&Chunk, usize, usize, u16)) {
        let (mut chunk, mut offset) = self.read_position();
        loop {
            // SAFETY: the read position's chunk and its successors are alive
            // while no `reclaim` runs (the caller of `reclaim` guarantees).
            let c = unsafe { &*chunk };
            let end = c.reserved_end();
            while offset < end {
                // SAFETY: a multiple of 8 below `end <= cap`.
                match Slot::decode(unsafe { c.header(offset) }.load(Acquire)) {
                    Slot::Record(len, tag) => {
                        f(c, offset, len, tag);
                        offset += record_size(len);
                    }
                    Slot::Abandoned(len) => offset += record_size(len),
                    Slot::Unwritten => return,
                    Slot::EndOfChunk => offset = c.cap(),
                }
            }
            let next = c.next.load(Acquire);
            if offset < c.cap() || next.is_null() {
                return;
            }
            chunk = next;
            offset = 0;
        }
    }

    /// The reader's (chunk, offset), read consistently.
    fn read_position(&self) -> (*mut Chunk, usize) {
        loop {
            let chunk = self.read.chunk.load(Acquire);
            let addr = self.read.addr.load(Acquire);
            // SAFETY: the reader's chunk is alive while no `reclaim` runs.
            let c = unsafe { &*chunk };
            // A drain stores `addr` before `chunk`; a pair from two different
            // drains is consistent iff the address lies in the chunk (chunks
            // are alive, so their memory does not overlap).
            if let Some(offset) = addr.checked_sub(c.data_addr())
                && offset <= c.cap()
            {
                return (chunk, offset);
            }
            spin_loop();
        }
    }

    /// Recycles (up to the pool limit) or frees the chunks the reader has
    /// finished.
    ///
    /// # Safety
    ///
    /// No other call on this inbox (push, drain, `len`, `is_empty`) is in
    /// progress on any thread, and none is unordered with this one (e.g.
    /// call it between message cycles, after joining the workers), and no
    /// record slice from a drain is alive.
    pub unsafe fn reclaim(&self) {
        // SAFETY: forwarded from the caller.
        unsafe { self.reclaim_keeping(self.pool_limit) }
    }

    /// Like [`reclaim`](Inbox::reclaim), keeping at most `pool_limit`
    /// finished chunks pooled (a limit the caller may change from call to
    /// call, e.g. to share a budget among inboxes).
    ///
    /// # Safety
    ///
    /// As for [`reclaim`](Inbox::reclaim).
    pub unsafe fn reclaim_keeping(&self, pool_limit: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { self.reclaim_keeping_with(|| pool_limit) }
    }

    /// Like [`reclaim_keeping`](Inbox::reclaim_keeping), with the limit
    /// asked for only if a chunk was finished (most cycles finish none).
    ///
    /// # Safety
    ///
    /// As for [`reclaim`](Inbox::reclaim).
    #[inline]
    pub unsafe fn reclaim_keeping_with(&self, pool_limit: impl FnOnce() -> usize) {
        let reading = self.read.chunk.load(Relaxed);
        let chunk = self.read.oldest.load(Relaxed);
        if chunk == reading {
            return;
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.reclaim_chunks(chunk, reading, pool_limit()) }
    }

    /// Pools or frees the finished chunks from `chunk` up to the reader's
    /// chunk `reading`.
    ///
    /// # Safety
    ///
    /// As for [`reclaim`](Inbox::reclaim); `chunk` is the oldest chunk not
    /// reclaimed yet and `reading` the reader's, read by the caller just
    /// now.
    #[inline(never)]
    unsafe fn reclaim_chunks(&self, mut chunk: *mut Chunk, reading: *mut Chunk, pool_limit: usize) {
        // Count the pool: the chunks after the tail.
        let mut last = self.tail.load(Relaxed);
        let mut pooled = 0;
        loop {
            // SAFETY: chunks from the tail on are alive; access is exclusive.
            let next = unsafe { &*last }.next.load(Relaxed);
            if next.is_null() {
                break;
            }
            last = next;
            pooled += 1;
        }
        while chunk != reading {
            // SAFETY: a finished chunk before the reader's: alive until freed
            // below, and nobody else uses it (caller).
            let c = unsafe { &*chunk };
            let next = c.next.load(Relaxed);
            if pooled < pool_limit && c.cap() == self.chunks.chunk_size() {
                // SAFETY: exclusive access (caller); no slices alive.
                unsafe { c.reset(self.zero_pooled) };
                // Pool it right behind the tail, so the chunk writers take next
                // is the one just zeroed, still in cache.
                // SAFETY: the tail is alive; access is exclusive (caller).
                let tail = unsafe { &*self.tail.load(Relaxed) };
                c.next.store(tail.next.load(Relaxed), Relaxed);
                tail.next.store(chunk, Release);
                pooled += 1;
            } else {
                // SAFETY: unlinked from everything reachable (the list now
                // starts at the reader's chunk) and unused (caller).
                unsafe { self.chunks.free(NonNull::new_unchecked(chunk)) };
            }
            chunk = next;
        }
        self.read.oldest.store(reading, Relaxed);
    }

    /// The number of chunks this inbox holds (used, finished and pooled).
    #[cfg(all(test, not(kay_loom)))]
    fn chunk_count(&self) -> usize {
        self.chunks.live()
    }

    /// About how many bytes of chunks this inbox holds (used, finished and
    /// pooled), counting each at the default chunk size; for statistics.
    pub fn held_bytes(&self) -> usize {
        self.chunks.live() * self.chunks.chunk_size()
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut chunk = self.read.oldest.load(Relaxed);
        while !chunk.is_null() {
            // SAFETY: `&mut self`: no one else uses the inbox; every chunk is
            // on the list from `oldest`, each freed once.
            let next = unsafe { &*chunk }.next.load(Relaxed);
            // SAFETY: as above.
            unsafe { self.chunks.free(NonNull::new_unchecked(chunk)) };
            chunk = next;
        }
    }
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("chunk_size", &self.chunks.chunk_size())
            .field("chunks", &self.chunks.live())
            .field("is_empty", &self.is_empty())
            .finish()
    }
}

/// Whether a record of `need` bytes reserved at `start` fits in `cap`.
#[inline(always)]
fn fits(start: usize, need: usize, cap: usize) -> bool {
    start <= cap && need <= cap - start
}

/// Fills and publishes the record reserved at `start` (push step 3).
///
/// # Safety
///
/// The caller reserved `[start, start + record_size(size))` of `chunk`
/// through its cursor, within its capacity.
#[inline(always)]
unsafe fn publish(
    chunk: &Chunk,
    start: usize,
    size: usize,
    tag: u16,
    write: impl FnOnce(&mut [u8]),
) {
    // SAFETY: start is a multiple of 8 below cap (reserved within it).
    let header = unsafe { chunk.header(start) };
    let abandon = AbandonOnUnwind { header, size };
    // SAFETY: reserved by us alone (caller); the slice dies before the store.
    write(unsafe { chunk.payload_mut(start, size) });
    mem::forget(abandon);
    header.store(record_word(size, tag), Release);
}

/// Marks a record abandoned if its `write` closure unwinds, so the reader
/// does not wait for it forever.
struct AbandonOnUnwind<'a> {
    header: &'a AtomicU64,
    size: usize,
}

impl Drop for AbandonOnUnwind<'_> {
    fn drop(&mut self) {
        self.header.store(abandoned_word(self.size), Release);
    }
}

/// The drain's read position and count of records handed out; published
/// to [`ReadPosition`] and the caller's count when dropped, also on unwind.
struct Reading<'a> {
    read: &'a ReadPosition,
    chunk: *mut Chunk,
    offset: usize,
    handed: usize,
    count: &'a mut usize,
}

impl<'a> Reading<'a> {
    fn start(read: &'a ReadPosition, count: &'a mut usize) -> Reading<'a> {
        let chunk = read.chunk.load(Relaxed);
        // SAFETY: the reader's chunk is alive (see `Inbox::drain`).
        let base = unsafe { &*chunk }.data_addr();
        let offset = read.addr.load(Relaxed) - base;
        Reading {
            read,
            chunk,
            offset,
            handed: 0,
            count,
        }
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        // SAFETY: the reader's chunk is alive (see `Inbox::drain`).
        let base = unsafe { &*self.chunk }.data_addr();
        self.read.addr.store(base + self.offset, Release);
        self.read.chunk.store(self.chunk, Release);
        *self.count += self.handed;
    }
}

/// Debug check that drains do not nest.
#[cfg(debug_assertions)]
struct DrainingFlag<'a>(&'a AtomicBool);

#[cfg(debug_assertions)]
impl<'a> DrainingFlag<'a> {
    fn raise(flag: &'a AtomicBool) -> DrainingFlag<'a> {
        let was = flag.swap(true, Relaxed);
        assert!(!was, "Inbox::drain called while a drain is running");
        DrainingFlag(flag)
    }
}

#[cfg(debug_assertions)]
impl Drop for DrainingFlag<'_> {
    fn drop(&mut self) {
        self.0.store(false, Relaxed);
    }
}

#[cfg(all(test, not(kay_loom)))]
mod tests;
