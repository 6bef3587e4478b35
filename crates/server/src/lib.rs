//! The arenapool case study: a UDP packet server on the pool.
