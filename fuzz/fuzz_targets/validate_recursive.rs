//! Coverage-guided fuzzing of the limits compact's validation puts on
//! untrusted bytes: a recursive type (`Tree`) must be refused beyond
//! `Limits::max_depth` (`TooDeep`) instead of exhausting the stack, and
//! containers of zero-sized elements must not claim more than
//! `Limits::zero_sized_per_byte` elements per input byte (`TooManyElements`).
//! Any bytes, at either origin and under any of the limits below, give a
//! value or an error, never a panic; an accepted value respects the limits,
//! and a `Tree` that was accepted is accepted again after recompaction.
//!
//! `cd fuzz && CARGO_BUILD_JOBS=1 cargo +nightly fuzz run validate_recursive corpus/validate_recursive seeds/validate_recursive -- -max_total_time=120`
//!
//! `seeds/validate_recursive` (written by `seedgen`) holds a crafted chain
//! 200 levels deep (beyond the default 128), one exactly 128 deep, a small
//! valid tree, a 16-byte `CVec<()>` claiming `u32::MAX - 1` elements and a
//! `CVec<CVec<()>>` within its budget.
#![no_main]

use compact::{CVec, Compact, Compacted, DEFAULT_MAX_DEPTH, Limits, validate_in_place_with};
use libfuzzer_sys::fuzz_target;

/// A recursive type: only an indirection (here `CVec`) makes it finite.
#[derive(Compact, Clone, Debug, PartialEq)]
#[repr(u8)]
enum Tree {
    Leaf,
    Node(CVec<Tree>),
}

/// How many `Node`s deep `tree` nests (the validation depth it needs),
/// measured without recursion.
fn depth_of(tree: &Tree) -> u32 {
    let mut deepest = 0;
    let mut stack = vec![(tree, 0)];
    while let Some((tree, depth)) = stack.pop() {
        if let Tree::Node(children) = tree {
            deepest = deepest.max(depth + 1);
            stack.extend(children.iter().map(|child| (child, depth + 1)));
        }
    }
    deepest
}

/// `bytes` copied into a fresh 8-aligned buffer.
fn aligned(bytes: &[u8]) -> Vec<u64> {
    let mut words = vec![0u64; bytes.len().div_ceil(8) + 1];
    // SAFETY: an owned u64 buffer viewed as bytes.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), bytes.len()) }
        .copy_from_slice(bytes);
    words
}

/// The first `len` bytes of `words`.
fn as_bytes(words: &mut [u64], len: usize) -> &mut [u8] {
    assert!(len <= words.len() * 8);
    // SAFETY: an owned u64 buffer viewed as bytes.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), len) }
}

fn check_tree(bytes: &[u8], origin: usize, limits: &Limits) {
    let mut words = aligned(bytes);
    let Ok(tree) =
        validate_in_place_with::<Tree>(as_bytes(&mut words, bytes.len()), origin, limits)
    else {
        return;
    };
    assert!(
        depth_of(tree) <= limits.max_depth,
        "accepted beyond the depth limit"
    );
    let _ = format!("{tree:?}");
    let _ = tree.total_size_bytes();
    let copy = tree.clone();
    assert_eq!(&copy, tree);
    // Recompacted, it is accepted again (rebased from its origin) and equal.
    let compacted = Compacted::new(copy);
    let len = compacted.as_bytes().len();
    let mut words = aligned(compacted.as_bytes());
    let again =
        validate_in_place_with::<Tree>(as_bytes(&mut words, len), compacted.origin(), limits)
            .expect("a recompacted accepted tree is accepted");
    assert_eq!(again, tree);
}

/// Validates zero-sized containers and checks the element budget; returns
/// nothing, panics on a violation.
fn check_zero_sized(bytes: &[u8], origin: usize, limits: &Limits) {
    let budget = limits.zero_sized_per_byte.saturating_mul(bytes.len());
    let mut words = aligned(bytes);
    if let Ok(units) =
        validate_in_place_with::<CVec<()>>(as_bytes(&mut words, bytes.len()), origin, limits)
    {
        assert!(
            units.len() <= budget,
            "{} units in {} bytes",
            units.len(),
            bytes.len()
        );
        assert_eq!(units.iter().count(), units.len());
        let _ = units.clone();
    }
    let mut words = aligned(bytes);
    if let Ok(nested) =
        validate_in_place_with::<CVec<CVec<()>>>(as_bytes(&mut words, bytes.len()), origin, limits)
    {
        let total: usize = nested.iter().map(|units| units.len()).sum();
        assert!(total <= budget, "{total} units in {} bytes", bytes.len());
        let _ = nested.clone();
        let _ = format!(
            "{:?}",
            nested.iter().map(|units| units.len()).collect::<Vec<_>>()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the origin (bit 0: 0 or 0x1000) and the limits
    // (bits 1-2: max_depth 128 (the default), 0, 3 or 1000; bits 3-4:
    // zero_sized_per_byte 64 (the default), 0, 1 or 1000).
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let origin = if mode & 1 == 0 { 0 } else { 0x1000 };
    let limits = Limits {
        max_depth: [DEFAULT_MAX_DEPTH, 0, 3, 1000][usize::from(mode >> 1 & 3)],
        zero_sized_per_byte: [64, 0, 1, 1000][usize::from(mode >> 3 & 3)],
        reset_process_local: false,
    };
    check_tree(bytes, origin, &limits);
    check_zero_sized(bytes, origin, &limits);
});
