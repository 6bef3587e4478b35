//! The `pool_ops` fuzz target; its body is `arenapool_fuzz::pool_ops` (`src/`).

#![no_main]

libfuzzer_sys::fuzz_target!(
    |input: arenapool_fuzz::pool_ops::Input| arenapool_fuzz::pool_ops::run(input)
);
