//! The on-disk headers of [`MmapStorage`](super::MmapStorage) files. All
//! integers are little-endian.
//!
//! Chunk file `{ident}_{index}.chunk`: one header page of
//! [`CHUNK_HEADER_LEN`] bytes, then the chunk's memory (mapped from that
//! offset, so it stays page aligned):
//!
//! | bytes    | field                                      |
//! |----------|--------------------------------------------|
//! | 0..8     | magic `CHUNKYCK`                           |
//! | 8..12    | format version (`u32`)                     |
//! | 12..16   | chunk index (`u32`)                        |
//! | 16..24   | chunk size in bytes (`u64`)                |
//! | 24..26   | ident length (`u16`)                       |
//! | 26..154  | ident, zero padded                         |
//! | 154..158 | CRC-32 of bytes 0..154                     |
//!
//! Metadata file `{ident}.meta`:
//!
//! | bytes    | field                                      |
//! |----------|--------------------------------------------|
//! | 0..8     | magic `CHUNKYMD`                           |
//! | 8..12    | format version (`u32`)                     |
//! | 12..16   | payload length (`u32`)                     |
//! | 16..20   | CRC-32 of bytes 0..16 and the payload      |
//! | 20..     | payload                                    |
//!
//! Checks run in the order magic, version, length, checksum, fields, so a
//! foreign file is reported as foreign and a newer file as newer, not as
//! corrupted; a file longer than its header says is reported after the
//! checksum, so a damaged length field reads as corruption.

use std::path::Path;

use super::{ChunkIndex, ChunkSize, FORMAT_VERSION, MAX_IDENT_LEN};
use crate::error::{Error, Result};

/// The length of a chunk file's header page; the chunk's memory follows.
pub(crate) const CHUNK_HEADER_LEN: usize = 4096;

const CHUNK_MAGIC: [u8; 8] = *b"CHUNKYCK";
const META_MAGIC: [u8; 8] = *b"CHUNKYMD";
const IDENT_AT: usize = 26;
const CHUNK_CRC_AT: usize = IDENT_AT + MAX_IDENT_LEN;
const META_HEADER_LEN: usize = 20;

/// The header page of chunk `index` of `ident`.
pub(crate) fn encode_chunk_header(ident: &str, index: ChunkIndex, size: ChunkSize) -> Vec<u8> {
    debug_assert!(ident.len() <= MAX_IDENT_LEN);
    let mut page = vec![0; CHUNK_HEADER_LEN];
    page[0..8].copy_from_slice(&CHUNK_MAGIC);
    page[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    page[12..16].copy_from_slice(&index.0.to_le_bytes());
    page[16..24].copy_from_slice(&(size.bytes() as u64).to_le_bytes());
    page[24..26].copy_from_slice(&(ident.len() as u16).to_le_bytes());
    page[IDENT_AT..IDENT_AT + ident.len()].copy_from_slice(ident.as_bytes());
    let crc = crc32fast::hash(&page[..CHUNK_CRC_AT]);
    page[CHUNK_CRC_AT..CHUNK_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
    page
}

/// Checks the header page of the chunk file at `path`, expected to be chunk
/// `index` of `ident`, and returns the chunk size it records.
pub(crate) fn decode_chunk_header(
    path: &Path,
    page: &[u8],
    ident: &str,
    index: ChunkIndex,
) -> Result<ChunkSize> {
    check_magic_and_version(path, page, &CHUNK_MAGIC, "chunk")?;
    if page.len() < CHUNK_CRC_AT + 4 {
        return Err(truncated(path, CHUNK_HEADER_LEN, page.len()));
    }
    check_crc(
        path,
        crc32fast::hash(&page[..CHUNK_CRC_AT]),
        &page[CHUNK_CRC_AT..],
    )?;

    let foreign = |detail: String| Error::ForeignFile {
        path: path.to_owned(),
        detail,
    };
    let ident_len = usize::from(u16::from_le_bytes([page[24], page[25]]));
    let stored_ident = page
        .get(IDENT_AT..IDENT_AT + ident_len)
        .filter(|_| ident_len <= MAX_IDENT_LEN)
        .ok_or_else(|| foreign(format!("ident length {ident_len} is out of range")))?;
    if stored_ident != ident.as_bytes() {
        return Err(foreign(format!(
            "it belongs to `{}`, not `{ident}`",
            String::from_utf8_lossy(stored_ident)
        )));
    }
    let stored_index = u32_at(page, 12);
    if stored_index != index.0 {
        return Err(foreign(format!(
            "it is chunk {stored_index}, not chunk {index}"
        )));
    }
    let size = u64::from_le_bytes(page[16..24].try_into().expect("8 bytes"));
    usize::try_from(size)
        .ok()
        .and_then(|size| ChunkSize::new(size).ok())
        .ok_or_else(|| foreign(format!("its chunk size {size} is invalid")))
}

/// The contents of a metadata file holding `payload`.
pub(crate) fn encode_meta(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("metadata blobs are small");
    let mut bytes = Vec::with_capacity(META_HEADER_LEN + payload.len());
    bytes.extend_from_slice(&META_MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(&meta_crc(&bytes, payload).to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// Checks the metadata file at `path` and returns its payload.
pub(crate) fn decode_meta(path: &Path, bytes: &[u8]) -> Result<Vec<u8>> {
    check_magic_and_version(path, bytes, &META_MAGIC, "metadata")?;
    if bytes.len() < META_HEADER_LEN {
        return Err(truncated(path, META_HEADER_LEN, bytes.len()));
    }
    let expected = META_HEADER_LEN + u32_at(bytes, 12) as usize;
    if bytes.len() < expected {
        return Err(truncated(path, expected, bytes.len()));
    }
    // A damaged length field shows up as a checksum mismatch.
    let payload = &bytes[META_HEADER_LEN..expected];
    check_crc(path, meta_crc(&bytes[..16], payload), &bytes[16..20])?;
    if bytes.len() > expected {
        return Err(Error::ForeignFile {
            path: path.to_owned(),
            detail: format!("it has {} bytes after its payload", bytes.len() - expected),
        });
    }
    Ok(payload.to_vec())
}

fn meta_crc(header: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[..16]);
    hasher.update(payload);
    hasher.finalize()
}

fn check_magic_and_version(
    path: &Path,
    bytes: &[u8],
    magic: &[u8; 8],
    what: &'static str,
) -> Result<()> {
    let min = magic.len().min(bytes.len());
    if bytes[..min] != magic[..min] {
        return Err(Error::WrongMagic {
            path: path.to_owned(),
            what,
        });
    }
    if bytes.len() < 12 {
        return Err(truncated(path, 12, bytes.len()));
    }
    let found = u32_at(bytes, 8);
    if found != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            path: path.to_owned(),
            found,
            supported: FORMAT_VERSION,
        });
    }
    Ok(())
}

fn check_crc(path: &Path, computed: u32, stored: &[u8]) -> Result<()> {
    let stored = u32_at(stored, 0);
    if stored == computed {
        Ok(())
    } else {
        Err(Error::ChecksumMismatch {
            path: path.to_owned(),
            stored,
            computed,
        })
    }
}

fn truncated(path: &Path, expected: usize, found: usize) -> Error {
    Error::Truncated {
        path: path.to_owned(),
        expected: expected as u64,
        found: found as u64,
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDX: ChunkIndex = ChunkIndex(3);

    fn page() -> Vec<u8> {
        encode_chunk_header("queue", IDX, ChunkSize::MIN)
    }

    fn decode(page: &[u8]) -> Result<ChunkSize> {
        decode_chunk_header(Path::new("f"), page, "queue", IDX)
    }

    #[test]
    fn chunk_header_round_trips() {
        assert_eq!(decode(&page()).unwrap(), ChunkSize::MIN);
        // Little-endian on every host.
        assert_eq!(&page()[8..12], &[1, 0, 0, 0]);
        assert_eq!(&page()[12..16], &[3, 0, 0, 0]);
    }

    #[test]
    fn chunk_header_errors() {
        let mut p = page();
        p[0] = b'X';
        assert!(matches!(decode(&p), Err(Error::WrongMagic { .. })));
        let mut p = page();
        p[8] = 9;
        assert!(matches!(
            decode(&p),
            Err(Error::UnsupportedVersion { found: 9, .. })
        ));
        for at in [12, 20, 30, 100, CHUNK_CRC_AT] {
            let mut p = page();
            p[at] ^= 0x40;
            assert!(
                matches!(decode(&p), Err(Error::ChecksumMismatch { .. })),
                "flip at {at}"
            );
        }
        assert!(matches!(
            decode_chunk_header(Path::new("f"), &page(), "other", IDX),
            Err(Error::ForeignFile { .. })
        ));
        assert!(matches!(
            decode_chunk_header(Path::new("f"), &page(), "queue", ChunkIndex(4)),
            Err(Error::ForeignFile { .. })
        ));
        assert!(matches!(decode(&page()[..5]), Err(Error::Truncated { .. })));
        assert!(matches!(
            decode(&page()[..100]),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn meta_round_trips_and_rejects_damage() {
        let path = Path::new("m");
        let bytes = encode_meta(b"hello");
        assert_eq!(decode_meta(path, &bytes).unwrap(), b"hello");
        assert!(matches!(
            decode_meta(path, &bytes[..bytes.len() - 1]),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(
            decode_meta(path, &bytes[..3]),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(
            decode_meta(path, b"not a chunky file at all"),
            Err(Error::WrongMagic { .. })
        ));
        assert!(matches!(
            decode_meta(path, b""),
            Err(Error::Truncated { .. })
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            decode_meta(path, &long),
            Err(Error::ForeignFile { .. })
        ));
        for at in 16..bytes.len() {
            let mut b = bytes.clone();
            b[at] ^= 1;
            assert!(
                matches!(decode_meta(path, &b), Err(Error::ChecksumMismatch { .. })),
                "flip at {at}"
            );
        }
    }
}
