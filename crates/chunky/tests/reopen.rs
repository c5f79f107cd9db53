//! Fill, drop, reopen and verify, with files in a directory.

use std::fs;
use std::path::Path;

use chunky::{Arena, BinIndex, ChunkSize, Error, MultiArena, Queue, SlotIndex, Storage, Value};

fn mmap(dir: &Path) -> Storage {
    Storage::mmap(dir).unwrap()
}

fn pattern(seed: u32, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seed as usize * 31 + i) as u8).collect()
}

#[test]
fn arena_reopens_with_contents_and_free_list() {
    let dir = tempfile::tempdir().unwrap();
    let slot_size = 40;
    let count = 500_u32; // 102 slots per 4 KiB chunk: 5 chunks
    {
        let storage = mmap(dir.path());
        let mut arena = Arena::open(&storage, "arena", slot_size, ChunkSize::MIN).unwrap();
        for i in 0..count {
            let slot = arena.push().unwrap();
            assert_eq!(slot, SlotIndex::new(i));
            arena.at_mut(slot).copy_from_slice(&pattern(i, slot_size));
        }
        arena.free(SlotIndex::new(10));
        arena.free(SlotIndex::new(20));
    }
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for name in ["arena.meta", "arena_0.chunk", "arena_4.chunk"] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }

    let storage = mmap(dir.path());
    let mut arena = Arena::open(&storage, "arena", slot_size, ChunkSize::MIN).unwrap();
    assert_eq!(arena.len(), count as usize - 2);
    assert_eq!(arena.slot_count(), count as usize);
    for i in (0..count).filter(|i| ![10, 20].contains(i)) {
        assert_eq!(arena.at(SlotIndex::new(i)), pattern(i, slot_size));
    }
    assert_eq!(arena.push().unwrap(), SlotIndex::new(20));
    assert_eq!(arena.push().unwrap(), SlotIndex::new(10));
    assert_eq!(arena.push().unwrap(), SlotIndex::new(count));
}

#[test]
fn multi_arena_reopens_every_bin() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [3_usize, 16, 100, 1000, 4096, 9000];
    let mut slots = Vec::new();
    {
        let storage = mmap(dir.path());
        let mut multi = MultiArena::open(&storage, "multi", ChunkSize::MIN).unwrap();
        for (i, &size) in sizes.iter().cycle().take(60).enumerate() {
            let slot = multi.push(size).unwrap();
            multi.at_mut(slot)[..size].copy_from_slice(&pattern(i as u32, size));
            slots.push((slot, i, size));
        }
        multi.flush().unwrap();
    }
    let storage = mmap(dir.path());
    let multi = MultiArena::open(&storage, "multi", ChunkSize::MIN).unwrap();
    assert_eq!(multi.len(), 60);
    for &(slot, i, size) in &slots {
        assert_eq!(&multi.at(slot)[..size], pattern(i as u32, size));
    }
    let bin = BinIndex::for_size(100).unwrap();
    assert_eq!(multi.bin(bin).unwrap().len(), 10);
    assert_eq!(multi.bins().count(), sizes.len() - 1); // 3 and 16 share bin 0
}

#[test]
fn queue_reopens_with_unread_items_and_removes_read_chunks() {
    let dir = tempfile::tempdir().unwrap();
    {
        let storage = mmap(dir.path());
        let mut queue = Queue::open(&storage, "queue", ChunkSize::MIN).unwrap();
        for i in 0..100_u32 {
            queue.push(&pattern(i, (i as usize * 37) % 1500)).unwrap();
        }
        for i in 0..40_u32 {
            assert_eq!(queue.pop().unwrap(), pattern(i, (i as usize * 37) % 1500));
        }
    }
    assert!(!dir.path().join("queue_0.chunk").exists());

    let storage = mmap(dir.path());
    let mut queue = Queue::open(&storage, "queue", ChunkSize::MIN).unwrap();
    assert_eq!(queue.len(), 60);
    queue.push(b"appended after reopen").unwrap();
    for i in 40..100_u32 {
        assert_eq!(queue.pop().unwrap(), pattern(i, (i as usize * 37) % 1500));
    }
    assert_eq!(queue.pop().unwrap(), b"appended after reopen");
    assert_eq!(queue.pop(), None);
}

#[test]
fn value_reopens() {
    let dir = tempfile::tempdir().unwrap();
    {
        let storage = mmap(dir.path());
        let mut value = Value::open(&storage, "value", [0_u32; 3]).unwrap();
        value.set([1, 2, 3]);
    }
    let storage = mmap(dir.path());
    let value = Value::open(&storage, "value", [0_u32; 3]).unwrap();
    assert_eq!(value.get(), [1, 2, 3]);
}

/// A copy of the directory taken after `flush` (what a crash would leave)
/// reopens to the flushed state, even after the queue moved on.
#[test]
fn flushed_state_survives_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let copy = tempfile::tempdir().unwrap();
    let storage = mmap(dir.path());
    let mut queue = Queue::open(&storage, "queue", ChunkSize::MIN).unwrap();
    let mut arena = Arena::open(&storage, "arena", 8, ChunkSize::MIN).unwrap();
    for i in 0..20_u32 {
        queue.push(&pattern(i, 1000)).unwrap();
        let slot = arena.push().unwrap();
        arena.at_mut(slot).copy_from_slice(&pattern(i, 8));
    }
    queue.flush().unwrap();
    arena.flush().unwrap();
    // Read past several chunks; their files stay until the next flush.
    for _ in 0..15 {
        queue.pop().unwrap();
    }
    assert!(dir.path().join("queue_0.chunk").exists());
    for entry in fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
    }

    let crashed = mmap(copy.path());
    let mut recovered = Queue::open(&crashed, "queue", ChunkSize::MIN).unwrap();
    assert_eq!(recovered.len(), 20);
    for i in 0..20_u32 {
        assert_eq!(recovered.pop().unwrap(), pattern(i, 1000));
    }
    let recovered = Arena::open(&crashed, "arena", 8, ChunkSize::MIN).unwrap();
    assert_eq!(recovered.at(SlotIndex::new(19)), pattern(19, 8));

    queue.flush().unwrap();
    assert!(!dir.path().join("queue_0.chunk").exists());
}

#[test]
fn an_open_ident_is_refused_across_storages() {
    let dir = tempfile::tempdir().unwrap();
    let first = mmap(dir.path());
    let second = mmap(dir.path());
    let queue = Queue::open(&first, "q", ChunkSize::MIN).unwrap();
    let err = Queue::open(&second, "q", ChunkSize::MIN).unwrap_err();
    assert!(matches!(err, Error::InUse { .. }), "{err}");
    drop(queue);
    Queue::open(&second, "q", ChunkSize::MIN).unwrap();
}

#[test]
fn destroy_removes_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let storage = mmap(dir.path());
    let mut queue = Queue::open(&storage, "q", ChunkSize::MIN).unwrap();
    let mut multi = MultiArena::open(&storage, "m", ChunkSize::MIN).unwrap();
    for i in 0..10 {
        queue.push(&[0; 3000]).unwrap();
        multi.push(i * 500).unwrap();
    }
    queue.pop();
    queue.pop();
    queue.destroy().unwrap();
    multi.destroy().unwrap();
    let left: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| !name.ends_with(".lock"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
