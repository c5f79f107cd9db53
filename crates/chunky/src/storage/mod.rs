//! Where chunks come from: the [`ChunkStorage`] trait and its two
//! implementations, [`HeapStorage`] and [`MmapStorage`].
//!
//! A storage hands out [`Chunk`]s, fixed-size blocks of zero-initialised,
//! page-aligned memory that never move, named by an *ident* (the structure
//! that owns them) and a [`ChunkIndex`]. Next to its chunks, every ident has a
//! small *metadata* blob in which the structure records its lengths and
//! cursors, so that it can be reopened.
//!
//! Both storages behave like a directory: chunks and metadata outlive the
//! structure that created them and stay until they are removed or the storage
//! is dropped ([`HeapStorage`]) or deleted from disk ([`MmapStorage`]).
//!
//! Exclusivity: a storage hands out at most one live [`Chunk`] per chunk name
//! and one [`IdentLock`] per ident; a second attempt gives
//! [`Error::InUse`].

mod format;
mod heap;
mod lease;
pub(crate) mod mmap;
#[allow(
    unsafe_code,
    reason = "the one module doing allocation, mapping and pointer arithmetic"
)]
mod raw;

use std::fmt;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

pub use heap::HeapStorage;
pub use mmap::MmapStorage;
#[cfg(unix)]
pub(crate) use raw::effective_uid;
pub use raw::{
    CHUNK_ALIGN, Chunk, ChunkOwner, ChunkRegion, advise_huge_pages, anonymous_chunks, privatize,
};
pub(crate) use raw::{page_size, start_writeback};

use crate::error::{Error, Result};

/// The on-disk format version written into every chunk and metadata file
/// (little-endian `u32`).
///
/// Version 2 records the owning ident in metadata files too.
pub const FORMAT_VERSION: u32 = 2;

/// The longest accepted ident, in bytes.
pub const MAX_IDENT_LEN: usize = 128;

/// The position of a chunk among the chunks of one ident.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkIndex(pub u32);

impl fmt::Display for ChunkIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The size of a chunk: a power of two from [`ChunkSize::MIN`] (4 KiB) to
/// [`ChunkSize::MAX`] (1 GiB).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkSize(u32);

impl ChunkSize {
    /// The smallest chunk: one 4 KiB page.
    pub const MIN: ChunkSize = ChunkSize(1 << 12);
    /// The largest chunk: 1 GiB.
    pub const MAX: ChunkSize = ChunkSize(1 << 30);
    /// A good default for structures that grow: 1 MiB.
    pub const DEFAULT: ChunkSize = ChunkSize(1 << 20);

    /// A chunk size of `bytes`, which must be a power of two from
    /// [`ChunkSize::MIN`] to [`ChunkSize::MAX`].
    pub fn new(bytes: usize) -> Result<ChunkSize> {
        let valid =
            bytes.is_power_of_two() && bytes >= Self::MIN.bytes() && bytes <= Self::MAX.bytes();
        match u32::try_from(bytes) {
            Ok(b) if valid => Ok(ChunkSize(b)),
            _ => Err(Error::InvalidChunkSize { size: bytes as u64 }),
        }
    }

    /// The smallest chunk size that holds `bytes`, at least `self`.
    pub fn at_least(self, bytes: usize) -> Result<ChunkSize> {
        let max = Self::MAX.bytes();
        if bytes > max {
            return Err(Error::ItemTooLarge {
                size: bytes as u64,
                max: max as u64,
            });
        }
        ChunkSize::new(bytes.next_power_of_two().max(self.bytes()))
    }

    /// The size in bytes.
    pub const fn bytes(self) -> usize {
        self.0 as usize
    }
}

impl Default for ChunkSize {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Proof that an ident is held by one structure; the ident is released when
/// this is dropped. Created by [`ChunkStorage::lock`].
pub struct IdentLock {
    _guard: Box<dyn std::any::Any + Send + Sync>,
}

impl IdentLock {
    /// A lock that releases the ident when `guard` is dropped.
    pub fn new(guard: impl Send + Sync + 'static) -> IdentLock {
        IdentLock {
            _guard: Box::new(guard),
        }
    }
}

impl fmt::Debug for IdentLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentLock")
    }
}

/// A source of chunks and metadata, keyed by ident.
///
/// Implementations must hand out at most one live [`Chunk`] per
/// `(ident, index)` (that is what makes [`Chunk`]'s safe accessors sound) and
/// at most one [`IdentLock`] per ident.
pub trait ChunkStorage: Send + Sync + fmt::Debug {
    /// Creates chunk `index` of `ident` with `size` zeroed bytes, replacing a
    /// chunk of that name that is not in use.
    fn create_chunk(&self, ident: &str, index: ChunkIndex, size: ChunkSize) -> Result<Chunk>;

    /// Opens the existing chunk `index` of `ident`; its size is the one it was
    /// created with. A missing chunk gives [`Error::MissingChunk`].
    fn open_chunk(&self, ident: &str, index: ChunkIndex) -> Result<Chunk>;

    /// Removes chunk `index` of `ident`; removing a missing chunk is not an
    /// error. A live [`Chunk`] handle of it stays valid until dropped.
    fn remove_chunk(&self, ident: &str, index: ChunkIndex) -> Result<()>;

    /// The metadata blob of `ident`, or `None` if none was stored.
    fn load_meta(&self, ident: &str) -> Result<Option<Vec<u8>>>;

    /// Replaces the metadata blob of `ident` (atomically, where persistent).
    fn store_meta(&self, ident: &str, meta: &[u8]) -> Result<()>;

    /// Removes the metadata blob of `ident`; removing a missing blob is not an
    /// error.
    fn remove_meta(&self, ident: &str) -> Result<()>;

    /// Claims `ident` for one structure until the returned lock is dropped.
    fn lock(&self, ident: &str) -> Result<IdentLock>;

    /// Whether chunks and metadata survive the process (true for files).
    fn is_persistent(&self) -> bool;
}

/// A shared handle to a [`ChunkStorage`], cheap to clone; every chunky
/// structure is opened from one.
#[derive(Clone)]
pub struct Storage {
    inner: Arc<dyn ChunkStorage>,
}

impl Storage {
    /// A fresh, empty [`HeapStorage`].
    pub fn heap() -> Storage {
        Storage::new(HeapStorage::new())
    }

    /// An [`MmapStorage`] in `dir`, which is created if missing.
    pub fn mmap(dir: impl AsRef<Path>) -> Result<Storage> {
        Ok(Storage::new(MmapStorage::open(dir)?))
    }

    /// Wraps any storage implementation.
    pub fn new(storage: impl ChunkStorage + 'static) -> Storage {
        Storage {
            inner: Arc::new(storage),
        }
    }
}

impl Deref for Storage {
    type Target = dyn ChunkStorage;

    fn deref(&self) -> &Self::Target {
        &*self.inner
    }
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

/// Checks that `ident` can name files: 1 to [`MAX_IDENT_LEN`] bytes of ASCII
/// letters, digits, `_` and `-`.
pub fn validate_ident(ident: &str) -> Result<()> {
    let reason = if ident.is_empty() {
        "it is empty"
    } else if ident.len() > MAX_IDENT_LEN {
        "it is too long"
    } else if !ident
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        "it contains a character other than ASCII letters, digits, `_` and `-`"
    } else {
        return Ok(());
    };
    Err(Error::InvalidIdent {
        ident: ident.to_owned(),
        reason,
    })
}

/// The file-like name of chunk `index` of `ident`.
pub(crate) fn chunk_name(ident: &str, index: ChunkIndex) -> String {
    format!("{ident}_{index}.chunk")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes() {
        assert_eq!(ChunkSize::new(4096).unwrap().bytes(), 4096);
        assert!(ChunkSize::new(4095).is_err());
        assert!(ChunkSize::new(6000).is_err());
        assert!(ChunkSize::new(2048).is_err());
        assert!(ChunkSize::new(1 << 31).is_err());
        assert_eq!(ChunkSize::MIN.at_least(5000).unwrap().bytes(), 8192);
        assert_eq!(ChunkSize::DEFAULT.at_least(10).unwrap(), ChunkSize::DEFAULT);
        assert!(matches!(
            ChunkSize::MIN.at_least((1 << 30) + 1),
            Err(Error::ItemTooLarge { .. })
        ));
    }

    #[test]
    fn idents() {
        validate_ident("instances_Counter-3").unwrap();
        for bad in ["", "a/b", "a.b", "ä", &"x".repeat(MAX_IDENT_LEN + 1)] {
            assert!(matches!(
                validate_ident(bad),
                Err(Error::InvalidIdent { .. })
            ));
        }
    }

    #[test]
    fn storage_is_object_safe_and_shared() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Storage>();
        assert_send_sync::<Chunk>();
        let storage = Storage::heap();
        let clone = storage.clone();
        assert!(!clone.is_persistent());
    }
}
