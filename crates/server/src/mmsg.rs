//! Batched UDP system calls (Linux): `recvmmsg` and `sendmmsg`, with UDP
//! generic receive offload (GRO) and segmentation offload (GSO).
//!
//! A [`Batch`] owns the kernel's headers for up to `capacity` datagrams,
//! allocated once: the `mmsghdr` array, one `iovec`, one source address
//! and one control buffer per datagram. [`Batch::recv`] receives up to one
//! datagram into each buffer it is given with one `recvmmsg`;
//! [`Batch::send`] sends a run of datagrams with one `sendmmsg`. Neither
//! allocates, and neither blocks (`MSG_DONTWAIT`): a socket with nothing
//! to read, or no room to write, gives `WouldBlock` like any
//! non-blocking call, so both run inside tokio's `try_io`.
//!
//! With GRO on ([`enable_gro`]), the kernel may hand over several
//! datagrams of one flow as one buffer of equal *segments* (the last may
//! be shorter), and says so with a `UDP_GRO` control message: that is
//! [`Received::segment`]. A datagram sent with [`Outgoing::segment`] set
//! carries a `UDP_SEGMENT` control message, and the kernel (or the NIC)
//! splits it into datagrams of that size: one send, many datagrams.
//!
//! This is the crate's only system-call code outside io_uring; every
//! `unsafe` block is here and says why it is sound.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::ptr;

use crate::buffers::PacketBuf;

pub(crate) use crate::config::MAX_BATCH;

/// Most segments one GSO send may carry on every kernel with GSO
/// (`UDP_MAX_SEGMENTS` before Linux 6.9; later ones allow 128).
pub(crate) const MAX_SEGMENTS: usize = 64;

/// Room for one control message with a 4-byte value, with room to spare,
/// aligned as `cmsghdr` wants.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Control([u8; 64]);

/// What one received datagram (or GRO train of them) was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Received {
    /// Bytes written into the buffer.
    pub(crate) len: usize,
    /// Where it came from; `None` for an address family we do not speak
    /// (the datagram is then dropped by the caller).
    pub(crate) peer: Option<SocketAddr>,
    /// With GRO: the size of each coalesced datagram, when the kernel
    /// coalesced more than one.
    pub(crate) segment: Option<usize>,
    /// The datagram did not fit the buffer (`MSG_TRUNC`): bytes were lost.
    pub(crate) truncated: bool,
}

/// One datagram to send.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outgoing<'a> {
    /// Its bytes.
    pub(crate) bytes: &'a [u8],
    /// Where to; `None` on a connected socket.
    pub(crate) to: Option<SocketAddr>,
    /// With GSO: the kernel splits `bytes` into datagrams of this many
    /// bytes (the last may be shorter).
    pub(crate) segment: Option<u16>,
}

/// Headers for one `recvmmsg` or `sendmmsg` of up to `capacity`
/// datagrams, allocated once.
pub(crate) struct Batch {
    hdrs: Box<[libc::mmsghdr]>,
    iovs: Box<[libc::iovec]>,
    names: Box<[libc::sockaddr_storage]>,
    controls: Box<[Control]>,
    received: Vec<Received>,
}

// SAFETY: the raw pointers inside the headers point only into this
// batch's own boxes, or into the caller's buffers during a `recv` or
// `send` call (reset before the next one); nothing is shared with another
// thread, so moving the batch to another thread is sound.
unsafe impl Send for Batch {}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("capacity", &self.hdrs.len())
            .finish_non_exhaustive()
    }
}

impl Batch {
    /// Headers for up to `capacity` datagrams per call (at least 1, at
    /// most [`MAX_BATCH`]).
    pub(crate) fn new(capacity: usize) -> Batch {
        let n = capacity.clamp(1, MAX_BATCH);
        // SAFETY: `mmsghdr`, `iovec` and `sockaddr_storage` are plain C
        // structs of integers and raw pointers, for which all zeros is a
        // valid value (null pointers, zero lengths, family AF_UNSPEC).
        let (hdr, iov, name) = unsafe {
            (
                mem::zeroed::<libc::mmsghdr>(),
                mem::zeroed::<libc::iovec>(),
                mem::zeroed::<libc::sockaddr_storage>(),
            )
        };
        Batch {
            hdrs: vec![hdr; n].into_boxed_slice(),
            iovs: vec![iov; n].into_boxed_slice(),
            names: vec![name; n].into_boxed_slice(),
            controls: vec![Control([0; 64]); n].into_boxed_slice(),
            received: Vec::with_capacity(n),
        }
    }

    /// Most datagrams per call.
    pub(crate) fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// What the last [`recv`](Self::recv) received.
    pub(crate) fn received(&self) -> &[Received] {
        &self.received
    }

    /// Receives up to one datagram into each of `bufs` (the first
    /// [`capacity`](Self::capacity) of them) with one `recvmmsg`, without
    /// waiting; what arrived is described, in order, by the returned
    /// slice: `bufs[i]` holds datagram `i`.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when nothing is waiting; any other error of
    /// `recvmmsg`.
    pub(crate) fn recv<B: PacketBuf>(
        &mut self,
        fd: BorrowedFd<'_>,
        bufs: &mut [B],
    ) -> io::Result<&[Received]> {
        let n = bufs.len().min(self.capacity());
        self.received.clear();
        if n == 0 {
            return Ok(&self.received);
        }
        // Every pointer the kernel gets comes from the allocations
        // themselves (`as_mut_ptr` of the boxes and of each buffer's full
        // slice), taken once here, and none of them is used through a
        // reference until the call returns.
        let hdrs = self.hdrs.as_mut_ptr();
        let iovs = self.iovs.as_mut_ptr();
        let names = self.names.as_mut_ptr();
        let controls = self.controls.as_mut_ptr();
        for (i, buf) in bufs.iter_mut().take(n).enumerate() {
            let room = buf.as_full_mut();
            // SAFETY: `i < n <= capacity`, the length of every box, so
            // each `add(i)` stays inside its allocation; the structs are
            // plain C data written whole.
            unsafe {
                iovs.add(i).write(libc::iovec {
                    iov_base: room.as_mut_ptr().cast(),
                    iov_len: room.len(),
                });
                let hdr = &mut (*hdrs.add(i)).msg_hdr;
                hdr.msg_name = names.add(i).cast();
                hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                hdr.msg_iov = iovs.add(i);
                hdr.msg_iovlen = 1;
                hdr.msg_control = controls.add(i).cast();
                hdr.msg_controllen = mem::size_of::<Control>() as _;
                hdr.msg_flags = 0;
                (*hdrs.add(i)).msg_len = 0;
            }
        }
        // SAFETY: the first `n` headers are filled in above and point at
        // `n` live, writable buffers (borrowed mutably from `bufs` for
        // this call) and at this batch's own name and control storage,
        // each as long as its header says. The call is synchronous: the
        // kernel writes nothing after it returns. A null timeout and
        // MSG_DONTWAIT: it never blocks.
        let got = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                hdrs,
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        for i in 0..got as usize {
            // SAFETY: the kernel filled in header `i < got <= n`; reading
            // it, its name and its control messages reads this batch's
            // own initialised memory.
            let r = unsafe {
                let m = &*hdrs.add(i);
                Received {
                    len: m.msg_len as usize,
                    peer: from_sockaddr(&*names.add(i), m.msg_hdr.msg_namelen),
                    segment: gro_segment(&m.msg_hdr),
                    truncated: m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                }
            };
            self.received.push(r);
        }
        Ok(&self.received)
    }

    /// Sends the datagrams `out` yields (at most
    /// [`capacity`](Self::capacity)) with one `sendmmsg`, without waiting;
    /// returns how many the kernel took, from the first. Fewer than asked
    /// means the socket's buffer filled up, or datagram number `returned`
    /// failed: sending from there again reports its error.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when the socket has no room for the first; any other
    /// error of `sendmmsg` for the first datagram.
    pub(crate) fn send<'a>(
        &mut self,
        fd: BorrowedFd<'_>,
        out: impl IntoIterator<Item = Outgoing<'a>>,
    ) -> io::Result<usize> {
        let cap = self.capacity();
        let hdrs = self.hdrs.as_mut_ptr();
        let iovs = self.iovs.as_mut_ptr();
        let names = self.names.as_mut_ptr();
        let controls = self.controls.as_mut_ptr();
        let mut n = 0;
        for o in out.into_iter().take(cap) {
            let i = n;
            // SAFETY: `i < cap`, the length of every box. The iovec points
            // at `o.bytes`, which the kernel only reads (sendmmsg never
            // writes through `iov_base`) and which outlives this call.
            unsafe {
                iovs.add(i).write(libc::iovec {
                    iov_base: o.bytes.as_ptr().cast_mut().cast(),
                    iov_len: o.bytes.len(),
                });
                let hdr = &mut (*hdrs.add(i)).msg_hdr;
                match o.to {
                    Some(addr) => {
                        hdr.msg_namelen = to_sockaddr(addr, &mut *names.add(i));
                        hdr.msg_name = names.add(i).cast();
                    }
                    None => {
                        hdr.msg_name = ptr::null_mut();
                        hdr.msg_namelen = 0;
                    }
                }
                hdr.msg_iov = iovs.add(i);
                hdr.msg_iovlen = 1;
                match o.segment {
                    Some(size) => {
                        hdr.msg_control = controls.add(i).cast();
                        hdr.msg_controllen = write_segment(&mut *controls.add(i), size) as _;
                    }
                    None => {
                        hdr.msg_control = ptr::null_mut();
                        hdr.msg_controllen = 0;
                    }
                }
                hdr.msg_flags = 0;
                (*hdrs.add(i)).msg_len = 0;
            }
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: the first `n` headers are filled in above, each pointing
        // at live bytes of the caller's and at this batch's own name and
        // control storage. Synchronous: nothing is read after it returns.
        let sent = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                hdrs,
                n as libc::c_uint,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sent as usize)
    }
}

/// Turns on UDP GRO for `socket`: from now on a receive may return
/// several datagrams of one flow in one buffer (see [`Received::segment`]),
/// so every buffer given to [`Batch::recv`] must hold
/// [`GRO_BUFFER`](crate::GRO_BUFFER) bytes.
///
/// # Errors
///
/// `ENOPROTOOPT` where the kernel has no UDP GRO (before Linux 5.0).
pub(crate) fn enable_gro(socket: &impl AsFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `on` is a live c_int for the duration of the call, and its
    // size is passed with it; the kernel only reads it.
    let r = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_GRO,
            ptr::from_ref(&on).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Why UDP GRO and GSO cannot be used here, if they cannot: tries both
/// socket options on a throwaway socket.
pub(crate) fn offload_unavailable() -> Option<String> {
    let socket = match std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)) {
        Ok(s) => s,
        Err(e) => return Some(format!("cannot open a UDP socket: {e}")),
    };
    if let Err(e) = enable_gro(&socket) {
        return Some(format!("UDP GRO (Linux 5.0): {e}"));
    }
    let size: libc::c_int = 1024;
    // SAFETY: as in `enable_gro`: a live c_int, read by the kernel only.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            ptr::from_ref(&size).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Some(format!(
            "UDP GSO (Linux 4.18): {}",
            io::Error::last_os_error()
        ));
    }
    None
}

/// The `UDP_GRO` control message's segment size, if `hdr` has one.
///
/// # Safety
///
/// `hdr` was filled in by the kernel's `recvmsg`/`recvmmsg`: its control
/// pointer and length describe initialised control messages.
unsafe fn gro_segment(hdr: &libc::msghdr) -> Option<usize> {
    if hdr.msg_controllen == 0 {
        return None;
    }
    // SAFETY: the caller vouches for the control buffer; the CMSG macros
    // walk it within `msg_controllen`, and each header they return is
    // inside it and aligned (the buffer is `Control`, 8-aligned).
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == libc::UDP_GRO {
                let size = ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                return usize::try_from(size).ok().filter(|&s| s > 0);
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    None
}

/// Writes a `UDP_SEGMENT` control message of `size` into `control` and
/// returns the length to pass as `msg_controllen`.
fn write_segment(control: &mut Control, size: u16) -> usize {
    let space = libc_cmsg_space(mem::size_of::<u16>());
    debug_assert!(space <= control.0.len());
    let base = control.0.as_mut_ptr();
    // SAFETY: a one-header `msghdr` over `control` (8-aligned, 64 bytes,
    // more than CMSG_SPACE(2) = 24) makes CMSG_FIRSTHDR return its start;
    // the header and its 2-byte value are written inside those 24 bytes.
    unsafe {
        let mut hdr: libc::msghdr = mem::zeroed();
        hdr.msg_control = base.cast();
        hdr.msg_controllen = space as _;
        let c = libc::CMSG_FIRSTHDR(&hdr);
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = libc::UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as u32) as _;
        ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), size);
    }
    space
}

fn libc_cmsg_space(len: usize) -> usize {
    // SAFETY: CMSG_SPACE is arithmetic on its argument only.
    unsafe { libc::CMSG_SPACE(len as u32) as usize }
}

/// The address in `storage`, if it is IPv4 or IPv6.
fn from_sockaddr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a `sockaddr_in`,
            // which is smaller than `sockaddr_storage` and no more aligned.
            let a = unsafe { &*ptr::from_ref(storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for `sockaddr_in6`.
            let a = unsafe { &*ptr::from_ref(storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Writes `addr` into `storage`; returns its length.
fn to_sockaddr(addr: SocketAddr, storage: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: `sockaddr_storage` is larger than `sockaddr_in` and
            // at least as aligned; the write stays inside `storage`.
            unsafe {
                ptr::from_mut(storage)
                    .cast::<libc::sockaddr_in>()
                    .write(sin)
            };
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for `sockaddr_in6`.
            unsafe {
                ptr::from_mut(storage)
                    .cast::<libc::sockaddr_in6>()
                    .write(sin6)
            };
            mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GRO_BUFFER;
    use std::net::UdpSocket;

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        (a, b)
    }

    fn wait_readable(s: &UdpSocket) {
        s.set_nonblocking(false).unwrap();
        let mut one = [0u8; 1];
        // MSG_PEEK through std: blocks until something is there.
        let _ = s.peek(&mut one);
    }

    #[test]
    fn a_batch_goes_out_in_one_call_and_comes_back_in_one() {
        let (a, b) = pair();
        let to = b.local_addr().unwrap();
        let msgs: Vec<Vec<u8>> = (0u8..5).map(|i| vec![i; 10 + usize::from(i)]).collect();
        let mut batch = Batch::new(8);
        let sent = batch
            .send(
                a.as_fd(),
                msgs.iter().map(|m| Outgoing {
                    bytes: m,
                    to: Some(to),
                    segment: None,
                }),
            )
            .unwrap();
        assert_eq!(sent, 5);
        wait_readable(&b);
        let mut bufs: Vec<Vec<u8>> = (0..8).map(|_| vec![0u8; 64]).collect();
        let mut got = Vec::new();
        while got.len() < 5 {
            let r = batch.recv(b.as_fd(), &mut bufs).unwrap().to_vec();
            for (i, rec) in r.iter().enumerate() {
                assert_eq!(rec.peer, Some(a.local_addr().unwrap()));
                assert_eq!(rec.segment, None);
                assert!(!rec.truncated);
                got.push(bufs[i][..rec.len].to_vec());
            }
        }
        assert_eq!(got, msgs);
        // Nothing left: WouldBlock, not a hang.
        let e = batch.recv(b.as_fd(), &mut bufs).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_datagram_larger_than_its_buffer_is_marked_truncated() {
        let (a, b) = pair();
        a.send_to(&[7u8; 100], b.local_addr().unwrap()).unwrap();
        wait_readable(&b);
        let mut bufs = vec![vec![0u8; 40]];
        let r = Batch::new(1).recv(b.as_fd(), &mut bufs).unwrap().to_vec();
        assert_eq!(r.len(), 1);
        assert!(r[0].truncated);
    }

    #[test]
    fn gso_sends_segments_and_gro_gives_them_back_with_their_size() {
        if let Some(why) = offload_unavailable() {
            eprintln!("SKIPPED: {why}");
            return;
        }
        let (a, b) = pair();
        enable_gro(&b).unwrap();
        // Four segments of 100 bytes and a last one of 40.
        let train: Vec<u8> = (0..440u32).map(|i| (i / 100) as u8).collect();
        let mut batch = Batch::new(4);
        let sent = batch
            .send(
                a.as_fd(),
                [Outgoing {
                    bytes: &train,
                    to: Some(b.local_addr().unwrap()),
                    segment: Some(100),
                }],
            )
            .unwrap();
        assert_eq!(sent, 1);
        wait_readable(&b);
        let mut bufs = vec![vec![0u8; GRO_BUFFER]];
        let mut seen = Vec::new();
        let mut trains = 0;
        while seen.len() < train.len() {
            let r = batch.recv(b.as_fd(), &mut bufs).unwrap().to_vec();
            for rec in r {
                trains += usize::from(rec.segment.is_some_and(|s| s < rec.len));
                let data = &bufs[0][..rec.len];
                // Coalesced or not, every datagram is 100 bytes but the last.
                let seg = rec.segment.unwrap_or(rec.len);
                assert!(seg == 100 || (seg == 40 && rec.len == 40), "{rec:?}");
                seen.extend_from_slice(data);
            }
        }
        assert_eq!(seen, train);
        // On loopback the GSO send reaches a GRO socket whole.
        assert_eq!(trains, 1, "the five datagrams came one by one");
    }

    #[test]
    fn addresses_convert_both_ways() {
        for addr in [
            "127.0.0.1:7070".parse::<SocketAddr>().unwrap(),
            "[::1]:9".parse().unwrap(),
            "[fe80::1%3]:443".parse().unwrap(),
        ] {
            // SAFETY: all zeros is a valid sockaddr_storage.
            let mut s: libc::sockaddr_storage = unsafe { mem::zeroed() };
            let len = to_sockaddr(addr, &mut s);
            assert_eq!(from_sockaddr(&s, len), Some(addr));
        }
        // SAFETY: as above.
        let unspec: libc::sockaddr_storage = unsafe { mem::zeroed() };
        assert_eq!(from_sockaddr(&unspec, 0), None);
    }
}
