//! Helpers for tests that drive real connections through the mock's data plane: echo
//! backends that say who they are, client connections, and moving tokio's clock while
//! real sockets keep working.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Moves the tokio clock forward by `d` while real I/O keeps running in real time (a
/// paused clock would otherwise auto-advance while tasks wait on sockets). Needs a
/// current-thread runtime.
pub async fn jump(d: Duration) {
    tokio::time::pause();
    tokio::time::advance(d).await;
    tokio::time::resume();
    // Let timers that fell due run.
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// An echo server on `ip` (an address or its text; ephemeral port) that first writes
/// `name\n`, then echoes what it reads.
///
/// # Panics
/// When `ip` is not an IP address or cannot be bound: a broken test setup.
pub async fn echo_backend(ip: impl std::fmt::Display, name: &'static str) -> SocketAddr {
    let ip: IpAddr = ip.to_string().parse().expect("echo backend IP address");
    let listener = TcpListener::bind((ip, 0)).await.expect("bind echo backend");
    let addr = listener.local_addr().expect("bound address");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                if s.write_all(format!("{name}\n").as_bytes()).await.is_err() {
                    return;
                }
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    if s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A client connection through the mock's data plane, with the backend's name read.
pub struct Conn {
    pub name: String,
    reader: BufReader<TcpStream>,
}

impl Conn {
    /// Connects; `None` when the mock closed the connection without a backend.
    pub async fn open(addr: SocketAddr) -> Option<Conn> {
        let stream = TcpStream::connect(addr).await.ok()?;
        let mut reader = BufReader::new(stream);
        let mut name = String::new();
        let read = tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut name));
        match read.await {
            Ok(Ok(n)) if n > 0 => Some(Conn {
                name: name.trim().to_owned(),
                reader,
            }),
            _ => None,
        }
    }

    /// True when a round trip through the connection works.
    pub async fn alive(&mut self) -> bool {
        if self.reader.get_mut().write_all(b"ping\n").await.is_err() {
            return false;
        }
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(5), self.reader.read_line(&mut line));
        matches!(read.await, Ok(Ok(n)) if n > 0 && line == "ping\n")
    }

    /// True when the peer closed the connection (EOF or reset) within 2 s; a closed
    /// connection reports at once, the bound only makes "still open" answers slow.
    pub async fn closed(&mut self) -> bool {
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(2), self.reader.read(&mut buf));
        matches!(read.await, Ok(Ok(0)) | Ok(Err(_)))
    }
}
