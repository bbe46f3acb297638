//! The load generator's HTTP/1.1 client: one keep-alive connection per
//! client, each request written as prepared bytes and each answer framed by
//! its `Content-Length`. It does what `wrk` does per request and no more
//! (no pool, no URL parsing, no header map), so the CPU the generator
//! takes from the two cores it shares with the host stays small.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How a request failed before an answer was read.
#[derive(Debug)]
pub(crate) enum WireError {
    Connect(io::Error),
    Timeout,
    /// Writing the request or reading the answer.
    Io(io::Error),
    /// An answer this client cannot frame (no `Content-Length`, bad syntax).
    Malformed(&'static str),
}

impl WireError {
    /// Its key in the phase's error counts.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            WireError::Connect(_) => "connect",
            WireError::Timeout => "timeout",
            WireError::Io(_) => "request",
            WireError::Malformed(_) => "body",
        }
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Connect(e) => write!(f, "connect: {e}"),
            WireError::Timeout => f.write_str("no answer in time"),
            WireError::Io(e) => write!(f, "i/o: {e}"),
            WireError::Malformed(what) => write!(f, "malformed answer: {what}"),
        }
    }
}

/// Appends an HTTP/1.1 request to `out`: the request line, `host`, the
/// given headers, and `body` with its `content-length` (always, but on a
/// `GET` with no body).
pub(crate) fn write_request(
    out: &mut Vec<u8>,
    method: &str,
    target: &str,
    host: SocketAddr,
    headers: &[(&str, &str)],
    body: &str,
) {
    use std::io::Write;
    let mut line =
        |args: std::fmt::Arguments<'_>| out.write_fmt(args).expect("writing to a Vec cannot fail");
    line(format_args!(
        "{method} {target} HTTP/1.1\r\nhost: {host}\r\n"
    ));
    for (name, value) in headers {
        line(format_args!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        line(format_args!("content-length: {}\r\n", body.len()));
    }
    line(format_args!("\r\n{body}"));
}

/// Answers larger than this are refused, so a broken server cannot make
/// the generator buffer without end.
const MAX_ANSWER: usize = 1 << 20;
const MAX_HEADERS: usize = 32;

/// One keep-alive connection.
pub(crate) struct Wire {
    stream: TcpStream,
    /// Bytes read and not yet consumed.
    buf: Vec<u8>,
    /// The server said `Connection: close`.
    closing: bool,
}

impl Wire {
    pub(crate) async fn connect(addr: SocketAddr) -> Result<Wire, WireError> {
        let stream = TcpStream::connect(addr).await.map_err(WireError::Connect)?;
        stream.set_nodelay(true).map_err(WireError::Connect)?;
        Ok(Wire {
            stream,
            buf: Vec::with_capacity(4096),
            closing: false,
        })
    }

    /// Whether the connection can carry another request.
    pub(crate) fn reusable(&self) -> bool {
        !self.closing
    }

    /// Writes `request` and reads its answer: the status and the body.
    pub(crate) async fn exchange(
        &mut self,
        request: &[u8],
        timeout: Duration,
    ) -> Result<(u16, bytes::Bytes), WireError> {
        match tokio::time::timeout(timeout, self.exchange_now(request)).await {
            Ok(answer) => answer,
            Err(_) => Err(WireError::Timeout),
        }
    }

    async fn exchange_now(&mut self, request: &[u8]) -> Result<(u16, bytes::Bytes), WireError> {
        self.stream
            .write_all(request)
            .await
            .map_err(WireError::Io)?;
        loop {
            if let Some(head) = parse_head(&self.buf)? {
                self.closing |= head.close;
                let total = head.len + head.content_length;
                if total > MAX_ANSWER {
                    return Err(WireError::Malformed("answer too large"));
                }
                while self.buf.len() < total {
                    self.fill().await?;
                }
                let body = bytes::Bytes::copy_from_slice(&self.buf[head.len..total]);
                self.buf.drain(..total);
                return Ok((head.status, body));
            }
            if self.buf.len() > MAX_ANSWER {
                return Err(WireError::Malformed("head too large"));
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> Result<(), WireError> {
        self.buf.reserve(4096);
        let n = self
            .stream
            .read_buf(&mut self.buf)
            .await
            .map_err(WireError::Io)?;
        if n == 0 {
            return Err(WireError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(())
    }
}

/// An answer's head, once all of it has arrived.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    /// Bytes of the status line and headers, with the blank line.
    len: usize,
    content_length: usize,
    close: bool,
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, WireError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(WireError::Malformed("bad head")),
    };
    let mut content_length = None;
    let mut close = false;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or(WireError::Malformed("bad Content-Length"))?;
            content_length = Some(n);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(WireError::Malformed("chunked answer"));
        } else if header.name.eq_ignore_ascii_case("connection") {
            close |= header.value.eq_ignore_ascii_case(b"close");
        }
    }
    Ok(Some(Head {
        status: response.code.unwrap_or(0),
        len,
        content_length: content_length.ok_or(WireError::Malformed("no Content-Length"))?,
        close,
    }))
}
