//! [`Generations`]: numbered, complete snapshots of a set of files in a
//! directory, written so that a crash at any point leaves the previous
//! generation loadable and never a half-written one that loads.
//!
//! # Layout and protocol
//!
//! ```text
//! dir/
//!   gen-00000000000000000007/     a complete generation
//!     MANIFEST                    format, number, metadata, every file's
//!     stores.bin                  length and CRC-32, and the manifest's own
//!     ...
//!   gen-00000000000000000008.tmp/ one being written (or left by a crash)
//! ```
//!
//! 1. A generation is written into `gen-N.tmp/` (a leftover of that name is
//!    removed first): every file is created new (`O_EXCL`, never through a
//!    planted link), written and synced; then the manifest, synced; then
//!    the directory.
//! 2. `gen-N.tmp` is renamed to `gen-N` (atomic on POSIX file systems) and
//!    the parent directory synced: the commit point. A crash before it
//!    leaves a `.tmp` directory, which loading ignores (and the next write
//!    removes); after it, the generation is complete.
//! 3. Older generations beyond the number to keep are removed, oldest
//!    first, after the commit.
//!
//! Loading ([`Generations::newest`]) takes the complete generation with the
//! highest number and checks all of it before handing out anything: the
//! manifest's magic bytes, format version and checksum, then every file
//! it lists (a regular file, not a link, of the recorded length and
//! CRC-32). Any mismatch is an error naming the file and the problem; it
//! does not fall back to an older generation silently (delete the damaged
//! one to load the one before).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::storage::mmap::open_no_follow;
use crate::storage::{Chunk, ChunkRegion};

/// The manifest's magic bytes.
const MAGIC: &[u8; 8] = b"KAYGEN\r\n";
/// The format version this build writes and reads.
pub const GENERATION_FORMAT: u32 = 1;
/// The manifest's file name in a generation.
const MANIFEST: &str = "MANIFEST";
/// The longest file name in a generation.
const MAX_NAME: usize = 100;
/// The largest manifest read (its metadata holds e.g. a registry's
/// fingerprint: kilobytes).
const MAX_MANIFEST: u64 = 64 << 20;

/// A directory of snapshot generations (see the module docs).
#[derive(Debug, Clone)]
pub struct Generations {
    dir: PathBuf,
    keep: usize,
}

/// One file of a generation, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Its name (letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// Its length in bytes.
    pub len: u64,
    /// The CRC-32 of its bytes.
    pub crc: u32,
}

/// A complete, checked generation (see [`Generations::newest`]).
#[derive(Clone)]
pub struct Generation {
    /// Its directory.
    pub dir: PathBuf,
    /// Its number.
    pub number: u64,
    /// The metadata written with it (e.g. a registry fingerprint and the
    /// turn), checked by the manifest's checksum.
    pub meta: Vec<u8>,
    /// Its files.
    pub files: Vec<FileEntry>,
    /// Their bytes, read and checked once by [`Generations::newest`].
    contents: Vec<Vec<u8>>,
}

/// A generation being written (see [`Generations::begin`]).
#[derive(Debug)]
pub struct GenerationWriter<'g> {
    generations: &'g Generations,
    number: u64,
    tmp: PathBuf,
    entries: Vec<FileEntry>,
    committed: bool,
}

impl GenerationWriter<'_> {
    /// Adds file `name` made of `parts`, one after the other (e.g. the
    /// used part of each chunk of an arena: no copy into one buffer). The
    /// file is created new (never through a planted link) and synced.
    pub fn file(&mut self, name: &str, parts: &[&[u8]]) -> Result<()> {
        let entry = self.write_file(name, parts)?;
        self.add(entry)
    }

    /// Writes file `name` as [`file`](Self::file) does, without adding it
    /// to the generation yet (so that several threads can write files at
    /// once): give the entry returned to [`add`](Self::add).
    pub fn write_file(&self, name: &str, parts: &[&[u8]]) -> Result<FileEntry> {
        check_name(&self.tmp, name)?;
        let path = self.tmp.join(name);
        let mut file = create_new(&path)?;
        let mut crc = crc32fast::Hasher::new();
        let mut len = 0u64;
        for part in parts {
            // The checksum first: it brings the bytes into the cache, from
            // where the write copies them.
            crc.update(part);
            file.write_all(part).map_err(|e| Error::io(&path, e))?;
            // Large parts go to disk while the next ones are copied.
            if part.len() >= 1 << 20 {
                crate::storage::start_writeback(&file, len, part.len());
            }
            len += part.len() as u64;
        }
        file.sync_data().map_err(|e| Error::io(&path, e))?;
        Ok(FileEntry {
            name: name.to_owned(),
            len,
            crc: crc.finalize(),
        })
    }

    /// Adds a file written by [`write_file`](Self::write_file).
    pub fn add(&mut self, entry: FileEntry) -> Result<()> {
        if self.entries.iter().any(|e| e.name == entry.name) {
            return Err(Error::CorruptGeneration {
                path: self.tmp.join(&entry.name),
                detail: "a generation holds each file name once".to_owned(),
            });
        }
        self.entries.push(entry);
        Ok(())
    }

    /// Writes the manifest (with `meta`), commits the generation with an
    /// atomic rename and prunes old ones; returns its directory.
    pub fn commit(self, meta: &[u8]) -> Result<PathBuf> {
        let generations = self.generations;
        let done = self.commit_only(meta)?;
        generations.prune()?;
        Ok(done)
    }

    /// As [`commit`](Self::commit), without pruning: call
    /// [`Generations::prune`] later (e.g. on another thread, so that
    /// removing old files does not lengthen a pause).
    pub fn commit_only(mut self, meta: &[u8]) -> Result<PathBuf> {
        let manifest = encode_manifest(self.number, meta, &self.entries);
        let path = self.tmp.join(MANIFEST);
        let mut file = create_new(&path)?;
        file.write_all(&manifest)
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::io(&path, e))?;
        sync_dir(&self.tmp)?;
        let done = self.generations.path_of(self.number, false);
        fs::rename(&self.tmp, &done).map_err(|e| Error::io(&done, e))?;
        self.committed = true;
        sync_dir(&self.generations.dir)?;
        Ok(done)
    }
}

impl Drop for GenerationWriter<'_> {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: a leftover `.tmp` is ignored by loading and
            // removed by the next write.
            let _ = remove_dir_if_present(&self.tmp);
        }
    }
}

impl Generations {
    /// The generations in `dir` (created if missing; a symbolic link is
    /// refused), keeping the newest `keep` (at least 1) when writing.
    pub fn open(dir: impl AsRef<Path>, keep: usize) -> Result<Generations> {
        let dir = dir.as_ref().to_owned();
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::NotAFile {
                    path: dir,
                    what: "a symbolic link (the snapshot directory must be a real one)",
                });
            }
            Ok(m) if !m.is_dir() => {
                return Err(Error::NotAFile {
                    path: dir,
                    what: "a file where the snapshot directory should be",
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            }
            Err(e) => return Err(Error::io(&dir, e)),
        }
        Ok(Generations {
            dir,
            keep: keep.max(1),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, number: u64, tmp: bool) -> PathBuf {
        let suffix = if tmp { ".tmp" } else { "" };
        self.dir.join(format!("gen-{number:020}{suffix}"))
    }

    /// Writes generation `number` (above every complete one) with `meta`
    /// and `files` (name, bytes), commits it, and removes generations
    /// beyond the number to keep. On an error (a full disk, say) nothing
    /// is committed: the previous generations stay as they were.
    pub fn write(&self, number: u64, meta: &[u8], files: &[(&str, &[u8])]) -> Result<PathBuf> {
        let mut writer = self.begin(number)?;
        for &(name, bytes) in files {
            writer.file(name, &[bytes])?;
        }
        writer.commit(meta)
    }

    /// Starts writing generation `number` (above every complete one): add
    /// its files with [`GenerationWriter::file`], then
    /// [`commit`](GenerationWriter::commit). Dropped uncommitted, the
    /// writer removes what it wrote.
    pub fn begin(&self, number: u64) -> Result<GenerationWriter<'_>> {
        if let Some(newest) = self.complete()?.last()
            && newest.0 >= number
        {
            return Err(Error::CorruptGeneration {
                path: self.path_of(number, false),
                detail: format!(
                    "generation {} exists already; write a higher number",
                    newest.0
                ),
            });
        }
        let tmp = self.path_of(number, true);
        remove_dir_if_present(&tmp)?;
        fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(GenerationWriter {
            generations: self,
            number,
            tmp,
            entries: Vec::new(),
            committed: false,
        })
    }

    /// Removes complete generations beyond the number to keep, and
    /// leftover `.tmp` ones (as [`GenerationWriter::commit`] does).
    pub fn prune(&self) -> Result<()> {
        let complete = self.complete()?;
        let extra = complete.len().saturating_sub(self.keep);
        for (_, path) in &complete[..extra] {
            fs::remove_dir_all(path).map_err(|e| Error::io(path, e))?;
        }
        for entry in fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))? {
            let entry = entry.map_err(|e| Error::io(&self.dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("gen-") && name.ends_with(".tmp") {
                remove_dir_if_present(&entry.path())?;
            }
        }
        Ok(())
    }

    /// The complete generations (numbered directories without `.tmp`), by
    /// number.
    fn complete(&self) -> Result<Vec<(u64, PathBuf)>> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))? {
            let entry = entry.map_err(|e| Error::io(&self.dir, e))?;
            let name = entry.file_name();
            let Some(number) = name
                .to_str()
                .and_then(|n| n.strip_prefix("gen-"))
                .filter(|n| n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            found.push((number, entry.path()));
        }
        found.sort_unstable();
        Ok(found)
    }

    /// The number of the newest complete generation (not checked), if any.
    pub fn newest_number(&self) -> Result<Option<u64>> {
        Ok(self.complete()?.last().map(|(number, _)| *number))
    }

    /// The newest complete generation's manifest, checked (magic, format,
    /// checksum, file names), without reading its files: read each with
    /// [`GenerationFiles::reader`] or [`GenerationFiles::read`], which
    /// check its length and checksum. For loading large files straight
    /// into their destination; [`newest`](Self::newest) checks everything
    /// first.
    pub fn newest_manifest(&self) -> Result<Option<GenerationFiles>> {
        let Some((number, dir)) = self.complete()?.pop() else {
            return Ok(None);
        };
        let (meta, files) = check_manifest(&dir, number)?;
        let by_name = (files.iter().enumerate())
            .map(|(at, entry)| (entry.name.clone(), at))
            .collect();
        Ok(Some(GenerationFiles {
            dir,
            number,
            meta,
            files,
            by_name,
        }))
    }

    /// The newest complete generation, checked whole (see the module
    /// docs); `None` if there is none.
    pub fn newest(&self) -> Result<Option<Generation>> {
        match self.complete()?.pop() {
            Some((number, path)) => check(&path, number).map(Some),
            None => Ok(None),
        }
    }
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("dir", &self.dir)
            .field("number", &self.number)
            .field("meta", &self.meta.len())
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Generation {
    /// The bytes of file `name`, as checked when the generation was found.
    pub fn read(&self, name: &str) -> Result<&[u8]> {
        let at = (self.files.iter().position(|e| e.name == name)).ok_or_else(|| {
            Error::CorruptGeneration {
                path: self.dir.join(name),
                detail: "the manifest lists no such file".to_owned(),
            }
        })?;
        Ok(&self.contents[at])
    }
}

/// A complete generation whose manifest was checked (see
/// [`Generations::newest_manifest`]); its files are checked as they are
/// read.
#[derive(Debug, Clone)]
pub struct GenerationFiles {
    /// Its directory.
    pub dir: PathBuf,
    /// Its number.
    pub number: u64,
    /// The metadata written with it.
    pub meta: Vec<u8>,
    /// Its files, as the manifest lists them.
    pub files: Vec<FileEntry>,
    /// Each file's position in `files`, by name (a manifest may list many).
    by_name: std::collections::HashMap<String, usize>,
}

impl GenerationFiles {
    fn entry(&self, name: &str) -> Result<&FileEntry> {
        (self.by_name.get(name).map(|&at| &self.files[at])).ok_or_else(|| {
            Error::CorruptGeneration {
                path: self.dir.join(name),
                detail: "the manifest lists no such file".to_owned(),
            }
        })
    }

    /// The length of file `name`, checked against the file itself (it
    /// must exist, be a regular file reached without a link, and have the
    /// length the manifest records): a length a reader can size memory
    /// by, as no planted manifest can make it exceed what is on disk.
    pub fn checked_len(&self, name: &str) -> Result<u64> {
        let entry = self.entry(name)?;
        open_checked(&self.dir.join(&entry.name), entry)?;
        Ok(entry.len)
    }

    /// Reads file `name` whole, checking its length and checksum.
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        read_checked(&self.dir, self.entry(name)?)
    }
}

impl GenerationFiles {
    /// Opens file `name` to be taken in piece by piece, front to back,
    /// each piece read into memory or mapped as a chunk (see
    /// [`FileReader`]); its length is checked now, its checksum by
    /// [`FileReader::finish`].
    pub fn reader(&self, name: &str) -> Result<FileReader> {
        let entry = self.entry(name)?;
        let path = self.dir.join(&entry.name);
        let file = open_checked(&path, entry)?;
        let mappable = mappable(&file, &path)?;
        Ok(FileReader {
            file,
            path,
            entry: entry.clone(),
            crc: crc32fast::Hasher::new(),
            at: 0,
            mappable,
        })
    }
}

/// A generation's file taken in front to back (see
/// [`GenerationFiles::reader`]): each piece is read into memory
/// ([`read`](Self::read)) or, where it lies on a page boundary, mapped
/// copy-on-write as a [`Chunk`] ([`map_chunk`](Self::map_chunk): no copy,
/// pages shared with the page cache until written). The checksum is taken
/// over every piece as it comes; nothing taken counts as checked until
/// [`finish`](Self::finish) says so.
#[derive(Debug)]
pub struct FileReader {
    file: File,
    path: PathBuf,
    entry: FileEntry,
    crc: crc32fast::Hasher,
    at: u64,
    mappable: bool,
}

impl FileReader {
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bytes not taken yet.
    pub fn remaining(&self) -> u64 {
        self.entry.len - self.at
    }

    /// Whether pieces of this file can be mapped: it belongs to this
    /// process's user and no one else may write to it (on Unix). A mapped
    /// chunk shows later writes to the file in the pages it has not
    /// written yet, so files that another user could change are read
    /// instead.
    pub fn is_mappable(&self) -> bool {
        self.mappable
    }

    fn take(&mut self, n: u64) -> Result<u64> {
        if n > self.remaining() {
            return Err(Error::CorruptGeneration {
                path: self.path.clone(),
                detail: format!(
                    "{n} more bytes expected at byte {}, the file holds {}",
                    self.at, self.entry.len
                ),
            });
        }
        let at = self.at;
        self.at += n;
        Ok(at)
    }

    /// Reads the next `into.len()` bytes into `into`.
    pub fn read(&mut self, into: &mut [u8]) -> Result<()> {
        let at = self.take(into.len() as u64)?;
        read_exact_at(&self.file, into, at).map_err(|e| Error::io(&self.path, e))?;
        self.crc.update(into);
        Ok(())
    }

    /// Reads the next `into.len()` bytes into `into`, then hands them to
    /// `visit` in pieces of `piece` bytes (the last one shorter), each
    /// right after the checksum took it, as
    /// [`map_into`](Self::map_into) does; returns
    /// `visit`'s outcome.
    ///
    /// # Panics
    ///
    /// If `piece` is 0.
    pub fn read_visiting<E>(
        &mut self,
        into: &mut [u8],
        piece: usize,
        mut visit: impl FnMut(&mut [u8]) -> std::result::Result<(), E>,
    ) -> Result<std::result::Result<(), E>> {
        assert!(piece > 0, "pieces of no bytes");
        let at = self.take(into.len() as u64)?;
        read_exact_at(&self.file, into, at).map_err(|e| Error::io(&self.path, e))?;
        Ok(checksum_visiting(&mut self.crc, into, piece, &mut visit))
    }

    /// Reads and checks off the next `n` bytes without keeping them (for
    /// padding between pieces).
    pub fn skip(&mut self, mut n: usize) -> Result<()> {
        let mut scratch = [0u8; 4096];
        while n > 0 {
            let step = n.min(scratch.len());
            self.read(&mut scratch[..step])?;
            n -= step;
        }
        Ok(())
    }

    /// Maps the next `len` bytes as the front of a chunk of `chunk_len`
    /// bytes (zeros behind them), copy-on-write (see the type docs), if
    /// the file [is mappable](Self::is_mappable), the piece starts on a
    /// page boundary, `len` is a whole number of pages and the system
    /// maps it; otherwise `None` and nothing is taken (read it instead). The chunk is a
    /// region of its own (see [`map_into`](Self::map_into) for many).
    ///
    /// # Panics
    ///
    /// If `chunk_len < len`, or `chunk_len` is not a multiple of
    /// [`CHUNK_ALIGN`](crate::storage::CHUNK_ALIGN).
    ///
    /// # Safety
    ///
    /// No one writes to or truncates the file while the chunk's pages
    /// are mapped (until [`privatize`](crate::storage::privatize) copied
    /// them, or the chunk is dropped): the pages the chunk has not
    /// written yet would show the change (or fault).
    /// [`is_mappable`](Self::is_mappable) rules out other users; this
    /// process and this user's others are the caller's to keep away.
    #[allow(
        unsafe_code,
        reason = "the caller keeps writers away from the mapped file"
    )]
    pub unsafe fn map_chunk(&mut self, len: usize, chunk_len: usize) -> Result<Option<Chunk>> {
        let mut region = ChunkRegion::new(1, chunk_len).map_err(|e| Error::io(&self.path, e))?;
        // SAFETY: forwarded from the caller.
        let mapped = unsafe { self.map_into(&mut region, len, len.max(1), |_| Ok::<(), ()>(()))? };
        Ok(mapped.map(|(chunk, _)| chunk))
    }

    /// As [`map_chunk`](Self::map_chunk), as the next chunk of `region`
    /// (`None` also once it has none left), and hands the mapped bytes
    /// to `visit` in pieces of `piece` bytes (the last one shorter), each
    /// right after the checksum took it, while it is in the cache: one
    /// pass over memory for checksumming and, say, validating the bytes.
    /// Returns the chunk (whatever `visit` said) and `visit`'s outcome;
    /// after its first error `visit` is not called again (the checksum
    /// still takes every piece).
    ///
    /// # Panics
    ///
    /// If `region`'s chunks are smaller than `len`, or `piece` is 0.
    ///
    /// # Safety
    ///
    /// As for [`map_chunk`](Self::map_chunk).
    #[allow(
        unsafe_code,
        reason = "the caller keeps writers away from the mapped file"
    )]
    pub unsafe fn map_into<E>(
        &mut self,
        region: &mut ChunkRegion,
        len: usize,
        piece: usize,
        mut visit: impl FnMut(&mut [u8]) -> std::result::Result<(), E>,
    ) -> Result<Option<(Chunk, std::result::Result<(), E>)>> {
        assert!(
            len <= region.chunk_len(),
            "a chunk of {} bytes for {len}",
            region.chunk_len()
        );
        assert!(piece > 0, "pieces of no bytes");
        let page = crate::storage::page_size();
        if !self.mappable
            || len == 0
            || !len.is_multiple_of(page)
            || !self.at.is_multiple_of(page as u64)
            || len as u64 > self.remaining()
            || region.remaining() == 0
        {
            return Ok(None);
        }
        // SAFETY: forwarded from the caller.
        let Some(mut chunk) = (unsafe { self.map_at(region, len)? }) else {
            return Ok(None);
        };
        let outcome = checksum_visiting(&mut self.crc, chunk.bytes_mut(0..len), piece, &mut visit);
        Ok(Some((chunk, outcome)))
    }

    /// Maps the next `len` bytes into `region` (the checksum is the
    /// caller's to take).
    ///
    /// # Safety
    ///
    /// As for [`map_chunk`](Self::map_chunk).
    #[cfg(unix)]
    #[allow(
        unsafe_code,
        reason = "the caller keeps writers away from the mapped file"
    )]
    unsafe fn map_at(&mut self, region: &mut ChunkRegion, len: usize) -> Result<Option<Chunk>> {
        // SAFETY: forwarded from the caller.
        match unsafe { region.map_next(&self.file, self.at, len) } {
            Ok(Some(chunk)) => {
                self.take(len as u64)?;
                Ok(Some(chunk))
            }
            // A file system that cannot map (or a process out of
            // mappings) is read from instead.
            Ok(None) | Err(_) => Ok(None),
        }
    }

    #[cfg(not(unix))]
    #[allow(unsafe_code, reason = "the same signature as on Unix")]
    unsafe fn map_at(&mut self, _: &mut ChunkRegion, _: usize) -> Result<Option<Chunk>> {
        unreachable!("files are not mapped (`mappable` is false)")
    }

    /// Reads what was not taken yet, then [`finish`](Self::finish)es:
    /// for telling a damaged file (a checksum mismatch) from one whose
    /// contents were refused for another reason, after such a refusal.
    pub fn finish_rest(mut self) -> Result<()> {
        let mut scratch = vec![0u8; 1 << 16];
        while self.remaining() > 0 {
            let step = (scratch.len() as u64).min(self.remaining()) as usize;
            self.read(&mut scratch[..step])?;
        }
        self.finish()
    }

    /// Checks that the whole file was taken and that its checksum is the
    /// one the manifest records.
    pub fn finish(self) -> Result<()> {
        let left = self.remaining();
        if left != 0 {
            return Err(Error::CorruptGeneration {
                path: self.path,
                detail: format!("{left} bytes at its end are not accounted for"),
            });
        }
        let computed = self.crc.finalize();
        if computed != self.entry.crc {
            return Err(Error::ChecksumMismatch {
                path: self.path,
                stored: self.entry.crc,
                computed,
            });
        }
        Ok(())
    }
}

/// Adds `bytes` to `crc` in pieces of `piece` bytes, handing each to
/// `visit` right after (while it is in the cache) until `visit` fails;
/// returns `visit`'s outcome.
fn checksum_visiting<E>(
    crc: &mut crc32fast::Hasher,
    bytes: &mut [u8],
    piece: usize,
    visit: &mut impl FnMut(&mut [u8]) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let mut outcome = Ok(());
    for part in bytes.chunks_mut(piece) {
        crc.update(part);
        if outcome.is_ok() {
            outcome = visit(part);
        }
    }
    outcome
}

/// Whether `file` may be mapped copy-on-write (see
/// [`FileReader::is_mappable`]).
#[cfg(unix)]
fn mappable(file: &File, path: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    Ok(meta.uid() == crate::storage::effective_uid() && meta.mode() & 0o022 == 0)
}

#[cfg(not(unix))]
fn mappable(_: &File, _: &Path) -> Result<bool> {
    Ok(false)
}

#[cfg(unix)]
fn read_exact_at(file: &File, into: &mut [u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, into, at)
}

#[cfg(not(unix))]
fn read_exact_at(mut file: &File, into: &mut [u8], at: u64) -> io::Result<()> {
    use std::io::Seek;
    file.seek(io::SeekFrom::Start(at))?;
    file.read_exact(into)
}

/// Checks generation `number`'s directory and manifest; returns the
/// metadata and the files listed.
fn check_manifest(dir: &Path, number: u64) -> Result<(Vec<u8>, Vec<FileEntry>)> {
    if fs::symlink_metadata(dir)
        .map_err(|e| Error::io(dir, e))?
        .file_type()
        .is_symlink()
    {
        return Err(Error::NotAFile {
            path: dir.to_owned(),
            what: "a symbolic link (a generation must be a real directory)",
        });
    }
    let path = dir.join(MANIFEST);
    let mut file = open_no_follow(OpenOptions::new().read(true), &path)?;
    // A planted manifest must not make us read gigabytes.
    let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
    if len > MAX_MANIFEST {
        return Err(Error::CorruptGeneration {
            path,
            detail: format!("{len} bytes, more than a manifest has ({MAX_MANIFEST} at most)"),
        });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::io(&path, e))?;
    let (found, meta, files) = decode_manifest(&path, &bytes)?;
    if found != number {
        return Err(Error::CorruptGeneration {
            path,
            detail: format!("the manifest is of generation {found}, the directory of {number}"),
        });
    }
    let mut names = std::collections::HashSet::with_capacity(files.len());
    for entry in &files {
        check_name(dir, &entry.name)?;
        if !names.insert(entry.name.as_str()) {
            return Err(Error::CorruptGeneration {
                path: dir.join(&entry.name),
                detail: "the manifest lists this file twice".to_owned(),
            });
        }
    }
    Ok((meta, files))
}

/// Checks generation `number` in `dir` whole: its manifest and every file.
fn check(dir: &Path, number: u64) -> Result<Generation> {
    let (meta, files) = check_manifest(dir, number)?;
    let mut contents = Vec::with_capacity(files.len());
    for entry in &files {
        contents.push(read_checked(dir, entry)?);
    }
    Ok(Generation {
        dir: dir.to_owned(),
        number,
        meta,
        files,
        contents,
    })
}

/// Opens the file of `entry` at `path` (never through a link), checking that it
/// has the length the manifest records.
fn open_checked(path: &Path, entry: &FileEntry) -> Result<File> {
    let file = match open_no_follow(OpenOptions::new().read(true), path) {
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Err(Error::CorruptGeneration {
                path: path.to_owned(),
                detail: "a file the manifest lists is missing".to_owned(),
            });
        }
        other => other?,
    };
    // The file's own length first: a planted manifest claiming a huge one
    // must not make us reserve it.
    let on_disk = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if on_disk != entry.len {
        return Err(Error::Truncated {
            path: path.to_owned(),
            expected: entry.len,
            found: on_disk,
        });
    }
    Ok(file)
}

/// Reads `entry` from `dir`, checking its length and CRC-32.
fn read_checked(dir: &Path, entry: &FileEntry) -> Result<Vec<u8>> {
    let path = dir.join(&entry.name);
    let mut file = open_checked(&path, entry)?;
    let mut bytes = Vec::with_capacity(entry.len as usize);
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::io(&path, e))?;
    if bytes.len() as u64 != entry.len {
        return Err(Error::Truncated {
            path,
            expected: entry.len,
            found: bytes.len() as u64,
        });
    }
    let computed = crc32fast::hash(&bytes);
    if computed != entry.crc {
        return Err(Error::ChecksumMismatch {
            path,
            stored: entry.crc,
            computed,
        });
    }
    Ok(bytes)
}

/// Refuses names that are not plain file names.
fn check_name(dir: &Path, name: &str) -> Result<()> {
    let plain = !name.is_empty()
        && name.len() <= MAX_NAME
        && name != MANIFEST
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if plain {
        Ok(())
    } else {
        Err(Error::CorruptGeneration {
            path: dir.join(name),
            detail: format!(
                "`{name}` is no plain file name (1 to {MAX_NAME} letters, digits, `_`, `-`, `.`, \
                 not starting with `.`, not `{MANIFEST}`)"
            ),
        })
    }
}

fn encode_manifest(number: u64, meta: &[u8], files: &[FileEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&GENERATION_FORMAT.to_le_bytes());
    out.extend_from_slice(&number.to_le_bytes());
    out.extend_from_slice(&(meta.len() as u64).to_le_bytes());
    out.extend_from_slice(meta);
    out.extend_from_slice(&(files.len() as u32).to_le_bytes());
    for file in files {
        out.extend_from_slice(&(file.name.len() as u16).to_le_bytes());
        out.extend_from_slice(file.name.as_bytes());
        out.extend_from_slice(&file.len.to_le_bytes());
        out.extend_from_slice(&file.crc.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The number, metadata and files of a manifest, checked.
fn decode_manifest(path: &Path, bytes: &[u8]) -> Result<(u64, Vec<u8>, Vec<FileEntry>)> {
    let corrupt = |detail: &str| Error::CorruptGeneration {
        path: path.to_owned(),
        detail: detail.to_owned(),
    };
    if bytes.len() < MAGIC.len() + 4 + 4 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(Error::WrongMagic {
            path: path.to_owned(),
            what: "snapshot manifest",
        });
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != GENERATION_FORMAT {
        return Err(Error::UnsupportedVersion {
            path: path.to_owned(),
            found: version,
            supported: GENERATION_FORMAT,
        });
    }
    let (body, stored) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes(stored.try_into().expect("4 bytes"));
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(Error::ChecksumMismatch {
            path: path.to_owned(),
            stored,
            computed,
        });
    }
    let mut at: usize = 12;
    let mut take = |n: usize| -> Result<&[u8]> {
        let part = body
            .get(
                at..at
                    .checked_add(n)
                    .ok_or_else(|| corrupt("a length overflows"))?,
            )
            .ok_or_else(|| corrupt("the manifest ends early"))?;
        at += n;
        Ok(part)
    };
    let number = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes"));
    let meta_len = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes"));
    let meta = take(usize::try_from(meta_len).map_err(|_| corrupt("metadata too long"))?)?;
    let meta = meta.to_vec();
    let count = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes"));
    let mut files = Vec::new();
    for _ in 0..count {
        let name_len = u16::from_le_bytes(take(2)?.try_into().expect("2 bytes"));
        let name = std::str::from_utf8(take(usize::from(name_len))?)
            .map_err(|_| corrupt("a file name is not UTF-8"))?
            .to_owned();
        let len = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes"));
        let crc = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes"));
        files.push(FileEntry { name, len, crc });
    }
    if at != body.len() {
        return Err(corrupt("bytes after the last file entry"));
    }
    Ok((number, meta, files))
}

/// A new file at `path` (never through a planted link or over an existing
/// file).
fn create_new(path: &Path) -> Result<File> {
    open_no_follow(OpenOptions::new().write(true).create_new(true), path)
}

fn remove_dir_if_present(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        // A link planted in its place is removed, not followed.
        Ok(m) if m.file_type().is_symlink() || m.is_file() => {
            fs::remove_file(path).map_err(|e| Error::io(path, e))
        }
        Ok(_) => fs::remove_dir_all(path).map_err(|e| Error::io(path, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Syncs a directory's entries (so a rename in it is durable).
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}
