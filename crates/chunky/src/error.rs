//! The one error type of chunky.
//!
//! Every message names the file or ident involved and says what to do about
//! it. Corrupted, truncated or foreign files always give one of these errors,
//! never a panic.

use std::io;
use std::path::PathBuf;

use crate::storage::ChunkIndex;

/// Shorthand for `Result<T, chunky::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when opening, growing or persisting chunky
/// structures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating system call on a storage file failed.
    #[error(
        "I/O error on {path}: {source}; check that the storage directory exists, is writable and the disk is not full"
    )]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A file is shorter than its header or its metadata require.
    #[error(
        "{path} is truncated: expected {expected} bytes, found {found}; it was not written completely (crash or full disk): restore the storage directory from a backup, or delete the structure's files to start empty"
    )]
    Truncated {
        /// The truncated file.
        path: PathBuf,
        /// The length the file must have.
        expected: u64,
        /// The length it has.
        found: u64,
    },

    /// A file does not start with chunky's magic bytes.
    #[error(
        "{path} is not a chunky {what} file (wrong magic bytes); check that the storage directory is the right one and that no other program writes into it"
    )]
    WrongMagic {
        /// The foreign file.
        path: PathBuf,
        /// What kind of file was expected (`chunk` or `metadata`).
        what: &'static str,
    },

    /// A file was written by a chunky version with another on-disk format.
    #[error(
        "{path} has chunky format version {found}, but this build reads version {supported}; open it with the chunky version that wrote it"
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version stored in the file.
        found: u32,
        /// The only version this build reads.
        supported: u32,
    },

    /// A file header or metadata blob does not match its checksum.
    #[error(
        "{path} is corrupted: stored checksum {stored:#010x}, computed {computed:#010x}; restore it from a backup, or delete the structure's files to start empty"
    )]
    ChecksumMismatch {
        /// The corrupted file.
        path: PathBuf,
        /// The checksum stored in the file.
        stored: u32,
        /// The checksum of the bytes actually found.
        computed: u32,
    },

    /// A file is valid but belongs to another ident or index, or its
    /// header disagrees with its length.
    #[error(
        "{path} does not fit where it was found: {detail}; it was probably copied, renamed or resized by hand: put the right file back, or delete the structure's files to start empty"
    )]
    ForeignFile {
        /// The misplaced file.
        path: PathBuf,
        /// What does not match.
        detail: String,
    },

    /// A file where a structure keeps its state is a symbolic link or not a
    /// regular file. chunky never follows links, so a link planted in the
    /// directory cannot make it read or overwrite a file elsewhere.
    #[error(
        "{path} is {what}, not a regular file; chunky does not follow links out of its directory: remove it"
    )]
    NotAFile {
        /// The refused path.
        path: PathBuf,
        /// What was found instead ("a symbolic link", "a directory", ...).
        what: &'static str,
    },

    /// The metadata of a structure lists a chunk whose file does not exist.
    #[error(
        "chunk {index} of `{ident}` ({path}) is missing although the metadata lists it; restore it from a backup, or delete `{ident}`'s files to start empty"
    )]
    MissingChunk {
        /// The structure's ident.
        ident: String,
        /// The missing chunk.
        index: ChunkIndex,
        /// Where the chunk was looked for.
        path: PathBuf,
    },

    /// An ident or chunk is already held by a live handle.
    #[error(
        "`{ident}` is already open (in this or another process); drop the other handle before opening it again, or use another ident"
    )]
    InUse {
        /// The ident (or chunk name) that is taken.
        ident: String,
    },

    /// The metadata under an ident belongs to another kind of structure.
    #[error(
        "`{ident}` holds a {found}, not a {expected}; open it as a {found}, use another ident, or delete its files"
    )]
    KindMismatch {
        /// The structure's ident.
        ident: String,
        /// The kind that was requested.
        expected: &'static str,
        /// The kind found in the metadata.
        found: &'static str,
    },

    /// A structure was reopened with settings other than those it was
    /// created with.
    #[error(
        "`{ident}` was created with {what} = {stored}, but opened with {requested}; open it with the original settings, or delete its files to start empty"
    )]
    LayoutMismatch {
        /// The structure's ident.
        ident: String,
        /// The setting that differs.
        what: &'static str,
        /// The value stored in the metadata.
        stored: u64,
        /// The value passed when opening.
        requested: u64,
    },

    /// A snapshot generation does not match its manifest (see
    /// [`Generations`](crate::Generations)).
    #[error(
        "snapshot generation {path} is damaged: {detail}; load an older generation (delete this one) or restore it from a backup"
    )]
    CorruptGeneration {
        /// The generation's directory or file.
        path: PathBuf,
        /// What does not match.
        detail: String,
    },

    /// The metadata passed its checksum but its contents are inconsistent.
    #[error(
        "metadata of `{ident}` is inconsistent ({detail}); its files were modified or mixed from different runs: restore them from a backup, or delete `{ident}`'s files to start empty"
    )]
    CorruptMeta {
        /// The structure's ident.
        ident: String,
        /// What is inconsistent.
        detail: String,
    },

    /// The contents of a structure's chunks are inconsistent with its
    /// metadata (found when reopening).
    #[error(
        "contents of `{ident}` are corrupted ({detail}); its chunk files were modified: restore them from a backup, or delete `{ident}`'s files to start empty"
    )]
    CorruptData {
        /// The structure's ident.
        ident: String,
        /// What is inconsistent.
        detail: String,
    },

    /// An ident contains characters that cannot name a file.
    #[error(
        "invalid ident `{ident}`: {reason}; use 1 to {max} ASCII letters, digits, `_` or `-`",
        max = crate::storage::MAX_IDENT_LEN
    )]
    InvalidIdent {
        /// The rejected ident.
        ident: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// A chunk size is not a power of two in the supported range.
    #[error(
        "chunk size {size} is invalid; use a power of two from {min} to {max} bytes",
        min = crate::storage::ChunkSize::MIN.bytes(),
        max = crate::storage::ChunkSize::MAX.bytes()
    )]
    InvalidChunkSize {
        /// The rejected size in bytes.
        size: u64,
    },

    /// An item or slot does not fit the largest supported chunk.
    #[error(
        "an item of {size} bytes is larger than the maximum of {max} bytes; split it into smaller items"
    )]
    ItemTooLarge {
        /// The requested size in bytes.
        size: u64,
        /// The largest supported size in bytes.
        max: u64,
    },

    /// A structure ran out of indices.
    #[error(
        "`{ident}` cannot hold more {what}; free some, or spread the data over several structures"
    )]
    CapacityExceeded {
        /// The structure's ident.
        ident: String,
        /// What ran out (`slots`, `chunks`).
        what: &'static str,
    },

    /// The allocator could not provide a heap chunk.
    #[error(
        "could not allocate a heap chunk of {size} bytes (out of memory); use smaller chunks or an mmap storage"
    )]
    AllocationFailed {
        /// The requested chunk size in bytes.
        size: u64,
    },
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    /// An I/O error at `path`.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An inconsistent metadata blob.
    pub(crate) fn corrupt_meta(ident: &str, detail: impl Into<String>) -> Self {
        Error::CorruptMeta {
            ident: ident.to_owned(),
            detail: detail.into(),
        }
    }

    /// Inconsistent chunk contents.
    pub(crate) fn corrupt_data(ident: &str, detail: impl Into<String>) -> Self {
        Error::CorruptData {
            ident: ident.to_owned(),
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_tell_what_to_do() {
        let err = Error::Truncated {
            path: "dir/a_0.chunk".into(),
            expected: 8192,
            found: 100,
        };
        let text = err.to_string();
        assert!(text.contains("dir/a_0.chunk"), "{text}");
        assert!(text.contains("restore"), "{text}");

        let err = Error::InvalidChunkSize { size: 3 };
        assert!(err.to_string().contains("power of two from 4096"), "{err}");
    }
}
