//! The code `#[derive(Compact)]` generates uses fully qualified paths only:
//! it compiles in a module without the implicit prelude, next to items that
//! shadow the names it could otherwise pick up, and with the `compact` crate
//! reached through `#[compact(crate = "...")]`.

#[no_implicit_prelude]
mod no_prelude {
    // Items that shadow prelude and crate names the generated code must not rely on.
    #[allow(dead_code)]
    pub mod core {}
    #[allow(dead_code)]
    pub struct Result;
    #[allow(dead_code)]
    pub struct Ok;
    #[allow(dead_code)]
    pub struct Err;
    #[allow(dead_code)]
    pub struct Option;
    #[allow(dead_code)]
    pub struct Compact;
    #[allow(dead_code)]
    pub struct Validator;
    #[allow(dead_code)]
    pub struct ValidationError;
    #[allow(dead_code, non_camel_case_types)]
    pub struct usize;
    #[allow(dead_code, non_camel_case_types)]
    pub struct bool;
    #[allow(dead_code, non_camel_case_types)]
    pub struct u8;

    #[derive(
        ::compact::Compact, ::core::clone::Clone, ::core::fmt::Debug, ::core::cmp::PartialEq,
    )]
    pub struct Record {
        pub id: ::core::primitive::u32,
        pub name: ::compact::CString,
        pub values: ::compact::CVec<::core::primitive::u16>,
        pub flag: ::core::primitive::bool,
    }

    #[derive(
        ::compact::Compact, ::core::clone::Clone, ::core::fmt::Debug, ::core::cmp::PartialEq,
    )]
    pub struct Generic<T>(pub T, pub ::compact::CVec<T>);

    #[derive(
        ::compact::Compact, ::core::clone::Clone, ::core::fmt::Debug, ::core::cmp::PartialEq,
    )]
    #[repr(u8)]
    pub enum Event {
        Empty,
        Named {
            name: ::compact::CString,
            count: ::core::primitive::u64,
        },
        Pair(::core::primitive::i8, Record) = 7,
        Generic(Generic<::core::primitive::u32>),
    }
}

/// The `compact` crate under another path, as a facade crate would re-export it.
mod facade {
    pub use compact as reexported;
}

#[derive(compact::Compact, Clone, Debug, PartialEq)]
#[compact(crate = "crate::facade::reexported")]
struct ThroughFacade {
    name: compact::CString,
    event: no_prelude::Event,
}

/// Compacts `value` into a `Compacted`, validates a copy of its bytes and
/// moves both back onto the heap.
fn roundtrip<T: compact::Compact + Clone + PartialEq + std::fmt::Debug>(value: T) {
    let compacted = compact::Compacted::new(value.clone());
    assert!(compacted.is_still_compact());
    assert_eq!(*compacted, value);
    let copy = compact::Compacted::<T>::from_bytes(compacted.as_bytes(), compacted.origin())
        .expect("compacted bytes validate");
    assert_eq!(*copy, value);
    assert_eq!(copy.into_inner(), value);
    assert_eq!(compacted.into_inner(), value);
}

fn record() -> no_prelude::Record {
    no_prelude::Record {
        id: 3,
        name: "record".into(),
        values: vec![1, 2, 3].into(),
        flag: true,
    }
}

#[test]
fn derives_without_prelude_roundtrip() {
    roundtrip(record());
    roundtrip(no_prelude::Generic(5u8, vec![6, 7].into()));
    roundtrip(no_prelude::Event::Empty);
    roundtrip(no_prelude::Event::Named {
        name: "n".into(),
        count: 9,
    });
    roundtrip(no_prelude::Event::Pair(-1, record()));
    roundtrip(no_prelude::Event::Generic(no_prelude::Generic(
        1,
        vec![2, 3].into(),
    )));
}

#[test]
fn crate_path_override_roundtrips() {
    roundtrip(ThroughFacade {
        name: "facade".into(),
        event: no_prelude::Event::Pair(2, record()),
    });
}
