//! `#[derive(Compact)]` rejects what it cannot support with errors that say
//! what to do, spanned on the offending part of the type. The expected
//! messages are in `tests/compile_fail/*.stderr`; regenerate them with
//! `TRYBUILD=overwrite cargo test -p compact --test derive_compile_fail`.

#[test]
fn compile_fail() {
    let tests = trybuild::TestCases::new();
    tests.compile_fail("tests/compile_fail/*.rs");
}
