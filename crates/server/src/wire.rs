//! The wire format: one datagram is one [`Header`] followed by the payload.
//!
//! ```text
//! offset  size  field
//!      0     2  magic, b"AP"
//!      2     1  version, 1
//!      3     1  kind: 0 request, 1 reply
//!      4     4  payload length in bytes (big-endian u32)
//!      8     8  sequence number (big-endian u64)
//!     16     8  send timestamp, nanoseconds on the sender's clock (u64)
//!     24     2  checksum: 0 in a request; in a reply, the RFC 1071
//!               checksum of the payload (big-endian u16)
//!     26     6  reserved, zero
//!     32     -  payload
//! ```
//!
//! A reply is the request with `kind` set to 1 and the checksum filled in:
//! the server writes those three bytes into the buffer it received into
//! and sends the same bytes back ([`make_reply`]).
//!
//! Every way a datagram can be wrong is a [`WireError`], which the server
//! counts as a drop reason; parsing never panics and never allocates.
//!
//! ```
//! use arenapool_server::wire::{self, Header, Kind};
//!
//! // A receive buffer with room to spare, and a request received into it.
//! let mut buf = [0u8; 64];
//! let header = Header { kind: Kind::Request, payload_len: 5, seq: 7, sent_ns: 123, checksum: 0 };
//! header.write(&mut buf)?;
//! buf[wire::HEADER_LEN..wire::HEADER_LEN + 5].copy_from_slice(b"hello");
//! let received = wire::HEADER_LEN + 5;
//!
//! let len = wire::make_reply(&mut buf, received)?;
//! let reply = wire::parse(&buf[..len])?;
//! assert_eq!(reply.header.kind, Kind::Reply);
//! assert_eq!(reply.header.checksum, arenapool_server::checksum::checksum(b"hello"));
//! assert_eq!(reply.payload, b"hello");
//! # Ok::<(), wire::WireError>(())
//! ```

use crate::checksum::checksum;

/// Bytes in a header.
pub const HEADER_LEN: usize = 32;

/// The first two bytes of every datagram.
pub const MAGIC: [u8; 2] = *b"AP";

/// The format's version.
pub const VERSION: u8 = 1;

const KIND: usize = 3;
const CHECKSUM: std::ops::Range<usize> = 24..26;

/// Whether a datagram asks or answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// From the load generator to the server.
    Request,
    /// From the server back.
    Reply,
}

/// A decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Request or reply.
    pub kind: Kind,
    /// Bytes of payload after the header.
    pub payload_len: u32,
    /// The sender's sequence number, echoed in the reply.
    pub seq: u64,
    /// When the request was sent, in nanoseconds on the sender's clock,
    /// echoed in the reply.
    pub sent_ns: u64,
    /// The payload's RFC 1071 checksum in a reply; 0 in a request.
    pub checksum: u16,
}

/// A datagram that parsed: its header and its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The header.
    pub header: Header,
    /// The payload, exactly `header.payload_len` bytes.
    pub payload: &'a [u8],
}

/// Why a datagram was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than a header.
    #[error("datagram of {0} bytes is shorter than the {HEADER_LEN}-byte header")]
    Short(usize),
    /// Wrong magic, version or kind: not this protocol.
    #[error("not an arenapool datagram (bad magic, version or kind)")]
    BadHeader,
    /// The length field disagrees with the datagram's size.
    #[error("length field says {claimed} payload bytes, the datagram has {actual}")]
    LengthMismatch {
        /// What the header claims.
        claimed: u32,
        /// What arrived after the header.
        actual: usize,
    },
    /// The datagram filled the whole receive buffer, so it may have been
    /// cut short by the kernel: treated as oversized.
    #[error("datagram filled the {0}-byte buffer: oversized (possibly truncated)")]
    Oversized(usize),
    /// The buffer to write into is too small.
    #[error("buffer of {have} bytes, need {need}")]
    NoRoom {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
}

impl Header {
    /// Encodes the header into the first [`HEADER_LEN`] bytes of `out`.
    ///
    /// # Errors
    ///
    /// [`WireError::NoRoom`] if `out` is shorter than a header.
    pub fn write(&self, out: &mut [u8]) -> Result<(), WireError> {
        let have = out.len();
        let h = out.get_mut(..HEADER_LEN).ok_or(WireError::NoRoom {
            need: HEADER_LEN,
            have,
        })?;
        h[0..2].copy_from_slice(&MAGIC);
        h[2] = VERSION;
        h[KIND] = match self.kind {
            Kind::Request => 0,
            Kind::Reply => 1,
        };
        h[4..8].copy_from_slice(&self.payload_len.to_be_bytes());
        h[8..16].copy_from_slice(&self.seq.to_be_bytes());
        h[16..24].copy_from_slice(&self.sent_ns.to_be_bytes());
        h[CHECKSUM].copy_from_slice(&self.checksum.to_be_bytes());
        h[26..32].fill(0);
        Ok(())
    }

    /// Decodes the header at the start of `datagram`, without looking at
    /// the payload.
    ///
    /// # Errors
    ///
    /// [`WireError::Short`] or [`WireError::BadHeader`].
    pub fn read(datagram: &[u8]) -> Result<Header, WireError> {
        let Some(h) = datagram.first_chunk::<HEADER_LEN>() else {
            return Err(WireError::Short(datagram.len()));
        };
        if h[0..2] != MAGIC || h[2] != VERSION {
            return Err(WireError::BadHeader);
        }
        let kind = match h[KIND] {
            0 => Kind::Request,
            1 => Kind::Reply,
            _ => return Err(WireError::BadHeader),
        };
        let be32 = |r: std::ops::Range<usize>| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&h[r]);
            u32::from_be_bytes(b)
        };
        let be64 = |r: std::ops::Range<usize>| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[r]);
            u64::from_be_bytes(b)
        };
        Ok(Header {
            kind,
            payload_len: be32(4..8),
            seq: be64(8..16),
            sent_ns: be64(16..24),
            checksum: u16::from_be_bytes([h[24], h[25]]),
        })
    }
}

/// Parses a whole datagram: header, then a payload of exactly the length
/// the header claims.
///
/// # Errors
///
/// [`WireError::Short`], [`WireError::BadHeader`] or
/// [`WireError::LengthMismatch`].
pub fn parse(datagram: &[u8]) -> Result<Packet<'_>, WireError> {
    let header = Header::read(datagram)?;
    let payload = &datagram[HEADER_LEN..];
    if u64::from(header.payload_len) != payload.len() as u64 {
        return Err(WireError::LengthMismatch {
            claimed: header.payload_len,
            actual: payload.len(),
        });
    }
    Ok(Packet { header, payload })
}

/// The server's work on one received datagram, in place: `buf[..received]`
/// is what arrived (`buf` is the whole receive buffer). Checks it is a
/// well-formed request that fitted the buffer, computes the payload's
/// checksum, turns the header into a reply's and returns the number of
/// bytes to send back (`received`).
///
/// # Errors
///
/// [`WireError::Oversized`] if the datagram filled the buffer (the kernel
/// silently truncates a datagram larger than the buffer, so a full buffer
/// cannot be told from a cut one: the largest datagram accepted is one
/// byte less than the buffer); otherwise as [`parse`], and
/// [`WireError::BadHeader`] for a datagram that is already a reply.
pub fn make_reply(buf: &mut [u8], received: usize) -> Result<usize, WireError> {
    if received >= buf.len() {
        return Err(WireError::Oversized(buf.len()));
    }
    make_reply_exact(&mut buf[..received])
}

/// [`make_reply`] for a datagram whose length is known to be whole (one
/// segment of a GRO train, say): `datagram` is exactly what arrived.
///
/// # Errors
///
/// As [`parse`], and [`WireError::BadHeader`] for a reply.
///
/// ```
/// use arenapool_server::wire::{self, Header, Kind, HEADER_LEN};
/// let mut d = [0u8; HEADER_LEN + 2];
/// Header { kind: Kind::Request, payload_len: 2, seq: 7, sent_ns: 0, checksum: 0 }.write(&mut d)?;
/// assert_eq!(wire::make_reply_exact(&mut d)?, d.len());
/// assert_eq!(wire::parse(&d)?.header.kind, Kind::Reply);
/// # Ok::<(), wire::WireError>(())
/// ```
pub fn make_reply_exact(datagram: &mut [u8]) -> Result<usize, WireError> {
    let packet = parse(datagram)?;
    if packet.header.kind != Kind::Request {
        return Err(WireError::BadHeader);
    }
    let sum = checksum(packet.payload);
    datagram[KIND] = 1;
    datagram[CHECKSUM].copy_from_slice(&sum.to_be_bytes());
    Ok(datagram.len())
}

/// Fills `payload` with the deterministic pattern of sequence number
/// `seq`, so that a reply's payload can be checked without keeping a copy.
pub fn fill_payload(seq: u64, payload: &mut [u8]) {
    let mut x = seed(seq);
    // Whole words first (a word store each, no call), then the tail.
    let mut words = payload.chunks_exact_mut(8);
    for chunk in &mut words {
        x = step(x);
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    let tail = words.into_remainder();
    if !tail.is_empty() {
        x = step(x);
        tail.copy_from_slice(&x.to_le_bytes()[..tail.len()]);
    }
}

/// Whether `payload` is the pattern [`fill_payload`] writes for `seq`.
pub fn payload_matches(seq: u64, payload: &[u8]) -> bool {
    let mut x = seed(seq);
    // Word by word (a compare each, where slices of unknown length would
    // call memcmp per 8 bytes: the load generator's hottest spot).
    let mut words = payload.chunks_exact(8);
    for chunk in &mut words {
        x = step(x);
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        if u64::from_le_bytes(w) != x {
            return false;
        }
    }
    let tail = words.remainder();
    tail.is_empty() || {
        x = step(x);
        tail == &x.to_le_bytes()[..tail.len()]
    }
}

fn seed(seq: u64) -> u64 {
    seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

/// xorshift64: cheap, and never stuck at zero from a nonzero seed.
fn step(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request(seq: u64, payload: &[u8], room: usize) -> Vec<u8> {
        let mut buf = vec![0u8; room.max(HEADER_LEN + payload.len())];
        Header {
            kind: Kind::Request,
            payload_len: payload.len() as u32,
            seq,
            sent_ns: 99,
            checksum: 0,
        }
        .write(&mut buf)
        .unwrap();
        buf[HEADER_LEN..HEADER_LEN + payload.len()].copy_from_slice(payload);
        buf
    }

    #[test]
    fn header_round_trips() {
        let h = Header {
            kind: Kind::Reply,
            payload_len: 1400,
            seq: u64::MAX - 3,
            sent_ns: 1 << 40,
            checksum: 0xbeef,
        };
        let mut buf = [0xAAu8; HEADER_LEN];
        h.write(&mut buf).unwrap();
        assert_eq!(Header::read(&buf), Ok(h));
        assert_eq!(&buf[26..], &[0; 6]);
    }

    #[test]
    fn short_datagrams_are_rejected() {
        for len in 0..HEADER_LEN {
            assert_eq!(parse(&vec![0u8; len]), Err(WireError::Short(len)));
        }
        let mut small = [0u8; 4];
        assert!(matches!(
            Header {
                kind: Kind::Request,
                payload_len: 0,
                seq: 0,
                sent_ns: 0,
                checksum: 0
            }
            .write(&mut small),
            Err(WireError::NoRoom {
                need: HEADER_LEN,
                have: 4
            })
        ));
    }

    #[test]
    fn bad_magic_version_and_kind_are_rejected() {
        let good = request(1, b"abc", 0);
        for (at, value) in [(0, b'X'), (1, b'X'), (2, 2), (3, 7)] {
            let mut bad = good.clone();
            bad[at] = value;
            assert_eq!(parse(&bad), Err(WireError::BadHeader), "byte {at}");
        }
    }

    #[test]
    fn lying_length_fields_are_rejected() {
        let mut d = request(1, b"abcdef", 0);
        d[4..8].copy_from_slice(&1000u32.to_be_bytes());
        assert_eq!(
            parse(&d),
            Err(WireError::LengthMismatch {
                claimed: 1000,
                actual: 6
            })
        );
        d[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            parse(&d),
            Err(WireError::LengthMismatch {
                claimed: u32::MAX,
                actual: 6
            })
        );
        d[4..8].copy_from_slice(&2u32.to_be_bytes());
        assert_eq!(
            parse(&d),
            Err(WireError::LengthMismatch {
                claimed: 2,
                actual: 6
            })
        );
    }

    #[test]
    fn a_full_buffer_is_oversized() {
        let mut d = request(1, &[7; 32], 0);
        let len = d.len();
        assert_eq!(make_reply(&mut d, len), Err(WireError::Oversized(len)));
        let mut roomy = request(1, &[7; 32], len + 1);
        assert_eq!(make_reply(&mut roomy, len), Ok(len));
    }

    #[test]
    fn replies_are_not_answered() {
        let mut d = request(1, b"x", 64);
        let n = HEADER_LEN + 1;
        make_reply(&mut d, n).unwrap();
        assert_eq!(make_reply(&mut d, n), Err(WireError::BadHeader));
    }

    #[test]
    fn reply_carries_the_checksum_and_the_request() {
        let payload: Vec<u8> = (0..=255).collect();
        let mut d = request(42, &payload, 1024);
        let n = HEADER_LEN + payload.len();
        assert_eq!(make_reply(&mut d, n), Ok(n));
        let reply = parse(&d[..n]).unwrap();
        assert_eq!(reply.header.kind, Kind::Reply);
        assert_eq!(reply.header.seq, 42);
        assert_eq!(reply.header.sent_ns, 99);
        assert_eq!(reply.header.checksum, checksum(&payload));
        assert_eq!(reply.payload, &payload[..]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 8 } else { 256 }))]
        #[test]
        fn payload_pattern_checks(seq in any::<u64>(), len in 0usize..3000, flip in any::<usize>()) {
            let mut p = vec![0u8; len];
            fill_payload(seq, &mut p);
            prop_assert!(payload_matches(seq, &p));
            if len > 0 {
                p[flip % len] ^= 1;
                prop_assert!(!payload_matches(seq, &p));
            }
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&data);
            let mut copy = data.clone();
            let n = copy.len();
            let _ = make_reply(&mut copy, n.saturating_sub(1));
        }
    }
}
