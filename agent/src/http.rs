//! `/healthz`, `/readyz` and `/metrics` on a port of the agent's own. A few lines of HTTP/1.1 over tokio:
//! kubelet's probes and Prometheus send one GET and read one response.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::status::Shared;

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

pub async fn serve(listener: TcpListener, status: Shared) {
    loop {
        let Ok((conn, _)) = listener.accept().await else { continue };
        let status = status.clone();
        tokio::spawn(async move {
            // A client that never finishes its request must not hold a task forever.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), answer(conn, status)).await;
        });
    }
}

async fn answer(mut conn: TcpStream, status: Shared) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (code, ctype, body) = if method != "GET" && method != "HEAD" {
        (405, "text/plain", "only GET\n".to_string())
    } else {
        let st = status.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match path {
            "/healthz" => (200, "text/plain", "ok\n".to_string()),
            "/readyz" => (if st.ready() { 200 } else { 503 }, "text/plain", st.readyz()),
            "/metrics" => (200, "text/plain; version=0.0.4", st.metrics()),
            _ => (404, "text/plain", "try /healthz, /readyz or /metrics\n".to_string()),
        }
    };
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let mut resp = format!("HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    if method != "HEAD" {
        resp.push_str(&body);
    }
    conn.write_all(resp.as_bytes()).await?;
    conn.shutdown().await
}
