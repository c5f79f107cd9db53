//! Values that live in one contiguous byte range.
//!
//! A [`Compact`] value has a *static part* (the value itself) and an optional
//! *dynamic part* (the contents of its containers). In *compact form* the
//! dynamic part sits right behind the static part, so a whole value is one
//! contiguous byte range that can be queued, stored in a memory-mapped file or
//! sent over a socket without serialisation, and validated when it arrives.
//!
//! The containers [`CVec`], [`CString`], [`CHashMap`], [`COption`] and
//! [`CBox`] follow their `std` counterparts. In compact form they point into
//! the dynamic part they do not own; when one has to grow it *spills*: it
//! moves its contents to the heap, [`Compact::is_still_compact`] turns false,
//! and the owner of the byte range compacts the value again.
//!
//! ```
//! use compact::{CHashMap, CString, CVec, Compact, Compacted};
//!
//! #[derive(Compact, Clone, Debug, PartialEq)]
//! struct Agent {
//!     name: CString,
//!     trips: CVec<u32>,
//!     friends: CHashMap<u32, CString>,
//! }
//!
//! let mut agent = Agent { name: "ada".into(), trips: vec![3, 5].into(), friends: CHashMap::new() };
//! agent.friends.insert(7, "bob".into());
//!
//! // Compact it into one byte range...
//! let compacted = Compacted::new(agent.clone());
//! assert!(compacted.is_still_compact());
//! assert_eq!(compacted.total_size_bytes(), compacted.as_bytes().len());
//!
//! // ...check bytes that came from elsewhere before trusting them...
//! let received = Compacted::<Agent>::from_bytes(compacted.as_bytes(), compacted.origin()).unwrap();
//!
//! // ...and move it back onto the heap, where it can grow.
//! let mut back = received.into_inner();
//! back.trips.push(8);
//! assert_eq!(back.trips, vec![3, 5, 8]);
//! assert_eq!(back.friends.get(&7).map(|s| s.as_str()), Some("bob"));
//! ```
//!
//! # Rules
//! - Values start 8-aligned; every dynamic part is 8-aligned and a multiple
//!   of 8 bytes long; container elements must have an alignment of at most 8.
//! - Lengths are `u32` (at most [`cvec::MAX_LEN`] elements per container).
//! - `std::option::Option<T>` is `Compact` but has no defined layout, so it
//!   cannot be validated; use [`COption`] in values that cross machines or
//!   files. Enums deriving `Compact` need an integer `#[repr(..)]` for the
//!   same reason.
//! - Compacting never writes a padding byte of the destination: derived
//!   types with padding are compacted field by field
//!   ([`Compact::PADDING_FREE`] says which may be copied whole), so bytes
//!   compacted into initialised memory (a zeroed buffer, as
//!   [`Compacted`] uses) stay initialised and can be read, hashed or sent.
//!   `std::option::Option` is the exception (copied whole).
//! - A compact container moved out of its byte range (for example with
//!   `std::mem::take`) keeps pointing into it; clone it to keep it longer than
//!   the owner of the byte range (see [`Compact`]).

extern crate self as compact;

mod cbox;
mod chashmap;
mod compacted;
mod coption;
mod cstring;
pub mod cvec;
mod deep;
mod primitives;
mod raw;
mod traits;
pub mod validate;

pub use cbox::CBox;
pub use chashmap::CHashMap;
pub use compact_derive::Compact;
pub use compacted::{Compacted, compact_into};
pub use coption::COption;
pub use cstring::CString;
pub use cvec::CVec;
pub use traits::{
    Compact, DYNAMIC_ALIGN, compact_align, round_up_to_dynamic_align, static_size_bytes,
};
pub use validate::{
    DEFAULT_MAX_DEPTH, Limits, ValidationError, Validator, validate_in_place,
    validate_in_place_with,
};
