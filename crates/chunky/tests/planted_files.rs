//! Files planted in a storage directory by someone else: symbolic links to
//! files outside it, and one structure's files copied over another's.

#![cfg(unix)]

use std::fs;
use std::os::unix::fs::symlink;

use chunky::{Arena, ChunkSize, Error, SlotIndex, Storage};

/// A link planted where the next chunk file will be created is refused, and
/// the file it points at is left untouched.
#[test]
fn a_link_planted_as_a_new_chunk_file_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("precious.txt");
    fs::write(&victim, "keep me").unwrap();

    let storage = Storage::mmap(dir.path()).unwrap();
    let mut arena = Arena::open(&storage, "arena", 1024, ChunkSize::MIN).unwrap();
    // Four 1 KiB slots fill chunk 0; the fifth needs chunk 1.
    for _ in 0..4 {
        arena.push().unwrap();
    }
    symlink(&victim, dir.path().join("arena_1.chunk")).unwrap();
    let err = arena.push().unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotAFile {
                what: "a symbolic link",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("arena_1.chunk"), "{err}");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
    // Nothing was lost: the arena still holds its four slots.
    assert_eq!(arena.len(), 4);
    arena.at_mut(SlotIndex::new(3)).fill(7);
}

/// An existing chunk file replaced by a link is refused on reopen.
#[test]
fn a_chunk_file_replaced_by_a_link_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let storage = Storage::mmap(dir.path()).unwrap();
        let mut arena = Arena::open(&storage, "arena", 64, ChunkSize::MIN).unwrap();
        arena.push().unwrap();
    }
    let chunk = dir.path().join("arena_0.chunk");
    let moved = dir.path().join("elsewhere");
    fs::rename(&chunk, &moved).unwrap();
    symlink(&moved, &chunk).unwrap();

    let storage = Storage::mmap(dir.path()).unwrap();
    let err = Arena::open(&storage, "arena", 64, ChunkSize::MIN).unwrap_err();
    assert!(matches!(err, Error::NotAFile { .. }), "{err}");
}

/// Links planted as the metadata file, its temporary file or the lock file
/// are neither read nor written through.
#[test]
fn links_planted_as_meta_tmp_or_lock_files_are_not_followed() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("precious.txt");
    for name in ["arena.meta", "arena.lock"] {
        let dir = tempfile::tempdir().unwrap();
        fs::write(&victim, "keep me").unwrap();
        symlink(&victim, dir.path().join(name)).unwrap();
        let storage = Storage::mmap(dir.path()).unwrap();
        let err = Arena::open(&storage, "arena", 64, ChunkSize::MIN).unwrap_err();
        assert!(matches!(err, Error::NotAFile { .. }), "{name}: {err}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me", "{name}");
    }

    // The temporary file is removed, not written through.
    let dir = tempfile::tempdir().unwrap();
    fs::write(&victim, "keep me").unwrap();
    symlink(&victim, dir.path().join("arena.meta.tmp")).unwrap();
    {
        let storage = Storage::mmap(dir.path()).unwrap();
        let mut arena = Arena::open(&storage, "arena", 64, ChunkSize::MIN).unwrap();
        arena.push().unwrap();
    }
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
    let storage = Storage::mmap(dir.path()).unwrap();
    let arena = Arena::open(&storage, "arena", 64, ChunkSize::MIN).unwrap();
    assert_eq!(arena.len(), 1);
}

/// Opening an arena whose metadata path is `plant`ed by the caller.
fn open_over(plant: impl FnOnce(&std::path::Path)) -> Error {
    let dir = tempfile::tempdir().unwrap();
    plant(&dir.path().join("arena.meta"));
    let storage = Storage::mmap(dir.path()).unwrap();
    Arena::open(&storage, "arena", 64, ChunkSize::MIN).unwrap_err()
}

/// A directory or FIFO where a file is expected is refused without blocking.
#[test]
fn special_files_are_refused() {
    let err = open_over(|path| fs::create_dir(path).unwrap());
    assert!(
        matches!(
            err,
            Error::NotAFile {
                what: "a directory",
                ..
            } | Error::Io { .. }
        ),
        "{err}"
    );

    let err = open_over(|path| {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    });
    assert!(
        matches!(
            err,
            Error::NotAFile {
                what: "a special file",
                ..
            }
        ),
        "{err}"
    );
}

/// One arena's metadata copied over another's is refused, naming the file;
/// before, the 10-slot arena silently became a 2-slot one.
#[test]
fn metadata_copied_from_another_structure_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let storage = Storage::mmap(dir.path()).unwrap();
        let mut big = Arena::open(&storage, "big", 64, ChunkSize::MIN).unwrap();
        let mut small = Arena::open(&storage, "small", 64, ChunkSize::MIN).unwrap();
        for _ in 0..10 {
            big.push().unwrap();
        }
        for _ in 0..2 {
            small.push().unwrap();
        }
    }
    fs::copy(dir.path().join("small.meta"), dir.path().join("big.meta")).unwrap();
    let storage = Storage::mmap(dir.path()).unwrap();
    let err = Arena::open(&storage, "big", 64, ChunkSize::MIN).unwrap_err();
    assert!(matches!(err, Error::ForeignFile { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("big.meta"), "{text}");
    assert!(text.contains("`small`, not `big`"), "{text}");
    // The other arena is untouched.
    assert_eq!(
        Arena::open(&storage, "small", 64, ChunkSize::MIN)
            .unwrap()
            .len(),
        2
    );
}
