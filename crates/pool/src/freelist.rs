//! The shared free list: a lock-free LIFO of `u32` slot indices.
//!
//! # Shape
//!
//! The stack holds slot *indices*, not pointers. Its head is one
//! [`AtomicU64`] that packs `(tag: u32, index: u32)`; the "next" links live
//! in a separate array of `AtomicU64` link words, one per slot, owned by the
//! segment table ([`Links`]). Metadata is kept apart from the buffers, so a
//! buffer's bytes are never touched by the list and a link word is never
//! overwritten by user data.
//!
//! The list uses a link word only while its slot is free. While a slot is
//! held the word belongs to its holder: a frozen slot counts its views in
//! it (`handle/views.rs`). A stale `pop` may still read such a word as a
//! link; the tag makes its CAS fail, as it does for any stale link, and a
//! stale `pop_chain` walk that meets an index of no published segment
//! starts over.
//!
//! Each link word packs `(depth: u32, next: u32)`, where `depth` is the
//! number of free slots from this node to the bottom of the stack. The depth
//! of the head node is therefore the length of the list, which gives
//! [`Pool::stats`](crate::Pool::stats) an exact in-use count without a
//! shared counter on the hot path.
//!
//! # Why the tag (ABA)
//!
//! A plain Treiber stack of indices fails like this: thread 1 reads head `A`
//! and its next `B`, and is preempted. Thread 2 pops `A`, pops `B` and pushes
//! `A` back. Thread 1's compare-and-swap `A -> B` now succeeds and makes `B`
//! (which thread 2 still owns) the head: one buffer, two owners. Every
//! successful CAS here increments the 32-bit tag, so thread 1's expected
//! value `(t, A)` no longer matches `(t + 3, A)` and its CAS fails.
//!
//! The tag wraps after 2^32 operations on the head. A CAS could only succeed
//! wrongly if one thread were stalled between its load and its CAS for
//! exactly a multiple of 2^32 other operations (over 40 seconds at 100
//! million operations per second, landing on the same index): the standard
//! tagged-word trade-off, accepted by every design of this kind that fits one
//! machine word.
//!
//! There is no memory-reclamation problem: slots never die while the pool
//! lives, so reading the link word of a node that another thread has just
//! popped reads a valid (if stale) atomic, and the tag makes the following
//! CAS fail.
//!
//! # Memory orderings
//!
//! * `push` writes the node's link word (`Relaxed`; the node is owned by the
//!   pusher), then publishes it with a CAS on the head that is `SeqCst` on
//!   success. `SeqCst` is at least `Release`, which is what the list needs:
//!   everything the releasing thread did before (its writes into the buffer,
//!   the link word) happens-before any thread that later acquires the head
//!   value. The extra strength (`Acquire` on success) is for the waiter
//!   protocol: a waiter's [`FreeList::sync`] that comes first in the head's
//!   order then happens-before the push, so the releaser sees the waiter
//!   (see `wait.rs`). It costs nothing on x86, where every locked RMW is a
//!   full barrier.
//! * Loads of the head are `Acquire`, and so are failed CASes. Every
//!   modification of the head is a read-modify-write, so each successful push
//!   heads a release sequence that all later head values continue: loading
//!   any head value synchronises with every push before it. Hence the link
//!   word of the head node, read `Relaxed` after the load, holds at least the
//!   value its pusher wrote; any newer value was written after that node was
//!   popped, which changed the tag, so the CAS that would act on it fails.
//! * A successful `pop` CAS is `Acquire`: the popper sees the previous
//!   owner's writes into the buffer before it hands the buffer out.
//! * `pop_chain` walks several links after one head load. Nodes below the
//!   head were pushed before the head node was, so the same argument covers
//!   them when the snapshot is current. When it is stale the walk may meet an
//!   index from a segment this thread has not seen published yet; then
//!   [`Links::try_link`] says so and the walk starts over. A stale walk never
//!   loops forever: it is bounded by the requested chain length.

use crossbeam_utils::{Backoff, CachePadded};

use crate::sync::AtomicU64;
use crate::sync::Ordering::{Acquire, Relaxed, SeqCst};

/// The index that means "no slot": the end of a chain, or an empty list.
pub(crate) const NIL: u32 = u32::MAX;

/// Packs two halves into a head or link word: `hi` in the upper 32 bits.
#[inline]
pub(crate) const fn pack(hi: u32, lo: u32) -> u64 {
    ((hi as u64) << 32) | lo as u64
}

/// Splits a word made by [`pack`] into `(hi, lo)`.
#[inline]
pub(crate) const fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

/// Where the free list finds the link word of a slot.
pub(crate) trait Links {
    /// The link word of `idx`, or `None` if `idx` lies in a segment that this
    /// thread has not yet seen published (possible only for a stale read).
    fn try_link(&self, idx: u32) -> Option<&AtomicU64>;

    /// The link word of a slot that the caller owns, or that it read from a
    /// head value it loaded with `Acquire`. Its segment is visible then.
    #[inline]
    fn link(&self, idx: u32) -> &AtomicU64 {
        match self.try_link(idx) {
            Some(link) => link,
            None => unreachable!("slot {idx} is owned or at the head, so its segment is published"),
        }
    }
}

/// A run of slots linked through their `next` fields: `first -> ... -> last`.
/// The `next` field of `last` is ignored (a push overwrites it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chain {
    pub(crate) first: u32,
    pub(crate) last: u32,
    pub(crate) len: u32,
}

/// The lock-free LIFO of free slot indices. See the module docs.
pub(crate) struct FreeList {
    /// `pack(tag, top)`; `top == NIL` when empty. Alone on its cache line:
    /// it is the most contended word in the pool.
    head: CachePadded<AtomicU64>,
}

impl FreeList {
    /// An empty list.
    pub(crate) fn new() -> Self {
        Self {
            head: CachePadded::new(AtomicU64::new(pack(0, NIL))),
        }
    }

    /// Pushes one owned slot.
    #[inline]
    pub(crate) fn push<L: Links>(&self, links: &L, idx: u32) {
        let link = links.link(idx);
        let backoff = Backoff::new();
        let mut head = self.head.load(Acquire);
        loop {
            let (tag, top) = unpack(head);
            let below = self.depth_of(links, top);
            link.store(pack(below + 1, top), Relaxed);
            match self.head.compare_exchange_weak(
                head,
                pack(tag.wrapping_add(1), idx),
                SeqCst,
                Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => {
                    head = actual;
                    backoff.spin();
                }
            }
        }
    }

    /// Pushes an owned, pre-linked chain with a single successful CAS.
    pub(crate) fn push_chain<L: Links>(&self, links: &L, chain: Chain) {
        debug_assert!(chain.len >= 1);
        let backoff = Backoff::new();
        let mut head = self.head.load(Acquire);
        loop {
            let (tag, top) = unpack(head);
            let below = self.depth_of(links, top);
            // Rewrite the depths for this attempt; the chain is ours.
            let mut node = chain.first;
            let mut depth = below + chain.len;
            while node != chain.last {
                let link = links.link(node);
                let (_, next) = unpack(link.load(Relaxed));
                link.store(pack(depth, next), Relaxed);
                node = next;
                depth -= 1;
            }
            debug_assert_eq!(depth, below + 1, "chain length does not match its links");
            links.link(chain.last).store(pack(depth, top), Relaxed);
            match self.head.compare_exchange_weak(
                head,
                pack(tag.wrapping_add(1), chain.first),
                SeqCst,
                Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => {
                    head = actual;
                    backoff.spin();
                }
            }
        }
    }

    /// A no-op read-modify-write of the head: orders the caller after every
    /// push that came before it in the head's modification order, and every
    /// push that comes after it after everything the caller did before.
    /// The waiter protocol (`wait.rs`) uses it where a `SeqCst` fence would
    /// do on paper: the RMW is sound under loom's model too.
    pub(crate) fn sync(&self) {
        self.head.fetch_add(0, SeqCst);
    }

    /// Pops one slot.
    #[inline]
    pub(crate) fn pop<L: Links>(&self, links: &L) -> Option<u32> {
        let backoff = Backoff::new();
        let mut head = self.head.load(Acquire);
        loop {
            let (tag, top) = unpack(head);
            if top == NIL {
                return None;
            }
            let (_, next) = unpack(links.link(top).load(Relaxed));
            match self.head.compare_exchange_weak(
                head,
                pack(tag.wrapping_add(1), next),
                Acquire,
                Acquire,
            ) {
                Ok(_) => return Some(top),
                Err(actual) => {
                    head = actual;
                    backoff.spin();
                }
            }
        }
    }

    /// Pops up to `max` slots (at least one if the list is not empty) as a
    /// chain, with a single successful CAS.
    pub(crate) fn pop_chain<L: Links>(&self, links: &L, max: u32) -> Option<Chain> {
        debug_assert!(max >= 1);
        let backoff = Backoff::new();
        let mut head = self.head.load(Acquire);
        'retry: loop {
            let (tag, top) = unpack(head);
            if top == NIL {
                return None;
            }
            let (_, mut next) = unpack(links.link(top).load(Relaxed));
            let mut last = top;
            let mut len = 1;
            while len < max && next != NIL {
                let Some(link) = links.try_link(next) else {
                    // Stale snapshot: `next` is from a segment published
                    // after our head load. Start over.
                    head = self.head.load(Acquire);
                    backoff.spin();
                    continue 'retry;
                };
                last = next;
                next = unpack(link.load(Relaxed)).1;
                len += 1;
            }
            match self.head.compare_exchange_weak(
                head,
                pack(tag.wrapping_add(1), next),
                Acquire,
                Acquire,
            ) {
                Ok(_) => {
                    return Some(Chain {
                        first: top,
                        last,
                        len,
                    });
                }
                Err(actual) => {
                    head = actual;
                    backoff.spin();
                }
            }
        }
    }

    /// The number of free slots: exact whenever no push or pop is in flight.
    pub(crate) fn len<L: Links>(&self, links: &L) -> u32 {
        loop {
            let head = self.head.load(Acquire);
            let depth = self.depth_of(links, unpack(head).1);
            if self.head.load(Acquire) == head {
                return depth;
            }
        }
    }

    /// Depth of `top` (0 for an empty list). `top` must come from a head
    /// value loaded with `Acquire`.
    #[inline]
    fn depth_of<L: Links>(&self, links: &L, top: u32) -> u32 {
        if top == NIL {
            0
        } else {
            unpack(links.link(top).load(Relaxed)).0
        }
    }
}

impl std::fmt::Debug for FreeList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (tag, top) = unpack(self.head.load(Relaxed));
        f.debug_struct("FreeList")
            .field("tag", &tag)
            .field("top", &top)
            .finish()
    }
}

/// A flat array of link words, for tests of the list on its own.
#[cfg(test)]
pub(crate) struct FlatLinks(pub(crate) Vec<AtomicU64>);

#[cfg(test)]
impl FlatLinks {
    /// `n` slots linked `0 -> 1 -> ... -> n-1`, as the chain `0..n`.
    pub(crate) fn chained(n: u32) -> (Self, Chain) {
        let links = (0..n)
            .map(|i| AtomicU64::new(pack(0, if i + 1 < n { i + 1 } else { NIL })))
            .collect();
        (
            Self(links),
            Chain {
                first: 0,
                last: n - 1,
                len: n,
            },
        )
    }
}

#[cfg(test)]
impl Links for FlatLinks {
    fn try_link(&self, idx: u32) -> Option<&AtomicU64> {
        self.0.get(idx as usize)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn drain(list: &FreeList, links: &FlatLinks) -> Vec<u32> {
        std::iter::from_fn(|| list.pop(links)).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 8 } else { 1024 }))]
        #[test]
        fn pack_round_trips(hi: u32, lo: u32) {
            prop_assert_eq!(unpack(pack(hi, lo)), (hi, lo));
        }
    }

    #[test]
    fn lifo_order_and_len() {
        let (links, chain) = FlatLinks::chained(4);
        let list = FreeList::new();
        assert_eq!(list.len(&links), 0);
        assert_eq!(list.pop(&links), None);
        list.push_chain(&links, chain);
        assert_eq!(list.len(&links), 4);
        assert_eq!(list.pop(&links), Some(0));
        assert_eq!(list.pop(&links), Some(1));
        assert_eq!(list.len(&links), 2);
        list.push(&links, 0);
        assert_eq!(list.len(&links), 3);
        assert_eq!(drain(&list, &links), vec![0, 2, 3]);
        assert_eq!(list.len(&links), 0);
    }

    #[test]
    fn chains_pop_and_push_whole() {
        let (links, chain) = FlatLinks::chained(5);
        let list = FreeList::new();
        list.push_chain(&links, chain);
        let taken = list.pop_chain(&links, 3).unwrap();
        assert_eq!(
            taken,
            Chain {
                first: 0,
                last: 2,
                len: 3
            }
        );
        assert_eq!(list.len(&links), 2);
        // Asking for more than is there returns what is there.
        let rest = list.pop_chain(&links, 10).unwrap();
        assert_eq!(
            rest,
            Chain {
                first: 3,
                last: 4,
                len: 2
            }
        );
        assert_eq!(list.pop_chain(&links, 1), None);
        list.push_chain(&links, rest);
        list.push_chain(&links, taken);
        assert_eq!(list.len(&links), 5);
        assert_eq!(drain(&list, &links), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn threads_never_share_a_slot() {
        const SLOTS: u32 = 8;
        let iters = if cfg!(miri) { 50 } else { 20_000 };
        let (links, chain) = FlatLinks::chained(SLOTS);
        let list = FreeList::new();
        list.push_chain(&links, chain);
        let owned: Vec<std::sync::atomic::AtomicBool> =
            (0..SLOTS).map(|_| Default::default()).collect();
        std::thread::scope(|s| {
            for t in 0..3 {
                let (list, links, owned) = (&list, &links, &owned);
                s.spawn(move || {
                    for i in 0..iters {
                        if (i + t) % 3 == 0 {
                            let Some(c) = list.pop_chain(links, 3) else {
                                continue;
                            };
                            let mut node = c.first;
                            let mut got = vec![node];
                            while node != c.last {
                                node = unpack(links.0[node as usize].load(Relaxed)).1;
                                got.push(node);
                            }
                            assert_eq!(got.len() as u32, c.len);
                            for &n in &got {
                                assert!(!owned[n as usize].swap(true, Relaxed), "slot {n} twice");
                            }
                            for &n in &got {
                                owned[n as usize].store(false, Relaxed);
                            }
                            list.push_chain(links, c);
                        } else if let Some(n) = list.pop(links) {
                            assert!(!owned[n as usize].swap(true, Relaxed), "slot {n} twice");
                            owned[n as usize].store(false, Relaxed);
                            list.push(links, n);
                        }
                    }
                });
            }
        });
        let mut all = drain(&list, &links);
        all.sort_unstable();
        assert_eq!(all, (0..SLOTS).collect::<Vec<_>>());
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::sync::{model, thread};
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicBool;

    struct Shared {
        list: FreeList,
        links: FlatLinks,
        owned: Vec<AtomicBool>,
    }

    fn shared(n: u32) -> Arc<Shared> {
        let (links, chain) = FlatLinks::chained(n);
        let list = FreeList::new();
        list.push_chain(&links, chain);
        let owned = (0..n).map(|_| AtomicBool::new(false)).collect();
        Arc::new(Shared { list, links, owned })
    }

    impl Shared {
        fn claim(&self, idx: u32) {
            assert!(
                !self.owned[idx as usize].swap(true, Relaxed),
                "slot {idx} handed out twice"
            );
        }
        fn unclaim(&self, idx: u32) {
            self.owned[idx as usize].store(false, Relaxed);
        }
        fn check_all_free(&self, n: u32) {
            // Bounded, so a corrupted (cyclic) list fails the assertion
            // instead of spinning.
            let mut all: Vec<u32> = (0..=n).map_while(|_| self.list.pop(&self.links)).collect();
            all.sort_unstable();
            assert_eq!(all, (0..n).collect::<Vec<_>>());
        }
        fn chain_nodes(&self, c: Chain) -> Vec<u32> {
            let mut node = c.first;
            let mut nodes = vec![node];
            while node != c.last {
                node = unpack(self.links.0[node as usize].load(Relaxed)).1;
                nodes.push(node);
            }
            assert_eq!(nodes.len() as u32, c.len);
            nodes
        }
    }

    /// Two threads pop and push one slot each, twice; a third pops two and
    /// pushes one back in between: the classic ABA shape.
    #[test]
    fn pop_push_aba() {
        model(|| {
            let s = shared(3);
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let s = s.clone();
                    thread::spawn(move || {
                        for _ in 0..2 {
                            if let Some(i) = s.list.pop(&s.links) {
                                s.claim(i);
                                s.unclaim(i);
                                s.list.push(&s.links, i);
                            }
                        }
                    })
                })
                .collect();
            let a = s.list.pop(&s.links);
            let b = s.list.pop(&s.links);
            for i in [a, b].into_iter().flatten() {
                s.claim(i);
            }
            if let Some(a) = a {
                s.unclaim(a);
                s.list.push(&s.links, a);
            }
            for h in handles {
                h.join().unwrap();
            }
            if let Some(b) = b {
                s.unclaim(b);
                s.list.push(&s.links, b);
            }
            s.check_all_free(3);
        });
    }

    /// Bulk pop and push of chains racing single pops and pushes.
    #[test]
    fn chains_against_singles() {
        model(|| {
            let s = shared(4);
            let t = {
                let s = s.clone();
                thread::spawn(move || {
                    if let Some(c) = s.list.pop_chain(&s.links, 2) {
                        let nodes = s.chain_nodes(c);
                        for &n in &nodes {
                            s.claim(n);
                        }
                        for &n in &nodes {
                            s.unclaim(n);
                        }
                        s.list.push_chain(&s.links, c);
                    }
                })
            };
            for _ in 0..2 {
                if let Some(i) = s.list.pop(&s.links) {
                    s.claim(i);
                    s.unclaim(i);
                    s.list.push(&s.links, i);
                }
            }
            t.join().unwrap();
            assert_eq!(s.list.len(&s.links), 4);
            s.check_all_free(4);
        });
    }

    /// Two threads each take a chain and return it; the depths stay exact.
    #[test]
    fn two_chains() {
        model(|| {
            let s = shared(4);
            let t = {
                let s = s.clone();
                thread::spawn(move || {
                    let c = s.list.pop_chain(&s.links, 2).unwrap();
                    s.chain_nodes(c).iter().for_each(|&n| s.claim(n));
                    s.chain_nodes(c).iter().for_each(|&n| s.unclaim(n));
                    s.list.push_chain(&s.links, c);
                })
            };
            let c = s.list.pop_chain(&s.links, 3).unwrap();
            s.chain_nodes(c).iter().for_each(|&n| s.claim(n));
            s.chain_nodes(c).iter().for_each(|&n| s.unclaim(n));
            s.list.push_chain(&s.links, c);
            t.join().unwrap();
            assert_eq!(s.list.len(&s.links), 4);
            s.check_all_free(4);
        });
    }
}
