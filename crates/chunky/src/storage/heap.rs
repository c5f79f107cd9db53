//! [`HeapStorage`]: chunks in process memory.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use super::lease::LeaseSet;
use super::raw::{self, HeapBlock};
use super::{Chunk, ChunkIndex, ChunkSize, ChunkStorage, IdentLock, chunk_name, validate_ident};
use crate::error::{Error, Result};

/// Chunks allocated from the global allocator with [`CHUNK_ALIGN`]
/// alignment; metadata kept in memory.
///
/// It behaves like an in-memory directory: a structure dropped and reopened
/// from the same `HeapStorage` finds its contents again. Everything is freed
/// when the storage (all its [`Storage`](super::Storage) clones) and the
/// chunks it handed out are dropped.
///
/// [`CHUNK_ALIGN`]: super::CHUNK_ALIGN
#[derive(Default)]
pub struct HeapStorage {
    chunks: Mutex<HashMap<String, Arc<HeapBlock>>>,
    metas: Mutex<HashMap<String, Vec<u8>>>,
    chunk_leases: Arc<LeaseSet>,
    ident_leases: Arc<LeaseSet>,
}

impl HeapStorage {
    /// An empty storage.
    pub fn new() -> HeapStorage {
        HeapStorage::default()
    }

    fn chunk(&self, name: String, block: Arc<HeapBlock>) -> Result<Chunk> {
        let lease = self
            .chunk_leases
            .try_lease(name.clone())
            .ok_or(Error::InUse { ident: name })?;
        Ok(raw::heap_chunk(block, lease))
    }
}

fn location(name: &str) -> PathBuf {
    PathBuf::from("<heap>").join(name)
}

impl ChunkStorage for HeapStorage {
    fn create_chunk(&self, ident: &str, index: ChunkIndex, size: ChunkSize) -> Result<Chunk> {
        validate_ident(ident)?;
        let name = chunk_name(ident, index);
        let lease = self
            .chunk_leases
            .try_lease(name.clone())
            .ok_or_else(|| Error::InUse {
                ident: name.clone(),
            })?;
        let block = HeapBlock::new(size.bytes()).ok_or(Error::AllocationFailed {
            size: size.bytes() as u64,
        })?;
        let block = Arc::new(block);
        lock(&self.chunks).insert(name, Arc::clone(&block));
        Ok(raw::heap_chunk(block, lease))
    }

    fn open_chunk(&self, ident: &str, index: ChunkIndex) -> Result<Chunk> {
        validate_ident(ident)?;
        let name = chunk_name(ident, index);
        let block = lock(&self.chunks).get(&name).cloned();
        match block {
            Some(block) => self.chunk(name, block),
            None => Err(Error::MissingChunk {
                ident: ident.to_owned(),
                index,
                path: location(&name),
            }),
        }
    }

    fn remove_chunk(&self, ident: &str, index: ChunkIndex) -> Result<()> {
        validate_ident(ident)?;
        lock(&self.chunks).remove(&chunk_name(ident, index));
        Ok(())
    }

    fn load_meta(&self, ident: &str) -> Result<Option<Vec<u8>>> {
        validate_ident(ident)?;
        Ok(lock(&self.metas).get(ident).cloned())
    }

    fn store_meta(&self, ident: &str, meta: &[u8]) -> Result<()> {
        validate_ident(ident)?;
        lock(&self.metas).insert(ident.to_owned(), meta.to_vec());
        Ok(())
    }

    fn remove_meta(&self, ident: &str) -> Result<()> {
        validate_ident(ident)?;
        lock(&self.metas).remove(ident);
        Ok(())
    }

    fn lock(&self, ident: &str) -> Result<IdentLock> {
        validate_ident(ident)?;
        let lease = self
            .ident_leases
            .try_lease(ident.to_owned())
            .ok_or_else(|| Error::InUse {
                ident: ident.to_owned(),
            })?;
        Ok(IdentLock::new(lease))
    }

    fn is_persistent(&self) -> bool {
        false
    }
}

impl fmt::Debug for HeapStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeapStorage")
            .field("chunks", &lock(&self.chunks).len())
            .field("metas", &lock(&self.metas).len())
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_outlive_their_handles() {
        let storage = HeapStorage::new();
        let mut chunk = storage
            .create_chunk("a", ChunkIndex(0), ChunkSize::MIN)
            .unwrap();
        chunk.bytes_mut(0..3).copy_from_slice(b"abc");
        assert!(matches!(
            storage.open_chunk("a", ChunkIndex(0)),
            Err(Error::InUse { .. })
        ));
        drop(chunk);
        let chunk = storage.open_chunk("a", ChunkIndex(0)).unwrap();
        assert_eq!(chunk.bytes(0..3), b"abc");
        assert_eq!(chunk.len(), ChunkSize::MIN.bytes());
        drop(chunk);
        storage.remove_chunk("a", ChunkIndex(0)).unwrap();
        assert!(matches!(
            storage.open_chunk("a", ChunkIndex(0)),
            Err(Error::MissingChunk { .. })
        ));
    }

    #[test]
    fn meta_and_locks() {
        let storage = HeapStorage::new();
        assert_eq!(storage.load_meta("m").unwrap(), None);
        storage.store_meta("m", b"xy").unwrap();
        assert_eq!(storage.load_meta("m").unwrap().unwrap(), b"xy");
        storage.remove_meta("m").unwrap();
        assert_eq!(storage.load_meta("m").unwrap(), None);
        let held = storage.lock("m").unwrap();
        assert!(matches!(storage.lock("m"), Err(Error::InUse { .. })));
        drop(held);
        storage.lock("m").unwrap();
        assert!(matches!(
            storage.lock("no/slash"),
            Err(Error::InvalidIdent { .. })
        ));
    }
}
