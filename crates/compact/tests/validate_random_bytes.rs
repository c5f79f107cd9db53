//! Validation must turn any byte input into a value or an error: never a
//! panic, never undefined behaviour (run under AddressSanitizer too). Inputs
//! are random bytes and single-byte corruptions of valid values, at a random
//! claimed origin or at the true one. Raise `PROPTEST_CASES` to fuzz longer.

use compact::{CBox, CHashMap, COption, CString, CVec, Compact, Compacted, validate_in_place};
use proptest::prelude::*;

/// Copies `bytes` into an 8-aligned buffer, validates, and on success reads
/// every part of the value (so a bad pointer would be caught by ASan).
fn check<T: Compact + std::fmt::Debug + Clone>(bytes: &[u8], origin: usize) -> bool {
    let mut words = vec![0u64; bytes.len().div_ceil(8) + 1];
    // SAFETY: reinterpreting an owned u64 buffer as bytes.
    let buf =
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), bytes.len()) };
    buf.copy_from_slice(bytes);
    match validate_in_place::<T>(buf, origin) {
        Ok(value) => {
            let text = format!("{value:?}");
            let cloned = value.clone();
            assert_eq!(format!("{cloned:?}"), text);
            assert!(value.total_size_bytes() >= std::mem::size_of::<T>());
            true
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            false
        }
    }
}

type Nested = CVec<(CString, CHashMap<u32, CVec<u64>>, COption<CBox<char>>, bool)>;

fn sample() -> Compacted<Nested> {
    let mut map = CHashMap::new();
    map.insert(3, CVec::from(vec![1u64, 2, 3]));
    map.insert(9, CVec::new());
    let v: Nested = vec![
        (
            "héllo".into(),
            map.clone(),
            COption::Some(CBox::new('✓')),
            true,
        ),
        ("".into(), CHashMap::new(), COption::None, false),
        ("x".into(), map, COption::Some(CBox::new('a')), true),
    ]
    .into();
    Compacted::new(v)
}

fn corruptions(seed: &Compacted<Nested>) -> impl Strategy<Value = (Vec<u8>, bool)> {
    let bytes = seed.as_bytes().to_vec();
    let len = bytes.len();
    (
        proptest::collection::vec((0..len, any::<u8>()), 1..4),
        any::<bool>(),
    )
        .prop_map(move |(edits, true_origin)| {
            let mut b = bytes.clone();
            for (i, x) in edits {
                b[i] = x;
            }
            (b, true_origin)
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(2000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), origin in any::<usize>()) {
        check::<CVec<u32>>(&bytes, origin);
        check::<CString>(&bytes, origin);
        check::<CHashMap<u16, CString>>(&bytes, origin);
        check::<COption<CBox<[bool; 3]>>>(&bytes, origin);
        check::<Nested>(&bytes, origin);
        check::<Nested>(&bytes, 0);
    }

    #[test]
    fn corrupted_values_never_panic(case in corruptions(&sample())) {
        let seed = sample();
        let (bytes, true_origin) = case;
        check::<Nested>(&bytes, if true_origin { seed.origin() } else { 0x1000 });
    }
}

#[test]
fn intact_sample_validates() {
    let seed = sample();
    assert!(check::<Nested>(seed.as_bytes(), seed.origin()));
    let copy = Compacted::<Nested>::from_bytes(seed.as_bytes(), seed.origin()).unwrap();
    assert_eq!(format!("{:?}", *copy), format!("{:?}", *seed));
}

#[test]
fn specific_corruptions_give_specific_errors() {
    use compact::ValidationError as E;
    let c = Compacted::new(CVec::from(vec![true, false]));
    let origin = c.origin();
    let mut bytes = c.as_bytes().to_vec();
    bytes[16] = 2;
    assert_eq!(
        Compacted::<CVec<bool>>::from_bytes(&bytes, origin).unwrap_err(),
        E::InvalidBool(2)
    );

    let mut bytes = c.as_bytes().to_vec();
    bytes[8] = 200; // length 200: runs past the end
    assert!(matches!(
        Compacted::<CVec<bool>>::from_bytes(&bytes, origin),
        Err(E::OutOfBounds { .. })
    ));

    let mut bytes = c.as_bytes().to_vec();
    bytes[12..16].copy_from_slice(&5u32.to_le_bytes()); // a heap capacity, not the compact marker
    assert!(matches!(
        Compacted::<CVec<bool>>::from_bytes(&bytes, origin),
        Err(E::NotCompact { .. })
    ));

    let s = Compacted::new(CString::from("ok"));
    let mut bytes = s.as_bytes().to_vec();
    bytes[16] = 0xff;
    assert!(matches!(
        Compacted::<CString>::from_bytes(&bytes, s.origin()),
        Err(E::InvalidUtf8(_))
    ));

    let o = Compacted::new(COption::Some(7u32));
    let mut bytes = o.as_bytes().to_vec();
    bytes[0] = 2;
    assert!(matches!(
        Compacted::<COption<u32>>::from_bytes(&bytes, o.origin()),
        Err(E::InvalidDiscriminant { .. })
    ));

    assert!(matches!(
        Compacted::<CVec<u8>>::from_bytes(&[0; 4], 0),
        Err(E::TooShort { .. })
    ));
    assert!(matches!(
        Compacted::<Option<u8>>::from_bytes(&[0; 8], 0),
        Err(E::Unsupported { .. })
    ));

    // Two vectors pointing at the same bytes are refused.
    let pair = Compacted::new((CVec::from(vec![1u8]), CVec::from(vec![2u8])));
    let mut bytes = pair.as_bytes().to_vec();
    let first_ptr: [u8; 8] = bytes[0..8].try_into().unwrap();
    bytes[16..24].copy_from_slice(&first_ptr);
    assert!(matches!(
        Compacted::<(CVec<u8>, CVec<u8>)>::from_bytes(&bytes, pair.origin()),
        Err(E::Overlap { .. })
    ));
}

/// Inputs the coverage-guided fuzzer (`fuzz/`) once crashed on; each must now
/// give an error or a valid value. The first byte picks the origin, as in the
/// fuzz target.
#[test]
fn fuzzer_findings_stay_fixed() {
    // A CHashMap whose index overlapped the headers of its own entries: the
    // index was rebuilt (written) before overlaps were checked, corrupting
    // already validated headers. Overlaps are now refused at each claim.
    let cases: [&[u8]; 1] = [include_bytes!(
        "fuzz_regressions/hash_index_overlapping_entries.bin"
    )];
    for data in cases {
        let (mode, bytes) = data.split_first().unwrap();
        let origin = if mode & 1 == 0 { 0 } else { 0x1000 };
        check::<Nested>(bytes, origin);
        check::<CVec<CString>>(bytes, origin);
        check::<CHashMap<u16, CVec<u8>>>(bytes, origin);
    }
}
