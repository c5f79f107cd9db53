//! Validation of untrusted bytes claimed to hold a compact value.
//!
//! Bytes that come from outside this process (a socket, a snapshot file) hold
//! a compact value whose pointers were written at another address, the
//! *origin*. [`validate_in_place`] checks every length, discriminant, `bool`,
//! `char` and UTF-8 string, checks that every dynamic part lies inside the
//! bytes, behind the static part, aligned and disjoint from every other
//! dynamic part, and rewrites each pointer for the bytes' current address.
//! Any byte input gives either a usable value or a [`ValidationError`]: never
//! a panic, never undefined behaviour.
//!
//! The origin travels with the bytes: [`crate::Compacted::origin`] tells it
//! for a value compacted in this process, and an origin of 0 means every
//! pointer is an offset from the start of the value.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use crate::traits::{Compact, compact_align, static_size_bytes};

/// Why a byte range does not hold a valid compact value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The buffer does not start at an address aligned for the value.
    #[error(
        "buffer at {address:#x} is not aligned to {required} bytes; copy it into an aligned buffer (e.g. with Compacted::from_bytes)"
    )]
    Misaligned {
        /// The address of the buffer.
        address: usize,
        /// The alignment the value needs.
        required: usize,
    },
    /// The buffer is shorter than the static part of the value.
    #[error(
        "{type_name} needs {needed} bytes for its static part, but only {available} were given"
    )]
    TooShort {
        /// The type being validated.
        type_name: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// A dynamic part lies (partly) outside the bytes or inside the static part.
    #[error(
        "a dynamic part of {type_name} ({size} bytes at offset {offset:#x}) lies outside the {available} bytes behind the static part (which ends at {static_end})"
    )]
    OutOfBounds {
        /// The container whose dynamic part is out of bounds.
        type_name: &'static str,
        /// The claimed offset (pointer minus origin).
        offset: usize,
        /// The claimed size.
        size: usize,
        /// The total number of bytes.
        available: usize,
        /// Where the static part ends.
        static_end: usize,
    },
    /// A dynamic part is not aligned for its elements.
    #[error(
        "a dynamic part of {type_name} at offset {offset:#x} is not aligned to {required} bytes"
    )]
    MisalignedPart {
        /// The container.
        type_name: &'static str,
        /// The claimed offset.
        offset: usize,
        /// The alignment needed.
        required: usize,
    },
    /// Two dynamic parts overlap.
    #[error("two dynamic parts overlap (at offset {first:#x} and {second:#x})")]
    Overlap {
        /// Offset of the first part.
        first: usize,
        /// Offset of the second part.
        second: usize,
    },
    /// A container is not in compact form (it claims to own heap memory).
    #[error(
        "{type_name} is not in compact form (capacity marker {marker:#x}); only compacted values can be validated"
    )]
    NotCompact {
        /// The container.
        type_name: &'static str,
        /// The marker found.
        marker: u32,
    },
    /// A length times the element size overflows.
    #[error("{type_name} claims {len} elements, which overflows the address space")]
    LengthOverflow {
        /// The container.
        type_name: &'static str,
        /// The claimed length.
        len: usize,
    },
    /// A `bool` byte is neither 0 nor 1.
    #[error("invalid bool byte {0:#x}")]
    InvalidBool(u8),
    /// A `char` is not a Unicode scalar value.
    #[error("invalid char {0:#x}")]
    InvalidChar(u32),
    /// An enum discriminant names no variant.
    #[error("invalid discriminant {value} for enum {type_name}")]
    InvalidDiscriminant {
        /// The enum.
        type_name: &'static str,
        /// The discriminant found.
        value: i128,
    },
    /// A string is not UTF-8.
    #[error("string is not valid UTF-8: {0}")]
    InvalidUtf8(#[from] std::str::Utf8Error),
    /// A value breaks an invariant of its type.
    #[error("invalid {type_name}: {reason}")]
    InvalidValue {
        /// The type.
        type_name: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The type has no defined layout, so its bytes cannot be checked.
    #[error("{type_name} cannot be validated from untrusted bytes: {hint}")]
    Unsupported {
        /// The type.
        type_name: &'static str,
        /// What to use instead.
        hint: &'static str,
    },
}

/// Hands out the dynamic parts of a value being validated, checking bounds,
/// alignment and (at the end) that no two parts overlap.
pub struct Validator<'a> {
    base: *mut u8,
    len: usize,
    origin: usize,
    static_end: usize,
    /// The parts claimed so far, `start -> end`, pairwise disjoint: every
    /// claim is checked against them at once, so that what validation writes
    /// (rebased pointers, a rebuilt hash index) can never change bytes that
    /// were already checked.
    parts: BTreeMap<usize, usize>,
    _bytes: PhantomData<&'a mut [u8]>,
}

impl<'a> Validator<'a> {
    fn new(bytes: &'a mut [u8], origin: usize, static_end: usize) -> Self {
        Validator {
            base: bytes.as_mut_ptr(),
            len: bytes.len(),
            origin,
            static_end,
            parts: BTreeMap::new(),
            _bytes: PhantomData,
        }
    }

    /// Claims the dynamic part of `size` bytes that the untrusted pointer value
    /// `stored` (written at the origin address) points to, and returns where it
    /// lies now. A part of size 0 claims nothing and gets a dangling, aligned pointer.
    pub fn claim(
        &mut self,
        type_name: &'static str,
        stored: usize,
        size: usize,
        align: usize,
    ) -> Result<*mut u8, ValidationError> {
        if size == 0 {
            return Ok(std::ptr::without_provenance_mut(align));
        }
        let offset = stored.wrapping_sub(self.origin);
        let out_of_bounds = ValidationError::OutOfBounds {
            type_name,
            offset,
            size,
            available: self.len,
            static_end: self.static_end,
        };
        let end = offset.checked_add(size).ok_or(out_of_bounds.clone())?;
        if offset < self.static_end || end > self.len {
            return Err(out_of_bounds);
        }
        if !offset.is_multiple_of(align) {
            return Err(ValidationError::MisalignedPart {
                type_name,
                offset,
                required: align,
            });
        }
        if let Some((&before, &before_end)) = self.parts.range(..end).next_back()
            && before_end > offset
        {
            return Err(ValidationError::Overlap {
                first: before,
                second: offset,
            });
        }
        self.parts.insert(offset, end);
        // SAFETY: `offset + size <= len`, so the result stays inside the buffer.
        Ok(unsafe { self.base.add(offset) })
    }
}

/// Checks that `bytes`, written at address `origin` (0 if pointers are offsets),
/// hold a valid compact `T`, rewrites its pointers for the bytes' current
/// address and returns it. Bytes behind the value's parts are ignored.
///
/// On error the bytes may have been partly rewritten and must be discarded.
pub fn validate_in_place<T: Compact>(
    bytes: &mut [u8],
    origin: usize,
) -> Result<&mut T, ValidationError> {
    let address = bytes.as_ptr() as usize;
    let required = compact_align::<T>();
    if !address.is_multiple_of(required) {
        return Err(ValidationError::Misaligned { address, required });
    }
    let needed = static_size_bytes::<T>();
    if bytes.len() < needed {
        return Err(ValidationError::TooShort {
            type_name: std::any::type_name::<T>(),
            needed,
            available: bytes.len(),
        });
    }
    let mut validator = Validator::new(bytes, origin, needed);
    let ptr = validator.base.cast::<T>();
    // SAFETY: `ptr` is aligned (checked above) and the buffer holds at least
    // `size_of::<T>()` initialized bytes; the validator's parts start behind them.
    unsafe { T::validate(ptr, &mut validator)? };
    // SAFETY: `T::validate` returned `Ok`, so the bytes hold a valid `T` whose
    // dynamic parts are disjoint and lie inside `bytes`, which we borrow mutably.
    Ok(unsafe { &mut *ptr })
}
