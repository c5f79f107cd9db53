//! The one module of chunky that touches raw memory: heap allocation, memory
//! mapping and pointer arithmetic. Everything above it goes through the safe,
//! bounds-checked accessors of [`Chunk`].
//!
//! Invariant of a [`Chunk`]: `ptr` points to `len` initialised bytes, aligned
//! to [`CHUNK_ALIGN`], that stay at the same address and are accessed only
//! through this `Chunk` (or raw pointers derived from it) while the chunk's
//! owner lives. The storages uphold the exclusivity with leases (one live
//! `Chunk` per chunk name) and, for files, an exclusive file lock.

use std::alloc::{self, Layout};
use std::fmt;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use memmap2::{MmapMut, MmapOptions};

use crate::pod::Pod;

/// The alignment of every chunk's memory: one 4 KiB page.
pub const CHUNK_ALIGN: usize = 4096;

/// Keeps the memory behind a [`Chunk`] alive, and writes it back.
pub trait ChunkOwner: Send + Sync + 'static {
    /// Writes the chunk's memory back to its durable medium, if any.
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}

/// A fixed-size block of memory handed out by a
/// [`ChunkStorage`](super::ChunkStorage); the unique handle to that memory.
///
/// The memory never moves while the `Chunk` lives, so raw pointers from
/// [`Chunk::ptr_at`] stay valid until it is dropped. It is at least
/// [`CHUNK_ALIGN`]-aligned and always initialised (new chunks are zeroed).
pub struct Chunk {
    ptr: NonNull<u8>,
    len: usize,
    owner: Box<dyn ChunkOwner>,
    /// The region it was carved from, if any (see [`privatize`]).
    region: Option<Arc<RegionMemory>>,
}

// SAFETY: a Chunk is the only handle to its memory (module invariant), so
// moving it to another thread moves all access with it; its owner is Send.
unsafe impl Send for Chunk {}
// SAFETY: through `&Chunk` the memory can only be read (`bytes`, `read_pod`)
// or reached through raw pointers whose use is the caller's unsafe business;
// the owner is Sync.
unsafe impl Sync for Chunk {}

impl Chunk {
    /// Wraps memory that `owner` keeps alive.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads and writes of `len` initialised bytes,
    /// aligned to [`CHUNK_ALIGN`], for as long as `owner` lives; the memory
    /// must not move and must not be accessed other than through the returned
    /// `Chunk` while it lives.
    pub unsafe fn from_raw_parts(
        ptr: NonNull<u8>,
        len: usize,
        owner: Box<dyn ChunkOwner>,
    ) -> Chunk {
        debug_assert_eq!(ptr.as_ptr() as usize % CHUNK_ALIGN, 0);
        Chunk {
            ptr,
            len,
            owner,
            region: None,
        }
    }

    /// The size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the chunk has no bytes (never true for storage chunks).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A raw pointer to byte `offset`, valid while this chunk lives.
    ///
    /// # Panics
    ///
    /// If `offset > len`.
    #[inline]
    pub fn ptr_at(&self, offset: usize) -> NonNull<u8> {
        if offset > self.len {
            offset_out_of_bounds(offset, self.len);
        }
        // SAFETY: offset <= len keeps the pointer inside (or one past) the
        // allocation, which is never null.
        unsafe { self.ptr.add(offset) }
    }

    /// The bytes in `range`.
    ///
    /// # Panics
    ///
    /// If `range` is not inside the chunk.
    pub fn bytes(&self, range: Range<usize>) -> &[u8] {
        self.check(&range);
        // SAFETY: the range is in bounds (checked), the bytes are initialised
        // and only mutated through `&mut self` (module invariant).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(range.start), range.len()) }
    }

    /// The bytes in `range`, mutably.
    ///
    /// # Panics
    ///
    /// If `range` is not inside the chunk.
    pub fn bytes_mut(&mut self, range: Range<usize>) -> &mut [u8] {
        self.check(&range);
        // SAFETY: in bounds (checked), initialised, and `&mut self` makes this
        // the only access through the chunk (module invariant).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(range.start), range.len()) }
    }

    /// Reads a `T` at `offset`, which must be aligned for `T`.
    ///
    /// # Panics
    ///
    /// If the value is not inside the chunk or `offset` is misaligned.
    pub fn read_pod<T: Pod>(&self, offset: usize) -> T {
        self.check_pod::<T>(offset);
        // SAFETY: in bounds and aligned (checked; the base is CHUNK_ALIGN
        // aligned), initialised, and every bit pattern is a valid T (Pod).
        unsafe { self.ptr.as_ptr().add(offset).cast::<T>().read() }
    }

    /// The `T` at `offset`, mutably; `offset` must be aligned for `T`.
    ///
    /// # Panics
    ///
    /// If the value is not inside the chunk or `offset` is misaligned.
    pub fn pod_mut<T: Pod>(&mut self, offset: usize) -> &mut T {
        self.check_pod::<T>(offset);
        // SAFETY: in bounds and aligned (checked), initialised, every bit
        // pattern is a valid T (Pod), exclusive through `&mut self`.
        unsafe { &mut *self.ptr.as_ptr().add(offset).cast::<T>() }
    }

    /// Writes the memory back to disk (a no-op for heap chunks).
    pub fn flush(&self) -> io::Result<()> {
        self.owner.flush()
    }

    fn check(&self, range: &Range<usize>) {
        assert!(
            range.start <= range.end && range.end <= self.len,
            "range {range:?} outside chunk of {} bytes",
            self.len
        );
    }

    fn check_pod<T: Pod>(&self, offset: usize) {
        let end = offset.checked_add(size_of::<T>());
        assert!(
            end.is_some_and(|end| end <= self.len),
            "value at {offset} outside chunk of {} bytes",
            self.len
        );
        assert!(
            align_of::<T>() <= CHUNK_ALIGN && offset.is_multiple_of(align_of::<T>()),
            "offset {offset} misaligned for {}",
            std::any::type_name::<T>()
        );
    }
}

impl fmt::Debug for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chunk")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .finish()
    }
}

/// A zeroed, [`CHUNK_ALIGN`]-aligned heap allocation, freed on drop.
pub(crate) struct HeapBlock {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: HeapBlock owns its allocation; it hands out no references itself,
// access goes through the single Chunk that leases it.
unsafe impl Send for HeapBlock {}
// SAFETY: as for Send; `&HeapBlock` gives no access to the memory.
unsafe impl Sync for HeapBlock {}

impl HeapBlock {
    /// Allocates `size` zeroed bytes, or `None` if the allocator fails.
    pub(crate) fn new(size: usize) -> Option<HeapBlock> {
        let layout = Layout::from_size_align(size, CHUNK_ALIGN).ok()?;
        if layout.size() == 0 {
            return None;
        }
        // SAFETY: the layout has a non-zero size (checked above).
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        NonNull::new(ptr).map(|ptr| HeapBlock { ptr, layout })
    }

    /// The size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.layout.size()
    }
}

impl Drop for HeapBlock {
    fn drop(&mut self) {
        // SAFETY: ptr was allocated in `new` with exactly this layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

struct HeapOwner<L> {
    _block: Arc<HeapBlock>,
    _lease: L,
}

impl<L: Send + Sync + 'static> ChunkOwner for HeapOwner<L> {}

/// A chunk over `block`; `lease` must guarantee that no other chunk over the
/// same block lives at the same time, and is kept until the chunk drops.
pub(crate) fn heap_chunk(block: Arc<HeapBlock>, lease: impl Send + Sync + 'static) -> Chunk {
    let (ptr, len) = (block.ptr, block.len());
    let owner = Box::new(HeapOwner {
        _block: block,
        _lease: lease,
    });
    // SAFETY: the block is live, zero-initialised and CHUNK_ALIGN-aligned
    // while the owner holds its Arc; heap blocks never move; the lease makes
    // this the only chunk over the block.
    unsafe { Chunk::from_raw_parts(ptr, len, owner) }
}

struct MmapOwner<L> {
    mmap: MmapMut,
    // Dropped after the mapping: the file lock guards it.
    _file: File,
    _lease: L,
}

impl<L: Send + Sync + 'static> ChunkOwner for MmapOwner<L> {
    fn flush(&self) -> io::Result<()> {
        self.mmap.flush()
    }
}

/// Maps `len` bytes of `file` from `offset` (a multiple of [`CHUNK_ALIGN`]).
///
/// `file` must be exclusively locked by the caller (the lock travels with
/// it) and `lease` must make this the only chunk over the file in this
/// process.
pub(crate) fn map_chunk(
    file: File,
    offset: u64,
    len: usize,
    lease: impl Send + Sync + 'static,
) -> io::Result<Chunk> {
    assert!(offset.is_multiple_of(CHUNK_ALIGN as u64) && len > 0);
    // SAFETY: the file is exclusively locked and leased, so no other chunk of
    // chunky maps it; other programs modifying it concurrently would break
    // any mmap user, which the storage docs forbid.
    let mut mmap = unsafe { MmapOptions::new().offset(offset).len(len).map_mut(&file)? };
    let ptr = NonNull::new(mmap.as_mut_ptr()).ok_or_else(|| io::Error::other("null mapping"))?;
    if !(ptr.as_ptr() as usize).is_multiple_of(CHUNK_ALIGN) {
        return Err(io::Error::other("mapping is not page aligned"));
    }
    let owner = Box::new(MmapOwner {
        mmap,
        _file: file,
        _lease: lease,
    });
    // SAFETY: the mapping is len bytes, readable and writable, initialised
    // (file contents), CHUNK_ALIGN-aligned (checked), fixed in place while
    // the owner holds the MmapMut, and exclusive (file lock + lease).
    Ok(unsafe { Chunk::from_raw_parts(ptr, len, owner) })
}

/// Owns nothing: the memory of a chunk carved from a [`ChunkRegion`] is
/// kept alive by the region's `Arc` in the chunk itself.
struct InRegion;

impl ChunkOwner for InRegion {}

/// The memory of a [`ChunkRegion`], shared by the chunks carved from it.
struct RegionMemory {
    /// The whole reservation (one huge page larger than the chunks, for
    /// alignment); unmapping it unmaps everything placed in it.
    _mmap: MmapMut,
    /// The first chunk's address (a huge-page boundary where the
    /// reservation allowed it).
    base: usize,
    /// The bytes of all chunks.
    len: usize,
    /// Whether a chunk maps a file (until [`privatize`] copied them).
    mapped: AtomicBool,
    /// The end of the last file mapping from `base` (what [`privatize`]
    /// copies: behind it the region is anonymous memory already).
    mapped_end: AtomicUsize,
}

/// Memory for `count` chunks of one size laid out one after the other from
/// a huge-page boundary, each either mapped copy-on-write from a file
/// ([`FileReader::map_into`](crate::FileReader::map_into)) or left as
/// zeros to read into ([`next_chunk`](Self::next_chunk)).
///
/// A mapped chunk costs no copy: its pages are the page cache's until
/// written. Each page then written is copied by the kernel on its first
/// write, one 4 KiB page per fault, and on Linux each such fault that
/// replaces a page the process already read interrupts every other
/// running thread of the process to flush its TLB, which makes a pass
/// that writes everything ten times slower than the copy itself.
/// [`privatize`] copies all of a region's chunks in one go instead (huge
/// pages where the system gives them), in place.
pub struct ChunkRegion {
    memory: Arc<RegionMemory>,
    chunk_len: usize,
    count: usize,
    next: usize,
}

impl fmt::Debug for ChunkRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkRegion")
            .field("base", &self.memory.base)
            .field("chunk_len", &self.chunk_len)
            .field("count", &self.count)
            .field("next", &self.next)
            .finish()
    }
}

const HUGE_PAGE: usize = 2 << 20;

impl ChunkRegion {
    /// Reserves memory for `count` chunks of `chunk_len` bytes (a
    /// multiple of [`CHUNK_ALIGN`]); nothing is touched yet.
    ///
    /// # Panics
    ///
    /// If `chunk_len` is 0 or not a multiple of [`CHUNK_ALIGN`].
    pub fn new(count: usize, chunk_len: usize) -> io::Result<ChunkRegion> {
        assert!(chunk_len > 0 && chunk_len.is_multiple_of(CHUNK_ALIGN));
        let len = count
            .checked_mul(chunk_len)
            .ok_or_else(|| io::Error::other("chunks too large"))?;
        let mut mmap = MmapOptions::new()
            .len(
                len.checked_add(HUGE_PAGE)
                    .ok_or_else(|| io::Error::other("chunks too large"))?,
            )
            .map_anon()?;
        let start = mmap.as_mut_ptr().align_offset(HUGE_PAGE).min(HUGE_PAGE);
        // SAFETY: start <= HUGE_PAGE, inside the mapping (len + HUGE_PAGE).
        let base = unsafe { mmap.as_mut_ptr().add(start) };
        #[cfg(target_os = "linux")]
        if len > 0 {
            // SAFETY: advice over a range of our own fresh mapping (start +
            // len <= its length); it changes nothing the memory holds.
            unsafe { libc::madvise(base.cast(), len, libc::MADV_HUGEPAGE) };
        }
        Ok(ChunkRegion {
            memory: Arc::new(RegionMemory {
                _mmap: mmap,
                base: base.expose_provenance(),
                len,
                mapped: AtomicBool::new(false),
                mapped_end: AtomicUsize::new(0),
            }),
            chunk_len,
            count,
            next: 0,
        })
    }

    /// The size of its chunks.
    pub fn chunk_len(&self) -> usize {
        self.chunk_len
    }

    /// How many chunks are not handed out yet.
    pub fn remaining(&self) -> usize {
        self.count - self.next
    }

    /// The next chunk, zeroed (`None` once all are handed out).
    pub fn next_chunk(&mut self) -> Option<Chunk> {
        let ptr = self.next_ptr()?;
        Some(self.carve(ptr))
    }

    /// The next chunk's address, which the next chunk handed out takes.
    fn next_ptr(&self) -> Option<NonNull<u8>> {
        (self.next < self.count).then(|| {
            let at = self.memory.base + self.next * self.chunk_len;
            // SAFETY: the base is inside a live mapping, never null.
            unsafe { NonNull::new_unchecked(std::ptr::with_exposed_provenance_mut(at)) }
        })
    }

    fn carve(&mut self, ptr: NonNull<u8>) -> Chunk {
        self.next += 1;
        // SAFETY: chunk `next - 1` of the region: chunk_len bytes inside
        // the reservation, readable and writable, initialised (zeros or
        // the file's pages), CHUNK_ALIGN-aligned (the base and chunk_len
        // are), never moved while the region's memory lives (the chunk
        // holds it); handed out once, so the chunk is its only handle.
        let mut chunk = unsafe { Chunk::from_raw_parts(ptr, self.chunk_len, Box::new(InRegion)) };
        chunk.region = Some(Arc::clone(&self.memory));
        chunk
    }

    /// The next chunk with its first `len` bytes (a multiple of the page
    /// size) mapped copy-on-write from `file` at `offset` (a multiple of
    /// [`CHUNK_ALIGN`]), the rest zeros; `None` once all are handed out.
    ///
    /// # Safety
    ///
    /// No one writes to or truncates the file while the chunk's pages are
    /// mapped (until [`privatize`] copied them, or the chunk is dropped):
    /// the pages the chunk has not written yet would show the change (or
    /// fault). See `FileReader::map_into`.
    #[cfg(unix)]
    pub(crate) unsafe fn map_next(
        &mut self,
        file: &File,
        offset: u64,
        len: usize,
    ) -> io::Result<Option<Chunk>> {
        use std::os::fd::AsRawFd;
        assert!(offset.is_multiple_of(CHUNK_ALIGN as u64) && len > 0 && len <= self.chunk_len);
        let Some(at) = self.next_ptr() else {
            return Ok(None);
        };
        let offset = libc::off_t::try_from(offset).map_err(io::Error::other)?;
        // SAFETY: `MAP_FIXED` over the first `len` bytes of the next chunk
        // of our own reservation, which no one refers to yet; private: this
        // process's writes never reach the file, and no one else writes to
        // it while the chunk's pages are mapped (caller).
        let placed = unsafe {
            libc::mmap(
                at.as_ptr().cast(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_FIXED,
                file.as_raw_fd(),
                offset,
            )
        };
        if placed == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        self.memory.mapped.store(true, Ordering::Relaxed);
        let end = self.next * self.chunk_len + len;
        self.memory.mapped_end.fetch_max(end, Ordering::Relaxed);
        Ok(Some(self.carve(at)))
    }
}

/// Copies the file-mapped chunks among `chunks` (see [`ChunkRegion`]) into
/// memory of this process's own, in place: the same addresses and bytes,
/// in huge pages where the system gives them, and no page shared with a
/// file any more. Returns the bytes copied.
///
/// A region is copied at once, from its start to the end of its last
/// file mapping, and only if all its chunks still alive are in `chunks`
/// (the `&mut` then says no one else reaches its memory); regions with
/// chunks elsewhere are left as they are. Elsewhere than on Linux nothing
/// is copied (the kernel copies pages as they are written).
pub fn privatize(chunks: &mut [Chunk]) -> io::Result<usize> {
    if !cfg!(target_os = "linux") {
        return Ok(0);
    }
    let mut copied = 0;
    for i in 0..chunks.len() {
        let Some(memory) = &chunks[i].region else {
            continue;
        };
        if !memory.mapped.load(Ordering::Relaxed) {
            continue;
        }
        let here = chunks
            .iter()
            .filter(|c| c.region.as_ref().is_some_and(|r| Arc::ptr_eq(r, memory)))
            .count();
        if here != Arc::strong_count(memory) {
            continue;
        }
        let len = memory.mapped_end.load(Ordering::Relaxed);
        // SAFETY: every handle to the region's memory is one of `chunks`,
        // which the caller lends exclusively: no one reads or writes it
        // while it is copied and moved; `len` lies inside the region.
        unsafe { copy_in_place(memory, len)? };
        memory.mapped.store(false, Ordering::Relaxed);
        copied += len;
    }
    Ok(copied)
}

/// Replaces the first `len` bytes of the region's memory (a whole number
/// of pages) with a fresh anonymous copy of them at the same address
/// (Linux: copy into new memory, then `mremap` it over).
///
/// # Safety
///
/// No one accesses the region's memory during the call, and `len` is at
/// most its length.
#[cfg(target_os = "linux")]
unsafe fn copy_in_place(memory: &RegionMemory, len: usize) -> io::Result<()> {
    debug_assert!(len <= memory.len && len.is_multiple_of(CHUNK_ALIGN));
    let total = len + HUGE_PAGE;
    // SAFETY: a fresh private anonymous mapping; nothing refers to it.
    let fresh = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            total,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if fresh == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let fresh = fresh.cast::<u8>();
    let skip = fresh.align_offset(HUGE_PAGE).min(HUGE_PAGE);
    // SAFETY: skip <= HUGE_PAGE: `copy` .. `copy + len` lies inside the
    // fresh mapping of len + HUGE_PAGE bytes.
    let copy = unsafe { fresh.add(skip) };
    let base = std::ptr::with_exposed_provenance_mut::<u8>(memory.base);
    // SAFETY: advice over our fresh mapping (huge pages, then populated
    // for writing: fewer faults; failures only cost speed); then `len`
    // bytes copied from the region (readable: the caller keeps writers
    // away) into it (writable, disjoint: a new mapping).
    unsafe {
        libc::madvise(copy.cast(), len, libc::MADV_HUGEPAGE);
        libc::madvise(copy.cast(), len, libc::MADV_POPULATE_WRITE);
        std::ptr::copy_nonoverlapping(base.cast_const(), copy, len);
    }
    // SAFETY: moves the copy's pages over the region (`MREMAP_FIXED`
    // unmaps what was there first, atomically for other threads: they
    // see the old pages or the equal new ones); the region's range lies
    // inside its reservation, which stays ours, and no one accesses it
    // meanwhile (caller).
    let moved = unsafe {
        libc::mremap(
            copy.cast(),
            len,
            len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            base.cast::<libc::c_void>(),
        )
    };
    let failed = moved == libc::MAP_FAILED;
    let error = failed.then(io::Error::last_os_error);
    // SAFETY: unmaps the parts of the fresh mapping that are still ours:
    // all of it if the move failed, else what lay before and after the
    // moved range (the move unmapped the range itself).
    unsafe {
        if failed {
            libc::munmap(fresh.cast(), total);
        } else {
            if skip > 0 {
                libc::munmap(fresh.cast(), skip);
            }
            if total - skip - len > 0 {
                libc::munmap(copy.add(len).cast(), total - skip - len);
            }
        }
    }
    error.map_or(Ok(()), Err)
}

#[cfg(not(target_os = "linux"))]
unsafe fn copy_in_place(_: &RegionMemory, _: usize) -> io::Result<()> {
    unreachable!("`privatize` copies on Linux only")
}

/// Keeps an anonymous mapping alive for the chunks carved from it.
struct RegionOwner {
    _mmap: MmapMut,
}

struct RegionChunk {
    _region: Arc<RegionOwner>,
}

impl ChunkOwner for RegionChunk {}

/// `count` zeroed chunks of `chunk_len` bytes (a multiple of
/// [`CHUNK_ALIGN`]) carved one after the other from one anonymous
/// mapping, which is backed by huge pages where the system gives them
/// (Linux transparent huge pages, asked for with `MADV_HUGEPAGE`) and
/// populated at once (`MADV_POPULATE_WRITE`): for filling many chunks
/// right away without a page fault per 4 KiB page.
pub fn anonymous_chunks(count: usize, chunk_len: usize) -> io::Result<Vec<Chunk>> {
    assert!(chunk_len > 0 && chunk_len.is_multiple_of(CHUNK_ALIGN));
    if count == 0 {
        return Ok(Vec::new());
    }
    let len = count
        .checked_mul(chunk_len)
        .and_then(|len| len.checked_add(HUGE_PAGE))
        .ok_or_else(|| io::Error::other("chunks too large"))?;
    let mut mmap = MmapOptions::new().len(len).map_anon()?;
    let base = mmap.as_mut_ptr();
    // The chunks start on a huge page boundary (the mapping is larger by
    // one huge page for that).
    let start = base.align_offset(HUGE_PAGE).min(HUGE_PAGE);
    let used = count * chunk_len;
    #[cfg(target_os = "linux")]
    // SAFETY: advice over a range inside our own fresh mapping (start +
    // used <= len); neither call changes what the memory holds (zeros).
    unsafe {
        let at = base.add(start).cast();
        libc::madvise(at, used, libc::MADV_HUGEPAGE);
        libc::madvise(at, used, libc::MADV_POPULATE_WRITE);
    }
    let region = Arc::new(RegionOwner { _mmap: mmap });
    let chunks = (0..count)
        .map(|k| {
            // SAFETY: start + (k + 1) * chunk_len <= start + used <= len:
            // inside the mapping, which never moves while `region` lives.
            let ptr = unsafe { NonNull::new_unchecked(base.add(start + k * chunk_len)) };
            // SAFETY: chunk_len bytes of zeroed, readable and writable
            // memory at ptr (CHUNK_ALIGN-aligned: the start is, and so is
            // chunk_len), kept alive by the owner's Arc; the chunks'
            // ranges are disjoint and nothing else refers to the mapping,
            // so each chunk is its memory's only handle.
            unsafe {
                Chunk::from_raw_parts(
                    ptr,
                    chunk_len,
                    Box::new(RegionChunk {
                        _region: region.clone(),
                    }),
                )
            }
        })
        .collect();
    Ok(chunks)
}

/// Asks the system to back the whole huge pages within `memory` with huge
/// pages (Linux transparent huge pages, `MADV_HUGEPAGE`; elsewhere
/// nothing): for memory about to be filled, a fault per 2 MiB instead of
/// per 4 KiB. A hint: it changes nothing `memory` holds, and failures are
/// ignored.
pub fn advise_huge_pages<T>(memory: &[T]) {
    #[cfg(target_os = "linux")]
    {
        let start = memory.as_ptr().addr().next_multiple_of(HUGE_PAGE);
        let end = (memory.as_ptr().addr() + size_of_val(memory)) & !(HUGE_PAGE - 1);
        if start < end {
            // SAFETY: advice over whole pages inside `memory` (start and
            // end rounded inwards), which the caller's borrow keeps
            // allocated; it changes neither contents nor validity.
            unsafe {
                libc::madvise(
                    std::ptr::with_exposed_provenance_mut(start),
                    end - start,
                    libc::MADV_HUGEPAGE,
                )
            };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = memory;
}

/// Asks the kernel to start writing `len` bytes of `file` from `offset`
/// to disk now, without waiting (Linux; elsewhere nothing): a later sync
/// then waits for less. A hint: failures are ignored (the sync reports
/// real ones).
pub(crate) fn start_writeback(file: &File, offset: u64, len: usize) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (
            libc::off64_t::try_from(offset),
            libc::off64_t::try_from(len),
        ) else {
            return;
        };
        // SAFETY: sync_file_range reads no memory of ours; an invalid
        // range or descriptor is an error return, which we ignore.
        let _ = unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
        };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// The system's page size (file mappings start on page boundaries).
pub(crate) fn page_size() -> usize {
    #[cfg(unix)]
    {
        // SAFETY: sysconf has no preconditions.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(size).unwrap_or(CHUNK_ALIGN)
    }
    #[cfg(not(unix))]
    {
        CHUNK_ALIGN
    }
}

/// This process's effective user ID.
#[cfg(unix)]
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cold]
#[inline(never)]
fn offset_out_of_bounds(offset: usize, len: usize) -> ! {
    panic!("offset {offset} beyond chunk of {len} bytes");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_chunk_is_zeroed_aligned_and_bounds_checked() {
        let block = Arc::new(HeapBlock::new(8192).unwrap());
        let mut chunk = heap_chunk(block, ());
        assert_eq!(chunk.len(), 8192);
        assert_eq!(chunk.ptr_at(0).as_ptr() as usize % CHUNK_ALIGN, 0);
        assert!(chunk.bytes(0..8192).iter().all(|&b| b == 0));
        chunk.bytes_mut(10..14).copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(chunk.bytes(10..14), &[1, 2, 3, 4]);
        *chunk.pod_mut::<u64>(16) = 7;
        assert_eq!(chunk.read_pod::<u64>(16), 7);
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            chunk.bytes(8190..8200).len()
        }));
        assert!(out.is_err());
    }

    #[test]
    fn anonymous_chunks_are_zeroed_aligned_and_apart() {
        let mut chunks = anonymous_chunks(3, 8192).unwrap();
        assert_eq!(chunks.len(), 3);
        for (k, chunk) in chunks.iter_mut().enumerate() {
            assert_eq!(chunk.len(), 8192);
            assert_eq!(chunk.ptr_at(0).as_ptr() as usize % CHUNK_ALIGN, 0);
            assert!(chunk.bytes(0..8192).iter().all(|&b| b == 0));
            chunk.bytes_mut(0..8192).fill(k as u8 + 1);
        }
        // Each kept its own bytes; one outlives the others.
        let last = chunks.pop().unwrap();
        drop(chunks);
        assert!(last.bytes(0..8192).iter().all(|&b| b == 3));
        assert!(anonymous_chunks(0, 4096).unwrap().is_empty());
    }

    #[test]
    #[should_panic(expected = "misaligned")]
    fn misaligned_pod_panics() {
        let chunk = heap_chunk(Arc::new(HeapBlock::new(4096).unwrap()), ());
        chunk.read_pod::<u32>(2);
    }
}
