//! Chunks of memory, from the heap or from memory-mapped files, and the data
//! structures kay builds on them.
//!
//! - [`Storage`] hands out [`Chunk`]s: fixed-size, page-aligned blocks that
//!   never move. [`HeapStorage`] allocates them; [`MmapStorage`] maps files in
//!   a directory, so everything built on it survives the process.
//! - [`Arena`]: fixed-size slots with a free list.
//! - [`MultiArena`]: variably-sized items in power-of-two size classes.
//! - [`Queue`]: a FIFO of variably-sized byte items.
//! - [`Value`]: one persisted [`Pod`] value.
//! - [`Generations`]: numbered snapshots of a set of files, committed
//!   atomically (a crash leaves the previous one loadable) and checked
//!   whole before anything is handed out.
//!
//! Every structure is opened under an *ident* (a file-name-safe string) with
//! `open`, which creates it if it does not exist and reopens it otherwise.
//! It records its state in a small metadata blob, written by `flush()` and on
//! drop. Damaged, truncated or foreign files are reported as an [`Error`]
//! saying what to do, never as a panic.
//!
//! ```
//! use chunky::{Arena, ChunkSize, Queue, Storage, Value};
//!
//! # fn main() -> Result<(), chunky::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! {
//!     let storage = Storage::mmap(dir.path())?;
//!     let mut queue = Queue::open(&storage, "inbox", ChunkSize::MIN)?;
//!     queue.push(b"hello")?;
//!     queue.push(b"world")?;
//!     let mut arena = Arena::open(&storage, "points", 16, ChunkSize::MIN)?;
//!     let slot = arena.push()?;
//!     arena.at_mut(slot).copy_from_slice(&[1; 16]);
//!     let mut turn = Value::open(&storage, "turn", 0_u64)?;
//!     turn.set(42);
//! } // dropped: metadata written
//!
//! let storage = Storage::mmap(dir.path())?;
//! let mut queue = Queue::open(&storage, "inbox", ChunkSize::MIN)?;
//! assert_eq!(queue.pop(), Some(&b"hello"[..]));
//! assert_eq!(queue.pop(), Some(&b"world"[..]));
//! assert_eq!(queue.pop(), None);
//! let arena = Arena::open(&storage, "points", 16, ChunkSize::MIN)?;
//! assert_eq!(arena.len(), 1);
//! assert_eq!(Value::open(&storage, "turn", 0_u64)?.get(), 42);
//! # Ok(())
//! # }
//! ```
//!
//! # Decisions
//!
//! - **Storages are directories.** Chunks and metadata outlive the structure
//!   that made them, also in a [`HeapStorage`] (until the storage is
//!   dropped), so reopen logic is the same on the heap and on files. Call
//!   `destroy()` to remove a structure's chunks and metadata.
//! - **Persistence points.** Metadata is written by `flush()` (which first
//!   syncs the chunks, and reports errors) and on drop (errors ignored). A
//!   crash loses what changed since the last `flush()`, never more: the
//!   metadata file is replaced atomically and a [`Queue`] deletes read chunk
//!   files only after metadata without them is written.
//! - **Exclusivity.** An ident is held by one structure at a time and a
//!   chunk by one [`Chunk`] handle, also across processes (OS file locks for
//!   [`MmapStorage`]); a second open gives [`Error::InUse`].
//! - **Byte order.** File headers, metadata and queue item headers are
//!   little-endian. Slot and item contents are the caller's bytes; a
//!   [`Value`] stores its `T` natively and records the host byte order.
//! - **Pointer stability.** Chunks never move, so `slot_ptr` pointers stay
//!   valid while their structure lives.
//!
//! Unsafe code is confined to `storage/raw.rs` (allocation, mapping, pointer
//! arithmetic behind the bounds-checked [`Chunk`] accessors) and the [`Pod`]
//! trait; everything else is denied `unsafe`.

#![deny(unsafe_code)]

mod arena;
mod error;
mod generations;
mod meta;
mod multi_arena;
#[allow(unsafe_code, reason = "declares the unsafe Pod trait and its impls")]
mod pod;
mod queue;
pub mod storage;
mod value;

pub use arena::{Arena, SlotIndex};
pub use error::{Error, Result};
pub use generations::{
    FileEntry, FileReader, GENERATION_FORMAT, Generation, GenerationFiles, GenerationWriter,
    Generations,
};
pub use multi_arena::{BinIndex, MultiArena, MultiSlot};
pub use pod::Pod;
pub use queue::Queue;
pub use storage::mmap::open_no_follow;
pub use storage::{Chunk, ChunkIndex, ChunkSize, ChunkStorage, HeapStorage, MmapStorage, Storage};
pub use value::Value;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structures_move_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Arena>();
        assert_send_sync::<MultiArena>();
        assert_send_sync::<Queue>();
        assert_send_sync::<Value<[f32; 4]>>();
    }
}
