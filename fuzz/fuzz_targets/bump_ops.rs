//! The `bump_ops` fuzz target; its body is `arenapool_fuzz::bump_ops` (`src/`).

#![no_main]

libfuzzer_sys::fuzz_target!(
    |input: arenapool_fuzz::bump_ops::Input| arenapool_fuzz::bump_ops::run(input)
);
