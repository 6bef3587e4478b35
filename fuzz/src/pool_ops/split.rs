//! The operations on frozen views ([`SharedBuf`](arenapool::SharedBuf)):
//! `freeze`, clones, slices, splits and truncation of views,
//! `try_into_mut`, drops, and `OwnedBuf::split_to` / `split_off`, which
//! freeze part of a buffer while its writer lives on.
//!
//! The views of one slot form a [`Group`]. A split writer stays in
//! `held`, and its group is marked `writer`: the slot counts once in
//! `in_use`, goes back to the pool only when the writer and every view
//! are gone, and `try_into_mut` fails while the writer lives. The writer
//! keeps the slot's bytes (its region never covers a live view, so the
//! group's copy of the views' bytes stays right); when it drops first,
//! its copy becomes the group's.

use super::model::{Group, Handle, Held, State, recycle, zeroed_slot};
use super::thread::Worker;
use super::wakers::expect_panic;

impl State<'_> {
    pub(super) fn pick_view(&self, g: u8, v: u8) -> Option<(usize, usize)> {
        if self.groups.is_empty() {
            return None;
        }
        let g = usize::from(g) % self.groups.len();
        let v = usize::from(v) % self.groups[g].views.len();
        Some((g, v))
    }

    /// [`Op::Freeze`](super::ops::Op::Freeze): an owned handle becomes a
    /// view of its region's filled bytes, joining its slot's views if a
    /// split left some.
    pub(super) fn freeze(&mut self, h: u8) {
        let cap = self.cap;
        let Some(i) = self.pick(h) else { return };
        if !matches!(self.held[i].h, Handle::O(_)) {
            return;
        }
        let held = self.held.swap_remove(i);
        held.check(cap);
        let Handle::O(b) = held.h else { unreachable!() };
        let idx = b.index();
        let (a, e) = (held.off, held.off + held.len);
        let bytes = b.freeze();
        assert!(bytes[..] == held.slot[a..e], "freeze changed the bytes");
        match self.writer_group(idx) {
            Some(g) => {
                let group = &mut self.groups[g];
                group.writer = false;
                recycle(std::mem::replace(&mut group.slot, held.slot));
                group.views.push((bytes, a, e));
            }
            None => self.groups.push(Group {
                idx,
                slot: held.slot,
                views: vec![(bytes, a, e)],
                writer: false,
            }),
        }
    }

    /// [`Op::TryIntoMut`](super::ops::Op::TryIntoMut).
    pub(super) fn try_into_mut(&mut self, g: u8, v: u8, keep: bool) {
        let cap = self.cap;
        let Some((g, v)) = self.pick_view(g, v) else {
            return;
        };
        let group = &mut self.groups[g];
        let (view, a, b) = group.views.swap_remove(v);
        let only = group.views.is_empty() && !group.writer;
        match view.try_into_mut() {
            Ok(buf) => {
                assert!(only, "try_into_mut of a shared buffer succeeded");
                assert!(
                    buf[..] == group.slot[a..b],
                    "try_into_mut changed the bytes"
                );
                assert_eq!(buf.capacity(), cap - a, "from the view's start on");
                let group = self.groups.swap_remove(g);
                if keep {
                    // Still in use: from a frozen slot to a held one.
                    let held = Held {
                        h: Handle::O(buf),
                        len: b - a,
                        slot: group.slot,
                        off: a,
                        rcap: cap - a,
                    };
                    held.check(cap);
                    self.held.push(held);
                } else {
                    let panics = self.released(group.idx, group.slot);
                    expect_panic(buf, panics, "a reclaimed buffer");
                }
            }
            Err(view) => {
                assert!(!only, "try_into_mut of the only view failed");
                group.views.push((view, a, b));
            }
        }
    }

    /// [`Op::CloneView`](super::ops::Op::CloneView).
    pub(super) fn clone_view(&mut self, g: u8, v: u8) {
        let Some((g, v)) = self.pick_view(g, v) else {
            return;
        };
        let group = &mut self.groups[g];
        let (bytes, a, b) = &group.views[v];
        let copy = bytes.clone();
        assert_eq!(copy.as_ptr(), bytes.as_ptr(), "a clone shares the buffer");
        assert!(copy[..] == group.slot[*a..*b]);
        let (a, b) = (*a, *b);
        group.views.push((copy, a, b));
    }

    /// [`Op::SliceView`](super::ops::Op::SliceView).
    pub(super) fn slice_view(&mut self, g: u8, v: u8, a: u16, b: u16) {
        let Some((g, v)) = self.pick_view(g, v) else {
            return;
        };
        let group = &mut self.groups[g];
        let (bytes, start, end) = &group.views[v];
        let n = end - start;
        let (mut a, mut b) = (usize::from(a) % (n + 1), usize::from(b) % (n + 1));
        if a > b {
            std::mem::swap(&mut a, &mut b);
        }
        let part = bytes.slice(a..b);
        assert!(part[..] == group.slot[start + a..start + b]);
        // Even an empty slice shares (and keeps) the buffer.
        let start = *start;
        group.views.push((part, start + a, start + b));
    }

    /// [`Op::DropView`](super::ops::Op::DropView): the last view of a slot
    /// whose writer is gone gives it back.
    pub(super) fn drop_view(
        &mut self,
        g: u8,
        v: u8,
        on_thread: bool,
        exit: bool,
        worker: &mut Worker,
    ) {
        let Some((g, v)) = self.pick_view(g, v) else {
            return;
        };
        let group = &mut self.groups[g];
        let (bytes, a, b) = group.views.swap_remove(v);
        assert!(
            bytes[..] == group.slot[a..b],
            "Bytes of buffer {}",
            group.idx
        );
        let last = group.views.is_empty();
        let writer = group.writer;
        if last && writer {
            // The writer keeps the slot (and has its bytes).
            recycle(self.groups.swap_remove(g).slot);
        }
        if on_thread && worker.handoff() {
            worker.run(move || drop(bytes));
            if exit {
                worker.exit();
            }
            if last && !writer {
                let group = self.groups.swap_remove(g);
                self.released(group.idx, group.slot);
            }
        } else {
            // The model first: the last view's drop hands the buffer to a
            // waiter, whose waker may panic.
            let mut panics = false;
            if last && !writer {
                let group = self.groups.swap_remove(g);
                panics = self.released(group.idx, group.slot);
            }
            expect_panic(bytes, panics, "the last Bytes");
        }
    }

    /// [`Op::SplitTo`](super::ops::Op::SplitTo) (`front`) and
    /// [`Op::SplitOff`](super::ops::Op::SplitOff) on a held owned handle:
    /// the frozen part joins the slot's views, the writer stays held.
    pub(super) fn split_writer(&mut self, h: u8, at: u16, front: bool) {
        let cap = self.cap;
        let Some(i) = self.pick(h) else { return };
        let held = &mut self.held[i];
        let Handle::O(buf) = &mut held.h else { return };
        let idx = buf.index();
        let at = usize::from(at) % (held.len + 1);
        let (view, a, e) = if front {
            let view = buf.split_to(at);
            let range = (held.off, held.off + at);
            held.off += at;
            held.rcap -= at;
            held.len -= at;
            (view, range.0, range.1)
        } else {
            let view = buf.split_off(at);
            let range = (held.off + at, held.off + held.len);
            held.len = at;
            held.rcap = at;
            (view, range.0, range.1)
        };
        assert!(
            view[..] == held.slot[a..e],
            "split_{} changed the bytes",
            if front { "to" } else { "off" }
        );
        assert_eq!(view.len(), e - a);
        assert_eq!(view.index(), idx);
        held.check(cap);
        let g = self.groups.iter().position(|g| g.writer && g.idx == idx);
        let held = &self.held[i];
        match g {
            Some(g) => {
                // The writer's bytes: the new view's among them.
                let group = &mut self.groups[g];
                group.slot.copy_from_slice(&held.slot);
                group.views.push((view, a, e));
            }
            None => {
                let mut slot = zeroed_slot(cap);
                slot.copy_from_slice(&held.slot);
                self.groups.push(Group {
                    idx,
                    slot,
                    views: vec![(view, a, e)],
                    writer: true,
                });
            }
        }
    }

    /// [`Op::ViewSplitTo`](super::ops::Op::ViewSplitTo) (`front`) and
    /// [`Op::ViewSplitOff`](super::ops::Op::ViewSplitOff).
    pub(super) fn split_view(&mut self, g: u8, v: u8, at: u16, front: bool) {
        let Some((g, v)) = self.pick_view(g, v) else {
            return;
        };
        let group = &mut self.groups[g];
        let (view, a, e) = &mut group.views[v];
        let at = usize::from(at) % (*e - *a + 1);
        let (part, pa, pe) = if front {
            let part = view.split_to(at);
            let range = (*a, *a + at);
            *a += at;
            (part, range.0, range.1)
        } else {
            let part = view.split_off(at);
            let range = (*a + at, *e);
            *e = *a + at;
            (part, range.0, range.1)
        };
        assert!(view[..] == group.slot[*a..*e], "the view split");
        assert!(part[..] == group.slot[pa..pe], "the part split off");
        assert_eq!(part.index(), group.idx);
        group.views.push((part, pa, pe));
    }

    /// [`Op::TruncateView`](super::ops::Op::TruncateView).
    pub(super) fn truncate_view(&mut self, g: u8, v: u8, n: u16) {
        let Some((g, v)) = self.pick_view(g, v) else {
            return;
        };
        let group = &mut self.groups[g];
        let (view, a, e) = &mut group.views[v];
        let n = usize::from(n) % (*e - *a + 2);
        view.truncate(n);
        *e = (*a + n).min(*e);
        assert!(view[..] == group.slot[*a..*e], "truncate");
    }
}
