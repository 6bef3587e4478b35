//! Arena backings: every backing builds pools whose buffers are aligned,
//! zeroed and writable, grows, and reports what it obtained; huge pages
//! and `mlock` degrade or fail as configured. The unprivileged `mlock`
//! limits are tested for real in a child process with a lowered
//! `RLIMIT_MEMLOCK` (and, when run as root, uid and gid 65534).

use arenapool::{Backing, BackingReport, BuildError, Fallback, Pages, Pool, Shortfall, Step};

#[path = "support/skip.rs"]
mod skip;

const BACKINGS: [Backing; 4] = [
    Backing::Heap,
    Backing::Mmap,
    Backing::TransparentHugePages,
    Backing::HugeTlb,
];

const ENOMEM: i32 = 12;

/// Takes every buffer, checks each is aligned and zeroed, fills it with a
/// pattern of its own and checks no buffer overwrote another.
fn touch_all(pool: &Pool) {
    let cap = pool.stats().max_capacity;
    let mut bufs: Vec<_> = (0..cap).map_while(|_| pool.try_acquire()).collect();
    assert_eq!(bufs.len(), cap, "{:?}", pool.stats());
    for (i, b) in bufs.iter_mut().enumerate() {
        let full = b.as_full_mut();
        assert_eq!(full.len(), pool.buffer_size());
        assert_eq!(full.as_ptr().addr() % pool.alignment(), 0);
        assert!(full.iter().all(|&x| x == 0), "buffer {i} not zeroed");
        full.fill(i as u8);
    }
    for (i, b) in bufs.iter_mut().enumerate() {
        assert!(b.as_full_mut().iter().all(|&x| x == i as u8), "buffer {i}");
    }
}

/// A field of `/proc/meminfo` (0 if absent).
fn meminfo(name: &str) -> usize {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
}

/// Whether the administrator reserved any huge pages (`vm.nr_hugepages`).
/// Without, `MAP_HUGETLB` must fail; with, tests running beside each other
/// take and give back pages, so either outcome is possible and each is
/// checked for consistency.
fn huge_pages_reserved() -> bool {
    meminfo("HugePages_Total:") > 0
}

/// Checks a `HugeTlb` report: huge pages, or the reported fallback.
fn check_huge_tlb(r: &BackingReport) {
    match r.obtained {
        Pages::Huge => assert!(r.is_complete(), "{r}"),
        Pages::Small => {
            assert_eq!(
                r.shortfalls,
                [Shortfall {
                    step: Step::MmapHugeTlb,
                    errno: Some(ENOMEM)
                }],
                "{r}"
            );
            assert!(
                r.to_string().starts_with(
                    "huge pages requested, not available (mmap MAP_HUGETLB: ENOMEM): \
                     fell back to 4 KiB pages (mmap)"
                ),
                "{r}"
            );
        }
        _ => panic!("HugeTlb gave {r}"),
    }
    if !huge_pages_reserved() {
        assert_eq!(r.obtained, Pages::Small, "{r}");
    }
}

fn thp_never() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|s| s.contains("[never]"))
}

/// What a Linux pool of `backing` (not `HugeTlb`) without locking must
/// report.
fn expected_pages(backing: Backing) -> Pages {
    match backing {
        Backing::Heap => Pages::Heap,
        Backing::Mmap => Pages::Small,
        Backing::TransparentHugePages if thp_never() => Pages::Small,
        Backing::TransparentHugePages => Pages::HugeAdvised,
        _ => unreachable!("{backing:?}"),
    }
}

#[test]
fn heap_is_the_default_and_reports_itself() {
    let pool = Pool::builder()
        .buffer_size(100)
        .capacity(8)
        .build()
        .unwrap();
    touch_all(&pool);
    let r = pool.backing();
    assert_eq!(r.requested, Backing::Heap);
    assert_eq!(r.obtained, Pages::Heap);
    assert!(!r.lock_requested && !r.locked && r.is_complete());
    assert_eq!(r.segments, 1);
    assert_eq!(r.to_string(), "the heap (global allocator), not locked");
}

#[test]
fn lock_memory_on_the_heap_is_a_config_error() {
    let err = Pool::builder().lock_memory(true).build().unwrap_err();
    assert_eq!(err, BuildError::LockHeap);
    assert!(
        err.to_string()
            .contains("lock_memory needs a mapped backing")
    );
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot run mmap or madvise")]
fn every_backing_gives_aligned_zeroed_writable_buffers() {
    for backing in BACKINGS {
        for (size, align, cap) in [(4096, 4096, 64), (100, 64, 300), (1, 1, 5)] {
            let pool = Pool::builder()
                .buffer_size(size)
                .alignment(align)
                .capacity(cap)
                .cache_size(0)
                .backing(backing)
                .build()
                .unwrap();
            touch_all(&pool);
            let r = pool.backing();
            assert_eq!((r.requested, r.segments), (backing, 1));
            if cfg!(target_os = "linux") {
                if backing == Backing::HugeTlb {
                    check_huge_tlb(&r);
                } else {
                    assert_eq!(r.obtained, expected_pages(backing), "{r}");
                }
            }
        }
    }
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot run mmap or madvise")]
fn growth_maps_every_segment_with_the_same_request() {
    for backing in BACKINGS {
        let pool = Pool::builder()
            .buffer_size(4096)
            .alignment(4096)
            .capacity(3)
            .grow_to(40)
            .cache_size(0)
            .backing(backing)
            .build()
            .unwrap();
        touch_all(&pool); // grows 3 -> 6 -> 12 -> 24 -> 40
        let stats = pool.stats();
        assert_eq!((stats.capacity, stats.segments), (40, 5));
        let r = pool.backing();
        assert_eq!(r.segments, 5, "{backing:?}");
        assert_eq!(r.requested, backing);
        if cfg!(target_os = "linux") && backing == Backing::HugeTlb {
            // Reserved huge pages may run out part-way: the weakest
            // segment and its reason are reported.
            check_huge_tlb(&r);
        } else if cfg!(target_os = "linux") {
            assert_eq!(r.obtained, expected_pages(backing), "{r}");
            assert_eq!(
                r.is_complete(),
                !(backing == Backing::TransparentHugePages && thp_never())
            );
        }
    }
}

#[test]
#[cfg(target_os = "linux")]
#[cfg_attr(miri, ignore = "Miri cannot run mmap or madvise")]
fn mmap_and_thp_report_what_they_got() {
    let pool = Pool::builder().backing(Backing::Mmap).build().unwrap();
    let r = pool.backing();
    assert_eq!((r.obtained, r.locked), (Pages::Small, false));
    assert!(r.is_complete());
    assert_eq!(r.to_string(), "4 KiB pages (mmap), not locked");

    let pool = Pool::builder()
        .capacity(512) // 2 MiB
        .backing(Backing::TransparentHugePages)
        .build()
        .unwrap();
    let r = pool.backing();
    if thp_never() {
        assert_eq!(r.obtained, Pages::Small);
        assert_eq!(
            r.shortfalls,
            [Shortfall {
                step: Step::ThpDisabled,
                errno: None
            }]
        );
        assert!(
            r.to_string()
                .starts_with("transparent huge pages requested, not available")
        );
        let strict = Pool::builder()
            .backing(Backing::TransparentHugePages)
            .on_backing_unavailable(Fallback::Fail)
            .build();
        assert!(matches!(
            strict,
            Err(BuildError::BackingUnavailable(Shortfall {
                step: Step::ThpDisabled,
                ..
            }))
        ));
    } else {
        assert_eq!(r.obtained, Pages::HugeAdvised, "{r}");
        assert!(r.is_complete());
        assert_eq!(
            r.to_string(),
            "transparent huge pages advised (the kernel decides per page), not locked"
        );
        // THP is enabled (`always` or `madvise`) and the region is one
        // aligned 2 MiB extent: the first touch faults in a huge page.
        let mut bufs: Vec<_> = (0..512).map_while(|_| pool.try_acquire()).collect();
        assert_eq!(bufs.len(), 512);
        for b in &mut bufs {
            b.as_full_mut()[0] = 1;
        }
        let base = bufs
            .iter_mut()
            .map(|b| b.as_full_mut().as_ptr().addr())
            .min()
            .unwrap();
        let huge = anon_huge_kib(base);
        assert!(
            huge.is_some_and(|kib| kib > 0),
            "THP is enabled ({}), but the kernel backed the advised region at {base:#x} \
             with no huge page: AnonHugePages {huge:?} kB (defrag: {})",
            thp_setting("enabled"),
            thp_setting("defrag"),
        );
    }
}

/// A setting under `/sys/kernel/mm/transparent_hugepage/` (the whole
/// line, the chosen value in brackets).
fn thp_setting(name: &str) -> String {
    std::fs::read_to_string(format!("/sys/kernel/mm/transparent_hugepage/{name}"))
        .map_or_else(|e| e.to_string(), |s| s.trim().to_string())
}

/// `AnonHugePages` (kB) of the `/proc/self/smaps` entry holding `addr`.
fn anon_huge_kib(addr: usize) -> Option<usize> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ')
            && let Some((lo, hi)) = range.split_once('-')
            && let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
        {
            inside = (lo..hi).contains(&addr);
        } else if inside && let Some(v) = line.strip_prefix("AnonHugePages:") {
            return v.trim().strip_suffix("kB")?.trim().parse().ok();
        }
    }
    None
}

/// A `HugeTlb` pool of `pages` huge pages (4 KiB buffers).
fn huge_tlb_pool(pages: usize, fallback: Fallback) -> Result<Pool, BuildError> {
    Pool::builder()
        .buffer_size(4096)
        .alignment(4096)
        .capacity(pages * HUGE_PAGE / 4096)
        .backing(Backing::HugeTlb)
        .on_backing_unavailable(fallback)
        .build()
}

const HUGE_PAGE: usize = 2 << 20;

#[test]
#[cfg(target_os = "linux")]
#[cfg_attr(miri, ignore = "Miri cannot run mmap")]
fn huge_tlb_degrades_or_fails_beyond_the_reserved_pages() {
    // More huge pages than the kernel has or may add (surplus pages, up
    // to `vm.nr_overcommit_hugepages`): `MAP_HUGETLB` fails, whatever the
    // tests beside this one hold. Two when none are reserved.
    let overcommit: usize = std::fs::read_to_string("/proc/sys/vm/nr_overcommit_hugepages")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let pages = (meminfo("HugePages_Total:") + overcommit + 1).max(2);
    if pages > 64 {
        skip::skip(format_args!(
            "the HugeTlb fallback: {pages} huge pages would be needed to exceed what the kernel has"
        ));
        return;
    }
    let pool = huge_tlb_pool(pages, Fallback::Degrade).unwrap();
    touch_all(&pool);
    let r = pool.backing();
    assert_eq!(r.obtained, Pages::Small, "{r}");
    check_huge_tlb(&r);
    assert_eq!(
        r.to_string(),
        "huge pages requested, not available (mmap MAP_HUGETLB: ENOMEM): \
         fell back to 4 KiB pages (mmap), not locked"
    );
    drop(pool);
    let err = huge_tlb_pool(pages, Fallback::Fail).unwrap_err();
    assert_eq!(
        err,
        BuildError::BackingUnavailable(Shortfall {
            step: Step::MmapHugeTlb,
            errno: Some(ENOMEM)
        })
    );
    assert_eq!(
        err.to_string(),
        "the requested arena backing is not available: mmap MAP_HUGETLB: ENOMEM"
    );
}

#[test]
#[cfg(target_os = "linux")]
#[cfg_attr(miri, ignore = "Miri cannot run mmap")]
fn huge_tlb_maps_reserved_huge_pages() {
    // .ci/run reserves a few (`vm.nr_hugepages`) for this.
    if !huge_pages_reserved() {
        skip::skip("no huge pages are reserved (vm.nr_hugepages is 0): the HugeTlb success path");
        return;
    }
    let pool = huge_tlb_pool(1, Fallback::Degrade).unwrap();
    touch_all(&pool);
    check_huge_tlb(&pool.backing());
    drop(pool);
    match huge_tlb_pool(1, Fallback::Fail) {
        Ok(pool) => {
            touch_all(&pool);
            let r = pool.backing();
            assert_eq!(r.obtained, Pages::Huge, "{r}");
            assert_eq!(r.to_string(), "2 MiB huge pages (MAP_HUGETLB), not locked");
        }
        Err(e) => {
            // Only when the free huge pages ran out (taken by the tests
            // beside this one).
            assert_eq!(
                e,
                BuildError::BackingUnavailable(Shortfall {
                    step: Step::MmapHugeTlb,
                    errno: Some(ENOMEM)
                })
            );
            let free = meminfo("HugePages_Free:");
            skip::skip(format_args!(
                "the reserved huge pages ran out ({free} free now): the HugeTlb success path"
            ));
        }
    }
}

#[test]
#[cfg(target_os = "linux")]
#[cfg_attr(miri, ignore = "Miri cannot run mlock")]
fn lock_memory_locks_a_small_mapped_pool() {
    // 1 MiB: within the usual unprivileged RLIMIT_MEMLOCK (8 MiB) too.
    for backing in [Backing::Mmap, Backing::TransparentHugePages] {
        let pool = Pool::builder()
            .capacity(256)
            .grow_to(512)
            .cache_size(0)
            .backing(backing)
            .lock_memory(true)
            .on_backing_unavailable(Fallback::Fail)
            .build()
            .unwrap();
        touch_all(&pool);
        let r = pool.backing();
        assert!(r.lock_requested && r.locked, "{r}");
        assert_eq!(r.segments, 2);
        assert!(r.to_string().ends_with(", locked"), "{r}");
    }
}

/// Marks the re-executed test binary as the unprivileged child.
const CHILD: &str = "ARENAPOOL_TEST_MLOCK_CHILD";
const LIMIT: u64 = 8 << 20;

#[test]
#[cfg(target_os = "linux")]
#[cfg_attr(miri, ignore = "Miri cannot spawn processes or run mlock")]
fn mlock_respects_rlimit_memlock_when_unprivileged() {
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    use rustix::process::{Resource, Rlimit, getrlimit, getuid, setrlimit};

    if std::env::var_os(CHILD).is_some() {
        return unprivileged_child();
    }
    let exe = std::env::current_exe().unwrap();
    let root = getuid().is_root();
    // As root the child runs as nobody, who may not reach the test binary
    // (a target directory under root's 0700 home): run a copy from a
    // fresh directory that everyone can read.
    let copy = root.then(|| ExeCopy::new(&exe));
    let exe = copy.as_ref().map_or(exe, |c| c.exe.clone());
    let mut cmd = Command::new(&exe);
    cmd.args([
        "mlock_respects_rlimit_memlock_when_unprivileged",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD, "1");
    if root {
        // As root, CAP_IPC_LOCK ignores the limit: drop to nobody. std
        // calls setgroups(0) before setuid when it drops root.
        cmd.uid(65534).gid(65534);
    }
    // Lowering a limit is always allowed; never ask for more than the
    // hard limit we have.
    let hard = getrlimit(Resource::Memlock).maximum.unwrap_or(u64::MAX);
    let limit = LIMIT.min(hard);
    assert_eq!(limit, LIMIT, "the hard RLIMIT_MEMLOCK is below 8 MiB here");
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe work is allowed. It makes one raw system call
    // (`setrlimit`, through rustix's syscall wrapper: no allocation, no
    // lock, no I/O buffer), and on error converts a `Copy` errno into an
    // `io::Error` holding a plain OS code, which does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            let lim = Rlimit {
                current: Some(limit),
                maximum: Some(limit),
            };
            setrlimit(Resource::Memlock, lim).map_err(std::io::Error::from)
        });
    }
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            // Even the copy: the temporary directory is private, or
            // mounted noexec.
            skip::skip(format_args!(
                "the unprivileged mlock child: cannot execute {} as nobody: {e}",
                exe.display()
            ));
            return;
        }
        Err(e) => panic!("spawning {}: {e}", exe.display()),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("child: all checks passed") && stdout.contains("1 passed"),
        "the child did not run the checks:\n{stdout}\n{stderr}"
    );
    // libtest may print "test <name> ... " in front of the first line.
    for line in stdout
        .lines()
        .filter_map(|l| l.find("child").map(|i| &l[i..]))
    {
        println!("{line}");
    }
}

/// A copy of the test binary in a new directory of mode 0755 under the
/// temporary directory, removed on drop.
#[cfg(target_os = "linux")]
struct ExeCopy {
    dir: std::path::PathBuf,
    exe: std::path::PathBuf,
}

#[cfg(target_os = "linux")]
impl ExeCopy {
    fn new(exe: &std::path::Path) -> Self {
        use std::fs::{self, Permissions};
        use std::os::unix::fs::PermissionsExt;

        let dir = std::env::temp_dir().join(format!("arenapool-mlock-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        let copy = dir.join(exe.file_name().unwrap());
        fs::copy(exe, &copy).unwrap();
        fs::set_permissions(&copy, Permissions::from_mode(0o755)).unwrap();
        Self { dir, exe: copy }
    }
}

#[cfg(target_os = "linux")]
impl Drop for ExeCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs with RLIMIT_MEMLOCK = 8 MiB and without CAP_IPC_LOCK.
#[cfg(target_os = "linux")]
fn unprivileged_child() {
    let locked = |buffers: usize, fallback| {
        Pool::builder()
            .buffer_size(4096)
            .alignment(4096)
            .capacity(buffers)
            .cache_size(0)
            .backing(Backing::Mmap)
            .lock_memory(true)
            .on_backing_unavailable(fallback)
    };
    let lock_errnos = [1, 11, ENOMEM]; // EPERM, EAGAIN, ENOMEM

    // 4 MiB fits the limit.
    let small = locked(1024, Fallback::Fail).build().unwrap();
    let r = small.backing();
    assert!(r.locked && r.is_complete(), "{r}");
    assert_eq!(r.to_string(), "4 KiB pages (mmap), locked");
    touch_all(&small);
    drop(small);

    // 64 MiB does not: Degrade builds it unlocked and says why.
    let big = locked(16 << 10, Fallback::Degrade).build().unwrap();
    let r: BackingReport = big.backing();
    assert_eq!((r.obtained, r.locked), (Pages::Small, false), "{r}");
    assert_eq!(r.shortfalls.len(), 1, "{r}");
    let s = r.shortfalls[0];
    assert_eq!(s.step, Step::Mlock);
    assert!(lock_errnos.contains(&s.errno.unwrap_or(0)), "{r}");
    let shown = r.to_string();
    println!("child report, 64 MiB locked, Degrade: {shown}");
    assert!(
        shown.starts_with("4 KiB pages (mmap); mlock failed (mlock: E")
            && shown.ends_with("): not locked"),
        "{shown}"
    );
    drop(big);

    // ... and Fail refuses it.
    match locked(16 << 10, Fallback::Fail).build() {
        Err(BuildError::BackingUnavailable(Shortfall {
            step: Step::Mlock,
            errno: Some(e),
        })) => {
            assert!(lock_errnos.contains(&e))
        }
        other => panic!("expected an mlock error, got {other:?}"),
    }

    // Growth under Fail stops at the limit; the pool keeps serving. 1 MiB
    // segments: 1 + 1 + 2 + 4 = 8 MiB lock, the next (8 MiB) cannot.
    let pool = locked(256, Fallback::Fail).grow_to(8192).build().unwrap();
    let held: Vec<_> = (0..8192).map_while(|_| pool.try_acquire()).collect();
    let stats = pool.stats();
    assert_eq!(
        (held.len(), stats.capacity, stats.segments),
        (2048, 2048, 4)
    );
    assert_eq!(stats.failed_acquires, 1);
    let r = pool.backing();
    assert!(r.locked && r.is_complete() && r.segments == 4, "{r}");
    drop(held);
    assert!(pool.try_acquire().is_some(), "the pool keeps serving");
    drop(pool);

    // Growth under Degrade goes on, unlocked, and the report says so.
    let pool = locked(256, Fallback::Degrade)
        .grow_to(8192)
        .build()
        .unwrap();
    let held: Vec<_> = (0..8192).map_while(|_| pool.try_acquire()).collect();
    assert_eq!(held.len(), 8192);
    let r = pool.backing();
    assert_eq!((r.segments, r.locked), (6, false), "{r}");
    assert!(r.shortfalls.iter().all(|s| s.step == Step::Mlock), "{r}");
    println!("child report, grown under Degrade: {r}");
    println!("child: all checks passed");
}
