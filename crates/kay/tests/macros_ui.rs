//! Misuse of `#[kay::actor]`, `#[kay::actor_trait]` and `#[kay::implements]`
//! gives errors that point at the offending token and say how to fix it.
//! The expected messages are in `tests/ui/*.stderr`; regenerate them with
//! `TRYBUILD=overwrite cargo test -p kay --test macros_ui`.

#[test]
fn macro_misuse_is_reported_clearly() {
    let tests = trybuild::TestCases::new();
    tests.compile_fail("tests/ui/*.rs");
}
