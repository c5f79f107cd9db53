//! `Compact` for primitives, arrays, tuples and `Option`.
//!
//! Primitives have no dynamic part: compacting is a copy, and validation only
//! has to reject bit patterns that are not values (`bool`, `char`).

use std::marker::PhantomData;

use crate::traits::Compact;
use crate::validate::{ValidationError, Validator};

macro_rules! static_compact {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: these types have no dynamic part and every bit pattern of
        // their size is a valid value, so `validate` has nothing to check.
        unsafe impl Compact for $t {
            const IS_STATIC: bool = true;
            const PADDING_FREE: bool = true;
            #[inline(always)]
            fn is_still_compact(&self) -> bool { true }
            #[inline(always)]
            fn dynamic_size_bytes(&self) -> usize { 0 }
            #[inline(always)]
            unsafe fn compact(source: *mut Self, dest: *mut Self, _: *mut u8) {
                // SAFETY: the caller guarantees both pointers are valid and
                // either equal or non-overlapping; `copy` allows equality.
                unsafe { std::ptr::copy(source, dest, 1) }
            }
            #[inline(always)]
            unsafe fn decompact(source: *const Self) -> Self {
                // SAFETY: the caller guarantees `source` points to a valid value.
                unsafe { std::ptr::read(source) }
            }
            #[inline(always)]
            unsafe fn validate(_: *mut Self, _: &mut Validator<'_>) -> Result<(), ValidationError> {
                Ok(())
            }
        }
    )*};
}

static_compact!(
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    ()
);

macro_rules! checked_static_compact {
    ($t:ty, $raw:ty, |$v:ident| $check:expr) => {
        // SAFETY: no dynamic part; `validate` rejects every bit pattern that
        // is not a valid value of the type before anyone reads it as one.
        unsafe impl Compact for $t {
            const IS_STATIC: bool = true;
            const PADDING_FREE: bool = true;
            #[inline(always)]
            fn is_still_compact(&self) -> bool {
                true
            }
            #[inline(always)]
            fn dynamic_size_bytes(&self) -> usize {
                0
            }
            #[inline(always)]
            unsafe fn compact(source: *mut Self, dest: *mut Self, _: *mut u8) {
                // SAFETY: see the primitive impls above.
                unsafe { std::ptr::copy(source, dest, 1) }
            }
            #[inline(always)]
            unsafe fn decompact(source: *const Self) -> Self {
                // SAFETY: the caller guarantees `source` points to a valid value.
                unsafe { std::ptr::read(source) }
            }
            #[inline]
            unsafe fn validate(
                ptr: *mut Self,
                _: &mut Validator<'_>,
            ) -> Result<(), ValidationError> {
                // SAFETY: the caller guarantees `ptr` is aligned and readable for
                // `size_of::<Self>()` initialized bytes, the size of `$raw`.
                let $v: $raw = unsafe { ptr.cast::<$raw>().read() };
                $check
            }
        }
    };
}

checked_static_compact!(bool, u8, |b| if b <= 1 {
    Ok(())
} else {
    Err(ValidationError::InvalidBool(b))
});
checked_static_compact!(char, u32, |c| if char::from_u32(c).is_some() {
    Ok(())
} else {
    Err(ValidationError::InvalidChar(c))
});

// SAFETY: a zero-sized marker: nothing to copy, nothing to check.
unsafe impl<T: 'static> Compact for PhantomData<T> {
    const IS_STATIC: bool = true;
    const PADDING_FREE: bool = true;
    fn is_still_compact(&self) -> bool {
        true
    }
    fn dynamic_size_bytes(&self) -> usize {
        0
    }
    unsafe fn compact(_: *mut Self, _: *mut Self, _: *mut u8) {}
    unsafe fn decompact(_: *const Self) -> Self {
        PhantomData
    }
    unsafe fn validate(_: *mut Self, _: &mut Validator<'_>) -> Result<(), ValidationError> {
        Ok(())
    }
}

// SAFETY: elements are laid out in order, each element's dynamic part behind
// the previous one's, exactly as `compact`, `dynamic_size_bytes` and
// `validate` walk them.
unsafe impl<T: Compact, const N: usize> Compact for [T; N] {
    const IS_STATIC: bool = T::IS_STATIC;
    const PROCESS_LOCAL: bool = T::PROCESS_LOCAL;
    const PADDING_FREE: bool = T::PADDING_FREE;

    fn is_still_compact(&self) -> bool {
        T::IS_STATIC || self.iter().all(T::is_still_compact)
    }

    fn dynamic_size_bytes(&self) -> usize {
        if T::IS_STATIC {
            0
        } else {
            self.iter().map(T::dynamic_size_bytes).sum()
        }
    }

    unsafe fn compact(source: *mut Self, dest: *mut Self, new_dynamic_part: *mut u8) {
        let source = source.cast::<T>();
        let dest = dest.cast::<T>();
        let mut offset = 0;
        for i in 0..N {
            // SAFETY: `i < N`, so both element pointers are inside the arrays;
            // the dynamic bytes for all elements were reserved by the caller.
            unsafe {
                let size = (*source.add(i)).dynamic_size_bytes();
                T::compact(source.add(i), dest.add(i), new_dynamic_part.add(offset));
                offset += size;
            }
        }
    }

    unsafe fn decompact(source: *const Self) -> Self {
        let source = source.cast::<T>();
        // SAFETY: `i < N` and the caller guarantees a valid array at `source`;
        // each element is moved out exactly once.
        std::array::from_fn(|i| unsafe { T::decompact(source.add(i)) })
    }

    unsafe fn validate(
        ptr: *mut Self,
        validator: &mut Validator<'_>,
    ) -> Result<(), ValidationError> {
        let ptr = ptr.cast::<T>();
        for i in 0..N {
            // SAFETY: `i < N`, inside the array the caller vouches for.
            unsafe { T::validate(ptr.add(i), validator)? };
        }
        Ok(())
    }
}

macro_rules! tuple_compact {
    ($($name:ident . $idx:tt),+) => {
        // SAFETY: fields are walked in index order by every method.
        unsafe impl<$($name: Compact),+> Compact for ($($name,)+) {
            const IS_STATIC: bool = $($name::IS_STATIC)&&+;
            const PROCESS_LOCAL: bool = $($name::PROCESS_LOCAL)||+;
            const PADDING_FREE: bool = $($name::PADDING_FREE)&&+
                && size_of::<Self>() == 0 $(+ size_of::<$name>())+;

            fn is_still_compact(&self) -> bool {
                $(self.$idx.is_still_compact())&&+
            }

            fn dynamic_size_bytes(&self) -> usize {
                0 $(+ self.$idx.dynamic_size_bytes())+
            }

            unsafe fn compact(source: *mut Self, dest: *mut Self, new_dynamic_part: *mut u8) {
                let mut _offset = 0;
                $(
                    // SAFETY: field pointers of valid tuples; the caller reserved
                    // the dynamic bytes of every field behind `new_dynamic_part`.
                    unsafe {
                        let size = (*source).$idx.dynamic_size_bytes();
                        $name::compact(
                            &raw mut (*source).$idx,
                            &raw mut (*dest).$idx,
                            new_dynamic_part.add(_offset),
                        );
                        _offset += size;
                    }
                )+
            }

            unsafe fn decompact(source: *const Self) -> Self {
                // SAFETY: the caller guarantees a valid tuple; each field is moved once.
                unsafe { ($($name::decompact(&raw const (*source).$idx),)+) }
            }

            unsafe fn validate(ptr: *mut Self, validator: &mut Validator<'_>) -> Result<(), ValidationError> {
                // SAFETY: field pointers inside the tuple the caller vouches for.
                unsafe { $($name::validate(&raw mut (*ptr).$idx, validator)?;)+ }
                Ok(())
            }
        }
    };
}

tuple_compact!(A.0);
tuple_compact!(A.0, B.1);
tuple_compact!(A.0, B.1, C.2);
tuple_compact!(A.0, B.1, C.2, D.3);
tuple_compact!(A.0, B.1, C.2, D.3, E.4);
tuple_compact!(A.0, B.1, C.2, D.3, E.4, F.5);
tuple_compact!(A.0, B.1, C.2, D.3, E.4, F.5, G.6);
tuple_compact!(A.0, B.1, C.2, D.3, E.4, F.5, G.6, H.7);

// SAFETY: only the `Some` payload has a dynamic part, walked by every method.
// `Option`'s layout is not defined, so `validate` refuses it (see `COption`).
unsafe impl<T: Compact> Compact for Option<T> {
    const IS_STATIC: bool = T::IS_STATIC;
    const PROCESS_LOCAL: bool = T::PROCESS_LOCAL;

    fn is_still_compact(&self) -> bool {
        self.as_ref().is_none_or(T::is_still_compact)
    }

    fn dynamic_size_bytes(&self) -> usize {
        self.as_ref().map_or(0, T::dynamic_size_bytes)
    }

    unsafe fn compact(source: *mut Self, dest: *mut Self, new_dynamic_part: *mut u8) {
        // SAFETY: the caller guarantees valid, equal-or-disjoint pointers; after
        // the bitwise move the payload is compacted in place at `dest`.
        unsafe {
            if source != dest {
                std::ptr::copy_nonoverlapping(source, dest, 1);
            }
            if let Some(inner) = &mut *dest {
                let inner: *mut T = inner;
                T::compact(inner, inner, new_dynamic_part);
            }
        }
    }

    unsafe fn decompact(source: *const Self) -> Self {
        // SAFETY: the caller guarantees a valid option; the payload moves once.
        unsafe { (*source).as_ref().map(|inner| T::decompact(inner)) }
    }

    unsafe fn validate(_: *mut Self, _: &mut Validator<'_>) -> Result<(), ValidationError> {
        Err(ValidationError::Unsupported {
            type_name: std::any::type_name::<Self>(),
            hint: "Option's memory layout is not defined; use compact::COption<T> in values that cross machines or files",
        })
    }
}
