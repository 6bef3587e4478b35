//! The `Trim` operation: `Pool::trim` against the model.

use super::State;

impl State<'_> {
    /// Distance between slots: the buffer size rounded up to the
    /// alignment.
    pub(super) fn stride(&self) -> usize {
        self.cfg.buffer_size.next_multiple_of(self.cfg.alignment)
    }

    /// `Pool::trim`: every cached buffer goes back, and the grown segments
    /// are freed from the top down while none of their buffers is out;
    /// a freed segment's buffers read as zeros when the pool grows again
    /// (the pool is heap-backed, so free buffers of live segments keep
    /// their bytes). A buffer handed to a waiter that has not collected it
    /// is out, at an index the model does not know: then the pool may keep
    /// more segments than the known indices need, never fewer.
    pub(super) fn trim(&mut self) {
        let cached = self.pool.stats().cached;
        let waiting = self.pool.stats().waiting;
        let t = self.pool.trim();
        self.trims += 1;
        assert_eq!(t.buffers_flushed, cached, "{t:?}");
        assert_eq!(self.pool.stats().cached, 0);
        assert_eq!(
            self.pool.stats().waiting,
            waiting,
            "a trim handed out a buffer"
        );

        // The segments the known out indices need.
        let highest = self.live_indices().max();
        let (mut capacity, mut segments) = (self.capacity, self.segments);
        while segments > 1 {
            let start = self.cfg.capacity << (segments - 2);
            if highest.is_some_and(|h| h as usize >= start) {
                break;
            }
            capacity = start;
            segments -= 1;
        }
        let s = self.pool.class_stats()[0].stats;
        if self.granted == 0 {
            assert_eq!(
                (s.capacity, s.segments),
                (capacity, segments),
                "{t:?} {s:?}"
            );
        } else {
            assert!(
                (segments..=self.segments).contains(&s.segments),
                "{t:?} {s:?}: between {segments} and {} segments",
                self.segments
            );
            // Segment k ends at c * 2^k, the last one cut to the limit.
            capacity = (self.cfg.capacity << (s.segments - 1)).min(self.limit);
            segments = s.segments;
        }
        assert_eq!(t.segments_freed, self.segments - segments, "{t:?}");
        assert_eq!(
            t.bytes_unreserved,
            (self.capacity - capacity) * self.stride(),
            "{t:?}"
        );
        for slot in &mut self.free_slots[capacity..self.capacity] {
            *slot = None;
        }
        self.capacity = capacity;
        self.segments = segments;
    }
}
