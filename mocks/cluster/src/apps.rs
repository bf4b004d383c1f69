//! The pod application: a real HTTP/1.1 keep-alive server on the pod's own loopback
//! address, with the life cycle whose edges the race lab measures.
//!
//! Every answer says who gave it, so a load client behind the SLB and kube-proxy can name
//! the cause of a failure without guessing:
//! - `200`, header `X-Lab-Pod: <pod>`, body = the pod name: served.
//! - `503`, header `X-Lab-Cause: not-ready`, body `not-ready`: the process is up but has
//!   not finished starting (the start-up delay has not elapsed).
//! - `503`, header `X-Lab-Cause: stopped`, body `stopped`: the connection reached a pod
//!   whose process had received SIGTERM. A real stopped process refuses the SYN; behind a
//!   full-proxy SLB that refusal is invisible to the client, so the app keeps a stand-in
//!   listener that answers for it.
//!
//! `GET /delay/<ms>` is a slow request (a long poll, a slow API call): the app holds it
//! `<ms>` (at most [`MAX_EXTRA_DELAY`]) on top of its own response time before answering.
//! These are the requests a backend removal without connection drain cuts in flight.
//!
//! `GET /stream/<ms>` is a long-lived stream (a WebSocket, a server-sent event feed,
//! a gRPC stream): the app holds its one response `<ms>` (at most [`MAX_STREAM`]) and
//! ends it early on SIGTERM, politely (a response and `Connection: close`), as a
//! well-behaved streaming server does; the client then reconnects. Only a cut (the SLB
//! removing the backend, a kill) fails it.
//!
//! After SIGTERM established connections are not cut: each gets `Connection: close` on
//! its next response, in-flight requests finish, and connections that send nothing within
//! `idle_close` are closed. A kill drops every connection at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Header naming the cause of a lab-generated failure response.
pub const CAUSE_HEADER: &str = "x-lab-cause";
/// Header naming the pod that served a request.
pub const POD_HEADER: &str = "x-lab-pod";
/// The longest hold a `GET /delay/<ms>` request gets.
pub const MAX_EXTRA_DELAY: Duration = Duration::from_secs(30);

/// The longest a `GET /stream/<ms>` stream lasts.
pub const MAX_STREAM: Duration = Duration::from_secs(120);

/// The path of a request that the app holds `extra` before answering.
pub fn delay_path(extra: Duration) -> String {
    format!("/delay/{}", extra.as_millis())
}

/// The path of a stream the app holds `hold` unless SIGTERM ends it first.
pub fn stream_path(hold: Duration) -> String {
    format!("/stream/{}", hold.as_millis())
}

/// The extra hold a request head asks for and whether SIGTERM ends it: `/delay/<ms>`
/// (capped at [`MAX_EXTRA_DELAY`]) or `/stream/<ms>` (capped at [`MAX_STREAM`]) in the
/// request target; anything else (or a malformed number) asks for none.
fn extra_delay(head: &[u8]) -> (Duration, bool) {
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let target = line.split(|b| *b == b' ').nth(1).unwrap_or_default();
    let target = std::str::from_utf8(target).unwrap_or_default();
    let ms = |rest: &str| rest.parse::<u64>().ok().map(Duration::from_millis);
    if let Some(d) = target.strip_prefix("/delay/").and_then(ms) {
        (d.min(MAX_EXTRA_DELAY), false)
    } else if let Some(d) = target.strip_prefix("/stream/").and_then(ms) {
        (d.min(MAX_STREAM), true)
    } else {
        (Duration::ZERO, false)
    }
}

/// Timing of one application instance; the lab draws these from its seeded RNG.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Pod name, the body of every successful answer.
    pub name: String,
    /// The pod's address (its own loopback IP and the container port).
    pub addr: SocketAddr,
    /// Time from process start until it serves; answers `not-ready` meanwhile.
    pub startup_delay: Duration,
    /// Time spent on every request (in-flight window that SIGTERM must respect).
    pub response_delay: Duration,
    /// After SIGTERM, how long an idle keep-alive connection may stay silent before the
    /// app closes it.
    pub idle_close: Duration,
}

/// Where the process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Accepting, answering `503 not-ready`.
    Starting,
    /// Serving `200`.
    Serving,
    /// SIGTERM received: no new work, established connections wind down.
    Stopping,
    /// Killed: every connection dropped.
    Killed,
}

#[derive(Debug)]
struct Shared {
    name: String,
    response_delay: Duration,
    idle_close: Duration,
    phase: watch::Sender<Phase>,
    /// Established connections (not the stand-in answers after SIGTERM).
    active: watch::Sender<usize>,
}

/// A running application; dropping it kills it.
#[derive(Debug)]
pub struct App {
    shared: Arc<Shared>,
    addr: SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl App {
    /// Binds the pod address and starts the process; it serves after the start-up delay.
    pub async fn start(cfg: AppConfig) -> std::io::Result<App> {
        let listener = TcpListener::bind(cfg.addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            name: cfg.name,
            response_delay: cfg.response_delay,
            idle_close: cfg.idle_close,
            phase: watch::Sender::new(if cfg.startup_delay.is_zero() {
                Phase::Serving
            } else {
                Phase::Starting
            }),
            active: watch::Sender::new(0),
        });
        let s = shared.clone();
        let startup = cfg.startup_delay;
        let acceptor = tokio::spawn(async move {
            let timer = s.clone();
            tokio::spawn(async move {
                tokio::time::sleep(startup).await;
                timer.phase.send_if_modified(|p| {
                    let starting = *p == Phase::Starting;
                    if starting {
                        *p = Phase::Serving;
                    }
                    starting
                });
            });
            let mut phase = s.phase.subscribe();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let current = *s.phase.borrow();
                        match current {
                            Phase::Starting | Phase::Serving => {
                                s.active.send_modify(|n| *n += 1);
                                tokio::spawn(connection(s.clone(), stream));
                            }
                            Phase::Stopping | Phase::Killed => { tokio::spawn(answer_stopped(stream)); }
                        }
                    }
                    changed = phase.changed() => {
                        if changed.is_err() { return; }
                    }
                }
            }
        });
        Ok(App {
            shared,
            addr,
            acceptor,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Current phase.
    pub fn phase(&self) -> Phase {
        *self.shared.phase.borrow()
    }

    /// Established connections still open.
    pub fn active_connections(&self) -> usize {
        *self.shared.active.borrow()
    }

    /// "SIGTERM": stop taking new connections, let established ones finish politely.
    pub fn sigterm(&self) {
        self.shared.phase.send_if_modified(|p| {
            let live = matches!(p, Phase::Starting | Phase::Serving);
            if live {
                *p = Phase::Stopping;
            }
            live
        });
    }

    /// Waits until, after SIGTERM, every established connection has closed: the moment
    /// a real process would exit by itself.
    pub async fn exited(&self) {
        let mut phase = self.shared.phase.subscribe();
        let _ = phase
            .wait_for(|p| matches!(p, Phase::Stopping | Phase::Killed))
            .await;
        let mut active = self.shared.active.subscribe();
        let _ = active.wait_for(|n| *n == 0).await;
    }

    /// "SIGKILL": drop every connection now. The address keeps answering `stopped` until
    /// the app is dropped, as the pod's IP would refuse connections.
    pub fn kill(&self) {
        self.shared.phase.send_replace(Phase::Killed);
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.kill();
        self.acceptor.abort();
    }
}

/// Decrements the live-connection count however the connection task ends.
struct ActiveGuard(Arc<Shared>);
impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.send_modify(|n| *n = n.saturating_sub(1));
    }
}

async fn answer_stopped(mut stream: TcpStream) {
    let _ = stream
        .write_all(&response(503, "stopped", None, Some("stopped"), true))
        .await;
    let _ = stream.shutdown().await;
}

/// Serves one keep-alive connection through the phases.
async fn connection(s: Arc<Shared>, mut stream: TcpStream) {
    let _guard = ActiveGuard(s.clone());
    let _ = stream.set_nodelay(true);
    let mut phase = s.phase.subscribe();
    let mut buf = Vec::with_capacity(1024);
    loop {
        // Wait for a complete request head; after SIGTERM only for `idle_close`.
        let got = loop {
            if head_end(&buf).is_some() {
                break true;
            }
            let current = *phase.borrow_and_update();
            let idle_deadline = match current {
                Phase::Killed => return,
                Phase::Stopping if buf.is_empty() => Some(s.idle_close),
                _ => None,
            };
            let mut chunk = [0u8; 1024];
            let read = async {
                match idle_deadline {
                    Some(d) => tokio::time::timeout(d, stream.read(&mut chunk))
                        .await
                        .unwrap_or(Ok(0)),
                    None => stream.read(&mut chunk).await,
                }
            };
            tokio::select! {
                r = read => match r {
                    Ok(0) | Err(_) => break false,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                },
                _ = phase.changed() => {}
            }
        };
        if !got {
            return;
        }
        let end = head_end(&buf).unwrap_or(buf.len());
        let (extra, ends_on_term) = extra_delay(&buf[..end]);
        buf.drain(..end);
        let was = *phase.borrow();
        if was == Phase::Killed {
            return;
        }
        // In flight: SIGTERM does not interrupt (but ends a stream), a kill does.
        // A starting app answers `not-ready` without doing the work.
        let hold = match was {
            Phase::Starting => s.response_delay,
            Phase::Stopping if ends_on_term => s.response_delay,
            _ => s.response_delay + extra,
        };
        // A stream's head goes out at once (one stream per connection); its body ends it.
        let streaming = ends_on_term && was == Phase::Serving;
        let mut body_at = 0;
        if streaming {
            let bytes = response(200, &s.name, Some(&s.name), None, true);
            body_at = head_end(&bytes).unwrap_or(bytes.len());
            if stream.write_all(&bytes[..body_at]).await.is_err() {
                return;
            }
        }
        let delay = tokio::time::sleep(hold);
        tokio::pin!(delay);
        loop {
            tokio::select! {
                _ = &mut delay => break,
                _ = phase.changed() => match *phase.borrow() {
                    Phase::Killed => return,
                    Phase::Stopping if ends_on_term => break,
                    _ => {}
                },
            }
        }
        let now = *phase.borrow();
        let close = streaming || (now != Phase::Serving && now != Phase::Starting);
        let bytes = if was == Phase::Starting {
            response(503, "not-ready", None, Some("not-ready"), close)
        } else {
            response(200, &s.name, Some(&s.name), None, close)
        };
        if stream.write_all(&bytes[body_at..]).await.is_err() || close {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// Index just past the first `\r\n\r\n`.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn response(
    status: u16,
    body: &str,
    pod: Option<&str>,
    cause: Option<&str>,
    close: bool,
) -> Vec<u8> {
    let reason = if status == 200 {
        "OK"
    } else {
        "Service Unavailable"
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n",
        body.len()
    );
    if let Some(p) = pod {
        head.push_str(&format!("{POD_HEADER}: {p}\r\n"));
    }
    if let Some(c) = cause {
        head.push_str(&format!("{CAUSE_HEADER}: {c}\r\n"));
    }
    if close {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    head.push_str(body);
    head.into_bytes()
}

/// Writes a lab-generated failure answer (used by kube-proxy for `no-rules`/`stopped`).
pub(crate) fn failure_response(cause: &str) -> Vec<u8> {
    response(503, cause, None, Some(cause), true)
}

#[cfg(test)]
#[path = "apps_tests.rs"]
pub(crate) mod tests;
