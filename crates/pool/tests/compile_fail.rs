//! Compile-fail tests: the borrow checker must reject handles that outlive
//! their pool, use after drop or move, and borrowed handles in `'static`
//! threads. Each `tests/ui/*.rs` has a `.stderr` with the expected error.

#[test]
#[cfg_attr(miri, ignore)]
fn ui() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
