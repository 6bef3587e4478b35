//! Compile-fail tests: the borrow checker must reject handles that outlive
//! their pool, use after drop or move, and borrowed handles in `'static`
//! threads. Each `tests/ui/*.rs` has a `.stderr` with the expected error.
//! With the `io-uring` feature, `tests/ui-uring/*.rs` check that a buffer
//! handed to the kernel cannot be touched until its completion.

#[test]
#[cfg_attr(miri, ignore)]
fn ui() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}

#[test]
#[cfg(all(feature = "io-uring", target_os = "linux"))]
#[cfg_attr(miri, ignore)]
fn ui_uring() {
    trybuild::TestCases::new().compile_fail("tests/ui-uring/*.rs");
}
