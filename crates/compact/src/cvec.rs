//! `CVec<T>`: a vector that is either on the heap or in compact form.
//!
//! A `CVec` is 16 bytes: a pointer, a `u32` length and a `u32` capacity. The
//! capacity marker `COMPACT` (`u32::MAX`) marks compact form: the elements then live in memory
//! the `CVec` does not own (the dynamic part of its compact owner). Reading,
//! overwriting elements in place and shrinking work on compact form without
//! copying; anything that needs more room moves the elements to a fresh heap
//! buffer first (it *spills*), and the owner compacts the value again later.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use crate::raw::{alloc_array, dealloc_array};
use crate::traits::{Compact, DYNAMIC_ALIGN, round_up_to_dynamic_align};
use crate::validate::{ValidationError, Validator};

/// Capacity marker: the elements live in memory owned by a compact owner.
const COMPACT: u32 = u32::MAX;
/// The largest heap capacity (and so the largest length) of a `CVec`.
pub const MAX_LEN: usize = (u32::MAX - 1) as usize;

/// A contiguous growable array that can live in compact form.
///
/// It follows `Vec`'s API; lengths are limited to [`MAX_LEN`] (`u32`), and the
/// element type must have an alignment of at most 8 bytes.
///
/// ```
/// use compact::{CVec, Compact, Compacted};
/// let mut v: CVec<u32> = vec![1, 2, 3].into();
/// v.push(4);
/// let compacted = Compacted::new(v);
/// assert!(compacted.is_still_compact());
/// assert_eq!(&compacted[..], &[1, 2, 3, 4]);
/// ```
#[repr(C)]
pub struct CVec<T> {
    ptr: NonNull<T>,
    len: u32,
    cap: u32,
    _owns: PhantomData<T>,
}

// SAFETY: a CVec owns its elements (or borrows them from a compact owner that
// moves between threads together with it), like `Vec<T>`.
unsafe impl<T: Send> Send for CVec<T> {}
// SAFETY: shared access only hands out `&T`.
unsafe impl<T: Sync> Sync for CVec<T> {}

impl<T> CVec<T> {
    const ALIGN_OK: () = assert!(
        align_of::<T>() <= DYNAMIC_ALIGN,
        "CVec elements must have an alignment of at most 8 bytes"
    );

    /// An empty vector (no allocation).
    pub const fn new() -> Self {
        let () = Self::ALIGN_OK;
        CVec {
            ptr: NonNull::dangling(),
            len: 0,
            cap: 0,
            _owns: PhantomData,
        }
    }

    /// An empty vector with room for `capacity` elements on the heap.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut v = Self::new();
        v.reserve(capacity);
        v
    }

    /// The number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are no elements.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the elements live in compact form (memory owned by a compact owner).
    #[inline]
    pub fn is_compact_buffer(&self) -> bool {
        self.cap == COMPACT
    }

    /// Room for elements before the next reallocation (for compact form: the length).
    pub fn capacity(&self) -> usize {
        if self.cap == COMPACT {
            self.len()
        } else {
            self.heap_capacity()
        }
    }

    fn heap_capacity(&self) -> usize {
        if size_of::<T>() == 0 {
            MAX_LEN
        } else {
            self.cap as usize
        }
    }

    /// The elements as a slice.
    #[inline]
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: `ptr` points to `len` initialized elements (heap or compact
        // memory that outlives `self`), or is dangling and aligned for len 0.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len()) }
    }

    /// The elements as a mutable slice (in place, also in compact form).
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as `as_slice`, borrowed mutably through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len()) }
    }

    /// Makes sure there is heap room for `additional` more elements, moving the
    /// elements out of compact form if needed.
    pub fn reserve(&mut self, additional: usize) {
        if additional == 0 {
            return;
        }
        let needed = self.len().checked_add(additional).filter(|&n| n <= MAX_LEN);
        let needed = needed.expect("CVec length would exceed CVec::MAX_LEN (u32::MAX - 1)");
        if self.cap != COMPACT && needed <= self.heap_capacity() {
            return;
        }
        let new_cap = needed.max(self.len() * 2).clamp(4, MAX_LEN);
        self.move_to_heap(new_cap);
    }

    /// Moves the elements bitwise to a new heap buffer of `new_cap`.
    fn move_to_heap(&mut self, new_cap: usize) {
        debug_assert!(new_cap >= self.len());
        let new_ptr = alloc_array::<T>(new_cap);
        // SAFETY: the old buffer holds `len` elements, the new one has room for
        // them, and the two allocations are distinct.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr(), new_ptr.as_ptr(), self.len()) };
        self.free_heap_buffer();
        self.ptr = new_ptr;
        self.cap = new_cap as u32;
    }

    /// Frees the heap buffer without dropping elements (no-op in compact form).
    fn free_heap_buffer(&mut self) {
        if self.cap != COMPACT {
            // SAFETY: in heap form `ptr` came from `alloc_array(cap)`.
            unsafe { dealloc_array(self.ptr, self.cap as usize) };
        }
    }

    /// Appends an element.
    #[inline]
    pub fn push(&mut self, value: T) {
        if self.cap == COMPACT || self.len() == self.heap_capacity() {
            self.reserve(1);
        }
        // SAFETY: `reserve` left room for one more element on the heap.
        unsafe { self.ptr.as_ptr().add(self.len()).write(value) };
        self.len += 1;
    }

    /// Removes and returns the last element.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: the element at the old last index is initialized and is now
        // outside `len`, so it is read exactly once.
        Some(unsafe { self.ptr.as_ptr().add(self.len()).read() })
    }

    /// Inserts `value` at `index`, shifting later elements to the right.
    ///
    /// # Panics
    /// If `index > len`.
    pub fn insert(&mut self, index: usize, value: T) {
        let len = self.len();
        assert!(
            index <= len,
            "insertion index (is {index}) should be <= len (is {len})"
        );
        self.reserve(1);
        // SAFETY: room for `len + 1` elements; the shifted range stays in bounds.
        unsafe {
            let at = self.ptr.as_ptr().add(index);
            std::ptr::copy(at, at.add(1), len - index);
            at.write(value);
        }
        self.len += 1;
    }

    /// Removes the element at `index`, shifting later elements to the left.
    ///
    /// # Panics
    /// If `index >= len`.
    pub fn remove(&mut self, index: usize) -> T {
        let len = self.len();
        assert!(
            index < len,
            "removal index (is {index}) should be < len (is {len})"
        );
        // SAFETY: `index < len`; the element is read once, then the tail moves
        // over it and the length shrinks.
        unsafe {
            let at = self.ptr.as_ptr().add(index);
            let value = at.read();
            std::ptr::copy(at.add(1), at, len - index - 1);
            self.len -= 1;
            value
        }
    }

    /// Removes the element at `index`, replacing it with the last element.
    ///
    /// # Panics
    /// If `index >= len`.
    pub fn swap_remove(&mut self, index: usize) -> T {
        let len = self.len();
        assert!(
            index < len,
            "swap_remove index (is {index}) should be < len (is {len})"
        );
        // SAFETY: both indices are < len; the removed element is read once and
        // the last one moves into its place.
        unsafe {
            let base = self.ptr.as_ptr();
            let value = base.add(index).read();
            std::ptr::copy(base.add(len - 1), base.add(index), 1);
            self.len -= 1;
            value
        }
    }

    /// Shortens the vector to `len` elements, dropping the rest.
    pub fn truncate(&mut self, len: usize) {
        while self.len() > len {
            drop(self.pop());
        }
    }

    /// Removes all elements.
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// Keeps only the elements for which `keep` returns `true`, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.retain_mut(|x| keep(x));
    }

    /// Like [`retain`](Self::retain), with mutable access.
    pub fn retain_mut(&mut self, mut keep: impl FnMut(&mut T) -> bool) {
        let len = self.len();
        // Shrink first so that a panic in `keep` leaks instead of double-dropping.
        self.len = 0;
        let base = self.ptr.as_ptr();
        let mut kept = 0;
        for i in 0..len {
            // SAFETY: `i < len`: an initialized element, visited once; kept
            // elements move down to `kept <= i`, dropped ones are dropped once.
            unsafe {
                let at = base.add(i);
                if keep(&mut *at) {
                    if kept != i {
                        std::ptr::copy_nonoverlapping(at, base.add(kept), 1);
                    }
                    kept += 1;
                } else {
                    std::ptr::drop_in_place(at);
                }
            }
        }
        self.len = kept as u32;
    }

    /// Moves all elements into a `Vec` (compact elements are decompacted).
    pub fn into_vec(self) -> Vec<T>
    where
        T: Compact,
    {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is a valid CVec that is never used or dropped again.
        let heap = unsafe { Self::decompact(&*this) };
        let heap = std::mem::ManuallyDrop::new(heap);
        if size_of::<T>() == 0 || heap.cap == 0 {
            let mut v = Vec::with_capacity(heap.len());
            // SAFETY: ZST or empty: `len` reads of nothing, each moved once.
            v.extend((0..heap.len()).map(|i| unsafe { heap.ptr.as_ptr().add(i).read() }));
            return v;
        }
        // SAFETY: in heap form the buffer came from the global allocator with
        // `Layout::array::<T>(cap)`, exactly what `Vec` uses.
        unsafe { Vec::from_raw_parts(heap.ptr.as_ptr(), heap.len(), heap.cap as usize) }
    }
}

impl<T> CVec<T> {
    /// Reads the length field of a possibly invalid CVec as a plain integer.
    ///
    /// # Safety
    /// `ptr` is aligned and readable for `size_of::<CVec<T>>()` initialized bytes.
    pub(crate) unsafe fn stored_len(ptr: *const Self) -> u32 {
        // SAFETY: forwarded from the caller; the field is a plain u32.
        unsafe { (&raw const (*ptr).len).read() }
    }
}

impl<T> Drop for CVec<T> {
    fn drop(&mut self) {
        if std::mem::needs_drop::<T>() {
            let elements: *mut [T] = self.as_mut_slice();
            // SAFETY: the first `len` elements are initialized and owned by
            // `self` (their own heap parts too, also in compact form).
            // Elements may nest further containers: dropped on a guarded stack.
            crate::deep::guard(|| unsafe { std::ptr::drop_in_place(elements) });
        }
        self.free_heap_buffer();
    }
}

impl<T> Default for CVec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Deref for CVec<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T> DerefMut for CVec<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T> AsRef<[T]> for CVec<T> {
    fn as_ref(&self) -> &[T] {
        self
    }
}

impl<T> std::borrow::Borrow<[T]> for CVec<T> {
    fn borrow(&self) -> &[T] {
        self
    }
}

impl<T: Clone> Clone for CVec<T> {
    fn clone(&self) -> Self {
        if std::mem::needs_drop::<T>() {
            // Elements may nest further containers (see `deep`).
            crate::deep::guard(|| self.iter().cloned().collect())
        } else {
            self.iter().cloned().collect()
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for CVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: PartialEq<U>, U> PartialEq<CVec<U>> for CVec<T> {
    fn eq(&self, other: &CVec<U>) -> bool {
        self[..] == other[..]
    }
}

impl<T: PartialEq<U>, U> PartialEq<[U]> for CVec<T> {
    fn eq(&self, other: &[U]) -> bool {
        self[..] == other[..]
    }
}

impl<T: PartialEq<U>, U> PartialEq<Vec<U>> for CVec<T> {
    fn eq(&self, other: &Vec<U>) -> bool {
        self[..] == other[..]
    }
}

impl<T: Eq> Eq for CVec<T> {}

impl<T: PartialOrd> PartialOrd for CVec<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self[..].partial_cmp(&other[..])
    }
}

impl<T: Ord> Ord for CVec<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self[..].cmp(&other[..])
    }
}

impl<T: Hash> Hash for CVec<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self[..].hash(state)
    }
}

impl<T> Extend<T> for CVec<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        let iter = iter.into_iter();
        self.reserve(iter.size_hint().0);
        for item in iter {
            self.push(item);
        }
    }
}

impl<'a, T: Copy + 'a> Extend<&'a T> for CVec<T> {
    fn extend<I: IntoIterator<Item = &'a T>>(&mut self, iter: I) {
        self.extend(iter.into_iter().copied())
    }
}

impl<T> FromIterator<T> for CVec<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut v = CVec::new();
        v.extend(iter);
        v
    }
}

impl<T> From<Vec<T>> for CVec<T> {
    fn from(v: Vec<T>) -> Self {
        v.into_iter().collect()
    }
}

impl<T: Clone> From<&[T]> for CVec<T> {
    fn from(s: &[T]) -> Self {
        s.iter().cloned().collect()
    }
}

impl<T, const N: usize> From<[T; N]> for CVec<T> {
    fn from(a: [T; N]) -> Self {
        a.into_iter().collect()
    }
}

impl<T: Compact> From<CVec<T>> for Vec<T> {
    fn from(v: CVec<T>) -> Self {
        v.into_vec()
    }
}

impl<'a, T> IntoIterator for &'a CVec<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, T> IntoIterator for &'a mut CVec<T> {
    type Item = &'a mut T;
    type IntoIter = std::slice::IterMut<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

impl<T: Compact> IntoIterator for CVec<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        self.into_vec().into_iter()
    }
}

// SAFETY: the dynamic part is the element buffer (rounded up to 8 bytes)
// followed by the dynamic parts of the elements in index order; `compact`,
// `dynamic_size_bytes`, `decompact` and `validate` all walk that layout.
unsafe impl<T: Compact> Compact for CVec<T> {
    // A pointer and two `u32`s: no padding (`compact` writes it whole).
    const PADDING_FREE: bool = true;

    fn is_still_compact(&self) -> bool {
        self.cap == COMPACT
            && (T::IS_STATIC || crate::deep::guard(|| self.iter().all(T::is_still_compact)))
    }

    fn dynamic_size_bytes(&self) -> usize {
        let own = round_up_to_dynamic_align(self.len() * size_of::<T>());
        if T::IS_STATIC {
            own
        } else {
            own + crate::deep::guard(|| self.iter().map(T::dynamic_size_bytes).sum::<usize>())
        }
    }

    unsafe fn compact(source: *mut Self, dest: *mut Self, new_dynamic_part: *mut u8) {
        let () = Self::ALIGN_OK;
        // Read the whole header first: `source` and `dest` may be equal.
        // SAFETY: the caller guarantees `source` points to a valid CVec.
        let (ptr, len, cap) = unsafe { ((*source).ptr, (*source).len as usize, (*source).cap) };
        let new_elems = new_dynamic_part.cast::<T>();
        // SAFETY: the caller reserved `dynamic_size_bytes()` bytes at
        // `new_dynamic_part`, disjoint from the old elements: first room for
        // `len` elements, then each element's dynamic part in order.
        unsafe {
            if T::IS_STATIC && T::PADDING_FREE {
                std::ptr::copy_nonoverlapping(ptr.as_ptr(), new_elems, len);
            } else {
                // Elements may nest further containers (see `deep`).
                crate::deep::guard(|| {
                    let mut offset = round_up_to_dynamic_align(len * size_of::<T>());
                    for i in 0..len {
                        let old = ptr.as_ptr().add(i);
                        // The last element's size is not needed: skipping it
                        // keeps compacting a deep chain linear.
                        let size = if i + 1 < len {
                            (*old).dynamic_size_bytes()
                        } else {
                            0
                        };
                        T::compact(old, new_elems.add(i), new_dynamic_part.add(offset));
                        offset += size;
                    }
                });
            }
            if cap != COMPACT {
                dealloc_array(ptr, cap as usize);
            }
            dest.write(CVec {
                ptr: NonNull::new(new_elems).unwrap_or(NonNull::dangling()),
                len: len as u32,
                cap: COMPACT,
                _owns: PhantomData,
            });
        }
    }

    unsafe fn decompact(source: *const Self) -> Self {
        // SAFETY: the caller guarantees a valid CVec that is not used afterwards.
        let source = unsafe { &*source };
        if source.cap != COMPACT {
            // SAFETY: a heap CVec moves out bitwise; the caller forgets `source`.
            let mut heap = unsafe { std::ptr::read(source) };
            if !T::IS_STATIC {
                // Its elements may still be compact: move each onto the heap
                // too (on a guarded stack, see `deep`).
                crate::deep::guard(|| {
                    for item in heap.iter_mut() {
                        let item: *mut T = item;
                        // SAFETY: each element is read once and overwritten
                        // with its decompacted self, so nothing is dropped twice.
                        unsafe { item.write(T::decompact(item)) };
                    }
                });
            }
            return heap;
        }
        let mut heap = CVec::<T>::with_capacity(source.len());
        let mut move_out = || {
            for item in source.iter() {
                // SAFETY: each element is moved out exactly once (the source
                // is forgotten).
                heap.push(unsafe { T::decompact(item) });
            }
        };
        if T::IS_STATIC {
            move_out();
        } else {
            crate::deep::guard(move_out);
        }
        heap
    }

    unsafe fn validate(
        ptr: *mut Self,
        validator: &mut Validator<'_>,
    ) -> Result<(), ValidationError> {
        let () = Self::ALIGN_OK;
        let type_name = std::any::type_name::<Self>();
        // SAFETY: the caller guarantees `ptr` is aligned and readable; the
        // fields are read one by one as plain integers, never as a `CVec`.
        let (stored, len, cap) = unsafe {
            (
                (&raw const (*ptr).ptr).cast::<usize>().read(),
                (&raw const (*ptr).len).read() as usize,
                (&raw const (*ptr).cap).read(),
            )
        };
        if cap != COMPACT {
            return Err(ValidationError::NotCompact {
                type_name,
                marker: cap,
            });
        }
        let size = len
            .checked_mul(size_of::<T>())
            .filter(|_| len <= MAX_LEN)
            .ok_or(ValidationError::LengthOverflow { type_name, len })?;
        let elems = if size_of::<T>() == 0 {
            // Nothing to claim: bound the element count by the input instead.
            validator.charge_zero_sized(type_name, len)?;
            std::ptr::without_provenance_mut::<u8>(align_of::<T>())
        } else {
            validator.claim(
                type_name,
                stored,
                round_up_to_dynamic_align(size),
                align_of::<T>(),
            )?
        };
        let elems = elems.cast::<T>();
        // SAFETY: `elems` is non-null and aligned (claim checked it); writing
        // the pointer field makes the header point at the claimed bytes.
        unsafe { (&raw mut (*ptr).ptr).write(NonNull::new_unchecked(elems)) };
        if T::IS_STATIC {
            for i in 0..len {
                // SAFETY: the claimed part holds `len` elements, disjoint from `ptr`.
                unsafe { T::validate(elems.add(i), validator)? };
            }
            return Ok(());
        }
        // Elements with dynamic parts of their own: one level deeper.
        validator.enter(type_name)?;
        crate::deep::guard(|| {
            for i in 0..len {
                // SAFETY: the claimed part holds `len` elements, disjoint from `ptr`.
                unsafe { T::validate(elems.add(i), validator)? };
            }
            Ok::<(), ValidationError>(())
        })?;
        validator.leave();
        Ok(())
    }
}
