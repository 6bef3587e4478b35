//! One HTTP/1.x request head, parsed with `httparse` from the bytes read so
//! far, and the two routes: `GET /bytes/N` and `POST /echo`.

use serde::{Deserialize, Serialize};

/// Most headers a request may have; more is a 431.
pub(crate) const MAX_HEADERS: usize = 32;

/// What the bytes at the front of a read buffer hold.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// Not a whole head yet.
    Partial,
    /// A head of `head_len` bytes; its body (if any) follows.
    Request(Request),
    /// A request the server refuses, and then closes the connection.
    Refuse(Status),
}

/// A request head the server answers.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) struct Request {
    pub(crate) head_len: usize,
    pub(crate) route: Route,
    /// Body bytes after the head (`Content-Length`).
    pub(crate) body_len: usize,
    /// The connection stays open after the answer.
    pub(crate) keep_alive: bool,
    /// HTTP/1.0: the answer says `Connection: keep-alive` when it stays.
    pub(crate) http10: bool,
    /// `Expect: 100-continue`: the client waits for a `100 Continue`
    /// before it sends the body (curl does, for bodies over 1 KiB).
    pub(crate) expect_continue: bool,
}

impl Request {
    /// The answer's status and body length.
    pub(crate) fn answer(&self) -> (Status, usize) {
        match self.route {
            Route::Bytes(n) => (Status::Ok, n),
            Route::Echo => (Status::Ok, self.body_len),
            Route::NotFound => (Status::NotFound, 0),
            Route::WrongMethod => (Status::MethodNotAllowed, 0),
        }
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Route {
    /// `GET /bytes/N`: N bytes.
    Bytes(usize),
    /// `POST /echo`: the body back.
    Echo,
    /// Another path: 404, the connection stays.
    NotFound,
    /// A known path with another method: 405, the connection stays.
    WrongMethod,
}

/// The statuses the server answers with; each one is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// 200.
    Ok,
    /// 400: not HTTP, a bad `Content-Length`, or `/bytes/N` past the
    /// limit or not a number.
    BadRequest,
    /// 404.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 413: a body above the limit.
    PayloadTooLarge,
    /// 431: a head larger than a read buffer, or too many headers.
    HeadersTooLarge,
    /// 501: `Transfer-Encoding` (chunked bodies are not supported).
    NotImplemented,
}

impl Status {
    /// The status line's code and reason.
    pub(crate) fn line(self) -> (u16, &'static str) {
        match self {
            Status::Ok => (200, "OK"),
            Status::BadRequest => (400, "Bad Request"),
            Status::NotFound => (404, "Not Found"),
            Status::MethodNotAllowed => (405, "Method Not Allowed"),
            Status::PayloadTooLarge => (413, "Payload Too Large"),
            Status::HeadersTooLarge => (431, "Request Header Fields Too Large"),
            Status::NotImplemented => (501, "Not Implemented"),
        }
    }
}

/// The limits a request is held to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_body: usize,
    pub(crate) max_bytes: usize,
}

/// Parses the head at the front of `data`.
pub(crate) fn parse(data: &[u8], limits: Limits) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(data) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Refuse(Status::HeadersTooLarge),
        Err(_) => return Parsed::Refuse(Status::BadRequest),
    };
    let http10 = req.version == Some(0);
    let mut keep_alive = !http10;
    let mut body_len = 0usize;
    let mut lengths = 0;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            let parsed = std::str::from_utf8(h.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok());
            match parsed {
                Some(n) => body_len = n,
                None => return Parsed::Refuse(Status::BadRequest),
            }
        } else if h.name.eq_ignore_ascii_case("expect") {
            expect_continue = h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Refuse(Status::NotImplemented);
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && http10 {
                    keep_alive = true;
                }
            }
        }
    }
    if lengths > 1 {
        // Two lengths: a request smuggling vector; refuse.
        return Parsed::Refuse(Status::BadRequest);
    }
    if body_len > limits.max_body {
        return Parsed::Refuse(Status::PayloadTooLarge);
    }
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return Parsed::Refuse(Status::BadRequest);
    };
    let route = if let Some(n) = path.strip_prefix("/bytes/") {
        match n.parse::<usize>() {
            // No sign, no leading zero: one spelling per number.
            Ok(v) if v <= limits.max_bytes && n.len() == n_len(v) => {
                if method == "GET" {
                    Route::Bytes(v)
                } else {
                    Route::WrongMethod
                }
            }
            _ => return Parsed::Refuse(Status::BadRequest),
        }
    } else if path == "/echo" {
        if method == "POST" {
            Route::Echo
        } else {
            Route::WrongMethod
        }
    } else {
        Route::NotFound
    };
    Parsed::Request(Request {
        head_len,
        route,
        body_len,
        keep_alive,
        http10,
        expect_continue,
    })
}

/// Digits of `n` in decimal.
fn n_len(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// Writes a response head into `out`, which must have room (at most
/// [`HEAD_MAX`] bytes). Returns its length.
pub(crate) fn write_head(
    out: &mut [u8],
    status: Status,
    content_len: usize,
    keep_alive: bool,
    http10: bool,
) -> usize {
    use std::io::Write as _;
    let (code, reason) = status.line();
    let connection = match (keep_alive, http10) {
        (false, _) => "Connection: close\r\n",
        (true, true) => "Connection: keep-alive\r\n",
        (true, false) => "",
    };
    let mut cursor = std::io::Cursor::new(out);
    // Cannot fail: HEAD_MAX bytes hold the longest head.
    let _ = write!(
        cursor,
        "HTTP/1.1 {code} {reason}\r\nServer: arenapool\r\nContent-Length: {content_len}\r\n{connection}\r\n"
    );
    cursor.position() as usize
}

/// The longest response head [`write_head`] writes.
pub(crate) const HEAD_MAX: usize = 160;

/// The byte at `offset` of every `/bytes/N` body: a repeating alphabet,
/// so a client can check it.
#[inline]
pub(crate) const fn body_byte(offset: usize) -> u8 {
    b'a' + (offset % 26) as u8
}

/// 40 rounds of the body's alphabet, copied from rather than computed a
/// byte at a time (a division per byte took 40 % of pool mode's time on
/// 16 KiB answers, under `perf record`).
static BODY: [u8; 26 * 40] = {
    let mut a = [0u8; 26 * 40];
    let mut i = 0;
    while i < a.len() {
        a[i] = body_byte(i);
        i += 1;
    }
    a
};

/// Appends the first `n` bytes of a `/bytes/N` body to `v`.
pub(crate) fn extend_body(v: &mut Vec<u8>, n: usize) {
    v.reserve(n);
    for chunk in body_chunks(0, n) {
        v.extend_from_slice(chunk);
    }
}

/// Bytes `offset..offset + n` of a `/bytes/N` body, as slices of
/// [`BODY`].
pub(crate) fn body_chunks(mut offset: usize, n: usize) -> impl Iterator<Item = &'static [u8]> {
    let end = offset + n;
    std::iter::from_fn(move || {
        (offset < end).then(|| {
            let start = offset % 26;
            let k = (end - offset).min(BODY.len() - start);
            offset += k;
            &BODY[start..start + k]
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_chunks_are_the_body() {
        for (offset, n) in [
            (0, 0),
            (0, 1),
            (0, 26),
            (5, 1040),
            (25, 3000),
            (1039, 17),
            (7, 16_384),
        ] {
            let got: Vec<u8> = body_chunks(offset, n).flatten().copied().collect();
            let want: Vec<u8> = (offset..offset + n).map(body_byte).collect();
            assert_eq!(got, want, "offset {offset}, {n} bytes");
        }
    }

    const LIMITS: Limits = Limits {
        max_body: 1000,
        max_bytes: 5000,
    };

    fn req(s: &str) -> Parsed {
        parse(s.as_bytes(), LIMITS)
    }

    #[test]
    fn routes_versions_and_keep_alive() {
        let Parsed::Request(r) = req("GET /bytes/12 HTTP/1.1\r\nHost: x\r\n\r\n") else {
            panic!()
        };
        assert_eq!(
            (r.route, r.keep_alive, r.http10, r.body_len),
            (Route::Bytes(12), true, false, 0)
        );
        let Parsed::Request(r) = req("GET /bytes/0 HTTP/1.0\r\n\r\n") else {
            panic!()
        };
        assert_eq!((r.keep_alive, r.http10), (false, true));
        let Parsed::Request(r) = req("GET /bytes/0 HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
        else {
            panic!()
        };
        assert!(r.keep_alive);
        let Parsed::Request(r) =
            req("POST /echo HTTP/1.1\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello")
        else {
            panic!()
        };
        assert_eq!(
            (r.route, r.keep_alive, r.body_len, r.head_len),
            (Route::Echo, false, 5, 61)
        );
        assert!(matches!(
            req("GET /echo HTTP/1.1\r\n\r\n"),
            Parsed::Request(Request {
                route: Route::WrongMethod,
                ..
            })
        ));
        assert!(matches!(
            req("GET /nope HTTP/1.1\r\n\r\n"),
            Parsed::Request(Request {
                route: Route::NotFound,
                ..
            })
        ));
        assert_eq!(req("GET /bytes/12 HTTP/1.1\r\nHost:"), Parsed::Partial);
    }

    #[test]
    fn bad_requests_are_refused_with_the_right_status() {
        for (r, s) in [
            ("GARBAGE\r\n\r\n", Status::BadRequest),
            ("GET /bytes/5001 HTTP/1.1\r\n\r\n", Status::BadRequest),
            ("GET /bytes/-1 HTTP/1.1\r\n\r\n", Status::BadRequest),
            ("GET /bytes/007 HTTP/1.1\r\n\r\n", Status::BadRequest),
            (
                "GET /bytes/99999999999999999999999 HTTP/1.1\r\n\r\n",
                Status::BadRequest,
            ),
            (
                "POST /echo HTTP/1.1\r\nContent-Length: 1001\r\n\r\n",
                Status::PayloadTooLarge,
            ),
            (
                "POST /echo HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
                Status::BadRequest,
            ),
            (
                "POST /echo HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
                Status::BadRequest,
            ),
            (
                "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                Status::NotImplemented,
            ),
        ] {
            assert_eq!(req(r), Parsed::Refuse(s), "{r:?}");
        }
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: y\r\n"))
            .collect();
        assert_eq!(
            req(&format!("GET / HTTP/1.1\r\n{many}\r\n")),
            Parsed::Refuse(Status::HeadersTooLarge)
        );
    }

    #[test]
    fn heads_fit_their_bound() {
        let mut out = [0u8; HEAD_MAX];
        let n = write_head(&mut out, Status::HeadersTooLarge, usize::MAX, true, true);
        assert!(n < HEAD_MAX, "{n}");
        let text = std::str::from_utf8(&out[..n]).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 431 ") && text.ends_with("keep-alive\r\n\r\n"),
            "{text}"
        );
    }
}
