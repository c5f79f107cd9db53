//! `COption<T>`: an `Option` with a defined layout, so received bytes can be validated.

use crate::traits::Compact;
use crate::validate::{ValidationError, Validator};

/// An optional value with a defined memory layout (a `u8` tag, then the value).
///
/// `std::option::Option<T>` is `Compact` too, but its layout is not defined,
/// so only `COption` can be validated from untrusted bytes (network, files).
///
/// ```
/// use compact::COption;
/// let mut o: COption<u32> = None.into();
/// assert!(o.is_none());
/// o = COption::Some(3);
/// assert_eq!(o.as_option(), Some(&3));
/// ```
#[repr(C, u8)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum COption<T> {
    /// No value.
    #[default]
    None = 0,
    /// Some value.
    Some(T) = 1,
}

impl<T> COption<T> {
    /// Whether there is a value.
    pub fn is_some(&self) -> bool {
        matches!(self, COption::Some(_))
    }

    /// Whether there is no value.
    pub fn is_none(&self) -> bool {
        !self.is_some()
    }

    /// A `std` option of a reference to the value.
    pub fn as_option(&self) -> Option<&T> {
        match self {
            COption::Some(v) => Some(v),
            COption::None => None,
        }
    }

    /// A `std` option of a mutable reference to the value.
    pub fn as_option_mut(&mut self) -> Option<&mut T> {
        match self {
            COption::Some(v) => Some(v),
            COption::None => None,
        }
    }

    /// Converts into a `std` option.
    pub fn into_option(self) -> Option<T> {
        match self {
            COption::Some(v) => Some(v),
            COption::None => None,
        }
    }

    /// Takes the value out, leaving `None`.
    pub fn take(&mut self) -> Option<T> {
        std::mem::take(self).into_option()
    }

    /// Replaces the value, returning the old one.
    pub fn replace(&mut self, value: T) -> Option<T> {
        std::mem::replace(self, COption::Some(value)).into_option()
    }

    /// Returns the value.
    ///
    /// # Panics
    /// If there is none.
    #[track_caller]
    pub fn unwrap(self) -> T {
        self.into_option()
            .expect("called `COption::unwrap()` on a `None` value")
    }
}

impl<T> From<Option<T>> for COption<T> {
    fn from(o: Option<T>) -> Self {
        match o {
            Some(v) => COption::Some(v),
            None => COption::None,
        }
    }
}

impl<T> From<COption<T>> for Option<T> {
    fn from(o: COption<T>) -> Self {
        o.into_option()
    }
}

/// The layout of the `Some` variant, per the Rust reference for `repr(C, u8)`:
/// a `repr(C)` struct of the tag and a `repr(C)` union of the variants' fields.
#[repr(C)]
struct SomeLayout<T> {
    tag: u8,
    value: T,
}

// SAFETY: only the `Some` payload has a dynamic part; `validate` checks the
// tag and then the payload at the offset the defined layout gives it.
unsafe impl<T: Compact> Compact for COption<T> {
    const IS_STATIC: bool = T::IS_STATIC;
    const PROCESS_LOCAL: bool = T::PROCESS_LOCAL;

    fn is_still_compact(&self) -> bool {
        self.as_option().is_none_or(T::is_still_compact)
    }

    fn dynamic_size_bytes(&self) -> usize {
        self.as_option().map_or(0, T::dynamic_size_bytes)
    }

    unsafe fn compact(source: *mut Self, dest: *mut Self, new_dynamic_part: *mut u8) {
        // The tag, then the payload: the padding between them is never
        // written, so it stays initialised where `dest` was (see the
        // derive's field-by-field `compact`).
        // SAFETY: valid, equal-or-disjoint pointers (caller); the tag is the
        // first byte of a `repr(C, u8)` enum, and with tag 1 the payload sits
        // at the offset of `SomeLayout::value` in both.
        unsafe {
            let tag = source.cast::<u8>().read();
            dest.cast::<u8>().write(tag);
            if tag == 1 {
                let value = std::mem::offset_of!(SomeLayout<T>, value);
                T::compact(
                    source.cast::<u8>().add(value).cast::<T>(),
                    dest.cast::<u8>().add(value).cast::<T>(),
                    new_dynamic_part,
                );
            }
        }
    }

    unsafe fn decompact(source: *const Self) -> Self {
        // SAFETY: the caller guarantees a valid value.
        match unsafe { &*source } {
            // SAFETY: the payload of a valid value, moved out once.
            COption::Some(inner) => COption::Some(unsafe { T::decompact(inner) }),
            COption::None => COption::None,
        }
    }

    unsafe fn validate(
        ptr: *mut Self,
        validator: &mut Validator<'_>,
    ) -> Result<(), ValidationError> {
        // SAFETY: the caller guarantees an aligned, readable value; the tag is
        // the first byte of a `repr(C, u8)` enum.
        let tag = unsafe { ptr.cast::<u8>().read() };
        match tag {
            0 => Ok(()),
            1 => {
                let value = std::mem::offset_of!(SomeLayout<T>, value);
                // SAFETY: with tag 1 the payload sits at this offset inside the value.
                unsafe { T::validate(ptr.cast::<u8>().add(value).cast::<T>(), validator) }
            }
            _ => Err(ValidationError::InvalidDiscriminant {
                type_name: std::any::type_name::<Self>(),
                value: tag.into(),
            }),
        }
    }
}
