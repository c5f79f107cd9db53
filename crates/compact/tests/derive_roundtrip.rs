//! `#[derive(Compact)]` round trips: compact into an aligned buffer, read the
//! value in place, validate a copy of the bytes as if received from elsewhere,
//! decompact, and compare with the original at every step. Corrupt bytes must
//! give the right `ValidationError`.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::fmt::Debug;
use std::mem::ManuallyDrop;

use compact::{
    CString, CVec, Compact, Compacted, ValidationError, compact_align, static_size_bytes,
    validate_in_place,
};

/// A zeroed, suitably aligned byte buffer for one compact `T`.
struct AlignedBytes {
    ptr: *mut u8,
    len: usize,
    layout: Layout,
}

impl AlignedBytes {
    fn zeroed<T>(len: usize) -> Self {
        let layout = Layout::from_size_align(len.max(1), compact_align::<T>()).unwrap();
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "allocation failed");
        AlignedBytes { ptr, len, layout }
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `len` initialized (zeroed or written) bytes.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    fn address(&self) -> usize {
        self.ptr as usize
    }

    /// A copy of these bytes in a new buffer, as if received from elsewhere.
    fn copy<T>(&self) -> AlignedBytes {
        let mut copy = AlignedBytes::zeroed::<T>(self.len);
        copy.as_mut_slice().copy_from_slice(self.as_slice());
        copy
    }
}

impl Drop for AlignedBytes {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this layout. The value inside is
        // never dropped here: the tests move it out with `decompact` first.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// Compacts `value` into a new buffer of exactly `total_size_bytes()` bytes.
fn compact_into<T: Compact>(value: T) -> AlignedBytes {
    let mut value = ManuallyDrop::new(value);
    let bytes = AlignedBytes::zeroed::<T>(value.total_size_bytes());
    // SAFETY: the buffer is aligned for `T`, sized for its static and dynamic
    // parts and disjoint from `value`, which is moved (never dropped) here.
    unsafe {
        T::compact(
            &mut *value,
            bytes.ptr.cast(),
            bytes.ptr.add(static_size_bytes::<T>()),
        );
    }
    bytes
}

/// The value that `compact_into` or a successful validation left in `bytes`.
///
/// # Safety
/// `bytes` holds a valid `T`.
unsafe fn value_in<T>(bytes: &AlignedBytes) -> &T {
    // SAFETY: forwarded from the caller.
    unsafe { &*bytes.ptr.cast::<T>() }
}

/// Compacts, validates a copy and decompacts `value`, comparing at every step.
fn roundtrip<T: Compact + Clone + PartialEq + Debug>(value: T) {
    let expected = value.clone();
    assert_eq!(
        value.dynamic_size_bytes() % 8,
        0,
        "dynamic size must be a multiple of 8"
    );
    let total = value.total_size_bytes();

    let first = compact_into(value);
    assert_eq!(first.len, total);
    // SAFETY: `compact_into` left a valid `T` there.
    let compacted = unsafe { value_in::<T>(&first) };
    assert!(compacted.is_still_compact());
    assert_eq!(compacted, &expected);
    assert_eq!(compacted.total_size_bytes(), total);

    let mut second = first.copy::<T>();
    let validated = validate_in_place::<T>(second.as_mut_slice(), first.address())
        .expect("bytes written by compact must validate");
    assert!(validated.is_still_compact());
    assert_eq!(validated, &expected);

    // SAFETY: both buffers hold a valid `T`, each moved out once here.
    let (from_first, from_second) = unsafe {
        (
            T::decompact(first.ptr.cast()),
            T::decompact(second.ptr.cast()),
        )
    };
    drop((first, second));
    // The decompacted values own their parts, so they outlive the buffers.
    assert_eq!(from_first, expected);
    assert_eq!(from_second, expected);
}

/// Compacts `value`, lets `corrupt` change a copy of the bytes, and returns
/// the validation error.
fn corrupted<T: Compact>(value: T, corrupt: impl FnOnce(&mut [u8])) -> ValidationError {
    let first = compact_into(value);
    let mut second = first.copy::<T>();
    corrupt(second.as_mut_slice());
    let error = match validate_in_place::<T>(second.as_mut_slice(), first.address()) {
        Ok(_) => panic!("corrupt bytes validated"),
        Err(error) => error,
    };
    // SAFETY: `first` holds a valid `T`, moved out once and dropped.
    drop(unsafe { T::decompact(first.ptr.cast()) });
    error
}

// ---------------------------------------------------------------- test types

#[derive(Compact, Clone, Debug, PartialEq)]
struct Named {
    a: u32,
    flag: bool,
    letter: char,
    shorts: [u16; 3],
    pair: (u8, u64),
}

#[derive(Compact, Clone, Debug, PartialEq)]
struct Tuple(u8, i64, f64);

#[derive(Compact, Clone, Debug, PartialEq)]
struct Unit;

#[derive(Compact, Clone, Debug, PartialEq)]
struct Empty {}

#[derive(Compact, Clone, Copy, Debug, PartialEq)]
#[repr(u8)]
enum Fieldless {
    A,
    B,
    C,
}

#[derive(Compact, Clone, Debug, PartialEq)]
#[repr(u16)]
enum Shape {
    Empty,
    Circle {
        radius: u32,
    },
    Rect(u16, u64),
    Label(CString),
    Polygon {
        name: CString,
        points: CVec<(i32, i32)>,
    },
}

#[derive(Compact, Clone, Debug, PartialEq)]
#[repr(i32)]
enum Signed {
    Negative = -5,
    Next,
    Big = 1000,
    Data(CVec<u32>) = 7,
    After,
}

#[derive(Compact, Clone, Debug, PartialEq)]
struct Pair<A, B> {
    a: A,
    b: B,
}

#[derive(Compact, Clone, Debug, PartialEq)]
#[repr(u8)]
enum Either<L, R> {
    Left(L),
    Right(R),
}

#[derive(Compact, Clone, Debug, PartialEq)]
struct Fixed<const N: usize> {
    values: [u16; N],
    names: CVec<CString>,
}

/// `Self` in a field type refers to the enum, also in the layout shadow.
#[derive(Compact, Clone, Debug, PartialEq)]
#[repr(u8)]
enum Tree {
    Leaf(u32),
    Node(CVec<Self>),
}

#[derive(Compact, Clone, Debug, PartialEq)]
struct Containers {
    name: CString,
    values: CVec<u32>,
    names: CVec<CString>,
    shapes: CVec<Shape>,
    shape: Shape,
    pair: Pair<CString, CVec<u8>>,
    named: Named,
    either: Either<CString, Fixed<2>>,
}

#[derive(Compact, Clone, Debug, PartialEq)]
#[repr(u8)]
enum Flag {
    Off,
    On(bool, u32),
}

#[derive(Compact, Clone, Debug, PartialEq)]
#[repr(u16)]
enum Wide {
    Only(u16, char),
}

fn named() -> Named {
    Named {
        a: 7,
        flag: true,
        letter: 'é',
        shorts: [1, 2, 3],
        pair: (4, u64::MAX),
    }
}

fn containers() -> Containers {
    Containers {
        name: CString::from("containers"),
        values: CVec::from(vec![1, 2, 3, 4, 5]),
        names: CVec::from(vec![
            CString::from("a"),
            CString::from(""),
            CString::from("long name"),
        ]),
        shapes: CVec::from(vec![
            Shape::Empty,
            Shape::Label(CString::from("label")),
            Shape::Polygon {
                name: "tri".into(),
                points: vec![(0, 0), (1, 0), (0, 1)].into(),
            },
            Shape::Rect(3, 4),
        ]),
        shape: Shape::Label(CString::from("outer")),
        pair: Pair {
            a: CString::from("pair"),
            b: CVec::from(vec![9u8; 13]),
        },
        named: named(),
        either: Either::Right(Fixed {
            values: [5, 6],
            names: vec!["x".into()].into(),
        }),
    }
}

// ---------------------------------------------------------------- round trips

#[test]
fn structs_roundtrip() {
    roundtrip(named());
    roundtrip(Tuple(1, -2, 3.5));
    roundtrip(Unit);
    roundtrip(Empty {});
}

#[test]
fn fieldless_enum_roundtrip() {
    for value in [Fieldless::A, Fieldless::B, Fieldless::C] {
        roundtrip(value);
    }
}

#[test]
fn data_enum_roundtrip() {
    roundtrip(Shape::Empty);
    roundtrip(Shape::Circle { radius: 9 });
    roundtrip(Shape::Rect(1, 2));
    roundtrip(Shape::Label(CString::from("hello, world")));
    roundtrip(Shape::Polygon {
        name: "square".into(),
        points: vec![(0, 0), (0, 1), (1, 1), (1, 0)].into(),
    });
    roundtrip(Flag::Off);
    roundtrip(Flag::On(true, 3));
    roundtrip(Wide::Only(2, '€'));
}

#[test]
fn explicit_discriminants_roundtrip() {
    for value in [
        Signed::Negative,
        Signed::Next,
        Signed::Big,
        Signed::Data(CVec::from(vec![10, 20, 30])),
        Signed::After,
    ] {
        roundtrip(value);
    }
}

#[test]
fn explicit_discriminants_are_the_tags() {
    let tag = |value: Signed| {
        let bytes = compact_into(value);
        let tag = i32::from_ne_bytes(bytes.as_slice()[..4].try_into().unwrap());
        // SAFETY: `bytes` holds a valid `Signed`, moved out once and dropped.
        drop(unsafe { Signed::decompact(bytes.ptr.cast()) });
        tag
    };
    assert_eq!(tag(Signed::Negative), -5);
    assert_eq!(tag(Signed::Next), -4);
    assert_eq!(tag(Signed::Big), 1000);
    assert_eq!(tag(Signed::Data(CVec::new())), 7);
    assert_eq!(tag(Signed::After), 8);
}

#[test]
fn generic_types_roundtrip() {
    roundtrip(Pair { a: 1u8, b: 2u64 });
    roundtrip(Pair {
        a: CString::from("a"),
        b: CVec::from(vec![1u16, 2, 3]),
    });
    roundtrip(Either::<u8, CString>::Left(4));
    roundtrip(Either::<u8, CString>::Right(CString::from("right")));
    roundtrip(Fixed {
        values: [1, 2, 3, 4],
        names: vec!["one".into(), "two".into()].into(),
    });
    roundtrip(Fixed::<0> {
        values: [],
        names: CVec::new(),
    });
}

#[test]
fn nested_and_recursive_types_roundtrip() {
    roundtrip(containers());
    roundtrip(Tree::Node(CVec::from(vec![
        Tree::Leaf(1),
        Tree::Node(CVec::from(vec![Tree::Leaf(2), Tree::Node(CVec::new())])),
        Tree::Leaf(3),
    ])));
}

#[test]
fn is_static_is_the_and_of_the_fields() {
    const { assert!(Named::IS_STATIC) };
    const { assert!(Tuple::IS_STATIC) };
    const { assert!(Unit::IS_STATIC) };
    const { assert!(Empty::IS_STATIC) };
    const { assert!(Fieldless::IS_STATIC) };
    const { assert!(Flag::IS_STATIC) };
    const { assert!(Pair::<u8, [u32; 2]>::IS_STATIC) };
    const { assert!(!Pair::<u8, CString>::IS_STATIC) };
    const { assert!(!Shape::IS_STATIC) };
    const { assert!(!Signed::IS_STATIC) };
    const { assert!(!Containers::IS_STATIC) };
    assert_eq!(named().dynamic_size_bytes(), 0);
    assert_eq!(Shape::Circle { radius: 1 }.dynamic_size_bytes(), 0);
}

#[test]
fn dynamic_size_is_the_sum_of_the_fields() {
    let value = containers();
    let sum = value.name.dynamic_size_bytes()
        + value.values.dynamic_size_bytes()
        + value.names.dynamic_size_bytes()
        + value.shapes.dynamic_size_bytes()
        + value.shape.dynamic_size_bytes()
        + value.pair.a.dynamic_size_bytes()
        + value.pair.b.dynamic_size_bytes()
        + value.either.dynamic_size_bytes();
    assert_eq!(value.dynamic_size_bytes(), sum);
    assert!(sum > 0);
}

#[test]
fn spilled_value_compacts_again() {
    let mut expected = containers();
    let first = compact_into(expected.clone());
    // SAFETY: `compact_into` left a valid `Containers` there, borrowed only here.
    let value = unsafe { &mut *first.ptr.cast::<Containers>() };
    value.values.push(6);
    value.names[1].push_str("grown");
    if let Shape::Label(label) = &mut value.shape {
        label.push_str(" and longer than before");
    }
    assert!(!value.is_still_compact());
    expected.values.push(6);
    expected.names[1].push_str("grown");
    expected.shape = Shape::Label("outer and longer than before".into());
    assert_eq!(value, &expected);

    let second = AlignedBytes::zeroed::<Containers>(value.total_size_bytes());
    // SAFETY: `first` holds a valid value that moves (once) into `second`,
    // which is aligned, big enough and disjoint from it.
    unsafe {
        Containers::compact(
            first.ptr.cast(),
            second.ptr.cast(),
            second.ptr.add(static_size_bytes::<Containers>()),
        );
    }
    drop(first);
    // SAFETY: `second` now holds the value.
    let compacted = unsafe { value_in::<Containers>(&second) };
    assert!(compacted.is_still_compact());
    assert_eq!(compacted, &expected);
    // SAFETY: moved out once.
    let back = unsafe { Containers::decompact(second.ptr.cast()) };
    drop(second);
    assert_eq!(back, expected);
}

// ---------------------------------------------------------------- corrupt bytes

#[test]
fn invalid_fieldless_tag_is_rejected() {
    let error = corrupted(Fieldless::B, |bytes| bytes[0] = 3);
    assert_eq!(
        error,
        ValidationError::InvalidDiscriminant {
            type_name: std::any::type_name::<Fieldless>(),
            value: 3
        }
    );
}

#[test]
fn invalid_data_enum_tag_is_rejected() {
    let error = corrupted(Shape::Rect(1, 2), |bytes| {
        bytes[..2].copy_from_slice(&5u16.to_ne_bytes())
    });
    assert_eq!(
        error,
        ValidationError::InvalidDiscriminant {
            type_name: std::any::type_name::<Shape>(),
            value: 5
        }
    );
}

#[test]
fn invalid_negative_tag_is_rejected() {
    for bad in [-3i32, -6, 6, 9, 999, i32::MIN] {
        let error = corrupted(Signed::Big, |bytes| {
            bytes[..4].copy_from_slice(&bad.to_ne_bytes())
        });
        assert_eq!(
            error,
            ValidationError::InvalidDiscriminant {
                type_name: std::any::type_name::<Signed>(),
                value: i128::from(bad),
            }
        );
    }
}

#[test]
fn invalid_bool_field_is_rejected() {
    let offset = std::mem::offset_of!(Named, flag);
    let error = corrupted(named(), |bytes| bytes[offset] = 2);
    assert_eq!(error, ValidationError::InvalidBool(2));
}

#[test]
fn invalid_char_field_is_rejected() {
    let offset = std::mem::offset_of!(Named, letter);
    let error = corrupted(named(), |bytes| {
        bytes[offset..offset + 4].copy_from_slice(&0xD800u32.to_ne_bytes());
    });
    assert_eq!(error, ValidationError::InvalidChar(0xD800));
}

/// The layout the Rust reference gives a `#[repr(u8)]` variant `On(bool, u32)`.
#[repr(C)]
struct FlagOnLayout(u8, bool, u32);

/// The layout the Rust reference gives a `#[repr(u16)]` variant `Only(u16, char)`.
#[repr(C)]
struct WideOnlyLayout(u16, u16, char);

#[test]
fn variant_fields_are_validated_at_their_offsets() {
    let offset = std::mem::offset_of!(FlagOnLayout, 1);
    let error = corrupted(Flag::On(true, 5), |bytes| bytes[offset] = 2);
    assert_eq!(error, ValidationError::InvalidBool(2));

    let offset = std::mem::offset_of!(WideOnlyLayout, 2);
    let error = corrupted(Wide::Only(1, 'x'), |bytes| {
        bytes[offset..offset + 4].copy_from_slice(&0x11_0000u32.to_ne_bytes());
    });
    assert_eq!(error, ValidationError::InvalidChar(0x11_0000));
}

#[test]
fn nested_invalid_tag_is_rejected() {
    let offset = std::mem::offset_of!(Containers, shape);
    let error = corrupted(containers(), |bytes| {
        bytes[offset..offset + 2].copy_from_slice(&77u16.to_ne_bytes())
    });
    assert_eq!(
        error,
        ValidationError::InvalidDiscriminant {
            type_name: std::any::type_name::<Shape>(),
            value: 77
        }
    );
}

/// A struct with padding between and after its fields, nested in another.
#[derive(Compact, Clone, Debug, PartialEq)]
struct Padded {
    small: u8,
    big: u64,
    name: CString,
    last: u16,
}

/// An enum whose variants have padding between the tag and their fields.
#[derive(Compact, Clone, Debug, PartialEq)]
#[repr(u8)]
enum PaddedEnum {
    Wide(u64),
    Named { x: u16, s: CString },
    Empty,
}

#[derive(Compact, Clone, Debug, PartialEq)]
struct HoldsPadded {
    flag: bool,
    inner: Padded,
    list: CVec<Padded>,
    choices: CVec<PaddedEnum>,
    maybe: compact::COption<Padded>,
    pairs: CVec<(u8, u64)>,
    tight: Tight,
}

/// No padding anywhere: copied whole.
#[derive(Compact, Clone, Debug, PartialEq)]
struct Tight {
    a: u32,
    b: u16,
    c: u8,
    d: u8,
    e: [u64; 2],
}

// `PADDING_FREE` follows the layout (checked when this test compiles).
const _: () = {
    assert!(Tight::PADDING_FREE);
    assert!(<(u32, u32)>::PADDING_FREE);
    assert!(!<(u8, u64)>::PADDING_FREE);
    assert!(!Padded::PADDING_FREE);
    assert!(!HoldsPadded::PADDING_FREE);
    assert!(!PaddedEnum::PADDING_FREE);
};

/// A derived struct is compacted field by field: the padding bytes of the
/// (zeroed) buffer are never written, so its bytes can be read, hashed or
/// sent (under Miri, a whole-struct copy would carry the source's
/// uninitialised padding into them, and reading them is undefined).
#[test]
fn padding_bytes_of_a_compacted_struct_stay_initialised() {
    let value = HoldsPadded {
        flag: true,
        inner: Padded {
            small: 1,
            big: 2,
            name: "padded".into(),
            last: 3,
        },
        list: vec![
            Padded {
                small: 4,
                big: 5,
                name: "x".into(),
                last: 6,
            };
            3
        ]
        .into(),
        choices: vec![
            PaddedEnum::Wide(7),
            PaddedEnum::Named {
                x: 8,
                s: "nine".into(),
            },
            PaddedEnum::Empty,
        ]
        .into(),
        maybe: compact::COption::Some(Padded {
            small: 10,
            big: 11,
            name: "y".into(),
            last: 12,
        }),
        pairs: vec![(1, 2), (3, 4)].into(),
        tight: Tight {
            a: 1,
            b: 2,
            c: 3,
            d: 4,
            e: [5, 6],
        },
    };
    let compacted = Compacted::new(value.clone());
    // Every byte is a readable `u8` (Miri checks the reads).
    let sum: u64 = compacted.as_bytes().iter().map(|&b| u64::from(b)).sum();
    assert!(sum > 0);
    let copy = Compacted::<HoldsPadded>::from_bytes(compacted.as_bytes(), compacted.origin())
        .expect("valid");
    assert_eq!(*copy, value);
}

/// `Compact::FIELDS` lists fields as declared, so that two layouts of the
/// same size but another order or other fields tell apart.
#[test]
fn fields_are_listed_as_declared() {
    #[derive(Compact)]
    struct Ab {
        a: u32,
        b: CVec<u64>,
    }
    #[derive(Compact)]
    struct Ba {
        b: CVec<u64>,
        a: u32,
    }
    #[derive(Compact)]
    struct Pair(u32, u32);
    #[derive(Compact)]
    #[repr(u8)]
    enum Shape {
        Dot,
        Line(u32),
        Box { w: u32, h: u32 },
    }
    assert_eq!(Ab::FIELDS, "{a: u32, b: CVec<u64>}");
    assert_eq!(Ba::FIELDS, "{b: CVec<u64>, a: u32}");
    assert_ne!(Ab::FIELDS, Ba::FIELDS);
    assert_eq!(Pair::FIELDS, "(u32, u32)");
    assert_eq!(Shape::FIELDS, "Dot | Line(u32) | Box{w: u32, h: u32}");
}
