//! Snapshot generations: written whole or not at all, pruned, and refused
//! with an error naming the file when damaged — also when a writer is
//! killed with SIGKILL at random points.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chunky::{Error, Generations};

/// The files of generation `n`: sizes and contents depend on `n`, so a
/// mix of two generations cannot pass for either.
fn files_of(n: u64) -> Vec<(String, Vec<u8>)> {
    (0..4)
        .map(|f| {
            let len = 50_000 + (n as usize * 7919 + f * 104_729) % 200_000;
            let bytes = (0..len)
                .map(|i| (i as u64 ^ n.wrapping_mul(31) ^ f as u64) as u8)
                .collect();
            (format!("part-{f}.bin"), bytes)
        })
        .collect()
}

fn write(generations: &Generations, n: u64) -> chunky::Result<std::path::PathBuf> {
    let files = files_of(n);
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(name, bytes)| (name.as_str(), bytes.as_slice()))
        .collect();
    generations.write(n, &n.to_le_bytes(), &refs)
}

/// Checks that `generation` is exactly what `write(n)` wrote.
fn check_whole(generation: &chunky::Generation) {
    let n = generation.number;
    assert_eq!(generation.meta, n.to_le_bytes());
    for (name, bytes) in files_of(n) {
        assert_eq!(generation.read(&name).unwrap(), bytes, "{name} of {n}");
    }
}

#[test]
fn generations_are_written_whole_and_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let generations = Generations::open(dir.path(), 2).unwrap();
    assert!(generations.newest().unwrap().is_none());
    for n in 1..=3 {
        write(&generations, n).unwrap();
    }
    let newest = generations.newest().unwrap().expect("a generation");
    assert_eq!(newest.number, 3);
    check_whole(&newest);
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    // Not a number at or below the newest.
    assert!(matches!(
        write(&generations, 3),
        Err(Error::CorruptGeneration { .. })
    ));
    // A leftover of a crashed write is ignored, and removed by the next.
    std::fs::create_dir(dir.path().join(format!("gen-{:020}.tmp", 9))).unwrap();
    assert_eq!(generations.newest().unwrap().unwrap().number, 3);
    write(&generations, 4).unwrap();
    assert!(!dir.path().join(format!("gen-{:020}.tmp", 9)).exists());
}

/// A fresh directory with generations 1 and 2; returns generation 2's
/// directory.
fn two(dir: &Path) -> (Generations, std::path::PathBuf) {
    let generations = Generations::open(dir, 3).unwrap();
    write(&generations, 1).unwrap();
    let path = write(&generations, 2).unwrap();
    (generations, path)
}

fn error_of(generations: &Generations) -> String {
    generations.newest().expect_err("refused").to_string()
}

#[test]
fn damaged_generations_are_refused_naming_the_file() {
    // A bit flipped in a file.
    let dir = tempfile::tempdir().unwrap();
    let (generations, path) = two(dir.path());
    let file = path.join("part-2.bin");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[1234] ^= 0x10;
    std::fs::write(&file, &bytes).unwrap();
    let error = error_of(&generations);
    assert!(
        error.contains("part-2.bin") && error.contains("corrupted"),
        "{error}"
    );

    // Truncated.
    let dir = tempfile::tempdir().unwrap();
    let (generations, path) = two(dir.path());
    let file = path.join("part-1.bin");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let error = error_of(&generations);
    assert!(
        error.contains("part-1.bin") && error.contains("truncated"),
        "{error}"
    );

    // Missing.
    let dir = tempfile::tempdir().unwrap();
    let (generations, path) = two(dir.path());
    std::fs::remove_file(path.join("part-0.bin")).unwrap();
    let error = error_of(&generations);
    assert!(
        error.contains("part-0.bin") && error.contains("missing"),
        "{error}"
    );

    // A bit flipped in the manifest.
    let dir = tempfile::tempdir().unwrap();
    let (generations, path) = two(dir.path());
    let manifest = path.join("MANIFEST");
    let mut bytes = std::fs::read(&manifest).unwrap();
    bytes[20] ^= 1;
    std::fs::write(&manifest, &bytes).unwrap();
    let error = error_of(&generations);
    assert!(
        error.contains("MANIFEST") && error.contains("corrupted"),
        "{error}"
    );

    // Another format version.
    let dir = tempfile::tempdir().unwrap();
    let (generations, path) = two(dir.path());
    let mut bytes = std::fs::read(manifest_of(&path)).unwrap();
    bytes[8] = 9;
    std::fs::write(manifest_of(&path), &bytes).unwrap();
    let error = error_of(&generations);
    assert!(error.contains("format version 9"), "{error}");

    // Not a manifest at all.
    let dir = tempfile::tempdir().unwrap();
    let (generations, path) = two(dir.path());
    std::fs::write(manifest_of(&path), b"hello").unwrap();
    let error = error_of(&generations);
    assert!(error.contains("not a chunky snapshot manifest"), "{error}");

    // A file replaced by a link to one outside (whose bytes would pass).
    let dir = tempfile::tempdir().unwrap();
    let (generations, path) = two(dir.path());
    let outside = tempfile::tempdir().unwrap();
    let copy = outside.path().join("copy");
    std::fs::copy(path.join("part-3.bin"), &copy).unwrap();
    std::fs::remove_file(path.join("part-3.bin")).unwrap();
    std::os::unix::fs::symlink(&copy, path.join("part-3.bin")).unwrap();
    let error = error_of(&generations);
    assert!(
        error.contains("part-3.bin") && error.contains("symbolic link"),
        "{error}"
    );

    // The newest generation a link to a directory elsewhere.
    let dir = tempfile::tempdir().unwrap();
    let (generations, path) = two(dir.path());
    let elsewhere = outside.path().join("gen");
    std::fs::rename(&path, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    let error = error_of(&generations);
    assert!(error.contains("symbolic link"), "{error}");

    // The snapshot directory itself a link.
    let link = outside.path().join("link");
    std::os::unix::fs::symlink(dir.path(), &link).unwrap();
    let error = Generations::open(&link, 2)
        .expect_err("refused")
        .to_string();
    assert!(error.contains("symbolic link"), "{error}");
}

fn manifest_of(path: &Path) -> std::path::PathBuf {
    path.join("MANIFEST")
}

/// The child of the kill test: writes generations after the newest, one
/// after the other, until killed.
#[test]
fn writer() {
    let Ok(dir) = std::env::var("CHUNKY_GENERATIONS_WRITER") else {
        return;
    };
    let generations = Generations::open(&dir, 2).unwrap();
    let mut n = generations.newest().unwrap().map_or(0, |g| g.number);
    loop {
        n += 1;
        write(&generations, n).unwrap();
    }
}

/// A writer killed with SIGKILL at 200 random points always leaves a
/// generation that loads whole (the one before, or the new one), never a
/// half one; the next writer goes on from it.
#[test]
fn a_writer_killed_at_random_points_leaves_a_loadable_generation() {
    let dir = tempfile::tempdir().unwrap();
    let generations = Generations::open(dir.path(), 2).unwrap();
    write(&generations, 1).unwrap();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut numbers = Vec::new();
    for _ in 0..200 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "writer", "--nocapture", "--test-threads=1"])
            .env("CHUNKY_GENERATIONS_WRITER", dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_micros(2_000 + rng % 12_000));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let newest = generations
            .newest()
            .unwrap_or_else(|e| panic!("a killed write left a damaged generation: {e}"))
            .expect("a generation");
        check_whole(&newest);
        numbers.push(newest.number);
    }
    assert!(numbers.windows(2).all(|w| w[0] <= w[1]));
    eprintln!(
        "generations after the kills: {} to {}",
        numbers[0], numbers[199]
    );
}

/// The child of the full-disk test: with files limited to 100 KB (as a
/// full disk would stop them), tries to write the next generation.
#[test]
fn limited_writer() {
    let Ok(dir) = std::env::var("CHUNKY_GENERATIONS_LIMITED") else {
        return;
    };
    // SAFETY: plain system calls with valid arguments, before any thread
    // of this test writes a file; a write past the limit then fails with
    // EFBIG instead of killing the process (SIGXFSZ ignored).
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: 100_000,
            rlim_max: 100_000,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    let generations = Generations::open(&dir, 2).unwrap();
    let next = generations.newest().unwrap().map_or(1, |g| g.number + 1);
    match write(&generations, next) {
        Ok(_) => println!("WROTE"),
        Err(e) => println!("REFUSED {e}"),
    }
}

#[test]
fn a_full_disk_fails_the_write_and_keeps_the_previous_generation() {
    let dir = tempfile::tempdir().unwrap();
    let generations = Generations::open(dir.path(), 2).unwrap();
    write(&generations, 1).unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "limited_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CHUNKY_GENERATIONS_LIMITED", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("REFUSED I/O error") && stdout.contains("File too large"),
        "{stdout}"
    );
    let newest = generations.newest().unwrap().expect("the previous one");
    assert_eq!(newest.number, 1);
    check_whole(&newest);
    // Once there is room again, the next write succeeds.
    write(&generations, 2).unwrap();
    check_whole(&generations.newest().unwrap().unwrap());
}

#[test]
fn an_arena_is_snapshotted_run_by_run_and_an_unfinished_writer_leaves_nothing() {
    use chunky::{Arena, ChunkSize, Storage};
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::heap();
    let mut arena = Arena::open(&storage, "slots", 24, ChunkSize::MIN).unwrap();
    let per_chunk = arena.slots_per_chunk();
    for i in 0..(2 * per_chunk + 5) {
        let slot = arena.push().unwrap();
        arena.at_mut(slot).fill(i as u8);
    }
    let runs: Vec<&[u8]> = arena.used_runs().collect();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[2].len(), 5 * arena.slot_size());
    let generations = Generations::open(dir.path().join("g"), 2).unwrap();
    let mut writer = generations.begin(1).unwrap();
    writer.file("slots", &runs).unwrap();
    assert!(writer.file("slots", &runs).is_err(), "a name twice");
    writer.commit(b"meta").unwrap();
    let loaded = generations.newest().unwrap().unwrap();
    let bytes = loaded.read("slots").unwrap();
    assert_eq!(bytes.len(), arena.slot_count() * arena.slot_size());
    for (i, slot) in bytes.chunks(arena.slot_size()).enumerate() {
        assert!(slot.iter().all(|&b| b == i as u8), "slot {i}");
    }
    // A writer dropped before its commit removes its directory.
    let mut writer = generations.begin(2).unwrap();
    writer.file("slots", &runs).unwrap();
    drop(writer);
    assert_eq!(generations.newest().unwrap().unwrap().number, 1);
    let names: Vec<_> = std::fs::read_dir(dir.path().join("g"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["gen-00000000000000000001"]);
}

/// A planted manifest can neither make loading read gigabytes nor list a
/// file twice.
#[test]
fn oversized_manifests_and_names_listed_twice_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let generations = Generations::open(dir.path(), 2).unwrap();
    // Two files of the same name (a manifest written by hand: CRC right).
    let path = write(&generations, 1).unwrap();
    let manifest = std::fs::read(manifest_of(&path)).unwrap();
    let body = &manifest[..manifest.len() - 4];
    // The first entry (after magic 8, format 4, number 8, meta len 8 + 8,
    // count 4) repeated in place of the second, count unchanged.
    let first = 8 + 4 + 8 + 8 + 8 + 4;
    let entry_len = 2 + "part-0.bin".len() + 8 + 4;
    let mut twice = body[..first + entry_len].to_vec();
    twice.extend_from_slice(&body[first..first + entry_len]);
    twice.extend_from_slice(&body[first + 2 * entry_len..]);
    twice.extend_from_slice(&crc32fast::hash(&twice).to_le_bytes());
    std::fs::write(manifest_of(&path), &twice).unwrap();
    let error = generations.newest_manifest().unwrap_err().to_string();
    assert!(
        error.contains("twice") && error.contains("part-0.bin"),
        "{error}"
    );
    // A manifest of 100 MB is refused before it is read.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(manifest_of(&path))
        .unwrap();
    file.set_len(100 << 20).unwrap();
    let error = generations.newest().unwrap_err().to_string();
    assert!(error.contains("more than a manifest has"), "{error}");
}

/// Chunks mapped into one region (and one read into it where a piece
/// cannot be mapped) are copied into the process's own memory by
/// `privatize`, a region's mapped part at a time and only where every
/// chunk of the region is lent to it: the same addresses and bytes, what was written
/// before kept, the file untouched, and (Linux) the file no longer mapped.
#[test]
fn mapped_regions_are_privatized_in_place() {
    use chunky::storage::{ChunkRegion, privatize};
    let dir = tempfile::tempdir().unwrap();
    let generations = Generations::open(dir.path(), 2).unwrap();
    let page = 4096;
    let chunk_len = 4 * page;
    let bytes: Vec<u8> = (0..6 * page + 100)
        .map(|i| (i * 13 + i / 4096) as u8)
        .collect();
    generations.write(1, b"m", &[("data", &bytes)]).unwrap();
    let files = generations.newest_manifest().unwrap().unwrap();
    let path = files.reader("data").unwrap().path().canonicalize().unwrap();
    let mapped = |path: &std::path::Path| {
        std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .contains(&*path.to_string_lossy())
    };

    let mut reader = files.reader("data").unwrap();
    let mut region = ChunkRegion::new(3, chunk_len).unwrap();
    let mut visited = 0;
    // SAFETY: nothing writes the file while its pages are mapped (it is
    // only read in this test).
    let (mut first, outcome) = unsafe {
        reader.map_into(&mut region, chunk_len, page, |piece| {
            visited += piece.len();
            Ok::<(), ()>(())
        })
    }
    .unwrap()
    .unwrap();
    outcome.unwrap();
    assert_eq!(visited, chunk_len);
    // SAFETY: as above.
    let (second, _) = unsafe { reader.map_into(&mut region, 2 * page, page, |_| Ok::<(), ()>(())) }
        .unwrap()
        .unwrap();
    // The tail is not whole pages: read into the region's last chunk.
    let mut third = region.next_chunk().unwrap();
    reader.read(third.bytes_mut(0..100)).unwrap();
    assert!(region.next_chunk().is_none(), "three chunks");
    // SAFETY: as above.
    let none = unsafe { reader.map_into(&mut region, page, page, |_| Ok::<(), ()>(())) };
    assert!(none.unwrap().is_none(), "the region has no chunk left");
    reader.finish().unwrap();
    drop(region);
    assert_eq!(
        second.ptr_at(0).as_ptr() as usize - first.ptr_at(0).as_ptr() as usize,
        chunk_len
    );
    // Written before the copy: kept by it.
    first.bytes_mut(page..page + 4).copy_from_slice(b"XXXX");
    let mut expected = bytes[..chunk_len].to_vec();
    expected[page..page + 4].copy_from_slice(b"XXXX");
    #[cfg(target_os = "linux")]
    assert!(mapped(&path), "mapped before");

    // Not every chunk of the region lent: nothing copied.
    let mut some = [first, second];
    assert_eq!(privatize(&mut some).unwrap(), 0);
    let [first, second] = some;
    let addresses = [first.ptr_at(0), second.ptr_at(0), third.ptr_at(0)];
    let mut all = [first, second, third];
    let copied = privatize(&mut all).unwrap();
    #[cfg(target_os = "linux")]
    {
        // Up to the end of the last mapping (behind it the region was
        // anonymous memory already).
        assert_eq!(
            copied,
            chunk_len + 2 * page,
            "the mapped part of the region"
        );
        assert!(!mapped(&path), "no longer mapped");
    }
    assert_eq!(privatize(&mut all).unwrap(), 0, "once");
    let [mut first, second, third] = all;
    assert_eq!(
        [first.ptr_at(0), second.ptr_at(0), third.ptr_at(0)],
        addresses
    );
    assert_eq!(first.bytes(0..chunk_len), &expected[..]);
    assert_eq!(
        second.bytes(0..2 * page),
        &bytes[chunk_len..chunk_len + 2 * page]
    );
    assert!(second.bytes(2 * page..chunk_len).iter().all(|&b| b == 0));
    assert_eq!(third.bytes(0..100), &bytes[6 * page..]);
    // Writable, and the file keeps its bytes.
    first.bytes_mut(0..chunk_len).fill(7);
    let mut again = files.reader("data").unwrap();
    let mut read = vec![0u8; bytes.len()];
    again.read(&mut read).unwrap();
    again.finish().unwrap();
    assert_eq!(read, bytes);
}

/// A file taken piece by piece: pieces on page boundaries are mapped
/// copy-on-write as chunks (a partial one with zeros behind it), others
/// read; writing to a mapped chunk leaves the file as it is; the checksum
/// covers every piece, and a file not taken whole or damaged is refused.
#[test]
fn a_file_is_mapped_copy_on_write_and_read_piece_by_piece() {
    use chunky::{Arena, ChunkSize, Storage};
    let dir = tempfile::tempdir().unwrap();
    let generations = Generations::open(dir.path(), 2).unwrap();
    let page = 4096;
    let bytes: Vec<u8> = (0..3 * page + 100)
        .map(|i| (i * 7 + i / 4096) as u8)
        .collect();
    generations.write(1, b"m", &[("data", &bytes)]).unwrap();
    let files = generations.newest_manifest().unwrap().unwrap();

    let mut reader = files.reader("data").unwrap();
    assert!(
        reader.is_mappable(),
        "a file of this user, writable by no one else"
    );
    // Two pages as the front of a chunk of four pages.
    // SAFETY: nothing writes the file while the chunk lives (it is
    // changed below only once every chunk of it is dropped).
    let mut chunk = unsafe { reader.map_chunk(2 * page, 4 * page) }
        .unwrap()
        .unwrap();
    assert_eq!(chunk.len(), 4 * page);
    assert_eq!(chunk.bytes(0..2 * page), &bytes[..2 * page]);
    assert!(chunk.bytes(2 * page..4 * page).iter().all(|&b| b == 0));
    // Not on a page boundary after a short read: read instead.
    let mut head = [0u8; 10];
    reader.read(&mut head).unwrap();
    assert_eq!(head, bytes[2 * page..2 * page + 10]);
    // SAFETY: nothing writes the file while the chunk lives (it is
    // changed below only once every chunk of it is dropped).
    assert!(unsafe { reader.map_chunk(page, page) }.unwrap().is_none());
    reader.skip(page - 10).unwrap();
    let mut tail = vec![0u8; 100];
    reader.read(&mut tail).unwrap();
    assert_eq!(tail, bytes[3 * page..]);
    assert!(reader.read(&mut [0u8; 1]).is_err(), "beyond the end");
    reader.finish().unwrap();
    // Written in memory only: the file keeps its bytes.
    chunk.bytes_mut(0..4).copy_from_slice(b"XXXX");
    let mut again = files.reader("data").unwrap();
    let mut all = vec![0u8; bytes.len()];
    again.read(&mut all).unwrap();
    again.finish().unwrap();
    assert_eq!(all, bytes);

    // A mapped chunk becomes an arena's next chunk.
    let storage = Storage::heap();
    let mut arena = Arena::open(&storage, "a", 16, ChunkSize::new(4 * page).unwrap()).unwrap();
    let per_chunk = arena.slots_per_chunk();
    assert!(
        arena.adopt(chunk, per_chunk + 1).is_err(),
        "more slots than fit"
    );
    let mut reader = files.reader("data").unwrap();
    // SAFETY: nothing writes the file while the chunk lives (it is
    // changed below only once every chunk of it is dropped).
    let chunk = unsafe { reader.map_chunk(2 * page, 4 * page) }
        .unwrap()
        .unwrap();
    arena.adopt(chunk, 2 * page / 16).unwrap();
    assert_eq!(arena.slot_count(), 2 * page / 16);
    assert_eq!(arena.used_runs().next().unwrap(), &bytes[..2 * page]);
    // SAFETY: nothing writes the file while the chunk lives (it is
    // changed below only once every chunk of it is dropped).
    let not_full = unsafe { reader.map_chunk(page, 4 * page) }
        .unwrap()
        .unwrap();
    assert!(
        arena.adopt(not_full, 1).is_err(),
        "after a chunk that is not full"
    );
    arena.push().unwrap();
    // (Unmapped before the file is changed below: see `FileReader`.)
    drop(arena);

    // Read and visited in pieces, each after the checksum took it.
    let mut reader = files.reader("data").unwrap();
    let mut into = vec![0u8; bytes.len()];
    let mut seen = Vec::new();
    let outcome = reader
        .read_visiting(&mut into, 5000, |piece| {
            seen.push(piece.len());
            if seen.len() == 2 { Err("stop") } else { Ok(()) }
        })
        .unwrap();
    assert_eq!(outcome, Err("stop"), "the visitor's outcome");
    assert_eq!(seen, [5000, 5000], "not called after its first error");
    assert_eq!(into, bytes);
    reader.finish().unwrap();

    // Not taken whole, or taken and damaged: refused.
    let mut short = files.reader("data").unwrap();
    short.skip(page).unwrap();
    assert!(
        short
            .finish()
            .unwrap_err()
            .to_string()
            .contains("not accounted for")
    );
    let mut flipped = bytes.clone();
    flipped[5000] ^= 1;
    let path = dir.path().join("gen-00000000000000000001").join("data");
    std::fs::write(&path, &flipped).unwrap();
    let mut damaged = files.reader("data").unwrap();
    // SAFETY: nothing writes the file while this chunk lives (it is
    // dropped at once).
    unsafe { damaged.map_chunk(2 * page, 2 * page) }
        .unwrap()
        .unwrap();
    let error = damaged.finish_rest().unwrap_err();
    assert!(matches!(error, Error::ChecksumMismatch { .. }), "{error}");
}

/// A file others may write is read, never mapped (a mapped page not yet
/// written would show their writes).
#[cfg(unix)]
#[test]
fn files_others_may_write_are_not_mapped() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let generations = Generations::open(dir.path(), 2).unwrap();
    generations
        .write(1, b"m", &[("data", &[7u8; 8192])])
        .unwrap();
    let path = dir.path().join("gen-00000000000000000001").join("data");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o622)).unwrap();
    let files = generations.newest_manifest().unwrap().unwrap();
    let mut reader = files.reader("data").unwrap();
    assert!(!reader.is_mappable());
    // SAFETY: nothing writes the file (and nothing is mapped).
    assert!(unsafe { reader.map_chunk(4096, 4096) }.unwrap().is_none());
    reader.finish_rest().unwrap();
}
