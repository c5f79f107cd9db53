//! `Compacted<T>`: an owned buffer holding one value in compact form.

use std::marker::PhantomData;
use std::ops::Deref;

use crate::raw::AlignedBuf;
use crate::traits::{Compact, compact_align, static_size_bytes};
use crate::validate::{ValidationError, validate_in_place};

/// One `T` in compact form in its own aligned buffer: the bytes that would be
/// queued, written to a file or sent over a socket.
///
/// ```
/// use compact::{CString, CVec, Compacted};
/// let value: CVec<CString> = vec!["a".into(), "bc".into()].into();
/// let compacted = Compacted::new(value);
/// // Bytes that arrive from elsewhere are validated before use:
/// let copy = Compacted::<CVec<CString>>::from_bytes(compacted.as_bytes(), compacted.origin()).unwrap();
/// assert_eq!(copy[1], "bc");
/// // Corrupt bytes give an error, never undefined behaviour:
/// let mut bad = compacted.as_bytes().to_vec();
/// bad[8] = 0xff; // the length field
/// assert!(Compacted::<CVec<CString>>::from_bytes(&bad, compacted.origin()).is_err());
/// ```
pub struct Compacted<T: Compact> {
    buf: AlignedBuf,
    _value: PhantomData<T>,
}

impl<T: Compact> Compacted<T> {
    /// Compacts `value` into a new buffer of exactly `value.total_size_bytes()` bytes.
    pub fn new(value: T) -> Self {
        let mut value = std::mem::ManuallyDrop::new(value);
        let buf = AlignedBuf::zeroed(value.total_size_bytes(), compact_align::<T>());
        let dest = buf.as_ptr().cast::<T>();
        let source: *mut T = &mut *value;
        // SAFETY: `buf` is aligned for `T` and holds the static part followed
        // by `dynamic_size_bytes()` bytes for the dynamic part, disjoint from
        // `value`, which is moved (never dropped) here.
        unsafe {
            T::compact(source, dest, buf.as_ptr().add(static_size_bytes::<T>()));
        }
        Compacted {
            buf,
            _value: PhantomData,
        }
    }

    /// Copies bytes that were compacted at address `origin` (see [`Compacted::origin`];
    /// 0 if they hold offsets) into a new buffer and validates them.
    pub fn from_bytes(bytes: &[u8], origin: usize) -> Result<Self, ValidationError> {
        let mut buf = AlignedBuf::zeroed(bytes.len(), compact_align::<T>());
        buf.as_mut_slice().copy_from_slice(bytes);
        validate_in_place::<T>(buf.as_mut_slice(), origin)?;
        Ok(Compacted {
            buf,
            _value: PhantomData,
        })
    }

    /// The value's bytes in compact form.
    ///
    /// # Panics
    /// If the value was mutated so that it is no longer compact; call
    /// [`Compacted::recompact`] after mutating it.
    pub fn as_bytes(&self) -> &[u8] {
        assert!(
            self.is_still_compact(),
            "Compacted::as_bytes on a value that spilled to the heap; call recompact() first"
        );
        self.buf.as_slice()
    }

    /// Compacts the value again into a new buffer of the right size if it is
    /// no longer compact (a container in it grew and spilled to the heap), as
    /// kay's instance stores do after a handler. Returns whether it moved.
    pub fn recompact(&mut self) -> bool {
        if self.is_still_compact() {
            return false;
        }
        let old = self.buf.as_ptr().cast::<T>();
        // SAFETY: `old` holds a valid `T`.
        let size = unsafe { (*old).total_size_bytes() };
        let buf = AlignedBuf::zeroed(size, compact_align::<T>());
        // SAFETY: the new buffer is aligned, sized for the value and disjoint
        // from the old one and from the value's heap parts. The old compact
        // parts stay alive until the old buffer is freed below, after the move.
        unsafe {
            T::compact(
                old,
                buf.as_ptr().cast::<T>(),
                buf.as_ptr().add(static_size_bytes::<T>()),
            );
        }
        // The value moved out of the old buffer, so the old buffer is freed
        // without dropping anything in it.
        self.buf = buf;
        true
    }

    /// The address the bytes were compacted at; pass it to [`Compacted::from_bytes`]
    /// (or [`crate::validate_in_place`]) together with the bytes.
    pub fn origin(&self) -> usize {
        self.buf.as_ptr() as usize
    }

    /// Moves the value out onto the heap.
    pub fn into_inner(self) -> T {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: the buffer holds a valid `T`, moved out once; the buffer is
        // then freed without dropping the value again.
        let value = unsafe { T::decompact(this.buf.as_ptr().cast::<T>()) };
        // SAFETY: `this` is never used again; this drops only the buffer.
        drop(unsafe { std::ptr::read(&this.buf) });
        value
    }
}

impl<T: Compact> Deref for Compacted<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the buffer holds a valid, aligned `T` (compacted or validated).
        unsafe { &*self.buf.as_ptr().cast::<T>() }
    }
}

impl<T: Compact> std::ops::DerefMut for Compacted<T> {
    /// Mutable access in place. Growing a container spills it to the heap:
    /// call [`Compacted::recompact`] afterwards to make it compact again.
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, borrowed mutably.
        unsafe { &mut *self.buf.as_ptr().cast::<T>() }
    }
}

impl<T: Compact + std::fmt::Debug> std::fmt::Debug for Compacted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Compacted").field(&**self).finish()
    }
}

impl<T: Compact> Drop for Compacted<T> {
    fn drop(&mut self) {
        // SAFETY: the buffer holds a valid `T` that is dropped exactly once here.
        unsafe { std::ptr::drop_in_place(self.buf.as_ptr().cast::<T>()) }
    }
}

// SAFETY: a `Compacted<T>` owns its `T` like a `Box<T>`.
unsafe impl<T: Compact + Send> Send for Compacted<T> {}
// SAFETY: shared access only hands out `&T`.
unsafe impl<T: Compact + Sync> Sync for Compacted<T> {}

/// Compacts `value` into `bytes`, which must be aligned to
/// [`compact_align::<T>()`](compact_align) and at least
/// `value.total_size_bytes()` long, and returns it there. This is how an
/// owner of raw memory (an arena slot, a mapped file) stores a value; the
/// address of `bytes` is the origin to pass to [`crate::validate_in_place`]
/// when the bytes are read back at another address.
///
/// The value in `bytes` is never dropped by anyone: take it out with
/// `std::mem::take` (and compact it elsewhere) before reusing the bytes if it
/// may have spilled to the heap, or its heap parts leak.
///
/// ```
/// let mut buf = vec![0u64; 8];
/// let bytes: &mut [u8] = bytemuck_free_bytes(&mut buf);
/// let v = compact::compact_into(compact::CString::from("hi"), bytes).unwrap();
/// assert_eq!(v.as_str(), "hi");
/// # fn bytemuck_free_bytes(words: &mut [u64]) -> &mut [u8] {
/// #     let len = words.len() * 8;
/// #     // SAFETY: u64 has no padding and any byte pattern is valid for u8.
/// #     unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast(), len) }
/// # }
/// ```
pub fn compact_into<T: Compact>(value: T, bytes: &mut [u8]) -> Result<&mut T, ValidationError> {
    let address = bytes.as_ptr() as usize;
    let required = compact_align::<T>();
    if !address.is_multiple_of(required) {
        return Err(ValidationError::Misaligned { address, required });
    }
    let needed = value.total_size_bytes();
    if bytes.len() < needed {
        return Err(ValidationError::TooShort {
            type_name: std::any::type_name::<T>(),
            needed,
            available: bytes.len(),
        });
    }
    let mut value = std::mem::ManuallyDrop::new(value);
    // One pointer for both parts: a second `as_mut_ptr` would invalidate
    // the first under Stacked Borrows (found by Miri).
    let base = bytes.as_mut_ptr();
    let dest = base.cast::<T>();
    // SAFETY: `bytes` is aligned and long enough for the static part plus the
    // dynamic part behind it, and is disjoint from `value` and its heap
    // parts; `value` moves in and is never dropped here.
    unsafe {
        T::compact(&mut *value, dest, base.add(static_size_bytes::<T>()));
        Ok(&mut *dest)
    }
}
