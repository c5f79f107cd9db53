//! Random operation sequences on `Queue`, `Arena` and `MultiArena`, checked
//! against safe models (`VecDeque`, `HashMap`), on the heap and on files,
//! with reopens in the middle.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use chunky::{Arena, ChunkSize, MultiArena, MultiSlot, Queue, SlotIndex, Storage};
use proptest::prelude::*;

/// Deterministic contents for item `id` of `len` bytes.
fn bytes(id: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (id.wrapping_mul(2_654_435_761) >> 24) as u8 ^ i as u8)
        .collect()
}

/// Where the structures live; reopening on files uses a fresh `Storage`
/// over the same directory, so only what is on disk survives.
enum Place {
    Heap(Storage),
    Files(tempfile::TempDir),
}

impl Place {
    fn new(files: bool) -> Place {
        if files {
            Place::Files(tempfile::tempdir().unwrap())
        } else {
            Place::Heap(Storage::heap())
        }
    }

    fn storage(&self) -> Storage {
        match self {
            Place::Heap(storage) => storage.clone(),
            Place::Files(dir) => Storage::mmap(dir.path()).unwrap(),
        }
    }

    fn dir(&self) -> Option<&Path> {
        match self {
            Place::Heap(_) => None,
            Place::Files(dir) => Some(dir.path()),
        }
    }
}

fn config(files: bool) -> ProptestConfig {
    ProptestConfig::with_cases(if files { 24 } else { 64 })
}

#[derive(Clone, Debug)]
enum QueueOp {
    Push(usize),
    Pop,
    Peek,
    Flush,
    Reopen,
}

fn queue_op() -> impl Strategy<Value = QueueOp> {
    prop_oneof![
        6 => (0..1200_usize).prop_map(QueueOp::Push),
        1 => (3000..10_000_usize).prop_map(QueueOp::Push),
        6 => Just(QueueOp::Pop),
        1 => Just(QueueOp::Peek),
        1 => Just(QueueOp::Flush),
        1 => Just(QueueOp::Reopen),
    ]
}

fn run_queue(files: bool, ops: Vec<QueueOp>) {
    let place = Place::new(files);
    let open = || Queue::open(&place.storage(), "queue", ChunkSize::MIN).unwrap();
    let mut queue = open();
    let mut model = VecDeque::new();
    let mut next_id = 0_u32;
    for op in ops {
        match op {
            QueueOp::Push(len) => {
                let item = bytes(next_id, len);
                next_id += 1;
                queue.push(&item).unwrap();
                model.push_back(item);
            }
            QueueOp::Pop => assert_eq!(queue.pop(), model.pop_front().as_deref()),
            QueueOp::Peek => assert_eq!(queue.peek(), model.front().map(Vec::as_slice)),
            QueueOp::Flush => queue.flush().unwrap(),
            QueueOp::Reopen => {
                drop(queue);
                queue = open();
            }
        }
        assert_eq!(queue.len(), model.len());
    }
    drop(queue);
    let mut queue = open();
    while let Some(expected) = model.pop_front() {
        assert_eq!(queue.pop().unwrap(), expected);
    }
    assert_eq!(queue.pop(), None);
    drop(queue);
    if let Some(dir) = place.dir() {
        // All read chunks were removed: at most the write chunk is left.
        let chunks = std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("chunk".as_ref()))
            .count();
        assert!(chunks <= 1, "{chunks} chunk files left");
    }
}

#[derive(Clone, Debug)]
enum ArenaOp {
    Push,
    /// Frees the live slot at this position (modulo the live count).
    Free(usize),
    /// Rewrites the live slot at this position.
    Write(usize),
    Reopen,
}

fn arena_op() -> impl Strategy<Value = ArenaOp> {
    prop_oneof![
        5 => Just(ArenaOp::Push),
        3 => any::<usize>().prop_map(ArenaOp::Free),
        2 => any::<usize>().prop_map(ArenaOp::Write),
        1 => Just(ArenaOp::Reopen),
    ]
}

/// The `pick`-th live key, in a stable order.
fn pick<K: Copy + Ord, V>(model: &HashMap<K, V>, pick: usize) -> Option<K> {
    let mut keys: Vec<K> = model.keys().copied().collect();
    keys.sort();
    keys.get(pick % keys.len().max(1)).copied()
}

fn run_arena(files: bool, slot_size: usize, ops: Vec<ArenaOp>) {
    let place = Place::new(files);
    let open = || Arena::open(&place.storage(), "arena", slot_size, ChunkSize::MIN).unwrap();
    let mut arena = open();
    let size = arena.slot_size();
    let mut model: HashMap<SlotIndex, Vec<u8>> = HashMap::new();
    let mut next_id = 0_u32;
    for op in ops {
        match op {
            ArenaOp::Push => {
                let slot = arena.push().unwrap();
                assert!(!model.contains_key(&slot), "{slot:?} handed out twice");
                let item = bytes(next_id, size);
                next_id += 1;
                arena.at_mut(slot).copy_from_slice(&item);
                model.insert(slot, item);
            }
            ArenaOp::Free(i) => {
                if let Some(slot) = pick(&model, i) {
                    arena.free(slot);
                    model.remove(&slot);
                }
            }
            ArenaOp::Write(i) => {
                if let Some(slot) = pick(&model, i) {
                    let item = bytes(next_id, size);
                    next_id += 1;
                    arena.at_mut(slot).copy_from_slice(&item);
                    model.insert(slot, item);
                }
            }
            ArenaOp::Reopen => {
                drop(arena);
                arena = open();
            }
        }
        assert_eq!(arena.len(), model.len());
        assert!(model.keys().all(|s| s.index() < arena.slot_count()));
    }
    drop(arena);
    let arena = open();
    for (&slot, item) in &model {
        assert_eq!(arena.at(slot), &item[..]);
    }
}

#[derive(Clone, Debug)]
enum MultiOp {
    Push(usize),
    Free(usize),
    Reopen,
}

fn multi_op() -> impl Strategy<Value = MultiOp> {
    prop_oneof![
        4 => (0..600_usize).prop_map(MultiOp::Push),
        1 => (600..9000_usize).prop_map(MultiOp::Push),
        3 => any::<usize>().prop_map(MultiOp::Free),
        1 => Just(MultiOp::Reopen),
    ]
}

/// A sortable key for a `MultiSlot`.
fn key(slot: MultiSlot) -> (u8, u32) {
    (slot.bin.get(), slot.slot.get())
}

fn run_multi(files: bool, ops: Vec<MultiOp>) {
    let place = Place::new(files);
    let open = || MultiArena::open(&place.storage(), "multi", ChunkSize::MIN).unwrap();
    let mut multi = open();
    let mut model: HashMap<(u8, u32), (MultiSlot, Vec<u8>)> = HashMap::new();
    let mut next_id = 0_u32;
    for op in ops {
        match op {
            MultiOp::Push(len) => {
                let slot = multi.push(len).unwrap();
                assert!(!model.contains_key(&key(slot)), "{slot:?} handed out twice");
                assert!(slot.bin.slot_size() >= len);
                let item = bytes(next_id, len);
                next_id += 1;
                multi.at_mut(slot)[..len].copy_from_slice(&item);
                model.insert(key(slot), (slot, item));
            }
            MultiOp::Free(i) => {
                if let Some(k) = pick(&model, i) {
                    let (slot, _) = model.remove(&k).unwrap();
                    multi.free(slot);
                }
            }
            MultiOp::Reopen => {
                drop(multi);
                multi = open();
            }
        }
        assert_eq!(multi.len(), model.len());
    }
    drop(multi);
    let multi = open();
    for (slot, item) in model.values() {
        assert_eq!(&multi.at(*slot)[..item.len()], &item[..]);
    }
}

proptest! {
    #![proptest_config(config(false))]

    #[test]
    fn queue_on_heap(ops in prop::collection::vec(queue_op(), 1..200)) {
        run_queue(false, ops);
    }

    #[test]
    fn arena_on_heap(slot in prop::sample::select(vec![1_usize, 24, 40, 1000, 4096]),
                     ops in prop::collection::vec(arena_op(), 1..300)) {
        run_arena(false, slot, ops);
    }

    #[test]
    fn multi_arena_on_heap(ops in prop::collection::vec(multi_op(), 1..200)) {
        run_multi(false, ops);
    }
}

proptest! {
    #![proptest_config(config(true))]

    #[test]
    fn queue_on_files(ops in prop::collection::vec(queue_op(), 1..200)) {
        run_queue(true, ops);
    }

    #[test]
    fn arena_on_files(slot in prop::sample::select(vec![8_usize, 40, 4096]),
                      ops in prop::collection::vec(arena_op(), 1..300)) {
        run_arena(true, slot, ops);
    }

    #[test]
    fn multi_arena_on_files(ops in prop::collection::vec(multi_op(), 1..200)) {
        run_multi(true, ops);
    }
}
