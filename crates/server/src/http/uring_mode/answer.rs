//! Answering: parse what a connection received, put its answers together
//! in a pooled response buffer, one buffer at a time, and send them.

use arenapool::OwnedBuf;

use super::super::Ctx;
use super::super::conn::{self, End};
use super::super::parse::{self, HEAD_MAX, Parsed, Route, Status, body_chunks};
use super::Worker;
use super::state::{Active, Send, Task};

/// `100 Continue`, sent before a body whose client waits for it.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl Worker<'_> {
    /// Submits the send of `buf[range]` for connection `i`.
    pub(super) fn start_send(&mut self, i: u32, buf: OwnedBuf, range: std::ops::Range<usize>) {
        let from = range.start;
        let now = self.now;
        let Some((conn, a)) = self.table.split(i) else {
            return;
        };
        match self.ring.send(&conn.socket, buf, range) {
            Ok(id) => {
                a.send = Some(Send {
                    id,
                    since: now,
                    from,
                });
                self.own(id, i);
            }
            Err(rejected) => {
                // The submission queue is full: keep the buffer (what was
                // sent of it is dropped from its front) and try again.
                let mut buf = rejected.buf;
                if from > 0 {
                    let len = buf.len();
                    buf.copy_within(from.., 0);
                    buf.truncate(len - from);
                }
                a.out = Some(buf);
                self.waiting.push(i);
            }
        }
    }

    /// Makes sure connection `i` has a response buffer with at least
    /// `want` bytes of room, sending a fuller one first. `false` when the
    /// answer has to wait: a send is in flight or no buffer could be had.
    fn room(&mut self, i: u32, want: usize) -> bool {
        let Some((_, a)) = self.table.split(i) else {
            return false;
        };
        if a.send.is_some() {
            return false;
        }
        match &a.out {
            Some(b) if b.remaining() >= want => return true,
            Some(b) if !b.is_empty() => {
                let buf = a.out.take().expect("matched");
                let len = buf.len();
                self.start_send(i, buf, 0..len);
                return false;
            }
            _ => {}
        }
        match self.pool.try_acquire_owned_with_capacity(self.out_size) {
            Ok(Some(b)) => {
                if let Some((_, a)) = self.table.split(i) {
                    a.out = Some(b);
                }
                true
            }
            _ => {
                self.waiting.push(i);
                false
            }
        }
    }

    /// Answers what connection `i` can answer now, then sends what it
    /// put together, closes it when it is done, or reads on.
    pub(super) fn pump(&mut self, i: u32) {
        loop {
            let Some((conn, a)) = self.table.split(i) else {
                return;
            };
            if conn.ending.is_some() || a.send.is_some() {
                break;
            }
            count_whole(self.ctx, a);
            match a.task {
                Task::Body { done, left } => {
                    if !self.room(i, 1) {
                        break;
                    }
                    let (_, a) = self.table.split(i).expect("live");
                    let out = a.out.as_mut().expect("room() took one");
                    let k = left.min(out.remaining());
                    for chunk in body_chunks(done, k) {
                        let _ = out.extend_from_slice(chunk);
                    }
                    a.task = match left - k {
                        0 => Task::Idle,
                        left => Task::Body {
                            done: done + k,
                            left,
                        },
                    };
                }
                Task::Echo { left, keep } => {
                    a.merge();
                    let avail = a.data().len().min(left);
                    if avail == 0 {
                        break;
                    }
                    if keep && !self.room(i, 1) {
                        break;
                    }
                    let (_, a) = self.table.split(i).expect("live");
                    let k = match (keep, a.out.as_mut()) {
                        (true, Some(out)) => {
                            let k = avail.min(out.remaining());
                            let from = a.input.as_ref().expect("has data");
                            let _ = out.extend_from_slice(&from[a.at..a.at + k]);
                            k
                        }
                        _ => avail,
                    };
                    a.consume(k);
                    a.task = match left - k {
                        0 => Task::Idle,
                        left => Task::Echo { left, keep },
                    };
                }
                Task::Idle if a.skip > 0 => {
                    a.merge();
                    let k = a.data().len().min(a.skip);
                    if k == 0 {
                        break;
                    }
                    a.consume(k);
                    a.skip -= k;
                }
                Task::Idle => {
                    if conn.close_after {
                        break;
                    }
                    a.merge();
                    if a.data().is_empty() || !self.request(i) {
                        break;
                    }
                }
            }
        }
        self.after_pump(i);
    }

    /// Parses and starts answering the next request of connection `i`;
    /// `false` when it has to wait (for bytes, or for room to answer).
    fn request(&mut self, i: u32) -> bool {
        let (limits, now) = (self.limits, self.now);
        let (_, a) = self.table.split(i).expect("live");
        let req = match parse::parse(a.data(), limits) {
            Parsed::Partial => {
                if a.input_full() {
                    return self.refuse(i, Status::HeadersTooLarge);
                }
                a.head_since.get_or_insert(now);
                return false;
            }
            Parsed::Refuse(status) => return self.refuse(i, status),
            Parsed::Request(req) => req,
        };
        if !self.room(i, HEAD_MAX + CONTINUE.len()) {
            return false;
        }
        let (status, len) = req.answer();
        let (conn, a) = self.table.split(i).expect("live");
        a.head_since = None;
        a.consume(req.head_len);
        let waiting_body = a.data().len() < req.body_len;
        let out = a.out.as_mut().expect("room() took one");
        if req.expect_continue && waiting_body {
            let _ = out.extend_from_slice(CONTINUE);
        }
        let head = put_head(out, status, len, req.keep_alive, req.http10);
        a.task = match req.route {
            Route::Bytes(0) => Task::Idle,
            Route::Bytes(n) => Task::Body { done: 0, left: n },
            _ if req.body_len == 0 => Task::Idle,
            route => Task::Echo {
                left: req.body_len,
                keep: route == Route::Echo,
            },
        };
        if matches!(req.route, Route::Bytes(_)) {
            // Its body, if it sent one, is not ours to parse.
            a.skip = req.body_len;
        }
        a.pending = Some((status, head + len));
        conn.close_after = !req.keep_alive;
        true
    }

    /// Answers `status` with an empty body and closes after it.
    fn refuse(&mut self, i: u32, status: Status) -> bool {
        if !self.room(i, HEAD_MAX) {
            return false;
        }
        let (conn, a) = self.table.split(i).expect("live");
        let out = a.out.take();
        a.clear();
        a.out = out;
        conn.close_after = true;
        let out = a.out.as_mut().expect("room() took one");
        let head = put_head(out, status, 0, false, false);
        self.ctx.counters.answered(status, head);
        true
    }

    /// After answering: send what is ready, close a connection that is
    /// done, give back what it no longer needs, and read on or stop.
    fn after_pump(&mut self, i: u32) {
        let Some((conn, a)) = self.table.split(i) else {
            return;
        };
        if conn.ending.is_some() {
            return self.finish(i);
        }
        if a.send.is_some() {
            return;
        }
        if a.out.as_ref().is_some_and(|b| !b.is_empty()) {
            let buf = a.out.take().expect("checked");
            let len = buf.len();
            return self.start_send(i, buf, 0..len);
        }
        let idle = a.task == Task::Idle;
        if idle {
            a.out = None; // answered: the response buffer goes back
            count_whole(self.ctx, a);
        }
        if conn.eof && a.wants_body() {
            // The client closed with a body cut short.
            return self.close(i, End::Io);
        }
        if idle && (conn.close_after || conn.eof) {
            return self.close(i, End::Closed);
        }
        if conn.eof {
            // A body of ours still to make goes out first.
            return;
        }
        self.table.release(i);
        self.reading(i);
    }
}

/// Counts `a`'s answer once it is whole (nothing left to produce), as the
/// tokio modes count theirs.
fn count_whole(ctx: &Ctx, a: &mut Active) {
    if a.task == Task::Idle
        && let Some((status, bytes)) = a.pending.take()
    {
        ctx.counters.answered(status, bytes);
        conn::note_answered(ctx.config.warmup);
    }
}

/// Appends a response head to `out` (which has [`HEAD_MAX`] bytes of
/// room); returns its length.
fn put_head(out: &mut OwnedBuf, status: Status, len: usize, keep: bool, http10: bool) -> usize {
    let at = out.len();
    let n = parse::write_head(&mut out.spare_mut()[..HEAD_MAX], status, len, keep, http10);
    let _ = out.set_len(at + n);
    n
}
