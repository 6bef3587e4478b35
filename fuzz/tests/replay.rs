//! Replays every committed fuzz input through the target bodies, on stable
//! and without libFuzzer, so that the targets and their corpus cannot rot
//! between fuzzing runs:
//!
//! * every seed in `corpus/<target>/`, and
//! * every recorded crash in `artifacts-found/<target>-<name>` (the notes
//!   next to them, `*.md`, say what each one found; the bugs are fixed, so
//!   each input must now pass: a regression test).
//!
//! Each input is decoded as `fuzz_target!` decodes it; one the target would
//! reject (it never reaches the body) fails the test, as does a file in
//! `artifacts-found/` that names no target.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use arbitrary::Arbitrary;
use arenapool_fuzz::{bump_ops, decode, pool_ops, slab_ops};

const TARGETS: [&str; 3] = ["pool_ops", "bump_ops", "slab_ops"];

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// The files in `dir`, sorted by name.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// The recorded crash inputs of `target`; panics on one that names no
/// target.
fn artifacts(target: &str) -> Vec<PathBuf> {
    files(&dir("artifacts-found"))
        .into_iter()
        .filter(|p| p.extension().is_none_or(|e| e != "md"))
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            let (owner, _) = name.split_once('-').unwrap_or((name, ""));
            assert!(
                TARGETS.contains(&owner),
                "artifacts-found/{name} names no target (expected <target>-<name>, target one of {TARGETS:?})"
            );
            owner == target
        })
        .collect()
}

/// Runs each input through `run`; fails with the list of inputs that were
/// rejected or failed. Returns how many ran.
fn replay<T: for<'a> Arbitrary<'a>>(target: &str, inputs: &[PathBuf], run: fn(T)) -> usize {
    let mut failures = Vec::new();
    for path in inputs {
        let data = fs::read(path).unwrap();
        let Some(input) = decode::<T>(&data) else {
            failures.push(format!("{}: rejected by {target}", path.display()));
            continue;
        };
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| run(input))) {
            let msg = e
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| e.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            failures.push(format!("{}: {msg}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs failed:\n{}",
        failures.len(),
        inputs.len(),
        failures.join("\n")
    );
    inputs.len()
}

fn replay_target<T: for<'a> Arbitrary<'a>>(target: &str, run: fn(T)) {
    let seeds = files(&dir("corpus").join(target));
    assert!(!seeds.is_empty(), "corpus/{target}/ has no seeds");
    let crashes = artifacts(target);
    replay(target, &seeds, run);
    replay(target, &crashes, run);
    eprintln!(
        "{target}: {} seeds and {} recorded crashes replayed",
        seeds.len(),
        crashes.len()
    );
}

#[test]
fn pool_ops_corpus() {
    replay_target("pool_ops", pool_ops::run);
}

#[test]
fn bump_ops_corpus() {
    replay_target("bump_ops", bump_ops::run);
}

#[test]
fn slab_ops_corpus() {
    replay_target("slab_ops", slab_ops::run);
}

/// Every file in `artifacts-found/` belongs to a target (or is a note).
#[test]
fn every_artifact_names_a_target() {
    let n: usize = TARGETS.iter().map(|t| artifacts(t).len()).sum();
    assert!(n > 0, "artifacts-found/ holds no inputs");
}
