//! `Slab`: values' destructors in `retain`, `clear`, a dropped `Drain`,
//! drop and a failed `insert`, and the closures and impls it calls
//! (`retain`'s predicate, `Extend`'s iterator, `T::clone`).

use std::sync::Arc;

use arenapool_alloc::{Key, Slab};

use super::{Log, Probe, REFUSE_NEXT, panics, probe};

fn probes(log: &Arc<Log>, n: usize, panicking: usize) -> (Slab<Probe>, Vec<Key>) {
    let mut slab = Slab::new();
    let keys = (0..n)
        .map(|id| slab.insert(probe(log, id, id == panicking)))
        .collect();
    (slab, keys)
}

/// Checks `slab` holds exactly the probes `ids` under `keys[id]`, and that
/// the other keys are stale.
fn holds(slab: &Slab<Probe>, keys: &[Key], ids: &[usize]) {
    assert_eq!(slab.len(), ids.len());
    assert_eq!(slab.iter().len(), ids.len());
    for (id, &k) in keys.iter().enumerate() {
        match slab.get(k) {
            Some(p) => assert!(
                ids.contains(&id) && p.id == id,
                "key of {id} reads {}",
                p.id
            ),
            None => assert!(
                !ids.contains(&id),
                "key of {id} is stale but its value is kept"
            ),
        }
    }
    let seen: Vec<usize> = slab.iter().map(|(_, p)| p.id).collect();
    assert_eq!(seen, ids);
}

#[test]
fn retain_with_a_predicate_that_panics_midway() {
    let log = Log::new(6);
    let (mut slab, keys) = probes(&log, 6, usize::MAX);
    // Removes 0 and 2, panics at 3: 3.. are kept untouched.
    let retained = panics(|| {
        slab.retain(|_, p| {
            assert!(p.id < 3, "predicate panics at {}", p.id);
            p.id % 2 == 1
        })
    });
    assert!(retained);
    assert_eq!(log.counts(), [1, 0, 1, 0, 0, 0]);
    holds(&slab, &keys, &[1, 3, 4, 5]);
    let k = slab.insert(probe(&log, 0, false));
    assert!(k != keys[0] && k != keys[2], "a stale key was issued again");
    drop(slab);
    assert_eq!(log.counts(), [2, 1, 1, 1, 1, 1]);
}

#[test]
fn retain_when_a_removed_value_panics_in_its_destructor() {
    let log = Log::new(5);
    let (mut slab, keys) = probes(&log, 5, 2);
    assert!(panics(|| slab.retain(|_, p| p.id == 1)));
    // 0 and 2 are removed; the panic stops the walk, 3 and 4 stay.
    assert_eq!(log.counts(), [1, 0, 1, 0, 0]);
    holds(&slab, &keys, &[1, 3, 4]);
    slab.retain(|_, p| p.id == 1);
    holds(&slab, &keys, &[1]);
    drop(slab);
    assert_eq!(log.counts(), [1; 5]);
}

#[test]
fn clear_drops_every_other_value_when_a_destructor_panics() {
    let log = Log::new(5);
    let (mut slab, keys) = probes(&log, 5, 1);
    assert!(panics(|| slab.clear()));
    assert_eq!(log.counts(), [1; 5]);
    holds(&slab, &keys, &[]);
    let k = slab.insert(probe(&log, 0, false));
    assert!(!keys.contains(&k));
    drop(slab);
    assert_eq!(log.counts(), [2, 1, 1, 1, 1]);
}

#[test]
fn a_dropped_drain_drops_every_other_value_when_a_destructor_panics() {
    let log = Log::new(5);
    let (mut slab, keys) = probes(&log, 5, 3);
    let drained = panics(|| {
        let mut d = slab.drain();
        let first = d.next().map(|p| p.id);
        assert_eq!(first, Some(0));
        drop(d); // drops 1..5; 3 panics
    });
    assert!(drained);
    assert_eq!(log.counts(), [1; 5]);
    holds(&slab, &keys, &[]);
    // The free list is whole and in index order again.
    let idx: Vec<u32> = (0..6)
        .map(|id| slab.insert(probe(&log, id % 5, false)).index())
        .collect();
    assert_eq!(idx, [0, 1, 2, 3, 4, 5]);
    drop(slab);
    assert_eq!(log.counts(), [3, 2, 2, 2, 2]);
}

#[test]
fn dropping_the_slab_drops_every_other_value_when_a_destructor_panics() {
    let log = Log::new(5);
    let (mut slab, keys) = probes(&log, 5, 2);
    slab.remove(keys[4]);
    assert!(panics(move || drop(slab)));
    assert_eq!(log.counts(), [1; 5]);
}

#[test]
fn a_slab_of_slabs_whose_inner_value_panics() {
    let log = Log::new(6);
    let mut outer: Slab<Slab<Probe>> = Slab::new();
    let mut keys = Vec::new();
    for s in 0..3 {
        let mut inner = Slab::new();
        for j in 0..2 {
            let id = s * 2 + j;
            inner.insert(probe(&log, id, id == 3));
        }
        keys.push(outer.insert(inner));
    }
    let removed = outer.remove(keys[0]).expect("live key");
    drop(removed);
    assert_eq!(log.counts(), [1, 1, 0, 0, 0, 0]);
    assert!(panics(|| outer.clear()));
    assert_eq!(log.counts(), [1; 6]);
    assert!(outer.is_empty() && keys.iter().all(|&k| outer.get(k).is_none()));
}

#[test]
fn a_panicking_clone_or_extend_leaves_the_slab_as_it_was_or_as_far_as_it_got() {
    let log = Log::new(4);
    let (slab, keys) = probes(&log, 4, 2);
    // `Probe::clone` panics for probe 2: the partial copy is dropped, the
    // original untouched.
    assert!(panics(|| drop(slab.clone())));
    assert_eq!(
        log.counts(),
        [1, 1, 0, 0],
        "the clones of 0 and 1 were dropped"
    );
    holds(&slab, &keys, &[0, 1, 2, 3]);

    let mut plain: Slab<u32> = Slab::new();
    let extended =
        panics(|| plain.extend((0..10).inspect(|i| assert!(*i < 4, "the iterator panics at {i}"))));
    assert!(extended);
    assert_eq!(plain.len(), 4);
    assert!(plain.iter().map(|(_, &v)| v).eq(0..4));
    // Let probe 2 be dropped without panicking, for the counts.
    let mut slab = slab;
    let mut p2 = slab.remove(keys[2]).expect("live key");
    p2.panics = false;
    drop((p2, slab));
    assert_eq!(log.counts(), [2, 2, 1, 1]);
}

/// `Slab::insert` drops the value before it fails: a destructor that
/// panics there cannot panic during the crate's own unwind (which would
/// abort). Out of memory, `insert` aborts as documented (it used to panic);
/// the abort is seen from a child process.
#[test]
#[cfg_attr(miri, ignore = "spawns a process")]
fn insert_aborts_when_memory_runs_out() {
    use std::os::unix::process::ExitStatusExt;
    const CHILD: &str = "ARENAPOOL_ALLOC_USER_CODE_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let mut slab = Slab::new();
        REFUSE_NEXT.with(|r| r.set(true));
        let k = slab.insert(5u64);
        println!("insert returned {k:?}");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "slab::insert_aborts_when_memory_runs_out",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("run the child");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(6),
        "insert out of memory did not abort (SIGABRT): {}; stdout:\n{}\nstderr:\n{stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
    );
    assert!(stderr.contains("memory allocation of"), "stderr:\n{stderr}");
}
