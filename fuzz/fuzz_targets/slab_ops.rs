//! The `slab_ops` fuzz target; its body is `arenapool_fuzz::slab_ops` (`src/`).

#![no_main]

libfuzzer_sys::fuzz_target!(
    |input: arenapool_fuzz::slab_ops::Input| arenapool_fuzz::slab_ops::run(input)
);
