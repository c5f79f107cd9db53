//! Untrusted bytes cannot abort, hang or bloat the process (the module docs
//! of `compact::validate`): nesting depth is bounded, validation is linear,
//! zero-sized elements cannot amplify a small input, and legitimately deep
//! values compact, clone and drop without overflowing the stack.

use compact::{
    CBox, CVec, Compact, Compacted, Limits, ValidationError, validate_in_place,
    validate_in_place_with,
};

/// A recursive type: only an indirection (here `CVec`) makes it finite.
#[derive(Compact, Clone, Debug, PartialEq)]
#[repr(u8)]
enum Tree {
    Leaf,
    Node(CVec<Tree>),
}

/// A chain `Node([Node([.. Leaf ..])])` of `depth` nodes, built without
/// recursion.
fn chain(depth: usize) -> Tree {
    let mut tree = Tree::Leaf;
    for _ in 0..depth {
        tree = Tree::Node(vec![tree].into());
    }
    tree
}

/// The depth of `tree`, measured without recursion.
fn depth_of(mut tree: &Tree) -> usize {
    let mut depth = 0;
    while let Tree::Node(children) = tree {
        depth += 1;
        tree = &children[0];
    }
    depth
}

/// Crafted bytes of a `depth`-deep chain as written for address `origin`,
/// by hand the way an adversary would: each level is a 24-byte
/// `Tree::Node` (tag, then a `CVec` header: pointer, len 1, compact marker)
/// whose element is the next level, right behind it.
fn crafted_chain(depth: usize, origin: usize) -> Vec<u8> {
    let node = compact::static_size_bytes::<Tree>();
    assert_eq!(node, 24);
    let mut bytes = vec![0u8; node * (depth + 1)];
    for level in 0..depth {
        let at = level * node;
        bytes[at] = 1; // Tree::Node
        let next = (origin + at + node) as u64;
        bytes[at + 8..at + 16].copy_from_slice(&next.to_le_bytes());
        bytes[at + 16..at + 20].copy_from_slice(&1u32.to_le_bytes());
        bytes[at + 20..at + 24].copy_from_slice(&u32::MAX.to_le_bytes());
    }
    bytes
}

/// Copies `bytes` into an 8-aligned buffer.
fn aligned(bytes: &[u8]) -> Vec<u64> {
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    // SAFETY: an owned u64 buffer viewed as bytes.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), bytes.len()) }
        .copy_from_slice(bytes);
    words
}

fn as_bytes(words: &mut [u64]) -> &mut [u8] {
    let len = words.len() * 8;
    // SAFETY: an owned u64 buffer viewed as bytes.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), len) }
}

/// Runs `f` on a thread with a 2 MiB stack, as a worker thread would have.
fn on_small_stack<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .expect("the thread finished without a panic")
}

#[test]
fn crafted_deep_nesting_is_refused_not_a_stack_overflow() {
    // 2.4 MB of nesting: 100,000 levels, which used to abort the process.
    let result = on_small_stack(|| {
        let mut words = aligned(&crafted_chain(100_000, 0));
        validate_in_place::<Tree>(as_bytes(&mut words), 0).map(|_| ())
    });
    match result {
        Err(ValidationError::TooDeep { max_depth, .. }) => {
            assert_eq!(max_depth, compact::DEFAULT_MAX_DEPTH)
        }
        other => panic!("expected TooDeep, got {other:?}"),
    }
}

#[test]
fn the_depth_limit_is_exact_and_configurable() {
    let limit = compact::DEFAULT_MAX_DEPTH as usize;
    // The crafted bytes are exactly what compaction writes.
    let within = Compacted::new(chain(limit));
    let crafted = crafted_chain(limit, within.origin());
    // (The final `Leaf`'s last 16 bytes are padding, not compared.)
    let compared = crafted.len() - 16;
    assert_eq!(crafted[..compared], within.as_bytes()[..compared]);
    assert!(Compacted::<Tree>::from_bytes(within.as_bytes(), within.origin()).is_ok());
    let beyond = crafted_chain(limit + 1, 0);
    assert!(matches!(
        Compacted::<Tree>::from_bytes(&beyond, 0),
        Err(ValidationError::TooDeep { .. })
    ));
    // A caller expecting deep values raises the limit; the validation of a
    // value 20,000 deep then also runs on a 2 MiB stack.
    let tree = on_small_stack(|| {
        let mut words = aligned(&crafted_chain(20_000, 0));
        let limits = Limits {
            max_depth: 20_000,
            ..Limits::default()
        };
        let tree = validate_in_place_with::<Tree>(as_bytes(&mut words), 0, &limits)
            .expect("within the raised limit")
            .clone();
        assert!(matches!(
            validate_in_place_with::<Tree>(
                as_bytes(&mut aligned(&crafted_chain(20_001, 0))),
                0,
                &limits
            ),
            Err(ValidationError::TooDeep {
                max_depth: 20_000,
                ..
            })
        ));
        tree
    });
    assert_eq!(depth_of(&tree), 20_000);
    on_small_stack(move || drop(tree));
}

#[test]
fn legitimately_deep_values_compact_clone_and_drop_on_a_small_stack() {
    on_small_stack(|| {
        let tree = chain(100_000);
        let copy = tree.clone();
        let compacted = Compacted::new(tree);
        assert!(compacted.is_still_compact());
        assert_eq!(compacted.total_size_bytes(), 24 * 100_001);
        let back = compacted.into_inner();
        assert_eq!(depth_of(&back), 100_000);
        let boxed = CBox::new(copy);
        let compacted = Compacted::new(boxed);
        drop(compacted);
        drop(back);
    });
}

#[test]
fn zero_sized_elements_cannot_amplify_the_input() {
    // 16 bytes claiming four billion `()`s: refused.
    let mut header = [0u8; 16];
    // (budget: 16 bytes x 64)
    header[8..12].copy_from_slice(&(u32::MAX - 1).to_le_bytes());
    header[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        Compacted::<CVec<()>>::from_bytes(&header, 0),
        Err(ValidationError::TooManyElements { .. })
    ));
    // Up to 64 per byte of input: accepted (a value made here validates).
    let fine = Compacted::new(CVec::from(vec![(); 1024]));
    let copy = Compacted::<CVec<()>>::from_bytes(fine.as_bytes(), fine.origin()).unwrap();
    assert_eq!(copy.len(), 1024);
    // The budget covers all containers of a value together: 3 x 1400 in 64
    // bytes is too many (the budget is 4096: the third vector finds 1296
    // left), and a caller can set another ratio.
    let many = Compacted::new(CVec::from(vec![CVec::from(vec![(); 1400]); 3]));
    assert_eq!(many.as_bytes().len(), 64);
    let refused = Compacted::<CVec<CVec<()>>>::from_bytes(many.as_bytes(), many.origin());
    assert!(
        matches!(
            refused,
            Err(ValidationError::TooManyElements {
                len: 1400,
                budget: 1296,
                ..
            })
        ),
        "{refused:?}"
    );
    let generous = Limits {
        zero_sized_per_byte: 100,
        ..Limits::default()
    };
    let mut words = aligned(many.as_bytes());
    let bytes = as_bytes(&mut words);
    let origin = many.origin();
    // Rebase by hand: the copy lives elsewhere, pointers are the origin's.
    let copy = validate_in_place_with::<CVec<CVec<()>>>(bytes, origin, &generous).unwrap();
    assert_eq!(copy.iter().map(|v| v.len()).sum::<usize>(), 4200);
}

#[test]
fn parts_out_of_canonical_order_are_accepted_overlaps_refused() {
    // Two vectors whose parts are swapped (as `mem::swap` of two compact
    // fields leaves them): in bounds, disjoint, aligned, so a valid value.
    let pair = Compacted::new((CVec::from(vec![1u64]), CVec::from(vec![2u64, 3])));
    let mut bytes = pair.as_bytes().to_vec();
    let first = pair.origin() as u64 + 32;
    let second = pair.origin() as u64 + 40;
    bytes[0..8].copy_from_slice(&second.to_le_bytes());
    bytes[16..24].copy_from_slice(&first.to_le_bytes());
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    bytes[24..28].copy_from_slice(&1u32.to_le_bytes());
    let swapped = Compacted::<(CVec<u64>, CVec<u64>)>::from_bytes(&bytes, pair.origin()).unwrap();
    assert_eq!((&swapped.0[..], &swapped.1[..]), (&[2u64][..], &[1u64][..]));
    // The second vector's part now starts inside the first one's: refused.
    bytes[16..24].copy_from_slice(&second.to_le_bytes());
    assert!(matches!(
        Compacted::<(CVec<u64>, CVec<u64>)>::from_bytes(&bytes, pair.origin()),
        Err(ValidationError::Overlap { .. })
    ));
}
