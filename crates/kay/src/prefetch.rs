//! Cache prefetch hints (no-ops where the platform has none).

/// Hints that `*ptr` will be read or written soon. Never faults.
#[inline(always)]
pub(crate) fn read<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: prefetching is a hint: it never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(ptr.cast::<i8>()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}
