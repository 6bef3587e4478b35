//! What the io_uring worker keeps per connection: a small [`Conn`] for
//! every open one, and an [`Active`] only while it has bytes or an answer
//! in hand.

use std::time::Instant;

use arenapool::OwnedBuf;
use arenapool::uring::OpId;
use socket2::Socket;

use super::super::conn::End;
use super::super::parse::Status;

/// No [`Active`] (an index of the worker's table of them).
pub(super) const NONE: u32 = u32::MAX;

/// What a connection's answer still has to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Task {
    /// Nothing: the next request may be parsed.
    #[default]
    Idle,
    /// `/bytes/N`: `left` more bytes of the body, from offset `done`.
    Body { done: usize, left: usize },
    /// A request body of `left` more bytes, echoed (`keep`) or skipped.
    Echo { left: usize, keep: bool },
}

/// A send in flight: its op, when it started, and how much of the buffer
/// went out before it (a stream send may be partial).
#[derive(Debug, Clone, Copy)]
pub(super) struct Send {
    pub(super) id: OpId,
    pub(super) since: Instant,
    pub(super) from: usize,
}

/// Every open connection: its socket, its receive, and why and when it
/// ends. Idle, this is all it holds (about 48 bytes).
pub(super) struct Conn {
    pub(super) socket: Socket,
    /// Its [`Active`], or [`NONE`].
    pub(super) act: u32,
    pub(super) recv: Option<OpId>,
    /// When bytes last arrived or an answer last went out.
    pub(super) active: Instant,
    /// The receive was cancelled; not re-armed until its last completion
    /// came.
    pub(super) cancelled: bool,
    /// The receive ended for want of buffers; re-armed by the worker.
    pub(super) starved: bool,
    /// No requests after the current answer: close once it is out.
    pub(super) close_after: bool,
    /// The peer closed its side.
    pub(super) eof: bool,
    /// Shut down: freed once no operation is in flight.
    pub(super) ending: Option<End>,
}

impl Conn {
    pub(super) fn new(socket: Socket, now: Instant) -> Conn {
        Conn {
            socket,
            act: NONE,
            recv: None,
            active: now,
            cancelled: false,
            starved: false,
            close_after: false,
            eof: false,
            ending: None,
        }
    }
}

/// A connection with bytes or an answer in hand. Entries are reused, so
/// taking one allocates nothing in steady state.
#[derive(Default)]
pub(super) struct Active {
    /// Unparsed bytes: `input[at..]`, in a read-class buffer (usually the
    /// buffer the kernel received into).
    pub(super) input: Option<OwnedBuf>,
    pub(super) at: usize,
    /// Received buffers that did not fit in `input` yet, in order.
    pub(super) stash: Vec<OwnedBuf>,
    /// The response buffer being filled, while no send is in flight.
    pub(super) out: Option<OwnedBuf>,
    pub(super) send: Option<Send>,
    pub(super) task: Task,
    /// Bytes of a request body to drop before the next request (a body
    /// on a route that has no use for it, such as `GET /bytes/N`).
    pub(super) skip: usize,
    /// The answer being produced, counted once it is whole: its status
    /// and bytes.
    pub(super) pending: Option<(Status, usize)>,
    /// When the head now being read started to arrive.
    pub(super) head_since: Option<Instant>,
}

impl Active {
    /// Holds nothing: the entry can go back to the worker's free list.
    pub(super) fn is_empty(&self) -> bool {
        self.input.is_none()
            && self.stash.is_empty()
            && self.out.is_none()
            && self.send.is_none()
            && self.task == Task::Idle
            && self.skip == 0
            && self.pending.is_none()
            && self.head_since.is_none()
    }

    /// A request body is still to come: its echo, or bytes to skip.
    pub(super) fn wants_body(&self) -> bool {
        matches!(self.task, Task::Echo { .. }) || self.skip > 0
    }

    /// Drops everything it holds (the buffers go back), keeping the
    /// stash's capacity for reuse.
    pub(super) fn clear(&mut self) {
        self.input = None;
        self.at = 0;
        self.stash.clear();
        self.out = None;
        self.task = Task::Idle;
        self.skip = 0;
        self.pending = None;
        self.head_since = None;
    }

    pub(super) fn data(&self) -> &[u8] {
        self.input.as_deref().map_or(&[], |b| &b[self.at..])
    }

    /// Takes a received buffer. Bytes that fit in the last buffer held
    /// are copied there and the new buffer goes back at once, so what a
    /// connection holds follows the bytes it was sent, not the number of
    /// segments they came in.
    pub(super) fn push(&mut self, buf: OwnedBuf) {
        let last = match self.stash.last_mut() {
            Some(b) => Some(b),
            None => self.input.as_mut(),
        };
        match last {
            None => {
                self.input = Some(buf);
                self.at = 0;
            }
            Some(last) if last.remaining() >= buf.len() => {
                let _ = last.extend_from_slice(&buf);
            }
            Some(_) => self.stash.push(buf),
        }
    }

    /// Drops the first `n` unparsed bytes; an emptied buffer goes back.
    pub(super) fn consume(&mut self, n: usize) {
        self.at += n;
        if self.input.as_ref().is_some_and(|b| self.at >= b.len()) {
            self.input = None;
            self.at = 0;
        }
    }

    /// Moves stashed bytes into `input` as far as they fit.
    pub(super) fn merge(&mut self) {
        while !self.stash.is_empty() {
            let Some(input) = self.input.as_mut() else {
                self.input = Some(self.stash.remove(0));
                self.at = 0;
                continue;
            };
            if self.at > 0 {
                let len = input.len();
                input.copy_within(self.at.., 0);
                input.truncate(len - self.at);
                self.at = 0;
            }
            let next = &mut self.stash[0];
            let k = next.len().min(input.remaining());
            if k == 0 {
                return;
            }
            let _ = input.extend_from_slice(&next[..k]);
            if k == next.len() {
                self.stash.remove(0);
            } else {
                let len = next.len();
                next.copy_within(k.., 0);
                next.truncate(len - k);
            }
        }
    }

    /// The head in `input` cannot grow: it fills a whole buffer.
    pub(super) fn input_full(&self) -> bool {
        self.at == 0 && self.input.as_ref().is_some_and(|b| b.remaining() == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_connection_is_small() {
        // What 10,000 idle connections cost a worker beside the kernel's
        // sockets.
        assert!(size_of::<Conn>() <= 64, "{}", size_of::<Conn>());
    }

    #[test]
    fn small_segments_share_a_buffer() {
        let pool = arenapool::Pool::new(8, 8).unwrap();
        let mut a = Active::default();
        for b in b"abcdefghij" {
            let mut buf = pool.try_acquire_owned().unwrap();
            buf.extend_from_slice(&[*b]).unwrap();
            a.push(buf);
        }
        // Ten one-byte segments in two 8-byte buffers.
        assert_eq!(pool.stats().in_use, 2);
        assert_eq!(a.data(), b"abcdefgh");
        assert_eq!(a.stash.len(), 1);
        a.consume(8);
        a.merge();
        assert_eq!(a.data(), b"ij");
    }

    #[test]
    fn stashed_bytes_follow_the_input_in_order() {
        let pool = arenapool::Pool::new(8, 4).unwrap();
        let buf = |s: &[u8]| {
            let mut b = pool.try_acquire_owned().unwrap();
            b.extend_from_slice(s).unwrap();
            b
        };
        let mut a = Active::default();
        a.push(buf(b"abcdef"));
        a.consume(4);
        a.push(buf(b"ghijkl"));
        a.push(buf(b"mn"));
        a.merge();
        // "ef" moved to the front, then six of the eight stashed bytes.
        assert_eq!(a.data(), b"efghijkl");
        assert_eq!(a.stash.len(), 1);
        assert!(a.input_full());
        a.consume(8);
        assert!(a.input.is_none(), "an answered buffer goes back");
        a.merge();
        assert_eq!(a.data(), b"mn");
        a.consume(2);
        assert!(a.is_empty());
        assert_eq!(pool.stats().in_use, 0);
    }
}
