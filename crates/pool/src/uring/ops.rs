//! Submitting operations: the table entries that own an operation's buffer
//! and its `msghdr` until the final completion, and the public operations
//! built on them.

use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd};

use io_uring::{opcode, squeue, types};

use super::{BufGroup, CANCEL_TAG, Kind, Msg, NAME_LEN, Op, OpId, Rejected, Ring, UringError};
#[cfg(doc)]
use super::{Completion, RecvMsgInfo};
use crate::handle::OwnedBuf;

/// `range` lies inside `buf`'s filled bytes (what a send may read).
fn filled_range(buf: &OwnedBuf, range: &Range<usize>) -> Result<(), UringError> {
    if range.start > range.end || range.end > buf.len() {
        return Err(UringError::BadRange {
            start: range.start,
            end: range.end,
            len: buf.len(),
        });
    }
    Ok(())
}

impl Ring {
    /// Reads from `fd` at `offset` into `buf`'s spare capacity (after its
    /// `len()` bytes) with `IORING_OP_READ_FIXED`. The completion gives the
    /// buffer back with its length grown by the bytes read.
    ///
    /// The descriptor is only named at submission: if it is closed before
    /// the kernel gets to it the operation fails (`EBADF`), and nothing
    /// else happens to memory.
    ///
    /// # Errors
    ///
    /// [`Rejected`], with the buffer, if it is not from this ring's pool
    /// or not registered, or the submission queue is full.
    pub fn read_fixed(
        &mut self,
        fd: &impl AsFd,
        mut buf: OwnedBuf,
        offset: u64,
    ) -> Result<OpId, Rejected> {
        let start = buf.len();
        let (index, len) = match self.fixed_args(&buf, buf.capacity() - start) {
            Ok(args) => args,
            Err(error) => return Err(Rejected { error, buf }),
        };
        let fd = types::Fd(fd.as_fd().as_raw_fd());
        // Marks the whole slot dirty: the kernel may write any of it.
        let ptr = buf.slot_mut_ptr().as_ptr().wrapping_add(start);
        let entry = opcode::ReadFixed::new(fd, ptr, len, index)
            .offset(offset)
            .build();
        self.start_with(Kind::ReadFixed, buf, entry)
    }

    /// Writes `buf`'s filled part to `fd` at `offset` with
    /// `IORING_OP_WRITE_FIXED`; the completion gives the buffer back
    /// unchanged.
    ///
    /// # Errors
    ///
    /// As [`read_fixed`](Self::read_fixed).
    ///
    /// ```no_run
    /// # let pool = arenapool::Pool::new(4096, 16)?;
    /// # let mut ring = arenapool::uring::Ring::new(pool.clone(), 32)?;
    /// let file = std::fs::File::create("/tmp/out")?;
    /// let mut buf = pool.try_acquire_owned().unwrap();
    /// buf.extend_from_slice(b"hello")?;
    /// ring.write_fixed(&file, buf, 0).map_err(|r| r.error)?;
    /// ring.submit_and_wait(1)?;
    /// let done = ring.next_completion().unwrap();
    /// assert_eq!(done.result?, 5);
    /// assert_eq!(&done.buf.unwrap()[..], b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_fixed(
        &mut self,
        fd: &impl AsFd,
        buf: OwnedBuf,
        offset: u64,
    ) -> Result<OpId, Rejected> {
        let (index, len) = match self.fixed_args(&buf, buf.len()) {
            Ok(args) => args,
            Err(error) => return Err(Rejected { error, buf }),
        };
        let fd = types::Fd(fd.as_fd().as_raw_fd());
        let ptr = buf.slot_ptr().as_ptr().cast_const();
        let entry = opcode::WriteFixed::new(fd, ptr, len, index)
            .offset(offset)
            .build();
        self.start_with(Kind::Write, buf, entry)
    }

    /// Sends `buf[range]` (a part of its filled bytes) to `peer` with
    /// `IORING_OP_SENDMSG` on a datagram socket (on a connected socket the
    /// address is ignored or refused, as `sendto(2)` does). The buffer
    /// needs no registration and may come from any pool. The completion
    /// gives it back unchanged.
    ///
    /// # Errors
    ///
    /// [`Rejected`], with the buffer, if the range is not inside its filled
    /// part or the submission queue is full.
    ///
    /// ```no_run
    /// # let pool = arenapool::Pool::new(2048, 16)?;
    /// # let mut ring = arenapool::uring::Ring::without_fixed_buffers(pool.clone(), 32)?;
    /// let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let mut buf = pool.try_acquire_owned().unwrap();
    /// buf.extend_from_slice(b"[header]payload")?;
    /// let peer = "127.0.0.1:9000".parse()?;
    /// ring.send_to(&socket, buf, 8..15, peer).map_err(|r| r.error)?; // sends "payload"
    /// ring.submit_and_wait(1)?;
    /// let done = ring.next_completion().unwrap();
    /// assert_eq!(done.result?, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_to(
        &mut self,
        fd: &impl AsFd,
        buf: OwnedBuf,
        range: Range<usize>,
        peer: SocketAddr,
    ) -> Result<OpId, Rejected> {
        if let Err(error) = filled_range(&buf, &range) {
            return Err(Rejected { error, buf });
        }
        let fd = types::Fd(fd.as_fd().as_raw_fd());
        let ptr = buf.slot_ptr().as_ptr().wrapping_add(range.start);
        let len = range.end - range.start;
        let (idx, msg) = match self.reserve() {
            Ok(e) => e,
            Err(error) => return Err(Rejected { error, buf }),
        };
        msg.addr = socket2::SockAddr::from(peer);
        msg.iov = libc::iovec {
            iov_base: ptr.cast(),
            iov_len: len,
        };
        msg.hdr.msg_name = msg.addr.as_ptr().cast_mut().cast();
        msg.hdr.msg_namelen = msg.addr.len();
        msg.hdr.msg_iov = &raw mut msg.iov;
        msg.hdr.msg_iovlen = 1;
        msg.hdr.msg_control = std::ptr::null_mut();
        msg.hdr.msg_controllen = 0;
        msg.hdr.msg_flags = 0;
        let entry = opcode::SendMsg::new(fd, &raw const msg.hdr).build();
        self.commit_with(idx, Kind::Write, buf, entry)
    }

    /// Sends `buf[range]` on a connected socket (`IORING_OP_SEND`, with
    /// `MSG_NOSIGNAL`: a peer that is gone gives `EPIPE`, not a signal).
    /// The buffer needs no registration and may come from any pool; the
    /// completion gives it back unchanged. On a stream socket the kernel
    /// may send less than the range when the connection's send buffer
    /// fills: the completion's result says how much went, and the rest
    /// is the caller's to send again.
    ///
    /// # Errors
    ///
    /// As [`send_to`](Self::send_to).
    ///
    /// ```no_run
    /// # let pool = arenapool::Pool::new(2048, 16)?;
    /// # let mut ring = arenapool::uring::Ring::without_fixed_buffers(pool.clone(), 32)?;
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let stream = std::net::TcpStream::connect(listener.local_addr()?)?;
    /// let mut buf = pool.try_acquire_owned().unwrap();
    /// buf.extend_from_slice(b"hello")?;
    /// let len = buf.len();
    /// ring.send(&stream, buf, 0..len).map_err(|r| r.error)?;
    /// ring.submit_and_wait(1)?;
    /// let done = ring.next_completion().unwrap();
    /// assert_eq!(done.result?, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(
        &mut self,
        fd: &impl AsFd,
        buf: OwnedBuf,
        range: Range<usize>,
    ) -> Result<OpId, Rejected> {
        if let Err(error) = filled_range(&buf, &range) {
            return Err(Rejected { error, buf });
        }
        let Ok(len) = u32::try_from(range.end - range.start) else {
            return Err(Rejected {
                error: UringError::TooLarge,
                buf,
            });
        };
        let fd = types::Fd(fd.as_fd().as_raw_fd());
        let ptr = buf
            .slot_ptr()
            .as_ptr()
            .cast_const()
            .wrapping_add(range.start);
        let entry = opcode::Send::new(fd, ptr, len)
            .flags(libc::MSG_NOSIGNAL)
            .build();
        self.start_with(Kind::Write, buf, entry)
    }

    /// Multishot accept (`IORING_OP_ACCEPT` with
    /// `IORING_ACCEPT_MULTISHOT`, Linux 5.19; a multishot receive on the
    /// accepted stream sockets needs 6.0): one submission, one
    /// completion per connection, whose [`Completion::accepted`] owns the
    /// new socket (close-on-exec). It goes on until a completion says
    /// [`more`](Completion::more)` == false` (an error such as `EMFILE`
    /// when the process is out of descriptors, or a cancel): re-submit
    /// it then.
    ///
    /// # Errors
    ///
    /// [`UringError::QueueFull`].
    ///
    /// ```no_run
    /// # let pool = arenapool::Pool::new(2048, 16)?;
    /// # let mut ring = arenapool::uring::Ring::without_fixed_buffers(pool.clone(), 32)?;
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// ring.accept_multi(&listener)?;
    /// let client = std::net::TcpStream::connect(listener.local_addr()?)?;
    /// ring.submit_and_wait(1)?;
    /// let done = ring.next_completion().unwrap();
    /// let socket = done.accepted.expect("a connection");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn accept_multi(&mut self, listener: &impl AsFd) -> Result<OpId, UringError> {
        let fd = types::Fd(listener.as_fd().as_raw_fd());
        let entry = opcode::AcceptMulti::new(fd)
            .flags(libc::SOCK_CLOEXEC)
            .build();
        self.start(Kind::Accept, entry)
    }

    /// Receives once from `fd` into a buffer the kernel picks from
    /// `group` (`IORING_OP_RECV` with buffer select). The completion
    /// carries that buffer, its length set to the bytes received.
    ///
    /// # Errors
    ///
    /// [`UringError::UnknownGroup`] or [`UringError::QueueFull`].
    ///
    /// ```no_run
    /// # let pool = arenapool::Pool::new(2048, 16)?;
    /// # let mut ring = arenapool::uring::Ring::without_fixed_buffers(pool.clone(), 32)?;
    /// let group = ring.provide_buffers(1, 8)?;
    /// let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// ring.recv(&socket, group)?;
    /// ring.submit_and_wait(1)?;
    /// let done = ring.next_completion().unwrap();
    /// let buf = done.buf.unwrap(); // `done.result?` bytes long
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv(&mut self, fd: &impl AsFd, group: BufGroup) -> Result<OpId, UringError> {
        let g = self.group_index(group)?;
        let fd = types::Fd(fd.as_fd().as_raw_fd());
        let len = u32::try_from(self.pool.buffer_size()).unwrap_or(u32::MAX);
        let entry = opcode::Recv::new(fd, std::ptr::null_mut(), len)
            .buf_group(group.0)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT);
        self.start(Kind::Select(g), entry)
    }

    /// Multishot receive (`IORING_OP_RECV` with `IORING_RECV_MULTISHOT`):
    /// one submission, one completion per datagram or chunk, each with a
    /// buffer from `group`, until a completion says
    /// [`more`](Completion::more)` == false` (for example `ENOBUFS` when
    /// the group ran dry: re-submit once buffers are back).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// ```no_run
    /// # let pool = arenapool::Pool::new(2048, 16)?;
    /// # let mut ring = arenapool::uring::Ring::without_fixed_buffers(pool.clone(), 32)?;
    /// # let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let group = ring.provide_buffers(1, 8)?;
    /// ring.recv_multi(&socket, group)?;
    /// loop {
    ///     ring.submit_and_wait(1)?;
    ///     while let Some(c) = ring.next_completion() {
    ///         if let Some(buf) = c.buf {
    ///             println!("{} bytes", buf.len());
    ///         }
    ///         if !c.more {
    ///             ring.recv_multi(&socket, group)?; // re-arm
    ///         }
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_multi(&mut self, fd: &impl AsFd, group: BufGroup) -> Result<OpId, UringError> {
        let g = self.group_index(group)?;
        let fd = types::Fd(fd.as_fd().as_raw_fd());
        let entry = opcode::RecvMulti::new(fd, group.0).build();
        self.start(Kind::Select(g), entry)
    }

    /// Multishot `recvmsg` for datagram sockets: like
    /// [`recv_multi`](Self::recv_multi), and each completion also gives the
    /// source address and where the payload lies in the buffer
    /// ([`Completion::msg`]). The buffer's length is everything the kernel
    /// wrote (its header, the address, the payload).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// See [`Ring`]'s example.
    pub fn recvmsg_multi(&mut self, fd: &impl AsFd, group: BufGroup) -> Result<OpId, UringError> {
        let g = self.group_index(group)?;
        let fd = types::Fd(fd.as_fd().as_raw_fd());
        let (idx, msg) = self.reserve()?;
        msg.hdr.msg_name = std::ptr::null_mut();
        msg.hdr.msg_namelen = NAME_LEN;
        msg.hdr.msg_iov = std::ptr::null_mut();
        msg.hdr.msg_iovlen = 0;
        msg.hdr.msg_control = std::ptr::null_mut();
        msg.hdr.msg_controllen = 0;
        msg.hdr.msg_flags = 0;
        let entry = opcode::RecvMsgMulti::new(fd, &raw const msg.hdr, group.0).build();
        self.commit(idx, Kind::SelectMsg(g), entry)
    }

    /// Asks the kernel to cancel operation `id` (asynchronously: its
    /// completion, with `ECANCELED` or its result if it finished first,
    /// still comes through [`next_completion`](Self::next_completion)).
    /// Does nothing if `id` is not in flight.
    ///
    /// # Errors
    ///
    /// [`UringError::QueueFull`].
    ///
    /// ```no_run
    /// # let pool = arenapool::Pool::new(2048, 16)?;
    /// # let mut ring = arenapool::uring::Ring::without_fixed_buffers(pool.clone(), 32)?;
    /// # let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let group = ring.provide_buffers(1, 8)?;
    /// let id = ring.recv_multi(&socket, group)?;
    /// ring.cancel(id)?;
    /// ring.submit_and_wait(1)?;
    /// let done = ring.next_completion().unwrap();
    /// assert!(!done.more);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cancel(&mut self, id: OpId) -> Result<(), UringError> {
        if self.op_of(id.0).is_none() {
            return Ok(());
        }
        let entry = opcode::AsyncCancel::new(id.0).build().user_data(CANCEL_TAG);
        self.push(&entry)
    }

    /// The argument check of the fixed-buffer operations: `buf`'s
    /// registered buffer index, and `bytes` (what the operation reads or
    /// writes) as the kernel's `u32` length.
    fn fixed_args(&self, buf: &OwnedBuf, bytes: usize) -> Result<(u16, u32), UringError> {
        let index = self.fixed_index(buf)?;
        let len = u32::try_from(bytes).map_err(|_| UringError::TooLarge)?;
        Ok((index, len))
    }

    pub(super) fn fixed_index(&self, buf: &OwnedBuf) -> Result<u16, UringError> {
        if !crate::Pool::ptr_eq(buf.pool(), &self.pool) {
            return Err(UringError::WrongPool);
        }
        self.buf_index(buf)
            .ok_or(UringError::NotRegistered { index: buf.index() })
    }

    /// Adds `n` free entries to the table.
    pub(super) fn grow_table(&mut self, n: usize) {
        for _ in 0..n {
            let Ok(idx) = u32::try_from(self.ops.len()) else {
                return;
            };
            self.ops.push(Op {
                generation: 0,
                live: false,
                kind: Kind::Write,
                buf: None,
                msg: self.msgs.then(Msg::new),
            });
            self.free.push(idx);
        }
        // Lowest index first: keeps the hot entries few.
        self.free.sort_unstable_by(|a, b| b.cmp(a));
    }

    /// [`reserve_entry`](Self::reserve_entry), and the entry's `Msg`,
    /// which the caller may fill before [`commit`](Self::commit). The
    /// first call gives every entry its `Msg`.
    pub(super) fn reserve(&mut self) -> Result<(u32, &mut Msg), UringError> {
        if !self.msgs {
            self.msgs = true;
            for op in &mut self.ops {
                op.msg.get_or_insert_with(Msg::new);
            }
        }
        let idx = self.reserve_entry()?;
        let msg = self.ops[idx as usize].msg.get_or_insert_with(Msg::new);
        Ok((idx, &mut **msg))
    }

    /// Makes room in the submission queue and takes a free table entry.
    pub(super) fn reserve_entry(&mut self) -> Result<u32, UringError> {
        if self.ring.submission().is_full() {
            // A failed submit leaves the queue full; reported below.
            let _ = self.ring.submit();
            if self.ring.submission().is_full() {
                return Err(UringError::QueueFull);
            }
        }
        if self.free.is_empty() {
            self.grow_table(self.ops.len().max(16));
        }
        self.free.pop().ok_or(UringError::QueueFull)
    }

    /// Reserves an entry and queues an operation without a buffer.
    pub(super) fn start(&mut self, kind: Kind, entry: squeue::Entry) -> Result<OpId, UringError> {
        let idx = self.reserve_entry()?;
        self.commit(idx, kind, entry)
    }

    /// Reserves an entry and queues an operation on `buf`.
    pub(super) fn start_with(
        &mut self,
        kind: Kind,
        buf: OwnedBuf,
        entry: squeue::Entry,
    ) -> Result<OpId, Rejected> {
        match self.reserve_entry() {
            Ok(idx) => self.commit_with(idx, kind, buf, entry),
            Err(error) => Err(Rejected { error, buf }),
        }
    }

    /// [`commit`](Self::commit), then moves `buf` into the entry. The
    /// kernel cannot see the queued entry before the next submit, which
    /// only our methods make, so the buffer is in the table first.
    pub(super) fn commit_with(
        &mut self,
        idx: u32,
        kind: Kind,
        buf: OwnedBuf,
        entry: squeue::Entry,
    ) -> Result<OpId, Rejected> {
        match self.commit(idx, kind, entry) {
            Ok(id) => {
                self.ops[idx as usize].buf = Some(buf);
                Ok(id)
            }
            Err(error) => Err(Rejected { error, buf }),
        }
    }

    /// Queues `entry` under entry `idx`'s id and marks it live; on failure
    /// frees the entry again.
    pub(super) fn commit(
        &mut self,
        idx: u32,
        kind: Kind,
        entry: squeue::Entry,
    ) -> Result<OpId, UringError> {
        let id = (u64::from(self.ops[idx as usize].generation) << 32) | u64::from(idx);
        if let Err(e) = self.push(&entry.user_data(id)) {
            self.free.push(idx);
            return Err(e);
        }
        let op = &mut self.ops[idx as usize];
        op.kind = kind;
        op.buf = None;
        op.live = true;
        self.stats.in_flight += 1;
        self.stats.started += 1;
        Ok(OpId(id))
    }

    /// Queues one entry (room was made by `reserve`, or is made here).
    pub(super) fn push(&mut self, entry: &squeue::Entry) -> Result<(), UringError> {
        if self.ring.submission().is_full() {
            let _ = self.ring.submit();
        }
        // SAFETY: every pointer in `entry` stays valid until the
        // operation's final completion: buffers are owned by table entries
        // (`Op::buf`) or provided rings, `msghdr`s and what they point to
        // are in the entry's boxed `Msg`, and neither is released before
        // that completion is seen, or before `Drop` waited for it (module
        // docs). Cancel entries carry no pointer.
        unsafe { self.ring.submission().push(entry) }.map_err(|_| UringError::QueueFull)
    }
}
