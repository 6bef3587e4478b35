//! [`HttpMode::Hyper`](super::HttpMode::Hyper): the same two routes served
//! by hyper (HTTP/1.1, keep-alive and pipelining on), the stack most Rust
//! servers use: the reference row for "what the pool buys over the usual
//! stack". hyper keeps its own read and write buffers per connection.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::Ctx;
use super::parse::{Status, extend_body};

/// Serves one connection with hyper until it closes.
pub(super) async fn serve(stream: TcpStream, ctx: Arc<Ctx>) {
    let service = hyper::service::service_fn(move |req| {
        let ctx = Arc::clone(&ctx);
        async move { Ok::<_, Infallible>(answer(req, &ctx).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .pipeline_flush(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn answer(req: Request<Incoming>, ctx: &Ctx) -> Response<Full<Bytes>> {
    let cfg = &ctx.config;
    let path = req.uri().path();
    let (status, body) = if let Some(n) = path.strip_prefix("/bytes/") {
        match n.parse::<usize>() {
            Ok(n) if n <= cfg.max_bytes && req.method() == Method::GET => {
                let mut body = Vec::new();
                extend_body(&mut body, n);
                (Status::Ok, body.into())
            }
            Ok(n) if n <= cfg.max_bytes => (Status::MethodNotAllowed, Bytes::new()),
            _ => (Status::BadRequest, Bytes::new()),
        }
    } else if path == "/echo" {
        if req.method() == Method::POST {
            match Limited::new(req.into_body(), cfg.max_body).collect().await {
                Ok(body) => (Status::Ok, body.to_bytes()),
                Err(_) => (Status::PayloadTooLarge, Bytes::new()),
            }
        } else {
            (Status::MethodNotAllowed, Bytes::new())
        }
    } else {
        (Status::NotFound, Bytes::new())
    };
    ctx.counters.answered(status, body.len());
    super::conn::note_answered(cfg.warmup);
    let mut response = Response::new(Full::new(body));
    *response.status_mut() =
        StatusCode::from_u16(status.line().0).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
}
