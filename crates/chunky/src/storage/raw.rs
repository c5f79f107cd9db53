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
        Chunk { ptr, len, owner }
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

/// A copy-on-write mapping of part of a file: writes go to this process's
/// own copies of the pages, never to the file.
struct PrivateOwner {
    _mmap: MmapMut,
}

impl ChunkOwner for PrivateOwner {}

/// Maps `len` bytes of `file` from `offset` (both multiples of the page
/// size) copy-on-write (`MAP_PRIVATE`) as a chunk of `chunk_len >= len`
/// bytes: it starts with the file's bytes (zeros behind them), and what is
/// written to it stays in this process.
///
/// # Safety
///
/// No one writes to or truncates the file while the chunk lives: the
/// pages the chunk has not written yet would show the change (or fault).
/// See `FileReader::map_chunk`.
#[cfg(unix)]
pub(crate) unsafe fn map_private_chunk(
    file: &File,
    offset: u64,
    len: usize,
    chunk_len: usize,
) -> io::Result<Chunk> {
    use std::os::fd::AsRawFd;
    assert!(offset.is_multiple_of(CHUNK_ALIGN as u64) && len > 0 && len <= chunk_len);
    let mut mmap = if len == chunk_len {
        // SAFETY: a private mapping: this process's writes never reach the
        // file, and no one else writes to it while the chunk lives (caller).
        unsafe { MmapOptions::new().offset(offset).len(len).map_copy(file)? }
    } else {
        // Zeroed memory for the whole chunk, its front replaced by the
        // file's pages (unmapping the chunk unmaps both).
        let mut mmap = MmapOptions::new().len(chunk_len).map_anon()?;
        let offset = libc::off_t::try_from(offset).map_err(io::Error::other)?;
        // SAFETY: `MAP_FIXED` over the first `len` bytes of a mapping this
        // function owns (no one else refers to it yet); private, as above.
        let placed = unsafe {
            libc::mmap(
                mmap.as_mut_ptr().cast(),
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
        mmap
    };
    let ptr = NonNull::new(mmap.as_mut_ptr()).ok_or_else(|| io::Error::other("null mapping"))?;
    if !(ptr.as_ptr() as usize).is_multiple_of(CHUNK_ALIGN) {
        return Err(io::Error::other("mapping is not page aligned"));
    }
    let owner = Box::new(PrivateOwner { _mmap: mmap });
    // SAFETY: the mapping is chunk_len bytes, readable and writable
    // (private), initialised (file contents, then zeros), CHUNK_ALIGN-
    // aligned (checked), fixed in place while the owner holds the MmapMut,
    // and reached by no one else: it is this mapping's only handle, and
    // its pages are this process's alone once written.
    Ok(unsafe { Chunk::from_raw_parts(ptr, chunk_len, owner) })
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
    const HUGE_PAGE: usize = 2 << 20;
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
