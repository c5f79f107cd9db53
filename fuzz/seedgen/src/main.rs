//! Writes the seed corpora of the fuzz targets into `fuzz/seeds/` (or the
//! directory given as the first argument), from values and files made by
//! really using compact and chunky, and checks that each seed does what its
//! name says.
//!
//! `cd fuzz && CARGO_BUILD_JOBS=1 cargo run -p kay-fuzz-seedgen`
//!
//! Every seed file stays below 8 KiB.

use std::fs;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};

use chunky::{Arena, ChunkSize, Error, MultiArena, Queue, SlotIndex, Storage, Value};
use compact::{CHashMap, CVec, Compact, Compacted, ValidationError};

#[path = "../../fuzz_targets/chunky_files.rs"]
mod chunky_files;

use chunky_files::{FILE_IDENT, FILE_OTHER, IDENT, META_RAW, META_WRAP, OTHER, Plan};

/// The origin the seeds' pointers are written for (mode byte 0).
const ORIGIN: usize = 0;
const MAX_SEED: usize = 8 << 10;

fn main() {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../seeds"));
    validate_seeds(&out.join("validate"));
    validate_recursive_seeds(&out.join("validate_recursive"));
    chunky_meta_seeds(&out.join("chunky_meta"));
}

fn write_seed(dir: &Path, name: &str, bytes: &[u8]) {
    assert!(
        bytes.len() < MAX_SEED,
        "seed {name} has {} bytes",
        bytes.len()
    );
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
    println!("{}: {} bytes", dir.join(name).display(), bytes.len());
}

/// The compact bytes of `value` with its pointers rebased to `origin`: the
/// value is compacted at two addresses, and the words that differ by the
/// difference of the addresses are its pointers.
fn rebased<T: Compact + Clone>(value: T, origin: usize) -> Vec<u8> {
    let (a, b) = (Compacted::new(value.clone()), Compacted::new(value));
    assert_ne!(a.origin(), b.origin());
    let (x, y) = (a.as_bytes(), b.as_bytes());
    let mut out = x.to_vec();
    for at in (0..x.len() / 8 * 8).step_by(8) {
        let word = |bytes: &[u8]| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        let (wa, wb) = (word(x), word(y));
        let offset = wa.wrapping_sub(a.origin() as u64);
        if wa != wb && offset == wb.wrapping_sub(b.origin() as u64) {
            out[at..at + 8].copy_from_slice(&(offset + origin as u64).to_le_bytes());
        }
    }
    out
}

/// A seed of the `validate*` targets: mode byte 0 (origin 0), then `bytes`.
fn with_mode(bytes: &[u8]) -> Vec<u8> {
    assert_eq!(ORIGIN, 0);
    let mut seed = vec![0];
    seed.extend_from_slice(bytes);
    seed
}

// --- validate: CHashMap flooding --------------------------------------------

/// compact's `slot_of` for a `u64` key: the top `bits` bits of the
/// multiplicatively mixed Fx hash.
fn slot_of(key: u64, bits: u32) -> u64 {
    rustc_hash::FxBuildHasher
        .hash_one(key)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        >> (64 - bits)
}

/// Zeroes the padding of the `(u64, u8)` entries in the rebased bytes of a
/// `CHashMap<u64, u8>` of `n` entries (compaction copies padding as it
/// finds it, stale addresses included), so that the seeds are the same on
/// every run.
fn zero_entry_padding(bytes: &mut [u8], n: usize) {
    let pair = (0u64, 0u8);
    let base = &raw const pair as usize;
    let (key, value) = (
        &raw const pair.0 as usize - base,
        &raw const pair.1 as usize - base,
    );
    assert_eq!(size_of::<(u64, u8)>(), 16);
    // The two `CVec` headers (pointer, len u32, marker u32): the entries'
    // is the one of length `n` (the index has at least 2n slots).
    let header = [0, 16]
        .into_iter()
        .find(|&at| u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize == n)
        .expect("the entries' header");
    let entries =
        u64::from_le_bytes(bytes[header..header + 8].try_into().unwrap()) as usize - ORIGIN;
    for i in 0..n {
        for j in 0..16 {
            if !(key..key + 8).contains(&j) && j != value {
                bytes[entries + 16 * i + j] = 0;
            }
        }
    }
}

fn validate_seeds(dir: &Path) {
    // Keys whose ideal slot is 0 in every index of up to 4096 slots.
    let keys: Vec<u64> = (0u64..)
        .filter(|&k| slot_of(k, 12) == 0)
        .take(256)
        .collect();
    // n colliding keys need n(n-1)/2 probes; the budget is 8n + 256.
    for (name, n, accepted) in [
        ("map_flood", 256, false),
        ("map_flood_32", 32, true),
        ("map_flood_33", 33, false),
    ] {
        let map: CHashMap<u64, u8> = keys[..n].iter().map(|&k| (k, k as u8 | 1)).collect();
        let mut bytes = rebased(map.clone(), ORIGIN);
        zero_entry_padding(&mut bytes, n);
        match Compacted::<CHashMap<u64, u8>>::from_bytes(&bytes, ORIGIN) {
            Ok(back) => {
                assert!(accepted, "{name} was accepted");
                assert_eq!(*back, map);
            }
            Err(ValidationError::InvalidValue { reason, .. }) if !accepted => {
                assert!(reason.contains("hash flooding"), "{name}: {reason}")
            }
            Err(e) => panic!("{name}: {e}"),
        }
        write_seed(dir, name, &with_mode(&bytes));
    }
}

// --- validate_recursive -----------------------------------------------------

#[derive(Compact, Clone, Debug, PartialEq)]
#[repr(u8)]
enum Tree {
    Leaf,
    Node(CVec<Tree>),
}

/// The bytes of a `depth`-deep chain `Node([Node([.. Leaf ..])])` as written
/// for `origin`, crafted by hand (as in compact's tests/hostile_input.rs):
/// each level is a 24-byte `Tree::Node` (tag, then a `CVec` header: pointer,
/// len 1, compact marker) whose element is the next level, right behind it.
fn crafted_chain(depth: usize, origin: usize) -> Vec<u8> {
    let node = compact::static_size_bytes::<Tree>();
    assert_eq!(node, 24);
    let mut bytes = vec![0u8; node * (depth + 1)];
    for level in 0..depth {
        let at = level * node;
        bytes[at] = 1;
        let next = (origin + at + node) as u64;
        bytes[at + 8..at + 16].copy_from_slice(&next.to_le_bytes());
        bytes[at + 16..at + 20].copy_from_slice(&1u32.to_le_bytes());
        bytes[at + 20..at + 24].copy_from_slice(&u32::MAX.to_le_bytes());
    }
    bytes
}

fn validate_recursive_seeds(dir: &Path) {
    let chain = crafted_chain(200, ORIGIN);
    assert!(matches!(
        Compacted::<Tree>::from_bytes(&chain, ORIGIN),
        Err(ValidationError::TooDeep { .. })
    ));
    write_seed(dir, "chain_200", &with_mode(&chain));
    let limit = compact::DEFAULT_MAX_DEPTH as usize;
    let chain = crafted_chain(limit, ORIGIN);
    Compacted::<Tree>::from_bytes(&chain, ORIGIN).expect("within the limit");
    write_seed(dir, "chain_128", &with_mode(&chain));

    let leaf = || Tree::Leaf;
    let node = |children: Vec<Tree>| Tree::Node(children.into());
    let tree = node(vec![
        leaf(),
        node(vec![leaf(), node(vec![])]),
        node(vec![node(vec![leaf()]), leaf()]),
    ]);
    let mut bytes = rebased(tree.clone(), ORIGIN);
    // Zero the padding (stale addresses): a node is a tag byte, 7 bytes of
    // padding, then for `Node` its `CVec` header; a `Leaf` is all padding.
    let mut nodes = vec![0usize];
    while let Some(at) = nodes.pop() {
        if bytes[at] == 0 {
            bytes[at + 1..at + 24].fill(0);
        } else {
            bytes[at + 1..at + 8].fill(0);
            let children = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap());
            let len = u32::from_le_bytes(bytes[at + 16..at + 20].try_into().unwrap());
            nodes.extend((0..len as usize).map(|i| children as usize - ORIGIN + 24 * i));
        }
    }
    assert_eq!(
        *Compacted::<Tree>::from_bytes(&bytes, ORIGIN).unwrap(),
        tree
    );
    write_seed(dir, "tree", &with_mode(&bytes));

    // 16 bytes claiming four billion `()`s (pointer 0, len, compact marker).
    let mut header = [0u8; 16];
    header[8..12].copy_from_slice(&(u32::MAX - 1).to_le_bytes());
    header[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        Compacted::<CVec<()>>::from_bytes(&header, ORIGIN),
        Err(ValidationError::TooManyElements { .. })
    ));
    write_seed(dir, "units_claim", &with_mode(&header));

    let nested = CVec::from(vec![CVec::from(vec![(); 1000]), CVec::from(vec![(); 2000])]);
    let bytes = rebased(nested, ORIGIN);
    assert_eq!(bytes.len(), 48);
    let back = Compacted::<CVec<CVec<()>>>::from_bytes(&bytes, ORIGIN).unwrap();
    assert_eq!(back[1].len(), 2000);
    write_seed(dir, "units_nested", &with_mode(&bytes));
}

// --- chunky_meta ------------------------------------------------------------

/// The `file` selector of `ident`.
fn file_of(ident: &str) -> u8 {
    match ident {
        IDENT => FILE_IDENT,
        OTHER => FILE_OTHER,
        _ => {
            let bin: u8 = ident
                .strip_prefix(&format!("{IDENT}_bin"))
                .and_then(|b| b.parse().ok())
                .unwrap_or_else(|| panic!("unexpected ident {ident}"));
            bin + 1
        }
    }
}

/// The records of every file in `dir`: metadata as its payload in a
/// META_WRAP record, chunks as their contents in a CHUNK record (so the
/// fuzzer mutates contents, and the harness keeps headers and CRCs valid).
fn records_of(dir: &Path) -> Vec<u8> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let bytes = fs::read(dir.join(&name)).unwrap();
        if let Some(ident) = name.strip_suffix(".meta") {
            assert_eq!(chunky_files::meta_file(ident, &bytes[150..]), bytes);
            out.extend(chunky_files::record(
                META_WRAP,
                file_of(ident),
                &bytes[150..],
            ));
        } else if let Some(stem) = name.strip_suffix(".chunk") {
            let (ident, index) = stem.rsplit_once('_').unwrap();
            let index: u8 = index.parse().unwrap();
            let contents = &bytes[4096..];
            let header = chunky_files::chunk_header(ident, index.into(), contents.len());
            assert_eq!(bytes[..4096], header[..]);
            out.extend(chunky_files::chunk_record(file_of(ident), index, contents));
        } else {
            assert!(name.ends_with(".lock"), "unexpected file {name}");
        }
    }
    out
}

/// Runs `fill` on a storage in a fresh directory, then returns the seed
/// (`op`, then the records of the files it left).
fn seed_of(op: u8, fill: impl FnOnce(&Storage)) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    fill(&Storage::mmap(dir.path()).unwrap());
    let mut seed = vec![op];
    seed.extend(records_of(dir.path()));
    seed
}

/// Plants `seed`'s files in a fresh directory and opens its structure as
/// the fuzz target does.
fn replay(seed: &[u8]) -> chunky::Result<usize> {
    let dir = tempfile::tempdir().unwrap();
    chunky_files::plant(&seed[1..], dir.path()).unwrap();
    chunky_files::open_and_use(Plan::from_op(seed[0]), dir.path())
}

const ARENA: u8 = 0;
const QUEUE: u8 = 1;
const MULTI_ARENA: u8 = 2;
const VALUE: u8 = 3;
const EXERCISE: u8 = 32;

fn chunky_meta_seeds(dir: &Path) {
    // An arena of 16-byte slots over two chunks, with a free list.
    let fill_arena = |storage: &Storage, ident: &str| {
        let mut arena = Arena::open(storage, ident, 16, ChunkSize::MIN).unwrap();
        for i in 0..300u16 {
            let slot = arena.push().unwrap();
            arena.at_mut(slot)[..2].copy_from_slice(&(i + 1).to_le_bytes());
        }
        for i in [3, 10, 270, 100] {
            arena.free(SlotIndex::new(i));
        }
        arena.flush().unwrap();
    };
    let arena = seed_of(ARENA | EXERCISE, |s| fill_arena(s, IDENT));
    assert_eq!(replay(&arena).unwrap(), 296);
    write_seed(dir, "arena", &arena);

    // The same arena's files as they are on disk (raw headers).
    let raw = {
        let tmp = tempfile::tempdir().unwrap();
        fill_arena(&Storage::mmap(tmp.path()).unwrap(), IDENT);
        let mut seed = vec![ARENA];
        let meta = fs::read(tmp.path().join("s.meta")).unwrap();
        seed.extend(chunky_files::record(META_RAW, FILE_IDENT, &meta));
        for index in 0..2u8 {
            let file = fs::read(tmp.path().join(format!("s_{index}.chunk"))).unwrap();
            assert_eq!(file.len() % 512, 0);
            let mut body = vec![(file.len() / 512) as u8];
            body.extend(chunky_files::sparse(&file));
            seed.extend(chunky_files::record(
                chunky_files::CHUNK_RAW | index << 3,
                FILE_IDENT,
                &body,
            ));
        }
        seed
    };
    assert_eq!(replay(&raw).unwrap(), 296);
    write_seed(dir, "arena_raw", &raw);

    // Another structure's metadata planted under the arena's name: the
    // metadata file of arena `t`, copied to `s.meta`, next to `t`'s chunks
    // renamed to `s`'s.
    let planted = {
        let tmp = tempfile::tempdir().unwrap();
        fill_arena(&Storage::mmap(tmp.path()).unwrap(), OTHER);
        let mut seed = vec![ARENA | EXERCISE];
        let meta = fs::read(tmp.path().join("t.meta")).unwrap();
        seed.extend(chunky_files::record(META_RAW, FILE_IDENT, &meta));
        for index in 0..2u8 {
            let file = fs::read(tmp.path().join(format!("t_{index}.chunk"))).unwrap();
            seed.extend(chunky_files::chunk_record(FILE_IDENT, index, &file[4096..]));
        }
        seed
    };
    match replay(&planted) {
        Err(Error::ForeignFile { detail, .. }) => {
            assert!(detail.contains("`t`, not `s`"), "{detail}")
        }
        other => panic!("planted metadata: {other:?}"),
    }
    write_seed(dir, "arena_planted_meta", &planted);

    // A queue over three chunks, the first one read and removed; items end
    // chunks with jump markers.
    let queue = seed_of(QUEUE | EXERCISE, |storage| {
        let mut queue = Queue::open(storage, IDENT, ChunkSize::MIN).unwrap();
        for i in 0..40u8 {
            let item = queue.enqueue(300 + usize::from(i)).unwrap();
            item.fill(0);
            item[0] = i + 1;
        }
        for _ in 0..15 {
            queue.pop().unwrap();
        }
        queue.flush().unwrap();
    });
    assert_eq!(replay(&queue).unwrap(), 25);
    write_seed(dir, "queue", &queue);

    // A queue with an item bigger than the chunk size (a chunk of its own).
    let big = seed_of(QUEUE | EXERCISE, |storage| {
        let mut queue = Queue::open(storage, IDENT, ChunkSize::MIN).unwrap();
        queue.push(b"small").unwrap();
        queue.enqueue(5000).unwrap().fill(0);
        queue.push(b"after").unwrap();
        queue.flush().unwrap();
    });
    assert_eq!(replay(&big).unwrap(), 3);
    write_seed(dir, "queue_big_item", &big);

    // A multi-arena with items in four bins, one of them with big slots.
    let multi = seed_of(MULTI_ARENA | EXERCISE, |storage| {
        let mut multi = MultiArena::open(storage, IDENT, ChunkSize::MIN).unwrap();
        for size in [10, 24, 24, 100, 5000] {
            let slot = multi.push(size).unwrap();
            multi.at_mut(slot)[0] = size as u8;
        }
        let extra = multi.push(20).unwrap();
        multi.push(20).unwrap();
        multi.free(extra);
        multi.flush().unwrap();
    });
    assert_eq!(replay(&multi).unwrap(), 6);
    write_seed(dir, "multi_arena", &multi);

    let value = seed_of(VALUE | EXERCISE, |storage| {
        Value::open(storage, IDENT, 0x1234_5678_u64)
            .unwrap()
            .flush()
            .unwrap();
    });
    assert_eq!(replay(&value).unwrap(), 0);
    write_seed(dir, "value", &value);

    // The sparse encoding round-trips.
    let sample: Vec<u8> = (0..5000u32)
        .map(|i| (i % 7 == 0 || i % 300 < 3) as u8 * 9)
        .collect();
    let mut back = vec![0; sample.len()];
    chunky_files::unsparse(&chunky_files::sparse(&sample), &mut back);
    assert_eq!(back, sample);
}
