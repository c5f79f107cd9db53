//! The metadata payload codec shared by the structures: a kind tag followed
//! by little-endian integers, read back with bounds checks.

use crate::error::{Error, Result};
use crate::storage::{ChunkSize, Storage};

/// Which structure wrote a metadata blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Arena = 1,
    MultiArena = 2,
    Queue = 3,
    Value = 4,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Arena => "Arena",
            Kind::MultiArena => "MultiArena",
            Kind::Queue => "Queue",
            Kind::Value => "Value",
        }
    }

    fn from_tag(tag: u32) -> Option<Kind> {
        [Kind::Arena, Kind::MultiArena, Kind::Queue, Kind::Value]
            .into_iter()
            .find(|k| *k as u32 == tag)
    }
}

/// Builds a metadata payload.
pub(crate) struct MetaWriter(Vec<u8>);

impl MetaWriter {
    pub(crate) fn new(kind: Kind) -> Self {
        let mut w = MetaWriter(Vec::with_capacity(64));
        w.u32(kind as u32);
        w
    }

    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Reads a metadata payload, turning every inconsistency into
/// [`Error::CorruptMeta`].
pub(crate) struct MetaReader<'a> {
    ident: &'a str,
    bytes: &'a [u8],
}

impl<'a> MetaReader<'a> {
    /// Starts reading `bytes`, which must have been written for `kind`.
    pub(crate) fn new(ident: &'a str, bytes: &'a [u8], kind: Kind) -> Result<Self> {
        let mut r = MetaReader { ident, bytes };
        let tag = r.u32()?;
        match Kind::from_tag(tag) {
            Some(found) if found == kind => Ok(r),
            Some(found) => Err(Error::KindMismatch {
                ident: ident.to_owned(),
                expected: kind.name(),
                found: found.name(),
            }),
            None => Err(r.corrupt(format!("unknown structure kind {tag}"))),
        }
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take::<4>()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take::<8>()?))
    }

    /// Reads a chunk size, which must equal `requested` (the setting the
    /// structure is being opened with).
    pub(crate) fn chunk_size(&mut self, requested: ChunkSize) -> Result<ChunkSize> {
        let stored = self.u32()?;
        self.expect("chunk size", u64::from(stored), requested.bytes() as u64)?;
        Ok(requested)
    }

    /// Fails with [`Error::LayoutMismatch`] unless `stored == requested`.
    pub(crate) fn expect(&self, what: &'static str, stored: u64, requested: u64) -> Result<()> {
        if stored == requested {
            Ok(())
        } else {
            Err(Error::LayoutMismatch {
                ident: self.ident.to_owned(),
                what,
                stored,
                requested,
            })
        }
    }

    /// Fails unless the whole payload was read.
    pub(crate) fn finish(self) -> Result<()> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt(format!("{} unexpected trailing bytes", self.bytes.len())))
        }
    }

    pub(crate) fn corrupt(&self, detail: impl Into<String>) -> Error {
        Error::corrupt_meta(self.ident, detail)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let Some((head, rest)) = self.bytes.split_first_chunk::<N>() else {
            return Err(self.corrupt("payload ends early"));
        };
        self.bytes = rest;
        Ok(*head)
    }
}

/// What every structure holds: its storage, ident and the lock on it.
#[derive(Debug)]
pub(crate) struct Handle {
    pub(crate) storage: Storage,
    pub(crate) ident: String,
    _lock: crate::storage::IdentLock,
    /// False once the structure was destroyed: nothing is written on drop.
    pub(crate) live: bool,
}

impl Handle {
    /// Locks `ident` in `storage` and returns its metadata, if any.
    pub(crate) fn open(storage: &Storage, ident: &str) -> Result<(Handle, Option<Vec<u8>>)> {
        let lock = storage.lock(ident)?;
        let meta = storage.load_meta(ident)?;
        let handle = Handle {
            storage: storage.clone(),
            ident: ident.to_owned(),
            _lock: lock,
            live: true,
        };
        Ok((handle, meta))
    }

    /// Stores `meta` unless the structure was destroyed.
    pub(crate) fn store(&self, meta: &MetaWriter) -> Result<()> {
        if self.live {
            self.storage.store_meta(&self.ident, meta.bytes())
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let mut w = MetaWriter::new(Kind::Queue);
        w.u32(7).u64(1 << 40);
        let mut r = MetaReader::new("q", w.bytes(), Kind::Queue).unwrap();
        assert_eq!(r.u32().unwrap(), 7);
        assert_eq!(r.u64().unwrap(), 1 << 40);
        r.finish().unwrap();

        assert!(matches!(
            MetaReader::new("q", w.bytes(), Kind::Arena),
            Err(Error::KindMismatch {
                expected: "Arena",
                found: "Queue",
                ..
            })
        ));
        let mut r = MetaReader::new("q", &w.bytes()[..6], Kind::Queue).unwrap();
        assert!(matches!(r.u32(), Err(Error::CorruptMeta { .. })));
        let r = MetaReader::new("q", w.bytes(), Kind::Queue).unwrap();
        assert!(matches!(r.finish(), Err(Error::CorruptMeta { .. })));
        assert!(matches!(
            MetaReader::new("q", &[9, 0, 0, 0], Kind::Queue),
            Err(Error::CorruptMeta { .. })
        ));
    }
}
