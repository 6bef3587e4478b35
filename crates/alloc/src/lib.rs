//! Allocators around the arenapool buffer pool.
