//! What runs on the other thread of a hand-off.

use std::cell::RefCell;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::{MAX_EXITS, MAX_HANDOFFS};
use crate::pattern;

/// The part of [`Op::SendToThread`] that runs on the other thread: checks
/// the handle's bytes, maybe appends, then drops it there or sends it back,
/// with the model's view of its slot either way. `(off, rcap)` is the
/// handle's region of the slot.
pub(super) fn on_thread<H>(
    mut b: H,
    mut slot: Vec<u8>,
    mut len: usize,
    (off, rcap): (usize, usize),
    write: Option<(u16, u8)>,
    back: bool,
) -> (Option<H>, Vec<u8>, usize)
where
    H: std::ops::DerefMut<Target = [u8]> + Write + Send,
{
    assert!(
        b[..] == slot[off..off + len],
        "bytes changed on the way to another thread"
    );
    if let Some((n, seed)) = write {
        let data = pattern(seed, usize::from(n) % (rcap + 1));
        let n = b.write(data).unwrap();
        assert_eq!(n, data.len().min(rcap - len));
        slot[off + len..off + len + n].copy_from_slice(&data[..n]);
        len += n;
        assert!(b[..] == slot[off..off + len]);
    }
    if back {
        (Some(b), slot, len)
    } else {
        drop(b);
        (None, slot, len)
    }
}

/// A job for the worker: a closure on the stack of the thread that sent it,
/// its lifetime erased (see [`run_on`]).
struct Job(*mut (dyn FnMut() + Send + 'static));

// SAFETY: the closure behind the pointer is `Send`; the pointer is used
// only by the worker, while the sender waits for it (see `run_on`).
unsafe impl Send for Job {}

/// The other thread of the hand-offs: one thread that runs closures sent to
/// it, one at a time, while the sender waits.
///
/// It lives as long as the fuzzing thread and serves every run: spawning a
/// thread costs about 150 us under AddressSanitizer here, more than the
/// rest of a typical run. So it keeps its thread-local cache of a run's
/// pool between that run's hand-offs, and the fuzzing thread steals from a
/// live cache. Its thread-local entry for a pool outlives the pool until
/// the worker uses the cache of a later run's pool, as the fuzzing thread's
/// does: a run can then allocate more than it frees, and libFuzzer runs
/// it again to see whether it leaks; the second run is balanced (the
/// stable test `tests/alloc_balance.rs` checks this for the corpus), so no
/// leak check is made and libFuzzer's leak checks stay on (it turns them
/// off after 1000 runs that allocate more than they free twice in a row).
///
/// [`Worker::exit`] ends the thread early, handing its cache back to the
/// pool as a thread exit does, and starts another, at most [`MAX_EXITS`]
/// times per run.
///
/// A hand-off allocates nothing: the sender passes a pointer to a closure
/// on its own stack through a mailbox (a mutex and a condition variable,
/// which allocate nothing to wait), and waits there for the reply.
pub(super) struct Worker {
    thread: Option<Thread>,
    exits: usize,
    handoffs: usize,
}

/// What the mailbox holds.
enum Mail {
    Empty,
    Job(Job),
    Done,
    Quit,
}

struct Mailbox {
    mail: Mutex<Mail>,
    changed: Condvar,
}

impl Mailbox {
    fn lock(&self) -> MutexGuard<'_, Mail> {
        // A job's panic is caught inside it, never with the lock held.
        self.mail.lock().expect("the worker's mailbox")
    }

    fn post(&self, mut guard: MutexGuard<'_, Mail>, mail: Mail) {
        *guard = mail;
        drop(guard);
        self.changed.notify_all();
    }
}

struct Thread {
    mailbox: Arc<Mailbox>,
    handle: JoinHandle<()>,
}

impl Thread {
    fn spawn() -> Self {
        let mailbox = Arc::new(Mailbox {
            mail: Mutex::new(Mail::Empty),
            changed: Condvar::new(),
        });
        let theirs = Arc::clone(&mailbox);
        let handle = std::thread::Builder::new()
            .name("pool_ops worker".into())
            .spawn(move || serve(&theirs))
            .expect("spawn the worker thread");
        let thread = Thread { mailbox, handle };
        // Wait until it runs, so that what it allocates to start (its
        // thread-locals) is allocated now, not during some later run.
        run_on(&thread, || ());
        thread
    }

    fn join(self) {
        let guard = self.mailbox.lock();
        self.mailbox.post(guard, Mail::Quit);
        // Jobs catch their panics, so the thread itself cannot panic.
        self.handle.join().expect("the worker thread exits cleanly");
    }
}

/// The worker thread: runs each job posted, replies `Done`, until `Quit`.
fn serve(mailbox: &Mailbox) {
    let mut guard = mailbox.lock();
    loop {
        match std::mem::replace(&mut *guard, Mail::Empty) {
            Mail::Job(job) => {
                drop(guard);
                // SAFETY: the sender keeps the closure alive, and does not
                // touch it, until this thread posts `Done` (see `run_on`).
                unsafe { (*job.0)() };
                mailbox.post(mailbox.lock(), Mail::Done);
                guard = mailbox.lock();
            }
            Mail::Quit => return,
            other => {
                *guard = other;
                guard = mailbox.changed.wait(guard).expect("the worker's mailbox");
            }
        }
    }
}

/// Runs `f` on `thread` and returns what it returns; a panic there is
/// resumed here.
fn run_on<R: Send>(thread: &Thread, f: impl FnOnce() -> R + Send) -> R {
    let mut f = Some(f);
    let mut out = None;
    let mut call = || {
        let f = f.take().expect("a job runs once");
        out = Some(panic::catch_unwind(AssertUnwindSafe(f)));
    };
    let call: &mut (dyn FnMut() + Send + '_) = &mut call;
    // SAFETY: only the lifetime changes. The worker calls the closure once
    // and then posts `Done`; this function waits for that before it
    // returns (or touches the closure, or what the closure borrows), and
    // the closure catches any panic, so the worker always gets there.
    let job = Job(unsafe {
        std::mem::transmute::<*mut (dyn FnMut() + Send + '_), *mut (dyn FnMut() + Send + 'static)>(
            call,
        )
    });
    let mailbox = &*thread.mailbox;
    let guard = mailbox.lock();
    mailbox.post(guard, Mail::Job(job));
    let mut guard = mailbox.lock();
    while !matches!(*guard, Mail::Done) {
        guard = mailbox.changed.wait(guard).expect("the worker's mailbox");
    }
    *guard = Mail::Empty;
    drop(guard);
    match out.expect("the worker ran the job") {
        Ok(r) => r,
        Err(payload) => panic::resume_unwind(payload),
    }
}

thread_local! {
    static WORKER: RefCell<Worker> = const {
        RefCell::new(Worker { thread: None, exits: 0, handoffs: 0 })
    };
}

impl Worker {
    /// Runs `f` with this thread's worker, for one run.
    pub(super) fn with<R>(f: impl FnOnce(&mut Worker) -> R) -> R {
        WORKER.with_borrow_mut(|w| {
            w.exits = 0;
            w.handoffs = 0;
            f(w)
        })
    }

    /// Whether the next hand-off goes to the worker thread: the first
    /// [`MAX_HANDOFFS`] of a run do, later ones run on the fuzzing thread.
    pub(super) fn handoff(&mut self) -> bool {
        self.handoffs += 1;
        self.handoffs <= MAX_HANDOFFS
    }

    /// Runs `f` on the worker thread and returns what it returns; a panic
    /// there is resumed here.
    pub(super) fn run<R: Send>(&mut self, f: impl FnOnce() -> R + Send) -> R {
        run_on(self.thread.get_or_insert_with(Thread::spawn), f)
    }

    /// Ends the worker thread (its thread-locals go, its cache of the pool
    /// among them) and starts another, unless this run did so
    /// [`MAX_EXITS`] times already.
    pub(super) fn exit(&mut self) {
        if self.exits < MAX_EXITS
            && let Some(thread) = self.thread.take()
        {
            self.exits += 1;
            thread.join();
            // Started now, not at the next hand-off, so that this run frees
            // (at the join) and allocates (here) the same thread's state.
            self.thread = Some(Thread::spawn());
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            thread.join();
        }
    }
}
