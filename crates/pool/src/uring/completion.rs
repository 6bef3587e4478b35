//! What the kernel gives back: [`Completion`]s, the ids that name
//! operations and buffer groups, and the parsing of a multishot `recvmsg`
//! buffer (the kernel's header, the source address, the payload).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ops::Range;

use io_uring::types;

use crate::handle::OwnedBuf;

#[cfg(doc)]
use super::Ring;

/// Names an operation in flight; comes back in [`Completion::id`].
///
/// Ids are unique among the operations in flight on one ring, and a
/// reused table entry gets a new id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpId(pub(super) u64);

/// A provided buffer ring of one [`Ring`]: what
/// [`Ring::provide_buffers`] returns, to name it in receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BufGroup(pub(super) u16);

impl BufGroup {
    /// The buffer group id the kernel knows it by.
    pub fn id(self) -> u16 {
        self.0
    }
}

/// Where a multishot `recvmsg` put the datagram inside its buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecvMsgInfo {
    /// The sender, if it was an IPv4 or IPv6 address.
    pub source: Option<SocketAddr>,
    /// The payload's bytes inside [`Completion::buf`] (after the kernel's
    /// header and the address).
    pub payload: Range<usize>,
    /// The datagram was longer than the buffer; the tail was cut.
    pub truncated: bool,
}

/// One finished (or, for multishot ops, progressing) operation.
#[derive(Debug)]
pub struct Completion {
    /// The operation, as its submit returned it.
    pub id: OpId,
    /// Bytes read or written, or the operation's error (an errno, such as
    /// `ECANCELED`, `ENOBUFS` or `EBADF`).
    pub result: io::Result<usize>,
    /// The buffer: given back by the last completion of a
    /// [`read_fixed`](Ring::read_fixed), [`write_fixed`](Ring::write_fixed)
    /// or [`send_to`](Ring::send_to), and the buffer the kernel picked and
    /// filled for receives with a provided buffer ring. Its length is what
    /// the kernel wrote (reads and receives) or unchanged (writes, sends).
    pub buf: Option<OwnedBuf>,
    /// More completions will come for this operation (multishot); when
    /// `false` the operation is over and, if it was a receive that should
    /// go on, has to be submitted again.
    pub more: bool,
    /// For [`recvmsg_multi`](Ring::recvmsg_multi) with data: the source
    /// and where the payload is.
    pub msg: Option<RecvMsgInfo>,
}

impl Completion {
    /// Whether the operation ended because its provided buffer ring was
    /// empty (`ENOBUFS`): re-submit it once buffers are back (see
    /// [`Ring::restock`]).
    ///
    /// See [`Ring::recv_multi`]'s example.
    pub fn ran_dry(&self) -> bool {
        matches!(&self.result, Err(e) if e.raw_os_error() == Some(libc::ENOBUFS))
    }
}

/// Where a multishot `recvmsg` put the datagram in `buf`.
pub(super) fn parse_recvmsg(buf: &OwnedBuf, hdr: &libc::msghdr) -> Option<RecvMsgInfo> {
    let out = types::RecvMsgOut::parse(buf, hdr).ok()?;
    let payload = out.payload_data();
    let start = payload.as_ptr().addr() - buf.as_ptr().addr();
    Some(RecvMsgInfo {
        source: parse_sockaddr(out.name_data()),
        payload: start..start + payload.len(),
        truncated: out.is_payload_truncated(),
    })
}

/// A `sockaddr_in` or `sockaddr_in6` in its raw bytes (native-endian
/// family, network-order port and address).
fn parse_sockaddr(name: &[u8]) -> Option<SocketAddr> {
    let family = i32::from(u16::from_ne_bytes(name.get(0..2)?.try_into().ok()?));
    let port = u16::from_be_bytes(name.get(2..4)?.try_into().ok()?);
    match family {
        libc::AF_INET => {
            let ip: [u8; 4] = name.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        libc::AF_INET6 => {
            let flow = u32::from_be_bytes(name.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = name.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(name.get(24..28)?.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                flow,
                scope,
            )))
        }
        _ => None,
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    #[test]
    fn sockaddrs_parse_from_raw_bytes() {
        let v4: SocketAddr = "192.0.2.7:4242".parse().unwrap();
        let raw = socket2::SockAddr::from(v4);
        // SAFETY: `as_ptr` points at `len` initialised bytes of `raw`.
        let bytes =
            unsafe { std::slice::from_raw_parts(raw.as_ptr().cast::<u8>(), raw.len() as usize) };
        assert_eq!(parse_sockaddr(bytes), Some(v4));
        let v6: SocketAddr = "[2001:db8::1]:9".parse().unwrap();
        let raw = socket2::SockAddr::from(v6);
        // SAFETY: as above.
        let bytes =
            unsafe { std::slice::from_raw_parts(raw.as_ptr().cast::<u8>(), raw.len() as usize) };
        assert_eq!(parse_sockaddr(bytes), Some(v6));
        assert_eq!(parse_sockaddr(&[0; 3]), None);
        assert_eq!(parse_sockaddr(&[0; 28]), None, "AF_UNSPEC");
    }
}
