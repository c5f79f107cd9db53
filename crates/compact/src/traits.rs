//! The [`Compact`] trait: the contract every compactable type fulfils.

use crate::validate::{ValidationError, Validator};

/// A value with a static part and an optional dynamic part that can live in one
/// contiguous byte range (its *compact form*) or spread over the heap.
///
/// # Layout of the compact form
///
/// A compact value starts at an address aligned to `max(8, align_of::<Self>())`.
/// Its static part (the `Self` itself) comes first, padded to a multiple of 8
/// bytes ([`static_size_bytes`]); its dynamic part follows directly behind it.
/// Every container reserves its dynamic bytes in multiples of 8 and lays them
/// out in a fixed order: first its own buffer, then the dynamic parts of its
/// elements in element order; a struct lays out the dynamic parts of its
/// fields in declaration order. This *canonical layout* is fully determined by
/// the value, so [`Compact::validate`] can check and rebuild it from untrusted
/// bytes.
///
/// Inside one process a compact container points at its dynamic part with an
/// ordinary pointer and remembers that it does not own that memory. Bytes that
/// are moved to another address (sent over a socket, mapped from a file at a
/// different address) are made usable again by [`Compact::validate`], which
/// checks every length and discriminant and rewrites every pointer for the new
/// address; the stored pointer values themselves are never trusted.
///
/// A compact container that is moved out of the byte range that holds its
/// dynamic part (for example with `std::mem::take` on a field of a compact
/// value) still points into that range: it stays valid exactly as long as the
/// range is not reused. Owners of compact ranges (kay's instance stores and
/// inboxes) keep that memory alive for as long as a handler can see it; keep a
/// value that must outlive its owner by cloning it, which always gives a heap
/// value.
///
/// # Safety
///
/// Implementors promise:
/// - `dynamic_size_bytes` returns a multiple of 8 and is exactly the number of
///   bytes `compact` writes behind `new_dynamic_part`;
/// - `compact`, `decompact` and `validate` follow the canonical layout above and
///   agree with each other;
/// - `validate` returns `Ok` only if the bytes now hold a valid `Self` whose
///   dynamic parts lie inside the validator's range, and it never reads outside
///   the static part at `ptr` or the range the validator hands out;
/// - `IS_STATIC` is `true` only if values never have a dynamic part;
/// - `PROCESS_LOCAL` is `true` if any part of a value is process-local.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not `Compact`, so it cannot live in compact form",
    label = "not `Compact`",
    note = "use compact's containers (CVec, CString, CHashMap, COption, CBox) instead of std's, \
            or #[derive(Compact)] on your own types"
)]
pub unsafe trait Compact: Sized {
    /// `true` if no value of this type ever has a dynamic part: then
    /// `dynamic_size_bytes` is always 0 and `is_still_compact` always `true`.
    const IS_STATIC: bool = false;

    /// `true` if values hold, directly, something that only means anything
    /// inside this process and has exactly one owner (kay's `External`):
    /// such values must never be copied as bytes (sent as messages,
    /// broadcast, persisted). Tuples, arrays, options and derived types are
    /// process-local when any field is; kay refuses to build a send of a
    /// process-local message.
    ///
    /// The heap-backed containers (`CVec`, `CBox`, `CHashMap`) do not pass
    /// it on: recursive types (`enum Tree { Leaf, Node(CVec<Tree>) }`) go
    /// through them, and a constant cannot depend on itself. Such values are
    /// checked at run time instead (kay's `External` refuses to be measured
    /// for a message).
    const PROCESS_LOCAL: bool = false;

    /// Whether the static part has no padding bytes anywhere (nested
    /// fields included), so that copying it whole writes only initialised
    /// bytes. Derived structs compute it from their fields; a type that
    /// keeps the default `false` is compacted field by field, leaving the
    /// padding bytes of the destination as they were (see
    /// `#[derive(Compact)]`), which keeps compacted bytes readable.
    const PADDING_FREE: bool = false;

    /// The type's fields as declared — names and types in order, an
    /// enum's variants with theirs — for fingerprints of layouts (kay
    /// refuses a snapshot or a peer whose types list other fields, even of
    /// the same size). `#[derive(Compact)]` writes it; hand-written impls
    /// may leave it empty.
    const FIELDS: &'static str = "";

    /// Whether all dynamic parts still sit in compact form (none spilled to the heap).
    fn is_still_compact(&self) -> bool;

    /// The number of bytes the dynamic part takes in compact form (a multiple of 8).
    fn dynamic_size_bytes(&self) -> usize;

    /// The number of bytes of the whole compact form: static part padded to 8, plus dynamic part.
    fn total_size_bytes(&self) -> usize {
        static_size_bytes::<Self>() + self.dynamic_size_bytes()
    }

    /// Moves the value at `source` to `dest`, writing its dynamic part at
    /// `new_dynamic_part`. Heap parts are copied and freed; afterwards `source`
    /// is logically uninitialized and must be neither used nor dropped.
    ///
    /// # Safety
    ///
    /// - `source` points to a valid `Self`; `dest` is valid for writes and
    ///   aligned; `source` and `dest` are either equal or do not overlap.
    /// - `new_dynamic_part` is 8-aligned and valid for writes of
    ///   `(*source).dynamic_size_bytes()` bytes that overlap neither `*source`,
    ///   its dynamic parts, nor `*dest`.
    unsafe fn compact(source: *mut Self, dest: *mut Self, new_dynamic_part: *mut u8);

    /// Moves the value at `source` out into a value whose dynamic parts all live
    /// on the heap. Afterwards `source` must be neither used nor dropped.
    ///
    /// # Safety
    ///
    /// `source` points to a valid `Self` (compact or not).
    unsafe fn decompact(source: *const Self) -> Self;

    /// Checks that the bytes at `ptr` (and the dynamic bytes handed out by
    /// `validator`) hold a valid `Self` in canonical compact form, and rewrites
    /// every pointer to the dynamic part for the bytes' current address.
    ///
    /// # Safety
    ///
    /// `ptr` is aligned and valid for reads and writes of `size_of::<Self>()`
    /// bytes, which may hold arbitrary (initialized) data, and lies outside the
    /// validator's range of dynamic bytes.
    unsafe fn validate(
        ptr: *mut Self,
        validator: &mut Validator<'_>,
    ) -> Result<(), ValidationError>;
}

/// The alignment of every dynamic part and of the start of every compact value.
pub const DYNAMIC_ALIGN: usize = 8;

/// Rounds `n` up to the next multiple of [`DYNAMIC_ALIGN`].
#[inline]
pub const fn round_up_to_dynamic_align(n: usize) -> usize {
    (n + DYNAMIC_ALIGN - 1) & !(DYNAMIC_ALIGN - 1)
}

/// The size of the static part of `T` in compact form: `size_of::<T>()` rounded up to 8.
#[inline]
pub const fn static_size_bytes<T>() -> usize {
    round_up_to_dynamic_align(std::mem::size_of::<T>())
}

/// The alignment a buffer holding a compact `T` must have.
#[inline]
pub const fn compact_align<T>() -> usize {
    let a = std::mem::align_of::<T>();
    if a > DYNAMIC_ALIGN { a } else { DYNAMIC_ALIGN }
}
