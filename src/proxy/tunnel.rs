//! Byte tunnels after a protocol switch (`101 Switching Protocols`, e.g. WebSocket): both
//! directions copied until each side closes its half.

use std::net::Shutdown;

use crate::runtime::Stream;

/// Copies `from` -> `to` until EOF or an error, then shuts down writing on `to` so the peer
/// sees the half-close.
async fn pipe<A: Stream, B: Stream>(from: &A, to: &B, mut buf: Vec<u8>) {
    loop {
        buf.clear();
        if buf.capacity() < 16 * 1024 {
            buf.reserve(16 * 1024);
        }
        let (r, b) = from.read(buf).await;
        buf = b;
        match r {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let (r, b) = to.write_all(buf).await;
        buf = b;
        if r.is_err() {
            from.shutdown(Shutdown::Read);
            break;
        }
    }
    to.shutdown(Shutdown::Write);
}

/// Runs both directions to completion.
pub async fn run<A: Stream, B: Stream>(client: &A, upstream: &B, buf_a: Vec<u8>, buf_b: Vec<u8>) {
    tokio::join!(pipe(client, upstream, buf_a), pipe(upstream, client, buf_b));
}
