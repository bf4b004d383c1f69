//! A minimal HTTP/1.1 keep-alive client that reports exactly how an exchange ended, which
//! is what the load generator needs to classify failures (a general client would retry
//! or hide a closed connection).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::apps::{CAUSE_HEADER, POD_HEADER};

/// One parsed answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// `X-Lab-Pod`, the pod that served.
    pub pod: Option<String>,
    /// `X-Lab-Cause`, set by lab components that refuse a request.
    pub cause: Option<String>,
    /// The server announced `Connection: close`.
    pub close: bool,
    pub body: String,
}

/// How an exchange failed at the transport level.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("connect to {addr} failed: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The connection ended (EOF or reset) before a complete answer arrived.
    #[error("connection closed before a complete answer ({received} bytes received)")]
    Closed { received: usize },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("malformed answer: {0}")]
    Malformed(String),
}

/// A client connection; `requests` counts exchanges completed on it.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    pub requests: u64,
}

impl Conn {
    /// Opens a connection.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Conn, ExchangeError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(ExchangeError::Connect { addr, source }),
            Err(_) => return Err(ExchangeError::Timeout(timeout)),
        };
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream,
            buf: Vec::new(),
            requests: 0,
        })
    }

    /// Sends `GET path` and reads the answer.
    pub async fn get(&mut self, path: &str, timeout: Duration) -> Result<Reply, ExchangeError> {
        let req = format!("GET {path} HTTP/1.1\r\nhost: lab\r\n\r\n");
        match tokio::time::timeout(timeout, self.exchange(req.as_bytes())).await {
            Ok(r) => {
                if r.is_ok() {
                    self.requests += 1;
                }
                r
            }
            Err(_) => Err(ExchangeError::Timeout(timeout)),
        }
    }

    async fn exchange(&mut self, req: &[u8]) -> Result<Reply, ExchangeError> {
        if self.stream.write_all(req).await.is_err() {
            return Err(ExchangeError::Closed { received: 0 });
        }
        let mut received = 0usize;
        loop {
            if let Some((reply, used)) = parse(&self.buf)? {
                self.buf.drain(..used);
                return Ok(reply);
            }
            let mut chunk = [0u8; 2048];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Err(ExchangeError::Closed { received }),
                Ok(n) => {
                    received += n;
                    self.buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }
}

/// One request on a new connection.
pub async fn get_once(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<Reply, ExchangeError> {
    let mut c = Conn::connect(addr, timeout).await?;
    c.get(path, timeout).await
}

/// Parses a complete answer (head + `content-length` body) from the buffer.
fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, ExchangeError> {
    let Some(head_len) = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4) else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_len])
        .map_err(|_| ExchangeError::Malformed("head is not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ExchangeError::Malformed(format!("status line {status_line:?}")))?;
    let (mut len, mut pod, mut cause, mut close) = (0usize, None, None, false);
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        match k.as_str() {
            "content-length" => {
                len = v
                    .parse()
                    .map_err(|_| ExchangeError::Malformed(format!("content-length {v:?}")))?
            }
            "connection" => close = v.eq_ignore_ascii_case("close"),
            _ if k == POD_HEADER => pod = Some(v.to_string()),
            _ if k == CAUSE_HEADER => cause = Some(v.to_string()),
            _ => {}
        }
    }
    if buf.len() < head_len + len {
        return Ok(None);
    }
    let body = String::from_utf8_lossy(&buf[head_len..head_len + len]).into_owned();
    Ok(Some((
        Reply {
            status,
            pod,
            cause,
            close,
            body,
        },
        head_len + len,
    )))
}
