//! [`Queue`]: a FIFO of variably-sized byte items, back to back in chunks.
//!
//! Layout: each item is an 8-byte header, `len: u32` and `!len: u32` (both
//! little-endian), followed by `len` bytes padded to a multiple of 8, so
//! every item starts 8-aligned. When an item does not fit the rest of the
//! write chunk, the writer puts a *jump marker* (`u32::MAX`, `0`) there if
//! an 8-byte header still fits, and continues at the start of a new chunk
//! (chunk indices only grow). A reader that meets a jump marker, or fewer
//! than 8 bytes, moves to the next chunk and drops the one it left. An item
//! bigger than the chunk size gets a chunk of its own, sized to the next
//! power of two.
//!
//! Persistence: the metadata holds the live chunk range and the read and
//! write cursors. With a persistent storage, chunks that were fully read are
//! deleted only after the metadata that no longer lists them is written (on
//! [`Queue::flush`] and drop), so a crash in between never loses a chunk the
//! metadata still needs. Reopening walks the unread items and checks every
//! header against the metadata.

use std::collections::VecDeque;

use crate::error::{Error, Result};
use crate::meta::{Handle, Kind, MetaReader, MetaWriter};
use crate::storage::{Chunk, ChunkIndex, ChunkSize, Storage};

const HEADER: usize = 8;
const JUMP: u32 = u32::MAX;
/// The largest item: it and its header fill the largest chunk.
const MAX_ITEM: usize = ChunkSize::MAX.bytes() - HEADER;

/// A first-in, first-out queue of byte items of any size up to 1 GiB − 8,
/// stored back to back in chunks from a [`Storage`].
///
/// ```
/// # use chunky::{ChunkSize, Queue, Storage};
/// let mut queue = Queue::open(&Storage::heap(), "q", ChunkSize::MIN)?;
/// queue.push(b"one")?;
/// queue.enqueue(3)?.copy_from_slice(b"two");
/// while let Some(item) = queue.pop() {
///     println!("{item:?}");
/// }
/// # Ok::<(), chunky::Error>(())
/// ```
#[derive(Debug)]
pub struct Queue {
    handle: Handle,
    chunk_size: ChunkSize,
    /// Live chunks, oldest first; `chunks[0]` is chunk `first`.
    chunks: VecDeque<Chunk>,
    first: u32,
    /// Read offset in `chunks[0]`.
    read: usize,
    /// Write offset in the last chunk.
    write: usize,
    len: u64,
    /// Fully read chunks whose files are removed after the next metadata
    /// write (persistent storages only).
    retired: Vec<ChunkIndex>,
}

impl Queue {
    /// Opens the queue `ident` in `storage`, creating it empty if it does
    /// not exist; a reopened queue holds the items that were not yet popped.
    /// `chunk_size` must be the one the queue was created with.
    pub fn open(storage: &Storage, ident: &str, chunk_size: ChunkSize) -> Result<Queue> {
        let (handle, meta) = Handle::open(storage, ident)?;
        let mut queue = Queue {
            handle,
            chunk_size,
            chunks: VecDeque::new(),
            first: 0,
            read: 0,
            write: 0,
            len: 0,
            retired: Vec::new(),
        };
        if let Some(meta) = meta
            && let Err(e) = queue.restore(&meta)
        {
            queue.handle.live = false;
            return Err(e);
        }
        Ok(queue)
    }

    fn restore(&mut self, meta: &[u8]) -> Result<()> {
        let ident = self.handle.ident.clone();
        let mut r = MetaReader::new(&ident, meta, Kind::Queue)?;
        r.chunk_size(self.chunk_size)?;
        self.first = r.u32()?;
        let count = r.u32()?;
        self.read = r.u32()? as usize;
        self.write = r.u32()? as usize;
        self.len = r.u64()?;
        if count == 0 && (self.len, self.read, self.write) != (0, 0, 0) {
            return Err(r.corrupt("cursors set but no chunks"));
        }
        if self.first.checked_add(count).is_none() {
            return Err(r.corrupt("chunk range overflows"));
        }
        r.finish()?;
        for index in self.first..self.first + count {
            let chunk = self.handle.storage.open_chunk(&ident, ChunkIndex(index))?;
            if chunk.len() < self.chunk_size.bytes() {
                return Err(Error::corrupt_data(
                    &ident,
                    format!("chunk {index} has only {} bytes", chunk.len()),
                ));
            }
            self.chunks.push_back(chunk);
        }
        self.check_items()
    }

    /// Walks every unread item and checks it against the metadata.
    fn check_items(&self) -> Result<()> {
        let corrupt = |detail: String| Error::corrupt_data(&self.handle.ident, detail);
        let Some(last) = self.chunks.len().checked_sub(1) else {
            return Ok(());
        };
        if self.read > self.chunks[0].len() || self.write > self.chunks[last].len() {
            return Err(corrupt("a cursor lies beyond its chunk".into()));
        }
        if last == 0 && self.read > self.write {
            return Err(corrupt("read cursor is ahead of write cursor".into()));
        }
        let mut items = 0_u64;
        for (i, chunk) in self.chunks.iter().enumerate() {
            let mut at = if i == 0 { self.read } else { 0 };
            let end = if i == last { self.write } else { chunk.len() };
            // The reader jumps to the start of the next chunk and expects an
            // item there (see `front`).
            if i > 0 && at < end && read_header(chunk, 0) == Some(JUMP) {
                return Err(corrupt(format!(
                    "chunk {} starts with a jump marker",
                    self.first as usize + i
                )));
            }
            while at < end && at + HEADER <= chunk.len() {
                match read_header(chunk, at) {
                    Some(JUMP) if i != last => break,
                    Some(len) if len != JUMP => {
                        let next = at + item_span(len as usize);
                        if next > end {
                            return Err(corrupt(format!(
                                "item at {at} in chunk {} overruns it",
                                self.first as usize + i
                            )));
                        }
                        at = next;
                        items += 1;
                    }
                    _ => {
                        return Err(corrupt(format!(
                            "bad item header at {at} in chunk {}",
                            self.first as usize + i
                        )));
                    }
                }
            }
            if i == last && at != end {
                return Err(corrupt("write cursor is not at an item boundary".into()));
            }
        }
        if items != self.len {
            return Err(corrupt(format!(
                "found {items} items, the metadata records {}",
                self.len
            )));
        }
        Ok(())
    }

    /// The ident the queue is stored under.
    pub fn ident(&self) -> &str {
        &self.handle.ident
    }

    /// The number of items not yet popped.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends an item of `bytes`.
    pub fn push(&mut self, bytes: &[u8]) -> Result<()> {
        self.enqueue(bytes.len())?.copy_from_slice(bytes);
        Ok(())
    }

    /// Appends an item of `size` bytes and returns them to be written in
    /// place; their initial contents are unspecified.
    pub fn enqueue(&mut self, size: usize) -> Result<&mut [u8]> {
        if size > MAX_ITEM {
            return Err(Error::ItemTooLarge {
                size: size as u64,
                max: MAX_ITEM as u64,
            });
        }
        let span = item_span(size);
        if self.len == 0 && self.chunks.len() == 1 {
            // Empty: start the only chunk over instead of growing.
            (self.read, self.write) = (0, 0);
        }
        let fits = self
            .chunks
            .back()
            .is_some_and(|chunk| self.write + span <= chunk.len());
        if !fits {
            self.grow(span)?;
        }
        let at = self.write;
        let chunk = self.chunks.back_mut().expect("grown above");
        write_header(chunk, at, size as u32, !(size as u32));
        self.write += span;
        self.len += 1;
        Ok(chunk.bytes_mut(at + HEADER..at + HEADER + size))
    }

    /// Starts a new write chunk with room for `span` bytes, leaving a jump
    /// marker in the current one.
    fn grow(&mut self, span: usize) -> Result<()> {
        let index = self.first.checked_add(self.chunks.len() as u32);
        let index = index.ok_or_else(|| Error::CapacityExceeded {
            ident: self.handle.ident.clone(),
            what: "chunks",
        })?;
        let size = self.chunk_size.at_least(span)?;
        let chunk =
            (self.handle.storage).create_chunk(&self.handle.ident, ChunkIndex(index), size)?;
        if let Some(last) = self.chunks.back_mut()
            && self.write + HEADER <= last.len()
        {
            write_header(last, self.write, JUMP, !JUMP);
        }
        if self.chunks.is_empty() {
            self.first = index;
            self.read = 0;
        }
        self.chunks.push_back(chunk);
        self.write = 0;
        Ok(())
    }

    /// The oldest item, without removing it.
    pub fn peek(&self) -> Option<&[u8]> {
        let (i, at) = self.front()?;
        let len = read_header(&self.chunks[i], at).expect("checked item") as usize;
        Some(self.chunks[i].bytes(at + HEADER..at + HEADER + len))
    }

    /// Removes the oldest item and returns its bytes, which stay valid until
    /// the queue is used again.
    pub fn pop(&mut self) -> Option<&[u8]> {
        let (i, at) = self.front()?;
        for _ in 0..i {
            self.retire_front();
        }
        let chunk = &self.chunks[0];
        let len = read_header(chunk, at).expect("checked item") as usize;
        self.read = at + item_span(len);
        self.len -= 1;
        Some(chunk.bytes(at + HEADER..at + HEADER + len))
    }

    /// Removes every item.
    pub fn clear(&mut self) {
        while self.pop().is_some() {}
    }

    /// Where the oldest item lies: (position in `chunks`, offset).
    fn front(&self) -> Option<(usize, usize)> {
        if self.len == 0 {
            return None;
        }
        let chunk = &self.chunks[0];
        let at_jump =
            self.read + HEADER > chunk.len() || read_header(chunk, self.read) == Some(JUMP);
        // A jumped-to chunk always starts with an item.
        Some(if at_jump { (1, 0) } else { (0, self.read) })
    }

    /// Drops the front chunk, which was fully read.
    fn retire_front(&mut self) {
        drop(self.chunks.pop_front());
        let index = ChunkIndex(self.first);
        self.first += 1;
        self.read = 0;
        if self.handle.storage.is_persistent() {
            self.retired.push(index);
        } else {
            // In memory there is no crash to survive: free it now. Removing
            // a heap chunk cannot fail.
            let _ = self.handle.storage.remove_chunk(&self.handle.ident, index);
        }
    }

    /// Writes the chunks back to disk, then the metadata, then deletes the
    /// chunks that were fully read.
    pub fn flush(&mut self) -> Result<()> {
        for chunk in &self.chunks {
            chunk
                .flush()
                .map_err(|e| Error::io(&self.handle.ident, e))?;
        }
        self.store_meta()
    }

    fn store_meta(&mut self) -> Result<()> {
        let mut w = MetaWriter::new(Kind::Queue);
        w.u32(self.chunk_size.bytes() as u32)
            .u32(self.first)
            .u32(self.chunks.len() as u32)
            .u32(self.read as u32)
            .u32(self.write as u32)
            .u64(self.len);
        self.handle.store(&w)?;
        for index in self.retired.drain(..) {
            self.handle
                .storage
                .remove_chunk(&self.handle.ident, index)?;
        }
        Ok(())
    }

    /// Removes the queue's chunks and metadata from the storage.
    pub fn destroy(mut self) -> Result<()> {
        self.handle.live = false;
        let live = self.first..self.first + self.chunks.len() as u32;
        self.chunks.clear();
        let retired = std::mem::take(&mut self.retired);
        for index in retired.into_iter().chain(live.map(ChunkIndex)) {
            self.handle
                .storage
                .remove_chunk(&self.handle.ident, index)?;
        }
        self.handle.storage.remove_meta(&self.handle.ident)
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // Errors cannot be reported here; `flush` reports them.
        let _ = self.store_meta();
    }
}

/// Header plus payload, padded to 8 bytes.
fn item_span(len: usize) -> usize {
    HEADER + len.next_multiple_of(8)
}

fn write_header(chunk: &mut Chunk, at: usize, len: u32, check: u32) {
    let header = chunk.bytes_mut(at..at + HEADER);
    header[..4].copy_from_slice(&len.to_le_bytes());
    header[4..].copy_from_slice(&check.to_le_bytes());
}

/// The length in the header at `at` (or [`JUMP`]), if its check matches.
fn read_header(chunk: &Chunk, at: usize) -> Option<u32> {
    let header = chunk.bytes(at..at + HEADER);
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
    let check = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    (check == !len).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> Queue {
        Queue::open(&Storage::heap(), "q", ChunkSize::MIN).unwrap()
    }

    #[test]
    fn fifo_with_padding_and_empty_items() {
        let mut q = queue();
        q.push(b"a").unwrap();
        q.push(b"").unwrap();
        q.push(b"0123456789").unwrap();
        assert_eq!(q.len(), 3);
        assert_eq!(q.peek(), Some(&b"a"[..]));
        assert_eq!(q.pop(), Some(&b"a"[..]));
        assert_eq!(q.pop(), Some(&b""[..]));
        assert_eq!(q.pop(), Some(&b"0123456789"[..]));
        assert_eq!(q.pop(), None);
        assert!(q.is_empty());
    }

    #[test]
    fn wraps_into_new_chunks_and_frees_read_ones() {
        let storage = Storage::heap();
        let mut q = Queue::open(&storage, "q", ChunkSize::MIN).unwrap();
        // 1000-byte items: four per 4 KiB chunk, the fifth jumps.
        for i in 0..10_u8 {
            q.push(&[i; 1000]).unwrap();
        }
        assert_eq!(q.chunks.len(), 3);
        for i in 0..5_u8 {
            assert_eq!(q.pop().unwrap(), &[i; 1000]);
        }
        assert_eq!(q.chunks.len(), 2);
        assert!(matches!(
            storage.open_chunk("q", ChunkIndex(0)),
            Err(Error::MissingChunk { .. })
        ));
        for i in 5..10_u8 {
            assert_eq!(q.pop().unwrap(), &[i; 1000]);
        }
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn exact_fit_needs_no_marker() {
        let mut q = queue();
        q.push(&[1; 4096 - 8]).unwrap();
        q.push(&[2; 8]).unwrap();
        assert_eq!(q.pop().unwrap(), &[1; 4088]);
        assert_eq!(q.pop().unwrap(), &[2; 8]);
    }

    #[test]
    fn oversized_items_get_their_own_chunk() {
        let mut q = queue();
        q.push(b"small").unwrap();
        q.push(&[9; 10_000]).unwrap();
        q.push(b"after").unwrap();
        assert_eq!(q.chunks[1].len(), 16384);
        assert_eq!(q.pop().unwrap(), b"small");
        assert_eq!(q.pop().unwrap(), &[9; 10_000]);
        assert_eq!(q.pop().unwrap(), b"after");
        assert!(matches!(
            q.enqueue(MAX_ITEM + 1),
            Err(Error::ItemTooLarge { .. })
        ));
    }

    #[test]
    fn empty_queue_reuses_its_chunk() {
        let mut q = queue();
        for _ in 0..100 {
            q.push(&[5; 1000]).unwrap();
            assert_eq!(q.pop().unwrap(), &[5; 1000]);
        }
        assert_eq!(q.chunks.len(), 1);
        assert_eq!(q.first, 0);
    }

    #[test]
    fn reopen_restores_unread_items() {
        let storage = Storage::heap();
        let mut q = Queue::open(&storage, "q", ChunkSize::MIN).unwrap();
        for i in 0..20_u8 {
            q.push(&[i; 700]).unwrap();
        }
        for _ in 0..7 {
            q.pop();
        }
        drop(q);
        let mut q = Queue::open(&storage, "q", ChunkSize::MIN).unwrap();
        assert_eq!(q.len(), 13);
        for i in 7..20_u8 {
            assert_eq!(q.pop().unwrap(), &[i; 700]);
        }
        q.destroy().unwrap();
        assert_eq!(storage.load_meta("q").unwrap(), None);
    }

    #[test]
    fn corrupt_item_header_is_found_on_reopen() {
        let storage = Storage::heap();
        let mut q = Queue::open(&storage, "q", ChunkSize::MIN).unwrap();
        q.push(b"abc").unwrap();
        q.chunks[0].bytes_mut(0..1)[0] = 9;
        drop(q);
        assert!(matches!(
            Queue::open(&storage, "q", ChunkSize::MIN),
            Err(Error::CorruptData { .. })
        ));
    }
}
