//! `Bump` against a plain model: random programs of allocations, `Vec`
//! growth in the arena, resets and limits. The model is a list of what each
//! live allocation should hold; after every step every live allocation must
//! still hold it (no overlap, no corruption).

use std::alloc::Layout;

use allocator_api2::vec::Vec as AVec;
use arenapool_alloc::{Bump, BumpError};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// A value of `len` bytes filled with `byte`, aligned to `1 << align`.
    Bytes {
        len: usize,
        align: u8,
        byte: u8,
    },
    Value(u64),
    Str(String),
    /// Push `n` values onto the arena `Vec`.
    Push(u16),
    /// Drop the arena `Vec` (gives its bytes back if it was last).
    DropVec,
    Reset,
    Limit(Option<u16>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..300, 0u8..=12, any::<u8>()).prop_map(|(len, align, byte)| Op::Bytes { len, align, byte }),
        3 => any::<u64>().prop_map(Op::Value),
        2 => "[a-zé]{0,20}".prop_map(Op::Str),
        3 => (0u16..100).prop_map(Op::Push),
        1 => Just(Op::DropVec),
        1 => Just(Op::Reset),
        1 => proptest::option::of(0u16..20_000).prop_map(Op::Limit),
    ]
}

/// What a live allocation should hold.
enum Expect<'a> {
    Bytes(&'a [u8], u8, usize),
    Value(&'a u64, u64),
    Str(&'a str, String),
}

fn check(live: &[Expect<'_>]) {
    for e in live {
        match e {
            Expect::Bytes(s, b, align) => {
                assert!(s.iter().all(|x| x == b));
                assert_eq!(s.as_ptr().addr() % align, 0);
            }
            Expect::Value(r, v) => assert_eq!(**r, *v),
            Expect::Str(s, want) => assert_eq!(s, want),
        }
    }
}

/// A refused allocation: only the allocation limit may refuse these small
/// requests, and the refusal changes nothing.
fn refused_at_the_limit(bump: &Bump, e: &BumpError, before: usize) {
    let BumpError::LimitExceeded {
        limit, allocated, ..
    } = *e
    else {
        panic!("unexpected {e}");
    };
    assert_eq!(Some(limit), bump.allocation_limit());
    assert_eq!(allocated, before);
    assert_eq!(bump.allocated_bytes(), before);
}

/// Runs one program between resets (borrows end at each reset).
fn run_segment(bump: &Bump, ops: &[Op]) {
    let mut live: Vec<Expect<'_>> = Vec::new();
    let mut vec: Option<AVec<u32, &Bump>> = None;
    let mut model_vec: Vec<u32> = Vec::new();
    for op in ops {
        let allocated_before = bump.allocated_bytes();
        match op {
            Op::Bytes { len, align, byte } => {
                let align = 1usize << align;
                let layout = Layout::from_size_align(*len, align).unwrap();
                match bump.try_alloc_layout(layout) {
                    Ok(p) => {
                        assert_eq!(p.as_ptr().addr() % align, 0);
                        // SAFETY: `p` is a fresh block of `len` bytes that
                        // lives as long as `bump` is not reset.
                        let s = unsafe {
                            p.as_ptr().write_bytes(*byte, *len);
                            std::slice::from_raw_parts(p.as_ptr(), *len)
                        };
                        live.push(Expect::Bytes(s, *byte, align));
                    }
                    Err(e) => refused_at_the_limit(bump, &e, allocated_before),
                }
            }
            Op::Value(v) => match bump.try_alloc(*v) {
                Ok(r) => live.push(Expect::Value(r, *v)),
                Err(e) => refused_at_the_limit(bump, &e, allocated_before),
            },
            Op::Str(s) => match bump.try_alloc_str(s) {
                Ok(r) => live.push(Expect::Str(r, s.clone())),
                Err(e) => refused_at_the_limit(bump, &e, allocated_before),
            },
            Op::Push(n) => {
                let v = vec.get_or_insert_with(|| AVec::new_in(bump));
                for i in 0..*n {
                    let x = model_vec.len() as u32 * 7 + u32::from(i);
                    if let Err(e) = v.try_reserve(1) {
                        // The arena `Vec` sees only that its allocator
                        // refused: possible only under a limit.
                        assert!(bump.allocation_limit().is_some(), "{e}");
                        break;
                    }
                    v.push(x);
                    model_vec.push(x);
                }
                assert_eq!(&v[..], &model_vec[..]);
            }
            Op::DropVec => {
                vec = None;
                model_vec.clear();
            }
            Op::Limit(l) => bump.set_allocation_limit(l.map(usize::from)),
            Op::Reset => unreachable!("segments are split at resets"),
        }
        check(&live);
        // A new chunk is only taken within the limit in force (chunks held
        // before a lower limit was set are kept, so only growth is checked).
        if let Some(limit) = bump.allocation_limit()
            && bump.allocated_bytes() > allocated_before
        {
            assert!(bump.allocated_bytes() <= limit);
        }
    }
}

/// Fewer, shorter programs under Miri (each case costs seconds there); no
/// regression file either.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) { 8 } else { 256 },
        failure_persistence: if cfg!(miri) {
            None
        } else {
            ProptestConfig::default().failure_persistence
        },
        rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    }
}

const MAX_OPS: usize = if cfg!(miri) { 24 } else { 200 };

proptest! {
    #![proptest_config(config())]

    #[test]
    fn bump_matches_the_model(ops in proptest::collection::vec(op(), 0..MAX_OPS)) {
        let mut bump = Bump::new();
        for segment in ops.split(|op| matches!(op, Op::Reset)) {
            run_segment(&bump, segment);
            let largest = bump.allocated_bytes();
            bump.reset();
            prop_assert!(bump.chunk_count() <= 1);
            prop_assert!(bump.allocated_bytes() <= largest);
        }
    }
}
