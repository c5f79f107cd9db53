//! [`Pod`]: plain data that can live in chunk memory as raw bytes.

/// Plain old data: a `Copy` type for which every bit pattern is a valid
/// value, with no padding and no pointers, so it can be read back from raw
/// (possibly persisted) chunk memory.
///
/// Persisted values are stored in the byte order of the host;
/// [`Value`](crate::Value) records it and refuses files from a host of the
/// other byte order.
///
/// # Safety
///
/// Implementors must have no padding bytes, no invalid bit patterns (so no
/// `bool`, `char`, enums or references) and no pointers, and an alignment of
/// at most [`CHUNK_ALIGN`](crate::storage::CHUNK_ALIGN).
pub unsafe trait Pod: Copy + Send + Sync + 'static {}

macro_rules! impl_pod {
    ($($t:ty),* $(,)?) => {
        $(
            // SAFETY: a primitive number: no padding, every bit pattern valid.
            unsafe impl Pod for $t {}
        )*
    };
}

impl_pod!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64
);

// SAFETY: an array of Pod has no padding between elements (size is a
// multiple of alignment) and is valid for every bit pattern if T is.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_pod<T: Pod>() {}

    #[test]
    fn primitives_and_arrays_are_pod() {
        is_pod::<u8>();
        is_pod::<f64>();
        is_pod::<[u32; 4]>();
        is_pod::<[[i16; 2]; 3]>();
    }
}
