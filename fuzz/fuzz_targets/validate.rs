//! Coverage-guided fuzzing of compact's validation: any bytes, at any claimed
//! origin, must give a value or an error, never a panic or undefined
//! behaviour (run with AddressSanitizer, cargo fuzz's default).
//!
//! `cd fuzz && CARGO_BUILD_JOBS=1 cargo +nightly fuzz run validate corpus/validate seeds/validate -- -max_total_time=120`
//! (`seeds/validate` holds valid values of each type, with pointers rebased to
//! the origins below; with them the fuzzer reaches deep structure in seconds.
//! `map_flood*` are `CHashMap<u64, u8>`s whose keys all collide, written by
//! `seedgen`: 256 of them, far beyond the probe budget, and 32 and 33, just
//! within and just beyond it.)
//!
//! A map that validates must find each of its entries by key: validation
//! rebuilds its index, and lookups trust that index.
#![no_main]

use compact::{CBox, CHashMap, COption, CString, CVec, Compact, validate_in_place};
use libfuzzer_sys::fuzz_target;
use std::hash::Hash;

type Nested = CVec<(CString, CHashMap<u32, CVec<u64>>, COption<CBox<char>>, bool)>;

/// Validates `bytes` as a `T` at `origin`; on success runs `inspect` on the
/// value and touches every part of it.
fn check_with<T: Compact + std::fmt::Debug + Clone>(
    bytes: &[u8],
    origin: usize,
    inspect: impl FnOnce(&T),
) {
    let mut words = vec![0u64; bytes.len().div_ceil(8) + 1];
    // SAFETY: an owned u64 buffer viewed as bytes.
    let buf =
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), bytes.len()) };
    buf.copy_from_slice(bytes);
    if let Ok(value) = validate_in_place::<T>(buf, origin) {
        inspect(value);
        // Touch every part of the value.
        let _ = format!("{value:?}");
        let _ = value.clone();
        let _ = value.total_size_bytes();
    }
}

fn check<T: Compact + std::fmt::Debug + Clone>(bytes: &[u8], origin: usize) {
    check_with::<T>(bytes, origin, |_| {});
}

/// A validated map finds each of its entries by key.
fn lookups<K: Hash + Eq, V: PartialEq>(map: &CHashMap<K, V>) {
    for (key, value) in map.iter() {
        assert!(
            map.get(key) == Some(value),
            "an entry of a validated map is not found"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the origin style: 0 (offsets) or a fixed address,
    // so that inputs can reach deep structure with small offsets.
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let origin = if mode & 1 == 0 { 0 } else { 0x1000 };
    check::<Nested>(bytes, origin);
    check::<CVec<CString>>(bytes, origin);
    check_with::<CHashMap<u16, CVec<u8>>>(bytes, origin, lookups);
    check_with::<CHashMap<u64, u8>>(bytes, origin, lookups);
    check::<COption<CBox<[bool; 3]>>>(bytes, origin);
});
