//! `CBox<T>`: one value behind a pointer, on the heap or in compact form.

use std::fmt;
use std::ops::{Deref, DerefMut};

use crate::cvec::CVec;
use crate::traits::Compact;
use crate::validate::{ValidationError, Validator};

/// One `T` behind a pointer, like `Box<T>`, that can live in compact form.
/// Useful for large or recursive data that should not sit in the static part.
///
/// ```
/// use compact::CBox;
/// let mut b = CBox::new([1u64; 4]);
/// b[0] = 7;
/// assert_eq!(b[0] + b[1], 8);
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CBox<T>(CVec<T>);

impl<T> CBox<T> {
    /// Puts `value` behind a pointer on the heap.
    pub fn new(value: T) -> Self {
        let mut v = CVec::with_capacity(1);
        v.push(value);
        CBox(v)
    }

    /// Takes the value out.
    pub fn into_inner(self) -> T
    where
        T: Compact,
    {
        self.0
            .into_iter()
            .next()
            .expect("a CBox always holds one value")
    }
}

impl<T> Deref for CBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0[0]
    }
}

impl<T> DerefMut for CBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0[0]
    }
}

impl<T: fmt::Debug> fmt::Debug for CBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: Default> Default for CBox<T> {
    fn default() -> Self {
        CBox::new(T::default())
    }
}

// SAFETY: exactly the layout of the inner one-element `CVec<T>`; `validate`
// also checks that it holds exactly one element, which `Deref` relies on.
unsafe impl<T: Compact> Compact for CBox<T> {
    const PADDING_FREE: bool = true;

    fn is_still_compact(&self) -> bool {
        self.0.is_still_compact()
    }

    fn dynamic_size_bytes(&self) -> usize {
        self.0.dynamic_size_bytes()
    }

    unsafe fn compact(source: *mut Self, dest: *mut Self, new_dynamic_part: *mut u8) {
        // SAFETY: forwarded with the caller's guarantees (`CBox` is a newtype).
        unsafe { CVec::compact(&raw mut (*source).0, &raw mut (*dest).0, new_dynamic_part) }
    }

    unsafe fn decompact(source: *const Self) -> Self {
        // SAFETY: forwarded with the caller's guarantees.
        CBox(unsafe { CVec::decompact(&raw const (*source).0) })
    }

    unsafe fn validate(
        ptr: *mut Self,
        validator: &mut Validator<'_>,
    ) -> Result<(), ValidationError> {
        // SAFETY: the caller guarantees an aligned, readable header.
        let len = unsafe { CVec::stored_len(&raw const (*ptr).0) };
        if len != 1 {
            return Err(ValidationError::InvalidValue {
                type_name: std::any::type_name::<Self>(),
                reason: "a CBox must hold exactly one value",
            });
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { CVec::validate(&raw mut (*ptr).0, validator) }
    }
}
