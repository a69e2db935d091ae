//! The metrics endpoint's minimal HTTP/1.1 responder: `GET /metrics`, `/livez` and `/readyz`,
//! one request per connection, the request head bounded ([`METRICS_REQUEST_HEAD_BYTES_MAX`]),
//! the connection's time bounded ([`METRICS_REQUEST_TIMEOUT_MS`]) and so is the number of
//! connections served at once ([`METRICS_CONNECTIONS_MAX`]). Another path is answered 404,
//! another method 405, a request head that does not parse 400, one that is too large 431; the
//! request body, if any, is never read. Every answer closes the connection.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The largest request head (request line and headers) the endpoint reads, in bytes.
pub const METRICS_REQUEST_HEAD_BYTES_MAX: usize = 8_192;
/// How long one connection may take, from accepting it to the end of the answer, in ms.
pub const METRICS_REQUEST_TIMEOUT_MS: u64 = 5_000;
/// The most connections the endpoint serves at once (others wait in the listen backlog).
pub const METRICS_CONNECTIONS_MAX: usize = 16;
/// The bytes one read of a request head takes at most.
const METRICS_READ_CHUNK_BYTES: usize = 1_024;
/// How long the endpoint waits after a failed accept (out of file descriptors, say) before it
/// accepts again.
const METRICS_ACCEPT_BACKOFF_MS: u64 = 10;

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Route {
    /// `GET /metrics`.
    Metrics,
    /// `GET /livez`.
    Livez,
    /// `GET /readyz`.
    Readyz,
}

/// An answer: the status code, the content type and the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) content_type: &'static str,
    pub(super) body: String,
}

impl Response {
    /// A plain-text answer (the body gets a final newline).
    pub(super) fn text(status: u16, body: impl Into<String>) -> Response {
        let mut body = body.into();
        body.push('\n');
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body,
        }
    }
}

/// What the head of a request asks for, or the answer to give at once.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Parsed {
    /// A GET of a known path.
    Route(Route),
    /// An answer without asking the node (400, 404, 405, 431).
    Answer(Response),
}

/// Parses a request head (the bytes read until the blank line, or all that could be read;
/// `complete` says whether the blank line was seen).
pub(super) fn parse(head: &[u8], complete: bool) -> Parsed {
    if !complete {
        return if head.len() >= METRICS_REQUEST_HEAD_BYTES_MAX {
            Parsed::Answer(Response::text(
                431,
                format!("request head larger than {METRICS_REQUEST_HEAD_BYTES_MAX} bytes"),
            ))
        } else {
            Parsed::Answer(Response::text(400, "incomplete request head"))
        };
    }
    let Ok(text) = std::str::from_utf8(head) else {
        return Parsed::Answer(Response::text(400, "request head is not UTF-8"));
    };
    let line = text.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Answer(Response::text(400, "malformed request line"));
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Parsed::Answer(Response::text(400, "malformed request line"));
    }
    let path = target.split('?').next().unwrap_or(target);
    let route = match path {
        "/metrics" => Route::Metrics,
        "/livez" => Route::Livez,
        "/readyz" => Route::Readyz,
        _ => {
            return Parsed::Answer(Response::text(
                404,
                format!("no such path: {path} (/metrics, /livez, /readyz)"),
            ))
        }
    };
    if method != "GET" {
        return Parsed::Answer(Response::text(
            405,
            format!("method {method} not allowed: GET only"),
        ));
    }
    Parsed::Route(route)
}

/// The reason phrase of the status codes the endpoint answers with.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// The bytes of an answer, closing the connection.
pub(super) fn encode(response: &Response) -> Vec<u8> {
    let allow = if response.status == 405 {
        "Allow: GET\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len(),
    )
    .into_bytes();
    out.extend_from_slice(response.body.as_bytes());
    out
}

/// Reads a request head: until the blank line, the end of the stream, or
/// [`METRICS_REQUEST_HEAD_BYTES_MAX`] bytes. Returns the bytes and whether the head is complete.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<(Vec<u8>, bool)> {
    let mut head = Vec::new();
    let mut buf = [0u8; METRICS_READ_CHUNK_BYTES];
    loop {
        let room = METRICS_REQUEST_HEAD_BYTES_MAX - head.len();
        if room == 0 {
            return Ok((head, false));
        }
        let n = stream
            .read(&mut buf[..room.min(METRICS_READ_CHUNK_BYTES)])
            .await?;
        if n == 0 {
            return Ok((head, false));
        }
        let scan_from = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head[scan_from..].windows(4).position(|w| w == b"\r\n\r\n") {
            head.truncate(scan_from + end + 4);
            return Ok((head, true));
        }
    }
}

/// Serves one connection: one request, one answer.
async fn connection<F, Fut>(mut stream: TcpStream, answer: F) -> std::io::Result<()>
where
    F: Fn(Route) -> Fut,
    Fut: Future<Output = Response>,
{
    let (head, complete) = read_head(&mut stream).await?;
    let response = match parse(&head, complete) {
        Parsed::Route(route) => answer(route).await,
        Parsed::Answer(response) => response,
    };
    stream.write_all(&encode(&response)).await?;
    stream.shutdown().await
}

/// Accepts connections on `listener` until the task is aborted, answering each request with
/// `answer`. The connections in progress are aborted with it.
pub(super) async fn serve<F, Fut>(listener: TcpListener, answer: F)
where
    F: Fn(Route) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(METRICS_CONNECTIONS_MAX));
    let mut connections = JoinSet::new();
    let timeout = Duration::from_millis(METRICS_REQUEST_TIMEOUT_MS);
    loop {
        while connections.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(METRICS_ACCEPT_BACKOFF_MS)).await;
                continue;
            }
        };
        let answer = answer.clone();
        connections.spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(timeout, connection(stream, answer)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::debug!(%error, "metrics endpoint: connection failed"),
                Err(_) => tracing::debug!("metrics endpoint: connection timed out"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(head: &str) -> u16 {
        match parse(head.as_bytes(), true) {
            Parsed::Route(_) => 200,
            Parsed::Answer(r) => r.status,
        }
    }

    #[test]
    fn routes_and_refusals() {
        assert_eq!(
            parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", true),
            Parsed::Route(Route::Metrics)
        );
        assert_eq!(
            parse(b"GET /readyz?verbose HTTP/1.0\r\n\r\n", true),
            Parsed::Route(Route::Readyz)
        );
        assert_eq!(
            parse(b"GET /livez HTTP/1.1\r\n\r\n", true),
            Parsed::Route(Route::Livez)
        );
        assert_eq!(answered("GET /other HTTP/1.1\r\n\r\n"), 404);
        assert_eq!(answered("POST /metrics HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(answered("HEAD /livez HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(answered("GET /metrics\r\n\r\n"), 400);
        assert_eq!(answered("GET /metrics SPDY/3\r\n\r\n"), 400);
        assert_eq!(answered("GET metrics HTTP/1.1\r\n\r\n"), 400);
        let long = vec![b'a'; METRICS_REQUEST_HEAD_BYTES_MAX];
        match parse(&long, false) {
            Parsed::Answer(r) => assert_eq!(r.status, 431),
            other => panic!("{other:?}"),
        }
        match parse(b"GET /metrics HTTP/1.1\r\n", false) {
            Parsed::Answer(r) => assert_eq!(r.status, 400),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn answers_close_the_connection_and_name_their_length() {
        let bytes = encode(&Response::text(405, "no"));
        let text = String::from_utf8(bytes).unwrap_or_default();
        assert!(
            text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{text}"
        );
        assert!(text.contains("Content-Length: 3\r\n"), "{text}");
        assert!(text.contains("Allow: GET\r\n"), "{text}");
        assert!(text.contains("Connection: close\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nno\n"), "{text}");
    }
}
