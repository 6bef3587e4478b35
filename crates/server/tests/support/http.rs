//! What the HTTP suites share: a server started for a test, a client
//! that reads one answer at a time, and the modes every test runs.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::time::Duration;

use arenapool_server::http::{HttpConfig, HttpMode, HttpServer};

/// A one-worker server with small buffers and limits, as `f` adjusts.
pub fn start(mode: HttpMode, f: impl FnOnce(&mut HttpConfig)) -> HttpServer {
    let mut cfg = HttpConfig {
        mode,
        workers: 1,
        read_buffer: 1024,
        buffers: 4,
        max_body: 100_000,
        max_bytes: 200_000,
        ..HttpConfig::default()
    };
    f(&mut cfg);
    HttpServer::start(cfg).expect("the server starts")
}

pub fn connect(server: &HttpServer) -> TcpStream {
    let s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// One response: status code, the `Connection` header, body.
#[derive(Debug)]
pub struct Answer {
    pub code: u16,
    pub connection: Option<String>,
    pub body: Vec<u8>,
}

pub fn read_answer(r: &mut BufReader<TcpStream>) -> Option<Answer> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let code: u16 = line.split(' ').nth(1)?.parse().ok()?;
    let (mut len, mut connection) = (0usize, None);
    loop {
        line.clear();
        r.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(": ")?;
        if k.eq_ignore_ascii_case("content-length") {
            len = v.parse().ok()?;
        } else if k.eq_ignore_ascii_case("connection") {
            connection = Some(v.to_string());
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Answer {
        code,
        connection,
        body,
    })
}

pub fn alphabet(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

/// The peer closed: reading gives end of file.
pub fn closed(r: &mut BufReader<TcpStream>) -> bool {
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).is_ok() && rest.is_empty()
}

/// The modes every test runs: pool, Vec, and io_uring unless the kernel
/// refuses io_uring (a skip, which strict mode fails).
pub fn modes() -> Vec<HttpMode> {
    let mut m = vec![HttpMode::Pool, HttpMode::Vec];
    if super::http_mode_runs_here(HttpMode::Uring) {
        m.push(HttpMode::Uring);
    }
    m
}
