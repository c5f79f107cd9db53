//! The only place in this crate that talks to the allocator.

use std::alloc::{Layout, alloc, alloc_zeroed, dealloc, handle_alloc_error};
use std::ptr::NonNull;

/// Allocates room for `cap` values of `T` (no allocation for `cap == 0` or ZSTs).
pub(crate) fn alloc_array<T>(cap: usize) -> NonNull<T> {
    if cap == 0 || size_of::<T>() == 0 {
        return NonNull::dangling();
    }
    let layout = Layout::array::<T>(cap).expect("CVec capacity overflows the address space");
    // SAFETY: `layout` has a non-zero size (cap > 0 and T is not zero-sized).
    let ptr = unsafe { alloc(layout) };
    match NonNull::new(ptr) {
        Some(ptr) => ptr.cast(),
        None => handle_alloc_error(layout),
    }
}

/// Frees an array allocated by [`alloc_array`] with the same `cap`.
///
/// # Safety
///
/// `ptr` came from `alloc_array::<T>(cap)` and was not freed yet.
pub(crate) unsafe fn dealloc_array<T>(ptr: NonNull<T>, cap: usize) {
    if cap == 0 || size_of::<T>() == 0 {
        return;
    }
    let layout = Layout::array::<T>(cap).expect("layout was valid at allocation");
    // SAFETY: the caller guarantees `ptr` was allocated with this layout.
    unsafe { dealloc(ptr.as_ptr().cast(), layout) }
}

/// A zeroed, aligned byte buffer (at least 1 byte is allocated).
pub(crate) struct AlignedBuf {
    ptr: NonNull<u8>,
    layout: Layout,
    len: usize,
}

impl AlignedBuf {
    pub(crate) fn zeroed(len: usize, align: usize) -> AlignedBuf {
        let layout = Layout::from_size_align(len.max(1), align)
            .expect("compact value too large for the address space");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        match NonNull::new(ptr) {
            Some(ptr) => AlignedBuf { ptr, layout, len },
            None => handle_alloc_error(layout),
        }
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` bytes were allocated and zero-initialized.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with exactly this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

// SAFETY: the buffer is plain owned memory.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only reads.
unsafe impl Sync for AlignedBuf {}
