//! Truncated, corrupted, foreign and missing files give clear errors, never
//! a panic, and a failed open leaves the files as they were.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use chunky::{Arena, ChunkSize, Error, MultiArena, Queue, Result, Storage, Value};

/// The chunk file header page; chunk memory follows it.
const HEADER_PAGE: u64 = 4096;

/// Which structure a fixture holds.
#[derive(Clone, Copy, Debug)]
enum Fixture {
    Arena,
    Queue,
    Value,
    Multi,
}

const ALL: [Fixture; 4] = [
    Fixture::Arena,
    Fixture::Queue,
    Fixture::Value,
    Fixture::Multi,
];

impl Fixture {
    /// The ident whose files the tests damage.
    fn ident(self) -> &'static str {
        match self {
            Fixture::Arena => "arena",
            Fixture::Queue => "queue",
            Fixture::Value => "value",
            // The bin of 100-byte items.
            Fixture::Multi => "multi_bin3",
        }
    }

    /// Writes the structure with two chunks (one for a value).
    fn create(self, dir: &Path) {
        let storage = Storage::mmap(dir).unwrap();
        match self {
            Fixture::Arena => {
                let mut arena = Arena::open(&storage, "arena", 1024, ChunkSize::MIN).unwrap();
                for _ in 0..6 {
                    let slot = arena.push().unwrap();
                    arena.at_mut(slot).fill(7);
                }
            }
            Fixture::Queue => {
                let mut queue = Queue::open(&storage, "queue", ChunkSize::MIN).unwrap();
                for _ in 0..6 {
                    queue.push(&[7; 1000]).unwrap();
                }
            }
            Fixture::Value => {
                Value::open(&storage, "value", 7_u64).unwrap();
            }
            Fixture::Multi => {
                let mut multi = MultiArena::open(&storage, "multi", ChunkSize::MIN).unwrap();
                for _ in 0..40 {
                    multi.push(100).unwrap();
                }
            }
        }
    }

    /// Reopens the structure and checks its contents.
    fn open(self, dir: &Path) -> Result<()> {
        let storage = Storage::mmap(dir)?;
        match self {
            Fixture::Arena => {
                let arena = Arena::open(&storage, "arena", 1024, ChunkSize::MIN)?;
                assert_eq!(arena.len(), 6);
            }
            Fixture::Queue => {
                let mut queue = Queue::open(&storage, "queue", ChunkSize::MIN)?;
                assert_eq!(queue.pop(), Some(&[7; 1000][..]));
            }
            Fixture::Value => assert_eq!(Value::open(&storage, "value", 0_u64)?.get(), 7),
            Fixture::Multi => {
                assert_eq!(
                    MultiArena::open(&storage, "multi", ChunkSize::MIN)?.len(),
                    40
                );
            }
        }
        Ok(())
    }

    fn chunk(self, dir: &Path, index: u32) -> PathBuf {
        dir.join(format!("{}_{index}.chunk", self.ident()))
    }

    fn meta(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.meta", self.ident()))
    }

    fn last_chunk(self, dir: &Path) -> PathBuf {
        let last = if matches!(self, Fixture::Value) { 0 } else { 1 };
        self.chunk(dir, last)
    }
}

/// Creates each fixture, damages it with `damage`, and checks the error;
/// then restores the files and checks that they still open.
fn check(damage: impl Fn(Fixture, &Path), expect: impl Fn(&Error) -> bool) {
    for fixture in ALL {
        let dir = tempfile::tempdir().unwrap();
        fixture.create(dir.path());
        fixture.open(dir.path()).unwrap();
        let backup = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), backup.path());

        damage(fixture, dir.path());
        let err = fixture.open(dir.path()).unwrap_err();
        assert!(expect(&err), "{fixture:?}: unexpected error {err:?}");
        let text = err.to_string();
        assert!(
            [
                "restore",
                "put the right file back",
                "check that",
                "open it with"
            ]
            .iter()
            .any(|advice| text.contains(advice)),
            "{fixture:?}: message does not say what to do: {text}"
        );

        // The failed open did not write anything: restoring the damaged
        // file is enough.
        copy_dir(backup.path(), dir.path());
        fixture.open(dir.path()).unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn truncate(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn flip(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= 0x10;
    fs::write(path, bytes).unwrap();
}

#[test]
fn truncated_chunk_file() {
    check(
        |f, dir| truncate(&f.last_chunk(dir), HEADER_PAGE + 100),
        |e| matches!(e, Error::Truncated { .. }),
    );
    check(
        |f, dir| truncate(&f.last_chunk(dir), 60),
        |e| matches!(e, Error::Truncated { .. }),
    );
    check(
        |f, dir| truncate(&f.last_chunk(dir), 0),
        |e| matches!(e, Error::Truncated { .. }),
    );
}

#[test]
fn truncated_meta_file() {
    check(
        |f, dir| {
            let len = fs::metadata(f.meta(dir)).unwrap().len();
            truncate(&f.meta(dir), len - 1);
        },
        |e| matches!(e, Error::Truncated { .. }),
    );
    check(
        |f, dir| truncate(&f.meta(dir), 10),
        |e| matches!(e, Error::Truncated { .. }),
    );
}

#[test]
fn flipped_byte_in_chunk_header() {
    // Chunk index, size, ident and checksum fields.
    for at in [12, 17, 27, 154] {
        check(
            |f, dir| flip(&f.last_chunk(dir), at),
            |e| matches!(e, Error::ChecksumMismatch { .. }),
        );
    }
}

#[test]
fn flipped_byte_in_meta() {
    // Payload length, checksum, and every payload byte that exists in all
    // fixtures.
    for at in [12, 17, 20, 23, 24, 27] {
        check(
            |f, dir| flip(&f.meta(dir), at),
            |e| matches!(e, Error::ChecksumMismatch { .. } | Error::Truncated { .. }),
        );
    }
}

#[test]
fn wrong_magic() {
    check(
        |f, dir| flip(&f.chunk(dir, 0), 0),
        |e| matches!(e, Error::WrongMagic { what: "chunk", .. }),
    );
    check(
        |f, dir| flip(&f.meta(dir), 3),
        |e| {
            matches!(
                e,
                Error::WrongMagic {
                    what: "metadata",
                    ..
                }
            )
        },
    );
}

#[test]
fn foreign_file() {
    check(
        |f, dir| fs::write(f.meta(dir), "{\"json\": \"from another program\"}").unwrap(),
        |e| matches!(e, Error::WrongMagic { .. }),
    );
    check(
        |f, dir| fs::write(f.last_chunk(dir), vec![0xAB; 8192]).unwrap(),
        |e| matches!(e, Error::WrongMagic { .. }),
    );
}

#[test]
fn wrong_version() {
    check(
        |f, dir| flip(&f.chunk(dir, 0), 8),
        |e| {
            matches!(
                e,
                Error::UnsupportedVersion {
                    found: 18,
                    supported: 2,
                    ..
                }
            )
        },
    );
    check(
        |f, dir| flip(&f.meta(dir), 9),
        |e| matches!(e, Error::UnsupportedVersion { found: 0x1002, .. }),
    );
}

#[test]
fn missing_chunk_file() {
    check(
        |f, dir| fs::remove_file(f.last_chunk(dir)).unwrap(),
        |e| matches!(e, Error::MissingChunk { .. }),
    );
}

#[test]
fn chunk_file_of_another_ident_or_index() {
    // A valid chunk file copied over another one.
    check(
        |f, dir| {
            let other = tempfile::tempdir().unwrap();
            let storage = Storage::mmap(other.path()).unwrap();
            Value::open(&storage, "other", 1_u8).unwrap();
            fs::copy(other.path().join("other_0.chunk"), f.chunk(dir, 0)).unwrap();
        },
        |e| matches!(e, Error::ForeignFile { .. }),
    );
    check(
        |f, dir| {
            if !matches!(f, Fixture::Value) {
                fs::copy(f.chunk(dir, 0), f.chunk(dir, 1)).unwrap();
            } else {
                // A value has one chunk: grow it instead.
                truncate(&f.chunk(dir, 0), 3 * HEADER_PAGE);
            }
        },
        |e| matches!(e, Error::ForeignFile { .. }),
    );
}

#[test]
fn wrong_kind_or_settings() {
    let dir = tempfile::tempdir().unwrap();
    Fixture::Queue.create(dir.path());
    let storage = Storage::mmap(dir.path()).unwrap();
    let err = Arena::open(&storage, "queue", 8, ChunkSize::MIN).unwrap_err();
    assert!(
        matches!(
            err,
            Error::KindMismatch {
                expected: "Arena",
                found: "Queue",
                ..
            }
        ),
        "{err}"
    );
    let err = Queue::open(&storage, "queue", ChunkSize::DEFAULT).unwrap_err();
    assert!(matches!(err, Error::LayoutMismatch { .. }), "{err}");
    Queue::open(&storage, "queue", ChunkSize::MIN).unwrap();
}

#[test]
fn corrupted_queue_item_header() {
    let dir = tempfile::tempdir().unwrap();
    Fixture::Queue.create(dir.path());
    // The length field of the second item in chunk 0 (items are 1008 bytes).
    flip(&Fixture::Queue.chunk(dir.path(), 0), 4096 + 1008);
    let err = Fixture::Queue.open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::CorruptData { .. }), "{err}");
}

/// An arena of ten 8-byte slots whose free list is slot 5, then slot 3.
fn arena_with_free_list() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::mmap(dir.path()).unwrap();
    let mut arena = Arena::open(&storage, "arena", 8, ChunkSize::MIN).unwrap();
    for _ in 0..10 {
        arena.push().unwrap();
    }
    arena.free(chunky::SlotIndex::new(3));
    arena.free(chunky::SlotIndex::new(5));
    dir
}

#[test]
fn corrupted_arena_free_list() {
    let dir = arena_with_free_list();
    // Slot 5 links to slot 3; point it beyond the arena.
    flip(&dir.path().join("arena_0.chunk"), 4096 + 5 * 8 + 1);
    let storage = Storage::mmap(dir.path()).unwrap();
    let err = Arena::open(&storage, "arena", 8, ChunkSize::MIN).unwrap_err();
    assert!(matches!(err, Error::CorruptData { .. }), "{err}");
}

#[test]
fn meta_with_valid_checksum_but_nonsense_contents() {
    let dir = tempfile::tempdir().unwrap();
    Fixture::Queue.create(dir.path());
    let storage = Storage::mmap(dir.path()).unwrap();
    let mut payload = storage.load_meta("queue").unwrap().unwrap();
    // Claim one item more than there is.
    let len_at = payload.len() - 8;
    payload[len_at] += 1;
    storage.store_meta("queue", &payload).unwrap();
    let err = Queue::open(&storage, "queue", ChunkSize::MIN).unwrap_err();
    assert!(matches!(err, Error::CorruptData { .. }), "{err}");
    // A payload cut short.
    storage.store_meta("queue", &payload[..10]).unwrap();
    let err = Queue::open(&storage, "queue", ChunkSize::MIN).unwrap_err();
    assert!(matches!(err, Error::CorruptMeta { .. }), "{err}");
}

/// Found by fuzzing (`fuzz/seeds/chunky_meta/slow_arena_free_cycle`): a
/// free-list length of four billion made opening walk the list for minutes.
/// More free slots than slots is refused at once, and a cycle is found in
/// at most as many steps as there are slots.
#[test]
fn arena_free_list_claims_are_bounded() {
    let dir = arena_with_free_list();
    let storage = Storage::mmap(dir.path()).unwrap();
    let payload = storage.load_meta("arena").unwrap().unwrap();
    // Payload: kind, chunk size, slot size, end, free head, free len, chunks.
    let set_free_len = |len: u32| {
        let mut payload = payload.clone();
        payload[20..24].copy_from_slice(&len.to_le_bytes());
        storage.store_meta("arena", &payload).unwrap();
    };
    set_free_len(u32::MAX);
    let err = Arena::open(&storage, "arena", 8, ChunkSize::MIN).unwrap_err();
    assert!(matches!(err, Error::CorruptMeta { .. }), "{err}");

    // Slot 3 (the list's end) now links back to slot 5: a cycle.
    let chunk = dir.path().join("arena_0.chunk");
    let mut bytes = fs::read(&chunk).unwrap();
    bytes[4096 + 3 * 8..4096 + 3 * 8 + 4].copy_from_slice(&5u32.to_le_bytes());
    fs::write(&chunk, bytes).unwrap();
    set_free_len(10);
    let err = Arena::open(&storage, "arena", 8, ChunkSize::MIN).unwrap_err();
    assert!(matches!(err, Error::CorruptData { .. }), "{err}");
}

/// Found by fuzzing (`fuzz/seeds/chunky_meta/crash_queue_jump_chunk`): a
/// chunk after the first that starts with a jump marker passed the checks
/// (its items were simply not counted) and `pop` then panicked on it.
#[test]
fn queue_chunk_starting_with_a_jump_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let storage = Storage::mmap(dir.path()).unwrap();
        let mut queue = Queue::open(&storage, "queue", ChunkSize::MIN).unwrap();
        // Four 1000-byte items fill a 4 KiB chunk: chunks 0, 1 and 2.
        for i in 0..12u8 {
            queue.push(&[i; 1000]).unwrap();
        }
    }
    // Hide chunk 1's four items behind a jump marker, and record 8 items.
    let chunk = dir.path().join("queue_1.chunk");
    let mut bytes = fs::read(&chunk).unwrap();
    bytes[4096..4104].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
    fs::write(&chunk, bytes).unwrap();
    let storage = Storage::mmap(dir.path()).unwrap();
    let mut payload = storage.load_meta("queue").unwrap().unwrap();
    let len_at = payload.len() - 8;
    payload[len_at..].copy_from_slice(&8u64.to_le_bytes());
    storage.store_meta("queue", &payload).unwrap();
    let err = Queue::open(&storage, "queue", ChunkSize::MIN).unwrap_err();
    assert!(matches!(err, Error::CorruptData { .. }), "{err}");
    assert!(err.to_string().contains("starts with a jump"), "{err}");
}
