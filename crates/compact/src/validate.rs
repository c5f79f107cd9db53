//! Validation of untrusted bytes claimed to hold a compact value.
//!
//! Bytes that come from outside this process (a socket, a snapshot file) hold
//! a compact value whose pointers were written at another address, the
//! *origin*. [`validate_in_place`] checks every length, discriminant, `bool`,
//! `char` and UTF-8 string, checks that every dynamic part lies inside the
//! bytes, behind the static part, 8-aligned and disjoint from every other
//! dynamic part, and rewrites each pointer for the bytes' current address.
//! Any byte input gives either a usable value or a [`ValidationError`]: never
//! a panic, never undefined behaviour.
//!
//! # Untrusted input cannot hurt
//! Bytes from outside may be crafted by an adversary, so validation bounds
//! what they can make this process do:
//! - **Linear time.** Parts in the canonical order (as compaction writes
//!   them, back to back) are checked for overlaps with one comparison each;
//!   parts elsewhere (a value that was shrunk or rearranged in place, then
//!   copied) are checked against a bitmap of the bytes claimed so far, one
//!   bit per 8 bytes, so each byte is looked at a bounded number of times. A
//!   [`CHashMap`](crate::CHashMap)'s index is rebuilt with a bounded number
//!   of probes (keys crafted to collide are refused, see its docs). The work
//!   and the extra memory are at most proportional to the number of bytes.
//! - **Bounded depth.** Containers nested in containers (recursive types
//!   such as `enum Tree { Leaf, Node(CVec<Tree>) }`) are followed at most
//!   [`Limits::max_depth`] levels deep ([`DEFAULT_MAX_DEPTH`] unless the
//!   caller sets another limit); deeper input gives
//!   [`ValidationError::TooDeep`] instead of exhausting the stack.
//! - **No amplification.** Elements of a zero-sized type take no bytes, so
//!   a 16-byte `CVec<()>` header could claim four billion of them. A value
//!   may hold at most [`Limits::zero_sized_per_byte`] such elements per byte
//!   of the input, in all its containers together (64 by default), so code
//!   that walks a validated value does work in proportion to its size.
//!   Elements of other types take bytes, which bounds them already.
//!
//! The origin travels with the bytes: [`crate::Compacted::origin`] tells it
//! for a value compacted in this process, and an origin of 0 means every
//! pointer is an offset from the start of the value.

use std::marker::PhantomData;

use crate::traits::{Compact, DYNAMIC_ALIGN, compact_align, static_size_bytes};

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
    /// A dynamic part overlaps another one.
    #[error(
        "a dynamic part of {type_name} ({size} bytes at offset {offset:#x}) overlaps another part"
    )]
    Overlap {
        /// The container whose part overlaps.
        type_name: &'static str,
        /// The claimed offset.
        offset: usize,
        /// The claimed size.
        size: usize,
    },
    /// Containers are nested deeper than the validation limit.
    #[error(
        "{type_name} is nested more than {max_depth} containers deep; raise Limits::max_depth if such values are expected"
    )]
    TooDeep {
        /// The container at which the limit was exceeded.
        type_name: &'static str,
        /// The limit.
        max_depth: u32,
    },
    /// Containers claim more zero-sized elements than the input's size allows.
    #[error(
        "{type_name} claims {len} zero-sized elements, more than the {budget} that the input's size still allows (see Limits::zero_sized_per_byte)"
    )]
    TooManyElements {
        /// The container.
        type_name: &'static str,
        /// The claimed length.
        len: usize,
        /// Elements that were still allowed.
        budget: usize,
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

/// The mask of bits `lo..hi` (within one word, `lo < hi <= 64`).
fn word_mask(lo: usize, hi: usize) -> u64 {
    let upper = if hi == 64 { u64::MAX } else { (1u64 << hi) - 1 };
    upper & !((1u64 << lo) - 1)
}

/// Calls `f(word, mask)` for the words covering bits `lo..hi`.
fn for_words(lo: usize, hi: usize, mut f: impl FnMut(usize, u64) -> bool) -> bool {
    let mut at = lo;
    while at < hi {
        let word = at / 64;
        let end = hi.min((word + 1) * 64);
        if f(word, word_mask(at % 64, end - word * 64)) {
            return true;
        }
        at = end;
    }
    false
}

/// Whether any of bits `lo..hi` is set.
fn any_in_range(bits: &[u64], lo: usize, hi: usize) -> bool {
    for_words(lo, hi, |word, mask| bits[word] & mask != 0)
}

/// Sets bits `lo..hi`.
fn set_range(bits: &mut [u64], lo: usize, hi: usize) {
    for_words(lo, hi, |word, mask| {
        bits[word] |= mask;
        false
    });
}

/// The default for [`Limits::max_depth`]: deep enough for any value that is
/// not a deliberately deep recursive structure (`serde_json` uses the same).
pub const DEFAULT_MAX_DEPTH: u32 = 128;

/// Bounds that validation enforces on untrusted input (see [the module
/// docs](self#untrusted-input-cannot-hurt)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How many containers with dynamic elements may be nested in each
    /// other (a `CVec<CVec<u8>>` is 1 deep: the inner `CVec<u8>` holds only
    /// plain bytes). Default: [`DEFAULT_MAX_DEPTH`].
    pub max_depth: u32,
    /// How many elements of zero-sized types a value may hold, in all its
    /// containers together, per byte of input. Default: 64.
    pub zero_sized_per_byte: usize,
    /// Whether process-local parts ([`Compact::PROCESS_LOCAL`] types, such
    /// as kay's `External`) are reset to their empty state instead of
    /// refused: for state saved by this program and loaded again (a
    /// snapshot), where such a part meant something only in the process
    /// that wrote it. Default: `false` (refused).
    pub reset_process_local: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: DEFAULT_MAX_DEPTH,
            zero_sized_per_byte: 64,
            reset_process_local: false,
        }
    }
}

/// Hands out the dynamic parts of a value being validated, checking bounds,
/// alignment and the canonical order, and enforces the [`Limits`].
///
/// Implementations of [`Compact::validate`] call [`claim`](Self::claim) for
/// each dynamic part in the order `compact` writes them, and bracket the
/// validation of a container's dynamic elements with
/// [`enter`](Self::enter) and [`leave`](Self::leave).
pub struct Validator<'a> {
    base: *mut u8,
    len: usize,
    origin: usize,
    static_end: usize,
    /// The end of the parts claimed so far, while they all lie back to back
    /// in the canonical order from the static part's end: a part starting
    /// right here overlaps none of them. Every overlap is refused at its
    /// claim, so what validation writes (rebased pointers, a rebuilt hash
    /// index) can never change bytes that were already checked.
    next: usize,
    /// Once a part is claimed elsewhere: one bit per 8 bytes claimed.
    claimed: Option<Vec<u64>>,
    depth: u32,
    max_depth: u32,
    /// Zero-sized elements still allowed (see [`Limits::zero_sized_per_byte`]).
    zero_sized_budget: usize,
    /// See [`Limits::reset_process_local`].
    reset_process_local: bool,
    _bytes: PhantomData<&'a mut [u8]>,
}

impl<'a> Validator<'a> {
    fn new(bytes: &'a mut [u8], origin: usize, static_end: usize, limits: &Limits) -> Self {
        Validator {
            base: bytes.as_mut_ptr(),
            len: bytes.len(),
            origin,
            static_end,
            next: static_end,
            claimed: None,
            depth: 0,
            max_depth: limits.max_depth,
            zero_sized_budget: bytes.len().saturating_mul(limits.zero_sized_per_byte),
            reset_process_local: limits.reset_process_local,
            _bytes: PhantomData,
        }
    }

    /// Whether process-local parts are to be reset to empty rather than
    /// refused (see [`Limits::reset_process_local`]).
    pub fn resets_process_local(&self) -> bool {
        self.reset_process_local
    }

    /// Claims the dynamic part of `size` bytes that the untrusted pointer value
    /// `stored` (written at the origin address) points to, and returns where it
    /// lies now. A part of size 0 claims nothing and gets a dangling, aligned
    /// pointer. Parts start 8-aligned and must not overlap; claiming them in
    /// the order [`Compact::compact`] lays them out is the fast path.
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
        let required = align.max(DYNAMIC_ALIGN);
        if !offset.is_multiple_of(required) {
            return Err(ValidationError::MisalignedPart {
                type_name,
                offset,
                required,
            });
        }
        if self.claimed.is_none() && offset == self.next {
            self.next = end;
        } else if !self.mark(offset, end) {
            return Err(ValidationError::Overlap {
                type_name,
                offset,
                size,
            });
        }
        // SAFETY: `offset + size <= len`, so the result stays inside the buffer.
        Ok(unsafe { self.base.add(offset) })
    }

    /// Marks bytes `start..end` (`start` 8-aligned) as claimed in the bitmap,
    /// creating it from the canonical prefix on first use; returns `false`
    /// (marking nothing) if any of them was claimed already. Linear in the
    /// part's size, so all claims together stay linear in the input.
    fn mark(&mut self, start: usize, end: usize) -> bool {
        let (prefix_start, prefix_end) = (self.static_end / 8, self.next.div_ceil(8));
        let bits = self.claimed.get_or_insert_with(|| {
            let mut bits = vec![0u64; self.len.div_ceil(8).div_ceil(64)];
            set_range(&mut bits, prefix_start, prefix_end);
            bits
        });
        let (lo, hi) = (start / 8, end.div_ceil(8));
        if any_in_range(bits, lo, hi) {
            return false;
        }
        set_range(bits, lo, hi);
        true
    }

    /// Enters the dynamic elements of container `type_name`: one level
    /// deeper, refused beyond [`Limits::max_depth`]. Pair with
    /// [`leave`](Self::leave).
    pub fn enter(&mut self, type_name: &'static str) -> Result<(), ValidationError> {
        if self.depth >= self.max_depth {
            return Err(ValidationError::TooDeep {
                type_name,
                max_depth: self.max_depth,
            });
        }
        self.depth += 1;
        Ok(())
    }

    /// Leaves the level entered by the last [`enter`](Self::enter).
    pub fn leave(&mut self) {
        debug_assert!(self.depth > 0, "leave without enter");
        self.depth = self.depth.saturating_sub(1);
    }

    /// Accounts for `len` elements of a zero-sized type in container
    /// `type_name`, refused beyond [`Limits::zero_sized_per_byte`] per
    /// byte of input.
    pub fn charge_zero_sized(
        &mut self,
        type_name: &'static str,
        len: usize,
    ) -> Result<(), ValidationError> {
        if len > self.zero_sized_budget {
            return Err(ValidationError::TooManyElements {
                type_name,
                len,
                budget: self.zero_sized_budget,
            });
        }
        self.zero_sized_budget -= len;
        Ok(())
    }
}

/// Checks that `bytes`, written at address `origin` (0 if pointers are offsets),
/// hold a valid compact `T`, rewrites its pointers for the bytes' current
/// address and returns it, with the default [`Limits`]. Bytes behind the
/// value's parts are ignored.
///
/// On error the bytes may have been partly rewritten and must be discarded.
pub fn validate_in_place<T: Compact>(
    bytes: &mut [u8],
    origin: usize,
) -> Result<&mut T, ValidationError> {
    validate_in_place_with::<T>(bytes, origin, &Limits::default())
}

/// [`validate_in_place`] with explicit [`Limits`].
pub fn validate_in_place_with<'b, T: Compact>(
    bytes: &'b mut [u8],
    origin: usize,
    limits: &Limits,
) -> Result<&'b mut T, ValidationError> {
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
    let mut validator = Validator::new(bytes, origin, needed, limits);
    let ptr = validator.base.cast::<T>();
    // SAFETY: `ptr` is aligned (checked above) and the buffer holds at least
    // `size_of::<T>()` initialized bytes; the validator's parts start behind them.
    unsafe { T::validate(ptr, &mut validator)? };
    // SAFETY: `T::validate` returned `Ok`, so the bytes hold a valid `T` whose
    // dynamic parts are disjoint and lie inside `bytes`, which we borrow mutably.
    Ok(unsafe { &mut *ptr })
}
