//! The input format of the `chunky_meta` fuzz target: one byte choosing the
//! structure to open, then records each describing one file to plant in the
//! storage directory. Shared (with `#[path]`) by the target and by
//! `seedgen`, which encodes real files in it.
//!
//! The harness plays an adversary who knows the documented file format
//! (`crates/chunky/src/storage/format.rs`): some record kinds let it write
//! well-formed headers with correct CRCs around fuzzed payloads, so that
//! the fuzzer gets past the checksums to the metadata and chunk contents;
//! others write raw bytes, to reach the header checks themselves.
//!
//! ```text
//! input  := op record*
//! op     := bits 0-1 structure: Arena, Queue, MultiArena, Value<u64>
//!           bits 2-3 Arena slot size: 16, 24, 8, 4096
//!           bit  4   chunk size: 4096 / 8192
//!           bit  5   exercise: use it, flush, drop, reopen (must succeed)
//! record := tag u8, file u8, len u16 (LE), body (len bytes, cut short at
//!           the end of the input)
//! file   := 0: ident "s"; 1..=27: "s_bin{file-1}"; otherwise "t"
//! tag    := bits 0-2 kind, bits 3-7 chunk index (chunk kinds)
//!   0 META_WRAP     `{ident}.meta` = valid header naming ident + body
//!   1 META_FOREIGN  `{ident}.meta` = valid header naming another ident + body
//!   2 META_RAW      `{ident}.meta` = body
//!   3 META_RAW_CRC  as 2, with the CRC field recomputed
//!   4 CHUNK         `{ident}_{index}.chunk`: valid header, chunk size
//!                   4096 << (body[0] & 3), contents sparse(body[1..])
//!   5 CHUNK_RAW_CRC `{ident}_{index}.chunk` of body[0] * 512 bytes, all of
//!                   it sparse(body[1..]), header CRC recomputed
//!   6 CHUNK_RAW     as 5, CRC left alone
//!   7               ignored
//! sparse := (at u16 LE, n u8, n bytes)*  — bytes written at `at`; the rest
//!           of the file is zero
//! ```
#![allow(dead_code, reason = "each user needs a different part")]

use std::fs;
use std::io;
use std::path::Path;

/// The ident the structure under test is opened with.
pub const IDENT: &str = "s";
/// Another ident, for planted files.
pub const OTHER: &str = "t";

pub const META_WRAP: u8 = 0;
pub const META_FOREIGN: u8 = 1;
pub const META_RAW: u8 = 2;
pub const META_RAW_CRC: u8 = 3;
pub const CHUNK: u8 = 4;
pub const CHUNK_RAW_CRC: u8 = 5;
pub const CHUNK_RAW: u8 = 6;

/// `file` selector of the structure's own ident.
pub const FILE_IDENT: u8 = 0;
/// `file` selector of the other ident.
pub const FILE_OTHER: u8 = 255;

/// The on-disk format version (chunky's `FORMAT_VERSION`).
const FORMAT_VERSION: u32 = chunky::storage::FORMAT_VERSION;
const MAX_IDENT_LEN: usize = chunky::storage::MAX_IDENT_LEN;
const CHUNK_HEADER_LEN: usize = 4096;
const CHUNK_CRC_AT: usize = 26 + MAX_IDENT_LEN;
const META_CRC_AT: usize = 18 + MAX_IDENT_LEN;
const META_HEADER_LEN: usize = META_CRC_AT + 4;
/// The largest raw chunk file: 255 * 512 bytes.
const RAW_UNIT: usize = 512;

/// Which structure the op byte opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Structure {
    Arena { slot_size: usize },
    Queue,
    MultiArena,
    Value,
}

/// What to do with the planted files.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub structure: Structure,
    pub chunk_size: chunky::ChunkSize,
    pub exercise: bool,
}

impl Plan {
    pub fn from_op(op: u8) -> Plan {
        let structure = match op & 3 {
            0 => Structure::Arena {
                slot_size: [16, 24, 8, 4096][usize::from(op >> 2 & 3)],
            },
            1 => Structure::Queue,
            2 => Structure::MultiArena,
            _ => Structure::Value,
        };
        let chunk_size = if op & 16 == 0 {
            chunky::ChunkSize::MIN
        } else {
            chunky::ChunkSize::new(8192).expect("a valid chunk size")
        };
        Plan {
            structure,
            chunk_size,
            exercise: op & 32 != 0,
        }
    }
}

/// The ident that a record's `file` byte names.
pub fn ident_of(file: u8) -> String {
    match file {
        0 => IDENT.to_owned(),
        1..=27 => format!("{IDENT}_bin{}", file - 1),
        _ => OTHER.to_owned(),
    }
}

/// Removes every file in `dir` (it holds nothing else).
pub fn clear(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        fs::remove_file(entry?.path())?;
    }
    Ok(())
}

/// Writes the files that `records` describe into `dir`.
pub fn plant(mut records: &[u8], dir: &Path) -> io::Result<()> {
    while let [tag, file, lo, hi, rest @ ..] = records {
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(rest.len());
        let (body, next) = rest.split_at(len);
        records = next;
        let ident = ident_of(*file);
        let index = u32::from(tag >> 3);
        let meta_path = dir.join(format!("{ident}.meta"));
        let chunk_path = dir.join(format!("{ident}_{index}.chunk"));
        match tag & 7 {
            META_WRAP => fs::write(meta_path, meta_file(&ident, body))?,
            META_FOREIGN => {
                let other = if ident == OTHER { IDENT } else { OTHER };
                fs::write(meta_path, meta_file(other, body))?
            }
            META_RAW => fs::write(meta_path, body)?,
            META_RAW_CRC => {
                let mut bytes = body.to_vec();
                fix_meta_crc(&mut bytes);
                fs::write(meta_path, bytes)?
            }
            CHUNK => {
                let (&size, data) = body.split_first().unwrap_or((&0, &[]));
                let size = 4096 << (size & 3);
                let mut bytes = chunk_header(&ident, index, size);
                bytes.resize(CHUNK_HEADER_LEN + size, 0);
                unsparse(data, &mut bytes[CHUNK_HEADER_LEN..]);
                fs::write(chunk_path, bytes)?
            }
            kind @ (CHUNK_RAW_CRC | CHUNK_RAW) => {
                let (&units, data) = body.split_first().unwrap_or((&0, &[]));
                let mut bytes = vec![0; usize::from(units) * RAW_UNIT];
                unsparse(data, &mut bytes);
                if kind == CHUNK_RAW_CRC && bytes.len() >= CHUNK_CRC_AT + 4 {
                    let crc = crc32fast::hash(&bytes[..CHUNK_CRC_AT]);
                    bytes[CHUNK_CRC_AT..CHUNK_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
                }
                fs::write(chunk_path, bytes)?
            }
            _ => {}
        }
    }
    Ok(())
}

/// A metadata file naming `ident` around `payload`, as chunky writes it.
pub fn meta_file(ident: &str, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0; META_HEADER_LEN];
    bytes[0..8].copy_from_slice(b"CHUNKYMD");
    bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes[12..16].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    put_ident(&mut bytes, 16, ident);
    bytes.extend_from_slice(payload);
    fix_meta_crc(&mut bytes);
    bytes
}

/// Recomputes the CRC of a metadata file (over the header before the CRC
/// and the payload its length field claims, as far as present).
fn fix_meta_crc(bytes: &mut [u8]) {
    if bytes.len() < META_HEADER_LEN {
        return;
    }
    let len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    let end = META_HEADER_LEN.saturating_add(len).min(bytes.len());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&bytes[..META_CRC_AT]);
    hasher.update(&bytes[META_HEADER_LEN..end]);
    let crc = hasher.finalize();
    bytes[META_CRC_AT..META_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
}

/// The header page of chunk `index` of `ident`, as chunky writes it.
pub fn chunk_header(ident: &str, index: u32, size: usize) -> Vec<u8> {
    let mut page = vec![0; CHUNK_HEADER_LEN];
    page[0..8].copy_from_slice(b"CHUNKYCK");
    page[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    page[12..16].copy_from_slice(&index.to_le_bytes());
    page[16..24].copy_from_slice(&(size as u64).to_le_bytes());
    put_ident(&mut page, 24, ident);
    let crc = crc32fast::hash(&page[..CHUNK_CRC_AT]);
    page[CHUNK_CRC_AT..CHUNK_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
    page
}

fn put_ident(bytes: &mut [u8], at: usize, ident: &str) {
    let ident = &ident.as_bytes()[..ident.len().min(MAX_IDENT_LEN)];
    bytes[at..at + 2].copy_from_slice(&(ident.len() as u16).to_le_bytes());
    bytes[at + 2..at + 2 + ident.len()].copy_from_slice(ident);
}

/// Applies the sparse writes of `data` to `out`, cut off at its end.
pub fn unsparse(mut data: &[u8], out: &mut [u8]) {
    while let [lo, hi, n, rest @ ..] = data {
        let at = usize::from(u16::from_le_bytes([*lo, *hi]));
        let n = usize::from(*n).min(rest.len());
        let (bytes, next) = rest.split_at(n);
        data = next;
        if let Some(dest) = out.get_mut(at..) {
            let n = n.min(dest.len());
            dest[..n].copy_from_slice(&bytes[..n]);
        }
    }
}

/// The sparse form of `bytes`: its nonzero runs (zero gaps shorter than 4
/// bytes are included in a run).
pub fn sparse(bytes: &[u8]) -> Vec<u8> {
    assert!(bytes.len() <= usize::from(u16::MAX) + 1);
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == 0 {
            at += 1;
            continue;
        }
        let start = at;
        let mut end = at;
        // Extend the run while a nonzero byte is at most 3 bytes ahead.
        while end < bytes.len()
            && end - start < 255
            && bytes[end..(end + 4).min(bytes.len())]
                .iter()
                .any(|&b| b != 0)
        {
            end += 1;
        }
        out.extend_from_slice(&(start as u16).to_le_bytes());
        out.push((end - start) as u8);
        out.extend_from_slice(&bytes[start..end]);
        at = end;
    }
    out
}

/// A record.
pub fn record(tag: u8, file: u8, body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(body.len()).expect("a record body fits 64 KiB");
    let mut out = vec![tag, file];
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// A CHUNK record for chunk `index` of the ident `file` names, holding
/// `contents` (the chunk's memory, without the header page).
pub fn chunk_record(file: u8, index: u8, contents: &[u8]) -> Vec<u8> {
    let size = contents.len();
    assert!(size.is_power_of_two() && (4096..=32768).contains(&size));
    let mut body = vec![(size.trailing_zeros() - 12) as u8];
    body.extend_from_slice(&sparse(contents));
    record(CHUNK | index << 3, file, &body)
}

/// Opens the structure of `plan` in `dir` through chunky's public API and
/// returns its length (items, live slots; 0 for a `Value`). With
/// `plan.exercise`, it then reads every item or slot, adds one, flushes,
/// drops and reopens it, which must succeed with the new length: whatever
/// chunky accepted, it can use and persist again.
pub fn open_and_use(plan: Plan, dir: &Path) -> chunky::Result<usize> {
    use chunky::{Arena, MultiArena, Queue, Storage, Value};
    let storage = Storage::mmap(dir)?;
    let size = plan.chunk_size;
    let reopened = |what: &str, result: chunky::Result<usize>, len: usize| match result {
        Ok(found) => assert_eq!(found, len, "{what} reopened with another length"),
        Err(e) => panic!("{what} was accepted and used, but does not reopen: {e}"),
    };
    match plan.structure {
        Structure::Arena { slot_size } => {
            let mut arena = Arena::open(&storage, IDENT, slot_size, size)?;
            let len = arena.len();
            if !plan.exercise {
                return Ok(len);
            }
            assert_eq!(arena.len() + arena.free_len(), arena.slot_count());
            for index in arena.indices() {
                let slot = arena.get(index).expect("below slot_count");
                assert_eq!(slot.len(), arena.slot_size());
            }
            let first = arena.push()?;
            arena.get_mut(first).expect("just handed out").fill(0xa5);
            let second = arena.push()?;
            arena.free(first);
            arena.get_mut(second).expect("just handed out")[0] = 1;
            arena.flush()?;
            drop(arena);
            let again = Arena::open(&storage, IDENT, slot_size, size).map(|a| a.len());
            reopened("an arena", again, len + 1);
            Ok(len)
        }
        Structure::Queue => {
            let mut queue = Queue::open(&storage, IDENT, size)?;
            let len = queue.len();
            if !plan.exercise {
                return Ok(len);
            }
            let peeked = queue.peek().map(<[u8]>::len);
            let mut popped = 0;
            while let Some(item) = queue.pop() {
                if popped == 0 {
                    assert_eq!(Some(item.len()), peeked);
                }
                popped += 1;
            }
            assert_eq!(popped, len, "items popped");
            queue.push(b"fuzz")?;
            queue.flush()?;
            drop(queue);
            let again = Queue::open(&storage, IDENT, size).map(|mut q| {
                assert_eq!(q.pop(), Some(&b"fuzz"[..]));
                q.len() + 1
            });
            reopened("a queue", again, 1);
            Ok(len)
        }
        Structure::MultiArena => {
            let mut multi = MultiArena::open(&storage, IDENT, size)?;
            let len = multi.len();
            if !plan.exercise {
                return Ok(len);
            }
            let mut live = 0;
            for (bin, arena) in multi.bins() {
                assert_eq!(arena.slot_size(), bin.slot_size());
                for index in arena.indices() {
                    arena.get(index).expect("below slot_count");
                }
                live += arena.len();
            }
            assert_eq!(live, len);
            let slot = multi.push(24)?;
            multi.get_mut(slot).expect("just handed out").fill(7);
            // Usually `len + 1`; more if the bin was not in the metadata but
            // its files were there (a multi-arena adopts such a bin's slots).
            let after = multi.len();
            assert!(after > len);
            multi.flush()?;
            drop(multi);
            let again = MultiArena::open(&storage, IDENT, size).map(|m| m.len());
            reopened("a multi-arena", again, after);
            Ok(len)
        }
        Structure::Value => {
            let mut value = Value::open(&storage, IDENT, 0_u64)?;
            if !plan.exercise {
                return Ok(0);
            }
            let next = value.get().wrapping_add(1);
            value.set(next);
            value.flush()?;
            drop(value);
            let again = Value::open(&storage, IDENT, 0_u64).map(|v| {
                assert_eq!(v.get(), next);
                0
            });
            reopened("a value", again, 0);
            Ok(0)
        }
    }
}
