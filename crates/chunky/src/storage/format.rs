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
//! | 16..18   | ident length (`u16`)                       |
//! | 18..146  | ident, zero padded                         |
//! | 146..150 | CRC-32 of bytes 0..146 and the payload     |
//! | 150..    | payload                                    |
//!
//! Both kinds of file name the structure they belong to, so a file copied or
//! renamed over another structure's is refused as [`Error::ForeignFile`]
//! naming the file, instead of being read as that structure's state.
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
const CHUNK_CRC_AT: usize = 26 + MAX_IDENT_LEN;
const META_IDENT_AT: usize = 18;
const META_CRC_AT: usize = META_IDENT_AT + MAX_IDENT_LEN;
const META_HEADER_LEN: usize = META_CRC_AT + 4;

/// The header page of chunk `index` of `ident`.
pub(crate) fn encode_chunk_header(ident: &str, index: ChunkIndex, size: ChunkSize) -> Vec<u8> {
    debug_assert!(ident.len() <= MAX_IDENT_LEN);
    let mut page = vec![0; CHUNK_HEADER_LEN];
    page[0..8].copy_from_slice(&CHUNK_MAGIC);
    page[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    page[12..16].copy_from_slice(&index.0.to_le_bytes());
    page[16..24].copy_from_slice(&(size.bytes() as u64).to_le_bytes());
    put_ident(&mut page, 24, ident);
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
    check_ident(path, page, 24, ident)?;
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

/// The contents of the metadata file of `ident` holding `payload`.
pub(crate) fn encode_meta(ident: &str, payload: &[u8]) -> Vec<u8> {
    debug_assert!(ident.len() <= MAX_IDENT_LEN);
    let len = u32::try_from(payload.len()).expect("metadata blobs are small");
    let mut bytes = vec![0; META_HEADER_LEN];
    bytes[0..8].copy_from_slice(&META_MAGIC);
    bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes[12..16].copy_from_slice(&len.to_le_bytes());
    put_ident(&mut bytes, 16, ident);
    let crc = meta_crc(&bytes, payload);
    bytes[META_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// Checks the metadata file at `path`, expected to belong to `ident`, and
/// returns its payload.
pub(crate) fn decode_meta(path: &Path, bytes: &[u8], ident: &str) -> Result<Vec<u8>> {
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
    check_crc(path, meta_crc(bytes, payload), &bytes[META_CRC_AT..])?;
    if bytes.len() > expected {
        return Err(Error::ForeignFile {
            path: path.to_owned(),
            detail: format!("it has {} bytes after its payload", bytes.len() - expected),
        });
    }
    check_ident(path, bytes, 16, ident)?;
    Ok(payload.to_vec())
}

fn meta_crc(header: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[..META_CRC_AT]);
    hasher.update(payload);
    hasher.finalize()
}

/// Writes `ident` as a `u16` length at `at` followed by its bytes, zero
/// padded to [`MAX_IDENT_LEN`].
fn put_ident(bytes: &mut [u8], at: usize, ident: &str) {
    bytes[at..at + 2].copy_from_slice(&(ident.len() as u16).to_le_bytes());
    bytes[at + 2..at + 2 + ident.len()].copy_from_slice(ident.as_bytes());
}

/// Fails with [`Error::ForeignFile`] unless the ident written by
/// [`put_ident`] at `at` is `ident`.
fn check_ident(path: &Path, bytes: &[u8], at: usize, ident: &str) -> Result<()> {
    let foreign = |detail: String| Error::ForeignFile {
        path: path.to_owned(),
        detail,
    };
    let len = usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
    let stored = bytes
        .get(at + 2..at + 2 + len)
        .filter(|_| len <= MAX_IDENT_LEN)
        .ok_or_else(|| foreign(format!("ident length {len} is out of range")))?;
    if stored == ident.as_bytes() {
        Ok(())
    } else {
        Err(foreign(format!(
            "it belongs to `{}`, not `{ident}`",
            String::from_utf8_lossy(stored)
        )))
    }
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
        assert_eq!(&page()[8..12], &[2, 0, 0, 0]);
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
        let bytes = encode_meta("arena", b"hello");
        let decode_meta = |path, bytes: &[u8]| super::decode_meta(path, bytes, "arena");
        assert_eq!(decode_meta(path, &bytes).unwrap(), b"hello");
        // Another structure's metadata is foreign, and the error names both.
        let err = super::decode_meta(path, &bytes, "other").unwrap_err();
        assert!(matches!(err, Error::ForeignFile { .. }), "{err}");
        assert!(err.to_string().contains("`arena`, not `other`"), "{err}");
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
