//! `bytes` and tokio interop: `BufMut` on both handles, `OwnedBuf::freeze`
//! into `Bytes` that returns the buffer when its last clone drops, and
//! reading from tokio sockets straight into pooled buffers.

#![cfg(feature = "bytes")]

use arenapool::Pool;
use bytes::{Buf as _, BufMut, Bytes};

fn pool(buffer_size: usize, capacity: usize) -> Pool {
    Pool::new(buffer_size, capacity).unwrap()
}

#[test]
fn buf_mut_appends_and_reports_exact_room() {
    let pool = pool(16, 1);
    let mut buf = pool.try_acquire().unwrap();
    assert_eq!(buf.remaining_mut(), 16);
    buf.put_u32(0xDEAD_BEEF);
    buf.put_slice(b"abc");
    assert_eq!(buf.remaining_mut(), 16 - 7);
    assert_eq!(&buf[..], &[0xDE, 0xAD, 0xBE, 0xEF, b'a', b'b', b'c']);
    assert_eq!(buf.chunk_mut().len(), 9);
    buf.put_bytes(b'z', 9);
    assert_eq!((buf.len(), buf.remaining_mut()), (16, 0));
    assert!(!buf.has_remaining_mut());
}

#[test]
fn buf_mut_on_owned_handle_and_generic_writers() {
    fn encode(out: &mut impl BufMut, fields: &[u16]) {
        for &f in fields {
            out.put_u16_le(f);
        }
    }
    let pool = pool(8, 1);
    let mut buf = pool.try_acquire_owned().unwrap();
    encode(&mut buf, &[1, 2, 3]);
    assert_eq!(&buf[..], &[1, 0, 2, 0, 3, 0]);
    // `limit` and `chain_mut` from `bytes` work on top of it.
    let mut limited = (&mut buf).limit(1);
    assert_eq!(limited.remaining_mut(), 1);
    limited.put_u8(9);
    assert_eq!(buf.len(), 7);
}

#[test]
#[should_panic]
fn buf_mut_put_past_capacity_panics_as_the_contract_says() {
    let pool = pool(4, 1);
    let mut buf = pool.try_acquire().unwrap();
    buf.put_slice(b"12345");
}

#[test]
fn a_panicking_put_keeps_the_handle_consistent() {
    let pool = pool(4, 1);
    let mut buf = pool.try_acquire_owned().unwrap();
    buf.put_slice(b"ab");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        buf.put_slice(b"xyz");
    }));
    assert!(result.is_err());
    assert!(buf.len() <= 4);
    assert_eq!(&buf[..2], b"ab");
    drop(buf);
    assert_eq!(pool.stats().in_use, 0);
}

#[test]
fn every_put_checks_the_room_before_writing() {
    let pool = pool(4, 1);
    let mut buf = pool.try_acquire().unwrap();
    buf.put_slice(b"ab");
    let message = |f: &mut dyn FnMut()| {
        let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_err();
        p.downcast_ref::<String>().cloned().unwrap()
    };
    assert_eq!(
        message(&mut || buf.put_bytes(0, 3)),
        "put of 3 bytes past the end of the buffer (2 bytes left)"
    );
    assert_eq!(
        message(&mut || buf.put(&b"xyz"[..])),
        "put of 3 bytes past the end of the buffer (2 bytes left)"
    );
    assert_eq!(
        message(&mut || buf.put_u32(1)),
        "put of 4 bytes past the end of the buffer (2 bytes left)"
    );
    assert_eq!(&buf[..], b"ab", "a put that did not fit wrote nothing");
    // A `Buf` in two chunks goes in whole.
    buf.put((&b"c"[..]).chain(&b"d"[..]));
    assert_eq!(&buf[..], b"abcd");
}

/// With `zero_on_release`, whatever the `BufMut` methods wrote is cleared,
/// and so is what was written through `chunk_mut` without `advance_mut`
/// (untracked writes clear the whole buffer).
#[test]
fn zero_on_release_clears_what_buf_mut_wrote() {
    let pool = Pool::builder()
        .buffer_size(64)
        .capacity(1)
        .zero_on_release(true)
        .build()
        .unwrap();
    let mut buf = pool.try_acquire().unwrap();
    buf.put_slice(b"secret");
    buf.put_bytes(b'x', 3);
    buf.put_u16(0xffff);
    buf.put(&b"tail"[..]);
    drop(buf);
    let mut buf = pool.try_acquire().unwrap();
    assert!(buf.as_full().iter().all(|&b| b == 0), "{:?}", buf.as_full());
    let chunk = buf.chunk_mut();
    chunk[40..44].copy_from_slice(b"left");
    drop(buf);
    let buf = pool.try_acquire().unwrap();
    assert!(buf.as_full().iter().all(|&b| b == 0), "{:?}", buf.as_full());
}

#[test]
fn freeze_shares_the_buffer_without_copying() {
    let pool = pool(64, 1);
    let mut buf = pool.try_acquire_owned().unwrap();
    buf.extend_from_slice(b"hello, pooled world").unwrap();
    let addr = buf.as_ptr();
    let bytes = buf.freeze();
    assert_eq!(bytes.as_ptr(), addr, "freeze copied the data");
    assert_eq!(&bytes[..], b"hello, pooled world");
    let world = bytes.slice(14..);
    assert_eq!(world.as_ptr(), addr.wrapping_add(14));
    drop(bytes);
    assert_eq!(pool.stats().in_use, 1, "a slice still refers to the buffer");
    assert!(pool.try_acquire().is_none());
    drop(world);
    assert_eq!(pool.stats().in_use, 0);
    assert!(pool.try_acquire().is_some());
}

#[test]
fn frozen_bytes_read_as_a_buf() {
    let pool = pool(16, 1);
    let mut buf = pool.try_acquire_owned().unwrap();
    buf.put_u16(7);
    buf.put_slice(b"tail");
    let mut bytes = buf.freeze();
    assert_eq!(bytes.get_u16(), 7);
    assert_eq!(bytes.chunk(), b"tail");
}

#[test]
fn empty_freeze_returns_the_buffer_on_drop() {
    let pool = pool(16, 1);
    let view = pool.try_acquire_owned().unwrap().freeze();
    assert!(view.is_empty());
    assert_eq!(pool.stats().in_use, 1);
    drop(view);
    assert_eq!(pool.stats().in_use, 0);
    // An empty view needs no owner: it goes back as it becomes `Bytes`.
    let bytes: Bytes = pool.try_acquire_owned().unwrap().freeze().into();
    assert!(bytes.is_empty());
    assert_eq!(pool.stats().in_use, 0);
}

#[test]
fn views_become_bytes_without_copying() {
    let pool = pool(64, 1);
    let mut buf = pool.try_acquire_owned().unwrap();
    buf.extend_from_slice(b"frame-one|frame-two").unwrap();
    let addr = buf.as_ptr();
    let one: Bytes = buf.split_to(10).into();
    assert_eq!((one.as_ptr(), &one[..]), (addr, &b"frame-one|"[..]));
    let two = Bytes::from(buf.freeze());
    assert_eq!(
        (two.as_ptr(), &two[..]),
        (addr.wrapping_add(10), &b"frame-two"[..])
    );
    let clone = two.slice(6..);
    drop((one, two));
    assert_eq!(pool.stats().in_use, 1, "a `Bytes` slice keeps the buffer");
    drop(clone);
    assert_eq!(pool.stats().in_use, 0);
}

#[test]
fn a_view_is_a_buf_cursor_whose_copy_to_bytes_shares() {
    let pool = pool(16, 1);
    let mut buf = pool.try_acquire_owned().unwrap();
    buf.put_u32(0xdead_beef);
    buf.put_slice(b"rest");
    let mut view = buf.freeze();
    assert_eq!(view.remaining(), 8);
    assert_eq!(view.get_u32(), 0xdead_beef);
    let addr = view.as_ptr();
    let rest = view.copy_to_bytes(4);
    assert_eq!((rest.as_ptr(), &rest[..]), (addr, &b"rest"[..]));
    assert!(!view.has_remaining());
    drop(view);
    assert_eq!(pool.stats().in_use, 1, "the `Bytes` keeps the buffer");
    drop(rest);
    assert_eq!(pool.stats().in_use, 0);
}

/// Clones and slices of frozen buffers travel through threads and tasks;
/// when the last one drops, every buffer is back.
#[test]
#[cfg_attr(miri, ignore = "a thread pool and thousands of buffers")]
fn frozen_clones_across_threads_and_tasks_all_return() {
    let pool = pool(256, 16);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let mut handles = Vec::new();
        for round in 0..200u32 {
            let mut buf = pool.acquire_owned().await;
            buf.put_u32(round);
            buf.put_bytes(round as u8, 100);
            let bytes = buf.freeze();
            for part in 0..4usize {
                let piece = bytes.slice(part * 4..);
                handles.push(tokio::spawn(async move {
                    tokio::task::yield_now().await;
                    assert_eq!(piece.len(), 104 - part * 4);
                    assert_eq!(piece[piece.len() - 1], round as u8);
                }));
            }
            let clone = bytes.clone();
            handles.push(tokio::task::spawn_blocking(move || {
                let copy = clone.clone();
                std::thread::spawn(move || drop(copy)).join().unwrap();
                assert_eq!(&clone[..4], &round.to_be_bytes());
            }));
            // Pieces drop as their tasks finish, so 16 buffers serve 200
            // rounds; `acquire_owned` waits when all are still shared.
        }
        for h in handles {
            h.await.unwrap();
        }
    });
    let s = pool.stats();
    assert_eq!((s.in_use, s.waiting), (0, 0), "{s:?}");
}

/// tokio reads straight into a pooled buffer through `BufMut`: TCP with
/// `read_buf`, UDP with `recv_buf`.
#[test]
#[cfg_attr(miri, ignore = "sockets")]
fn tokio_reads_into_pooled_buffers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pool = pool(32, 4);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(b"over tcp").await.unwrap();
        });
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = pool.acquire_owned().await;
        while buf.len() < 8 {
            let n = stream.read_buf(&mut buf).await.unwrap();
            assert!(n > 0, "peer closed early");
        }
        assert_eq!(&buf[..], b"over tcp");
        client.await.unwrap();

        let a = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        a.send_to(b"over udp", b.local_addr().unwrap())
            .await
            .unwrap();
        let mut dgram = pool.acquire_owned().await;
        let (n, from) = b.recv_buf_from(&mut dgram).await.unwrap();
        assert_eq!((n, from), (8, a.local_addr().unwrap()));
        assert_eq!(&dgram[..], b"over udp");
        // Answer from the same buffer, frozen, without a copy.
        b.send_to(&dgram.freeze(), from).await.unwrap();
        let mut reply = pool.acquire_owned().await;
        a.recv_buf(&mut reply).await.unwrap();
        assert_eq!(&reply[..], b"over udp");
    });
    assert_eq!(pool.stats().in_use, 0);
}

#[path = "../examples/tcp_echo.rs"]
#[allow(dead_code, unreachable_pub)]
mod tcp_echo;

/// The `tcp_echo` example on loopback: 16 clients through a pool of 4
/// buffers (so connections wait for buffers); every byte comes back.
#[test]
#[cfg_attr(miri, ignore = "sockets")]
fn tcp_echo_example_echoes_every_byte() {
    let pool = pool(512, 4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .build()
        .unwrap();
    let total = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(tcp_echo::serve(pool.clone(), listener));
        let clients: Vec<_> = (0..16u8)
            .map(|id| tokio::spawn(tcp_echo::client(addr, id, 50, 1000)))
            .collect();
        let mut total = 0;
        for c in clients {
            total += c.await.unwrap().unwrap();
        }
        server.abort();
        total
    });
    assert_eq!(total, 16 * 50 * 1000);
    drop(rt); // closes the server's connections
    assert_eq!(pool.stats().in_use, 0);
}
