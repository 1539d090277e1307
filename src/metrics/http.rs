//! The live metrics endpoint: a small HTTP server on its own thread serving `/metrics` (Prometheus text),
//! the dashboard at `/` and its data at `/api/live` (JSON), and the histograms since the start at
//! `/api/histograms` (an HdrHistogram interval log, for `ticklane stats --url`).
//!
//! Bound before the pipeline starts, so a port in use is a start-up error naming the address, not a
//! warning later. It answers one request at a time: scrapes are rare (seconds apart) and cheap, and nothing
//! it does touches the hot threads beyond relaxed loads of their counters.

use super::prom::Exposition;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The dashboard: one self-contained page (no external assets), polling `/api/live` every second.
const DASHBOARD: &str = include_str!("dashboard.html");

/// How often the server looks at the stop flag while no request comes.
const POLL: Duration = Duration::from_millis(100);

/// The bound endpoint, not yet serving.
pub struct Endpoint {
    server: tiny_http::Server,
    addr: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
#[error("metrics.listen: cannot listen on {addr}: {reason}")]
pub struct BindError {
    pub addr: SocketAddr,
    pub reason: String,
}

impl Endpoint {
    pub fn bind(addr: SocketAddr) -> Result<Endpoint, BindError> {
        let server = tiny_http::Server::http(addr).map_err(|e| BindError { addr, reason: e.to_string() })?;
        // Port 0 picks a free port: report the real one.
        let addr = server.server_addr().to_ip().unwrap_or(addr);
        Ok(Endpoint { server, addr })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `stop` is set.
    pub fn serve(self, exp: Exposition, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Acquire) {
            let req = match self.server.recv_timeout(POLL) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(addr = %self.addr, "metrics endpoint: {e}");
                    continue;
                }
            };
            let path = req.url().split('?').next().unwrap_or("").to_string();
            let res = match (req.method(), path.as_str()) {
                (tiny_http::Method::Get, "/metrics") => {
                    req.respond(text(exp.render(), "text/plain; version=0.0.4; charset=utf-8", 200))
                }
                (tiny_http::Method::Get, "/") => req.respond(text(DASHBOARD.into(), "text/html; charset=utf-8", 200)),
                (tiny_http::Method::Get, "/api/live") => {
                    req.respond(text(exp.snapshot_json(), "application/json", 200))
                }
                (tiny_http::Method::Get, "/api/histograms") => req.respond(
                    tiny_http::Response::from_data(exp.latency.histograms())
                        .with_header(header("text/plain; charset=utf-8")),
                ),
                (tiny_http::Method::Get, _) => req.respond(text(
                    format!("no such page: {path} (the metrics are at /metrics, the dashboard at /)\n"),
                    "text/plain; charset=utf-8",
                    404,
                )),
                _ => req.respond(text("only GET\n".into(), "text/plain; charset=utf-8", 405)),
            };
            if let Err(e) = res {
                tracing::debug!(addr = %self.addr, "metrics endpoint: answering a request: {e}");
            }
        }
    }
}

fn header(content_type: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes()).expect("a valid static header")
}

fn text(body: String, content_type: &str, status: u16) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    tiny_http::Response::from_data(body.into_bytes()).with_status_code(status).with_header(header(content_type))
}
