//! [`Value`]: one persisted plain-data value in a chunk of its own.

use std::marker::PhantomData;

use crate::error::{Error, Result};
use crate::meta::{Handle, Kind, MetaReader, MetaWriter};
use crate::pod::Pod;
use crate::storage::{Chunk, ChunkIndex, ChunkSize, Storage};

/// The byte order of this host, as recorded in the metadata.
const HOST_ORDER: u32 = if cfg!(target_endian = "little") { 1 } else { 2 };

/// One value of a [`Pod`] type, kept in its own chunk: with a persistent
/// storage, every [`Value::set`] lands in the mapped file and the value is
/// back when reopened.
///
/// The metadata records the size and alignment of `T` and the host byte
/// order; reopening with a type of another layout, or on a host of the other
/// byte order, is refused with [`Error::LayoutMismatch`].
///
/// ```
/// # use chunky::{Storage, Value};
/// let storage = Storage::heap();
/// let mut turn = Value::open(&storage, "turn", 0_u64)?;
/// turn.set(turn.get() + 1);
/// *turn.get_mut() += 1;
/// assert_eq!(turn.get(), 2);
/// # Ok::<(), chunky::Error>(())
/// ```
#[derive(Debug)]
pub struct Value<T: Pod> {
    handle: Handle,
    chunk: Chunk,
    _value: PhantomData<T>,
}

impl<T: Pod> Value<T> {
    /// Opens the value `ident` in `storage`; if it does not exist it is
    /// created holding `initial`.
    pub fn open(storage: &Storage, ident: &str, initial: T) -> Result<Value<T>> {
        let (mut handle, meta) = Handle::open(storage, ident)?;
        let opened = match meta {
            Some(meta) => Self::restore(&handle, &meta),
            None => Self::create(&handle, initial),
        };
        match opened {
            Ok(chunk) => Ok(Value {
                handle,
                chunk,
                _value: PhantomData,
            }),
            Err(e) => {
                handle.live = false;
                Err(e)
            }
        }
    }

    fn create(handle: &Handle, initial: T) -> Result<Chunk> {
        let size = ChunkSize::MIN.at_least(size_of::<T>())?;
        let mut chunk = handle
            .storage
            .create_chunk(&handle.ident, ChunkIndex(0), size)?;
        *chunk.pod_mut::<T>(0) = initial;
        Ok(chunk)
    }

    fn restore(handle: &Handle, meta: &[u8]) -> Result<Chunk> {
        let mut r = MetaReader::new(&handle.ident, meta, Kind::Value)?;
        let size = r.u64()?;
        r.expect("value size", size, size_of::<T>() as u64)?;
        let align = r.u32()?;
        r.expect("value alignment", u64::from(align), align_of::<T>() as u64)?;
        let order = r.u32()?;
        r.expect(
            "byte order (1 little, 2 big endian)",
            u64::from(order),
            u64::from(HOST_ORDER),
        )?;
        r.finish()?;
        let chunk = handle.storage.open_chunk(&handle.ident, ChunkIndex(0))?;
        if chunk.len() < size_of::<T>() {
            return Err(Error::corrupt_data(
                &handle.ident,
                format!(
                    "its chunk has {} bytes, the value needs {}",
                    chunk.len(),
                    size_of::<T>()
                ),
            ));
        }
        Ok(chunk)
    }

    /// The ident the value is stored under.
    pub fn ident(&self) -> &str {
        &self.handle.ident
    }

    /// A copy of the value.
    pub fn get(&self) -> T {
        self.chunk.read_pod(0)
    }

    /// Replaces the value.
    pub fn set(&mut self, value: T) {
        *self.get_mut() = value;
    }

    /// The value, mutably, in place.
    pub fn get_mut(&mut self) -> &mut T {
        self.chunk.pod_mut(0)
    }

    /// Writes the value back to disk, then the metadata.
    pub fn flush(&self) -> Result<()> {
        self.chunk
            .flush()
            .map_err(|e| Error::io(&self.handle.ident, e))?;
        self.handle.store(&Self::meta())
    }

    /// Removes the value's chunk and metadata from the storage.
    pub fn destroy(mut self) -> Result<()> {
        self.handle.live = false;
        let storage = self.handle.storage.clone();
        let ident = self.handle.ident.clone();
        drop(self);
        storage.remove_chunk(&ident, ChunkIndex(0))?;
        storage.remove_meta(&ident)
    }

    fn meta() -> MetaWriter {
        let mut w = MetaWriter::new(Kind::Value);
        w.u64(size_of::<T>() as u64)
            .u32(align_of::<T>() as u32)
            .u32(HOST_ORDER);
        w
    }
}

impl<T: Pod> Drop for Value<T> {
    fn drop(&mut self) {
        // Errors cannot be reported here; `flush` reports them.
        let _ = self.handle.store(&Self::meta());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_set_and_reopen() {
        let storage = Storage::heap();
        let mut v = Value::open(&storage, "v", [1.5_f32, 2.5]).unwrap();
        assert_eq!(v.get(), [1.5, 2.5]);
        v.set([3.0, 4.0]);
        v.get_mut()[0] = 5.0;
        drop(v);
        let v = Value::open(&storage, "v", [0.0_f32; 2]).unwrap();
        assert_eq!(v.get(), [5.0, 4.0]);
        v.destroy().unwrap();
        assert_eq!(
            Value::open(&storage, "v", [7.0_f32; 2]).unwrap().get(),
            [7.0; 2]
        );
    }

    #[test]
    fn large_values_and_type_changes() {
        let storage = Storage::heap();
        let mut big = Value::open(&storage, "big", [0_u64; 1000]).unwrap();
        big.get_mut()[999] = 9;
        drop(big);
        assert_eq!(
            Value::open(&storage, "big", [0_u64; 1000]).unwrap().get()[999],
            9
        );
        assert!(matches!(
            Value::open(&storage, "big", 0_u32),
            Err(Error::LayoutMismatch {
                what: "value size",
                ..
            })
        ));
        assert!(matches!(
            Value::open(&storage, "big", [0_u8; 8000]),
            Err(Error::LayoutMismatch {
                what: "value alignment",
                ..
            })
        ));
    }
}
