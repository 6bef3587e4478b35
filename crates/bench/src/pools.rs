//! Pool crates as candidates, each used the way its documentation shows,
//! with owned guards (or plain values) so a buffer can cross threads.
//!
//! Every pool holds `Box<[u8]>` buffers of [`SIZE`] zeroed bytes. Where the
//! crate can be pre-filled it holds [`POOL_CAPACITY`] of them from the start
//! (object-pool, opool, the `ArrayQueue` and the `Mutex<Vec>`); the others
//! (lockfree-object-pool, sharded-slab) create buffers on demand and keep
//! them. When a pre-filled pool runs dry, it allocates, as its crate's
//! `pull`/`get` does; when it is full, a returned buffer is freed.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, PoisonError};

use crossbeam_queue::ArrayQueue;
use lockfree_object_pool::{
    LinearObjectPool, LinearOwnedReusable, SpinLockObjectPool, SpinLockOwnedReusable,
};
use object_pool::ReusableOwned;
use opool::{PoolAllocator, RcGuard};
use sharded_slab::Clear;
use sharded_slab::pool::OwnedRefMut;

use crate::candidate::{Candidate, POOL_CAPACITY, SIZE, TOUCH};

/// `Debug` by name: the pools' own types mostly have no `Debug`.
macro_rules! debug_by_name {
    ($($ty:ty),*) => {$(
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty)).finish_non_exhaustive()
            }
        }
    )*};
}

debug_by_name!(
    LockfreeLinear,
    LockfreeSpinLock,
    ObjectPool,
    ShardedSlab,
    OPool,
    QueuePool,
    MutexPool
);

/// A fresh zeroed buffer, as every pool below makes them.
fn new_block() -> Box<[u8]> {
    vec![0u8; SIZE].into_boxed_slice()
}

#[inline]
fn touch_slice(bytes: &mut [u8]) {
    bytes[..TOUCH.len()].copy_from_slice(&TOUCH);
}

fn fill_slice(bytes: &mut [u8], byte: u8) -> &[u8] {
    bytes.fill(byte);
    bytes
}

/// `lockfree_object_pool::LinearObjectPool`: pages of 32 slots with an
/// atomic bitmap each, scanned linearly; `pull_owned` guards.
pub struct LockfreeLinear {
    pool: Arc<LinearObjectPool<Box<[u8]>>>,
}

impl LockfreeLinear {
    /// An empty pool that creates buffers on demand.
    pub fn new() -> Self {
        Self {
            pool: Arc::new(LinearObjectPool::new(new_block, |_| {})),
        }
    }
}

impl Default for LockfreeLinear {
    fn default() -> Self {
        Self::new()
    }
}

impl Candidate for LockfreeLinear {
    type Buf = LinearOwnedReusable<Box<[u8]>>;

    fn name(&self) -> String {
        "lockfree-object-pool Linear".into()
    }

    #[inline]
    fn acquire(&self) -> Self::Buf {
        self.pool.pull_owned()
    }

    #[inline]
    fn touch(buf: &mut Self::Buf) {
        touch_slice(buf);
    }

    #[inline]
    fn release(&self, buf: Self::Buf) {
        drop(buf);
    }

    fn fill(buf: &mut Self::Buf, byte: u8) -> &[u8] {
        fill_slice(buf, byte)
    }
}

/// `lockfree_object_pool::SpinLockObjectPool`: a `Vec` behind a spin lock;
/// `pull_owned` guards.
pub struct LockfreeSpinLock {
    pool: Arc<SpinLockObjectPool<Box<[u8]>>>,
}

impl LockfreeSpinLock {
    /// An empty pool that creates buffers on demand.
    pub fn new() -> Self {
        Self {
            pool: Arc::new(SpinLockObjectPool::new(new_block, |_| {})),
        }
    }
}

impl Default for LockfreeSpinLock {
    fn default() -> Self {
        Self::new()
    }
}

impl Candidate for LockfreeSpinLock {
    type Buf = SpinLockOwnedReusable<Box<[u8]>>;

    fn name(&self) -> String {
        "lockfree-object-pool SpinLock".into()
    }

    #[inline]
    fn acquire(&self) -> Self::Buf {
        self.pool.pull_owned()
    }

    #[inline]
    fn touch(buf: &mut Self::Buf) {
        touch_slice(buf);
    }

    #[inline]
    fn release(&self, buf: Self::Buf) {
        drop(buf);
    }

    fn fill(buf: &mut Self::Buf, byte: u8) -> &[u8] {
        fill_slice(buf, byte)
    }
}

/// `object_pool::Pool`: a `Vec` behind a `parking_lot` mutex, pre-filled;
/// `pull_owned` guards.
pub struct ObjectPool {
    pool: Arc<object_pool::Pool<Box<[u8]>>>,
}

impl ObjectPool {
    /// A pool pre-filled with [`POOL_CAPACITY`] buffers.
    pub fn new() -> Self {
        Self {
            pool: Arc::new(object_pool::Pool::new(POOL_CAPACITY, new_block)),
        }
    }
}

impl Default for ObjectPool {
    fn default() -> Self {
        Self::new()
    }
}

impl Candidate for ObjectPool {
    type Buf = ReusableOwned<Box<[u8]>>;

    fn name(&self) -> String {
        "object-pool".into()
    }

    #[inline]
    fn acquire(&self) -> Self::Buf {
        self.pool.pull_owned(new_block)
    }

    #[inline]
    fn touch(buf: &mut Self::Buf) {
        touch_slice(buf);
    }

    #[inline]
    fn release(&self, buf: Self::Buf) {
        drop(buf);
    }

    fn fill(buf: &mut Self::Buf, byte: u8) -> &[u8] {
        fill_slice(buf, byte)
    }
}

/// A buffer for sharded-slab's `Pool`, which needs `Default` (a fresh
/// buffer) and `Clear` (here: keep the bytes, like the other pools).
#[derive(Debug)]
pub struct SlabBlock(Box<[u8]>);

impl Default for SlabBlock {
    fn default() -> Self {
        Self(new_block())
    }
}

impl Clear for SlabBlock {
    fn clear(&mut self) {}
}

impl Deref for SlabBlock {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl DerefMut for SlabBlock {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

/// `sharded_slab::Pool`: per-thread shards of pages with lock-free free
/// lists; `create_owned` guards, released by dropping the guard and
/// clearing its key (the crate's documented cycle).
pub struct ShardedSlab {
    pool: Arc<sharded_slab::Pool<SlabBlock>>,
}

impl ShardedSlab {
    /// An empty pool that creates buffers on demand.
    pub fn new() -> Self {
        Self {
            pool: Arc::new(sharded_slab::Pool::new()),
        }
    }
}

impl Default for ShardedSlab {
    fn default() -> Self {
        Self::new()
    }
}

impl Candidate for ShardedSlab {
    type Buf = OwnedRefMut<SlabBlock>;

    fn name(&self) -> String {
        "sharded-slab Pool".into()
    }

    #[inline]
    fn acquire(&self) -> Self::Buf {
        match self.pool.clone().create_owned() {
            Some(buf) => buf,
            None => panic!("sharded-slab Pool: this thread's shard is full"),
        }
    }

    #[inline]
    fn touch(buf: &mut Self::Buf) {
        touch_slice(buf);
    }

    #[inline]
    fn release(&self, buf: Self::Buf) {
        let key = buf.key();
        drop(buf);
        self.pool.clear(key);
    }

    fn fill(buf: &mut Self::Buf, byte: u8) -> &[u8] {
        fill_slice(buf, byte)
    }
}

/// Makes opool's buffers.
#[derive(Debug, Clone, Copy, Default)]
pub struct BlockAllocator;

impl PoolAllocator<Box<[u8]>> for BlockAllocator {
    fn allocate(&self) -> Box<[u8]> {
        new_block()
    }
}

/// `opool::Pool`: a crossbeam `ArrayQueue` with an allocator, pre-filled;
/// `get_rc` guards.
pub struct OPool {
    pool: Arc<opool::Pool<BlockAllocator, Box<[u8]>>>,
}

impl OPool {
    /// A pool pre-filled with [`POOL_CAPACITY`] buffers.
    pub fn new() -> Self {
        Self {
            pool: opool::Pool::new_prefilled(POOL_CAPACITY, BlockAllocator).to_rc(),
        }
    }
}

impl Default for OPool {
    fn default() -> Self {
        Self::new()
    }
}

impl Candidate for OPool {
    type Buf = RcGuard<BlockAllocator, Box<[u8]>>;

    fn name(&self) -> String {
        "opool".into()
    }

    #[inline]
    fn acquire(&self) -> Self::Buf {
        self.pool.clone().get_rc()
    }

    #[inline]
    fn touch(buf: &mut Self::Buf) {
        touch_slice(buf);
    }

    #[inline]
    fn release(&self, buf: Self::Buf) {
        drop(buf);
    }

    fn fill(buf: &mut Self::Buf, byte: u8) -> &[u8] {
        fill_slice(buf, byte)
    }
}

/// A hand-rolled pool: a pre-filled `crossbeam_queue::ArrayQueue` of
/// boxed buffers (a bounded MPMC ring).
pub struct QueuePool {
    queue: ArrayQueue<Box<[u8]>>,
}

impl QueuePool {
    /// A queue of [`POOL_CAPACITY`] slots, all filled.
    pub fn new() -> Self {
        let queue = ArrayQueue::new(POOL_CAPACITY);
        while queue.push(new_block()).is_ok() {}
        Self { queue }
    }
}

impl Default for QueuePool {
    fn default() -> Self {
        Self::new()
    }
}

impl Candidate for QueuePool {
    type Buf = Box<[u8]>;

    fn name(&self) -> String {
        "crossbeam ArrayQueue".into()
    }

    #[inline]
    fn acquire(&self) -> Box<[u8]> {
        self.queue.pop().unwrap_or_else(new_block)
    }

    #[inline]
    fn touch(buf: &mut Box<[u8]>) {
        touch_slice(buf);
    }

    #[inline]
    fn release(&self, buf: Box<[u8]>) {
        // Full only if buffers were allocated past the capacity: free those.
        let _ = self.queue.push(buf);
    }

    fn fill(buf: &mut Box<[u8]>, byte: u8) -> &[u8] {
        fill_slice(buf, byte)
    }
}

/// The simplest pool there is: a pre-filled `Mutex<Vec<Box<[u8]>>>`.
pub struct MutexPool {
    free: Mutex<Vec<Box<[u8]>>>,
}

impl MutexPool {
    /// A stack of [`POOL_CAPACITY`] buffers.
    pub fn new() -> Self {
        Self {
            free: Mutex::new((0..POOL_CAPACITY).map(|_| new_block()).collect()),
        }
    }
}

impl Default for MutexPool {
    fn default() -> Self {
        Self::new()
    }
}

impl Candidate for MutexPool {
    type Buf = Box<[u8]>;

    fn name(&self) -> String {
        "Mutex<Vec<Box<[u8]>>>".into()
    }

    #[inline]
    fn acquire(&self) -> Box<[u8]> {
        let popped = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        popped.unwrap_or_else(new_block)
    }

    #[inline]
    fn touch(buf: &mut Box<[u8]>) {
        touch_slice(buf);
    }

    #[inline]
    fn release(&self, buf: Box<[u8]>) {
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(buf);
    }

    fn fill(buf: &mut Box<[u8]>, byte: u8) -> &[u8] {
        fill_slice(buf, byte)
    }
}
