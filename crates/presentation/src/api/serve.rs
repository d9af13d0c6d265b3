//! The HTTP/1.1 server loop: connections accepted within limits, each with a deadline for its
//! request headers, and a graceful drain at shutdown.
//!
//! axum's own `serve` sets no header timeout (hyper's needs a timer axum does not give it) and no
//! connection limit, so a few connections sending a byte now and then would be held for ever.
//! Here every connection gets hyper's header read timeout (which also closes keep-alive
//! connections idle for that long), at most `max` connections are open at once (the listener
//! waits while full, so new ones queue in the kernel's backlog), and at most `max_per_ip` come
//! from one address (more are closed at once). The body's own deadline is the JSON extractor's.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Limits on connections, and the drain at shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connections {
    /// Time a connection has to send a request's headers (and the longest a keep-alive
    /// connection stays idle).
    pub header_timeout: Duration,
    /// Connections open at once.
    pub max: usize,
    /// Connections open at once from one IP address (0: no limit of its own).
    pub max_per_ip: usize,
    /// On shutdown, how long in-flight requests (streams too) may take to finish.
    pub drain: Duration,
}

impl Connections {
    /// The connection limits and drain of `settings`.
    pub fn from_settings(settings: &ragback_infrastructure::Settings) -> Self {
        let server = &settings.server;
        Self {
            header_timeout: server.header_timeout,
            max: server.max_connections,
            max_per_ip: server.max_connections_per_ip,
            drain: server.drain_timeout,
        }
    }

    /// The defaults of `RAGBACK_SERVER__*`, with this drain.
    pub fn with_drain(drain: Duration) -> Self {
        Self {
            header_timeout: Duration::from_secs(15),
            max: 4_096,
            max_per_ip: 1_024,
            drain,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and lets
/// in-flight requests (streams too) finish for up to `connections.drain`; whatever still runs then
/// is cut.
///
/// Connections get `TCP_NODELAY`: a streamed reply is a run of small writes, and with Nagle's
/// algorithm each one after the first waits for the client's delayed ACK (40 ms on Linux).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    connections: Connections,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(connections.header_timeout);
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(connections.max.max(1)));
    let per_ip = PerIp::new(connections.max_per_ip);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&open).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(guard) = per_ip.enter(peer.ip()) else {
            metrics::counter!("ragback_connections_refused_total", "reason" => "per_ip")
                .increment(1);
            tracing::debug!(%peer, "too many connections from this address; closed");
            continue;
        };
        let service = TowerToHyperService::new(
            router
                .clone()
                .map_request(|request: Request<Incoming>| request.map(Body::new)),
        );
        let connection = http.serve_connection(io(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(guard);
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {},
        () = tokio::time::sleep(connections.drain) => {
            tracing::warn!(
                drain_secs = connections.drain.as_secs_f64(),
                "requests still running after the drain timeout are cut"
            );
        }
    }
    Ok(())
}

fn io(stream: TcpStream) -> TokioIo<TcpStream> {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
    }
    TokioIo::new(stream)
}

/// After a failed `accept`: per-connection errors are skipped; others (out of file descriptors)
/// get a pause, so the loop does not spin.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed; pausing for a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Open connections per IP address.
#[derive(Clone)]
struct PerIp {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection counted against its address; uncounted when dropped.
struct IpGuard {
    ip: IpAddr,
    open: Option<Arc<Mutex<HashMap<IpAddr, usize>>>>,
}

impl PerIp {
    fn new(max: usize) -> Self {
        Self {
            max,
            open: Arc::default(),
        }
    }

    /// Counts a connection from `ip`; `None` when that address is at its limit.
    fn enter(&self, ip: IpAddr) -> Option<IpGuard> {
        if self.max == 0 {
            return Some(IpGuard { ip, open: None });
        }
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(IpGuard {
            ip,
            open: Some(Arc::clone(&self.open)),
        })
    }
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        let Some(open) = &self.open else { return };
        let mut open = open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
    // Give log lines a moment to flush before the runtime winds down.
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn an_address_at_its_limit_is_refused_until_one_closes() {
        let limit = PerIp::new(2);
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7));
        let first = limit.enter(ip).unwrap();
        let _second = limit.enter(ip).unwrap();
        assert!(limit.enter(ip).is_none());
        assert!(limit.enter(IpAddr::V4(Ipv4Addr::LOCALHOST)).is_some());
        drop(first);
        assert!(limit.enter(ip).is_some());
    }

    #[test]
    fn no_limit_counts_nothing() {
        let limit = PerIp::new(0);
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let guards: Vec<_> = (0..10).map(|_| limit.enter(ip).unwrap()).collect();
        assert_eq!(guards.len(), 10);
        assert!(limit.open.lock().unwrap().is_empty());
    }
}
