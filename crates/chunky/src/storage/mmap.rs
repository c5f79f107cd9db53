//! [`MmapStorage`]: chunks as memory-mapped files in a directory.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use super::format::{self, CHUNK_HEADER_LEN};
use super::lease::{Lease, LeaseSet};
use super::raw;
use super::{Chunk, ChunkIndex, ChunkSize, ChunkStorage, IdentLock, chunk_name, validate_ident};
use crate::error::{Error, Result};

/// Leases of every file mapped or locked by this process, keyed by path, so
/// that two storages over the same directory cannot alias a chunk either.
static LEASES: LazyLock<Arc<LeaseSet>> = LazyLock::new(Arc::default);

/// Chunks as files in a directory, mapped with `memmap2`; they survive the
/// process and are reopened by the structures that wrote them.
///
/// Files, all with little-endian headers carrying a magic, the
/// [`FORMAT_VERSION`](super::FORMAT_VERSION) and a CRC-32:
/// - `{ident}_{index}.chunk`: a 4 KiB header page, then the chunk's memory;
/// - `{ident}.meta`: the structure's metadata, replaced atomically (written to
///   `{ident}.meta.tmp`, synced, renamed);
/// - `{ident}.lock`: an empty file, exclusively locked while a structure
///   holds the ident (left in place afterwards).
///
/// Chunk files are exclusively locked while mapped, so a second process (or
/// a second storage in this process) gets [`Error::InUse`] instead of
/// sharing the memory. Other programs must not write to the files while they
/// are open.
#[derive(Debug)]
pub struct MmapStorage {
    dir: PathBuf,
}

impl MmapStorage {
    /// A storage in `dir`, which is created if missing.
    pub fn open(dir: impl AsRef<Path>) -> Result<MmapStorage> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let dir = fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
        Ok(MmapStorage { dir })
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of chunk `index` of `ident`.
    pub fn chunk_path(&self, ident: &str, index: ChunkIndex) -> PathBuf {
        self.dir.join(chunk_name(ident, index))
    }

    /// The path of the metadata file of `ident`.
    pub fn meta_path(&self, ident: &str) -> PathBuf {
        self.dir.join(format!("{ident}.meta"))
    }

    /// Leases `path` in this process and locks `file` against others.
    fn claim(path: &Path, file: &File, name: &str) -> Result<()> {
        match file.try_lock() {
            Ok(()) => Ok(()),
            Err(TryLockError::WouldBlock) => Err(Error::InUse {
                ident: name.to_owned(),
            }),
            // Without OS file locks the in-process lease still protects us.
            Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => Ok(()),
            Err(TryLockError::Error(e)) => Err(Error::io(path, e)),
        }
    }

    fn lease(path: &Path, name: &str) -> Result<Lease> {
        LEASES
            .try_lease(path.to_string_lossy().into_owned())
            .ok_or_else(|| Error::InUse {
                ident: name.to_owned(),
            })
    }
}

impl ChunkStorage for MmapStorage {
    fn create_chunk(&self, ident: &str, index: ChunkIndex, size: ChunkSize) -> Result<Chunk> {
        validate_ident(ident)?;
        let name = chunk_name(ident, index);
        let path = self.dir.join(&name);
        let lease = Self::lease(&path, &name)?;
        let io_err = |e| Error::io(&path, e);
        let mut file = open_no_follow(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false),
            &path,
        )?;
        Self::claim(&path, &file, &name)?;
        // Only now, holding the lock, drop any stale contents.
        file.set_len(0).map_err(io_err)?;
        file.set_len((CHUNK_HEADER_LEN + size.bytes()) as u64)
            .map_err(io_err)?;
        file.write_all(&format::encode_chunk_header(ident, index, size))
            .map_err(io_err)?;
        raw::map_chunk(file, CHUNK_HEADER_LEN as u64, size.bytes(), lease).map_err(io_err)
    }

    fn open_chunk(&self, ident: &str, index: ChunkIndex) -> Result<Chunk> {
        validate_ident(ident)?;
        let name = chunk_name(ident, index);
        let path = self.dir.join(&name);
        let lease = Self::lease(&path, &name)?;
        let io_err = |e| Error::io(&path, e);
        let file = match open_no_follow(OpenOptions::new().read(true).write(true), &path) {
            Ok(file) => file,
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Err(Error::MissingChunk {
                    ident: ident.to_owned(),
                    index,
                    path,
                });
            }
            Err(e) => return Err(e),
        };
        Self::claim(&path, &file, &name)?;
        let found = file.metadata().map_err(io_err)?.len();
        let mut page = Vec::with_capacity(CHUNK_HEADER_LEN);
        (&file)
            .take(CHUNK_HEADER_LEN as u64)
            .read_to_end(&mut page)
            .map_err(io_err)?;
        let size = format::decode_chunk_header(&path, &page, ident, index)?;
        let expected = (CHUNK_HEADER_LEN + size.bytes()) as u64;
        if found < expected {
            return Err(Error::Truncated {
                path,
                expected,
                found,
            });
        }
        if found > expected {
            return Err(Error::ForeignFile {
                path,
                detail: format!("it is {found} bytes long, its header says {expected}"),
            });
        }
        raw::map_chunk(file, CHUNK_HEADER_LEN as u64, size.bytes(), lease).map_err(io_err)
    }

    fn remove_chunk(&self, ident: &str, index: ChunkIndex) -> Result<()> {
        validate_ident(ident)?;
        remove_if_present(&self.chunk_path(ident, index))
    }

    fn load_meta(&self, ident: &str) -> Result<Option<Vec<u8>>> {
        validate_ident(ident)?;
        let path = self.meta_path(ident);
        let mut file = match open_no_follow(OpenOptions::new().read(true), &path) {
            Ok(file) => file,
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::io(&path, e))?;
        format::decode_meta(&path, &bytes, ident).map(Some)
    }

    fn store_meta(&self, ident: &str, meta: &[u8]) -> Result<()> {
        validate_ident(ident)?;
        let path = self.meta_path(ident);
        let tmp = self.dir.join(format!("{ident}.meta.tmp"));
        // A leftover temporary file (or anything planted in its place) is
        // removed, not followed: `create_new` refuses to open an existing
        // path, links included.
        remove_if_present(&tmp)?;
        let mut file = open_no_follow(OpenOptions::new().write(true).create_new(true), &tmp)?;
        file.write_all(&format::encode_meta(ident, meta))
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
    }

    fn remove_meta(&self, ident: &str) -> Result<()> {
        validate_ident(ident)?;
        remove_if_present(&self.meta_path(ident))
    }

    fn lock(&self, ident: &str) -> Result<IdentLock> {
        validate_ident(ident)?;
        let path = self.dir.join(format!("{ident}.lock"));
        let lease = Self::lease(&path, ident)?;
        let file = open_no_follow(
            OpenOptions::new().write(true).create(true).truncate(false),
            &path,
        )?;
        Self::claim(&path, &file, ident)?;
        Ok(IdentLock::new((lease, file)))
    }

    fn is_persistent(&self) -> bool {
        true
    }
}

/// Opens `path` with `options` without following a symbolic link in its
/// last component, and refuses anything but a regular file, so that a link
/// or device planted in the directory is reported instead of written through.
pub fn open_no_follow(options: &mut OpenOptions, path: &Path) -> Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // `O_NONBLOCK` keeps a planted FIFO from blocking the open; it does
        // not change how regular files behave.
        options.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK);
    }
    #[cfg(not(unix))]
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::NotAFile {
            path: path.to_owned(),
            what: "a symbolic link",
        });
    }
    let file = options.open(path).map_err(|e| {
        let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            Error::NotAFile {
                path: path.to_owned(),
                what: "a symbolic link",
            }
        } else {
            Error::io(path, e)
        }
    })?;
    let kind = file.metadata().map_err(|e| Error::io(path, e))?.file_type();
    if kind.is_file() {
        Ok(file)
    } else {
        Err(Error::NotAFile {
            path: path.to_owned(),
            what: if kind.is_dir() {
                "a directory"
            } else {
                "a special file"
            },
        })
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_persist_and_are_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let storage = MmapStorage::open(dir.path().join("nested")).unwrap();
        let size = ChunkSize::new(8192).unwrap();
        let mut chunk = storage.create_chunk("a", ChunkIndex(1), size).unwrap();
        assert_eq!(chunk.len(), 8192);
        assert_eq!(
            chunk.ptr_at(0).as_ptr() as usize % super::super::CHUNK_ALIGN,
            0
        );
        chunk.bytes_mut(8000..8003).copy_from_slice(b"xyz");

        // A second storage over the same directory cannot alias the chunk.
        let other = MmapStorage::open(dir.path().join("nested")).unwrap();
        assert!(matches!(
            other.open_chunk("a", ChunkIndex(1)),
            Err(Error::InUse { .. })
        ));
        drop(chunk);

        let chunk = other.open_chunk("a", ChunkIndex(1)).unwrap();
        assert_eq!(chunk.bytes(8000..8003), b"xyz");
        let len = fs::metadata(storage.chunk_path("a", ChunkIndex(1)))
            .unwrap()
            .len();
        assert_eq!(len, (CHUNK_HEADER_LEN + 8192) as u64);
        drop(chunk);

        storage.remove_chunk("a", ChunkIndex(1)).unwrap();
        storage.remove_chunk("a", ChunkIndex(1)).unwrap();
        assert!(matches!(
            storage.open_chunk("a", ChunkIndex(1)),
            Err(Error::MissingChunk { .. })
        ));
    }

    #[test]
    fn meta_is_replaced_atomically_and_locks_exclude() {
        let dir = tempfile::tempdir().unwrap();
        let storage = MmapStorage::open(dir.path()).unwrap();
        assert_eq!(storage.load_meta("m").unwrap(), None);
        storage.store_meta("m", b"one").unwrap();
        storage.store_meta("m", b"two").unwrap();
        assert_eq!(storage.load_meta("m").unwrap().unwrap(), b"two");
        assert!(!dir.path().join("m.meta.tmp").exists());
        storage.remove_meta("m").unwrap();
        assert_eq!(storage.load_meta("m").unwrap(), None);

        let held = storage.lock("m").unwrap();
        let other = MmapStorage::open(dir.path()).unwrap();
        assert!(matches!(other.lock("m"), Err(Error::InUse { .. })));
        drop(held);
        other.lock("m").unwrap();
    }
}
