//! [`TlsStream`]: rustls over any [`Stream`], server or client side.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::server::{ServerConfig, ServerConnection};

use crate::runtime::Stream;

/// Ciphertext read per socket read: one full TLS record and then some.
const RX_CHUNK: usize = 18 * 1024;

/// A TLS connection (server side, or client side to upstreams) over any [`Stream`]. Like the plain streams it takes `&self`
/// (one task may read while another writes); no `RefCell` borrow is held across an await.
pub struct TlsStream<S> {
    inner: S,
    conn: RefCell<rustls::Connection>,
    /// Ciphertext read from the socket and not yet given to rustls (from `rx_off`).
    rx: Cell<Vec<u8>>,
    rx_off: Cell<usize>,
    /// Ciphertext on its way to the socket (reused).
    tx: Cell<Vec<u8>>,
    /// A flush is in progress: another caller's records are sent by it.
    flushing: Cell<bool>,
    /// A TLS 1.3 server's session tickets are queued and nothing else: the client needs none
    /// of it to send its request, so a read may wait without sending them first.
    tickets_only: Cell<bool>,
}

impl<S: Stream> TlsStream<S> {
    pub fn new(inner: S, config: Arc<ServerConfig>) -> io::Result<Self> {
        let conn = ServerConnection::new(config).map_err(io::Error::other)?;
        Ok(Self::over(inner, rustls::Connection::Server(conn)))
    }

    /// The server side, with the configuration `pick` chooses by the ClientHello's server name
    /// (SNI); `initial`: ciphertext already read. The caller bounds it in time.
    pub async fn accept(
        inner: S,
        initial: Vec<u8>,
        pick: impl FnOnce(Option<&str>) -> Arc<ServerConfig>,
    ) -> io::Result<Self> {
        let mut acceptor = rustls::server::Acceptor::default();
        let mut buf = initial;
        let mut pick = Some(pick);
        loop {
            let mut rest = &buf[..];
            while !rest.is_empty() {
                if acceptor.read_tls(&mut rest)? == 0 {
                    break;
                }
            }
            let left = rest.len();
            buf.drain(..buf.len() - left);
            match acceptor.accept() {
                Ok(Some(accepted)) => {
                    let pick = pick.take().expect("accepted once");
                    let config = pick(accepted.client_hello().server_name());
                    let conn = accepted.into_connection(config).map_err(|(e, _)| io::Error::other(e))?;
                    let s = Self::over(inner, rustls::Connection::Server(conn));
                    return Ok(if buf.is_empty() { s } else { s.with_initial(buf) });
                }
                Ok(None) => {}
                Err((e, mut alert)) => {
                    let mut out = Vec::new();
                    let _ = alert.write_all(&mut out);
                    let _ = inner.write_all(out).await;
                    return Err(io::Error::other(e));
                }
            }
            if left > 0 {
                // rustls took nothing more, and the hello is still incomplete: never spin.
                return Err(io::Error::other("ClientHello larger than rustls buffers"));
            }
            buf.reserve(RX_CHUNK);
            let (r, b) = inner.read(std::mem::take(&mut buf)).await;
            buf = b;
            if r? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// The client's certificate chain (end entity first), if it sent one.
    pub fn peer_certificates(&self) -> Option<Vec<rustls_pki_types::CertificateDer<'static>>> {
        self.conn.borrow().peer_certificates().map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
    }

    /// The name the client's ClientHello gave (SNI), lower case, on the server side.
    pub fn server_name(&self) -> Option<Box<str>> {
        match &*self.conn.borrow() {
            rustls::Connection::Server(s) => s.server_name().map(|n| n.to_ascii_lowercase().into_boxed_str()),
            rustls::Connection::Client(_) => None,
        }
    }

    /// The client side, to an upstream.
    pub fn client(
        inner: S,
        config: Arc<rustls::ClientConfig>,
        name: rustls_pki_types::ServerName<'static>,
    ) -> io::Result<Self> {
        let conn = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
        Ok(Self::over(inner, rustls::Connection::Client(conn)))
    }

    fn over(inner: S, conn: rustls::Connection) -> Self {
        TlsStream {
            inner,
            conn: RefCell::new(conn),
            rx: Cell::new(Vec::new()),
            rx_off: Cell::new(0),
            tx: Cell::new(Vec::new()),
            flushing: Cell::new(false),
            tickets_only: Cell::new(false),
        }
    }

    /// Ciphertext already read from the socket (after a PROXY header) goes to rustls first.
    pub fn with_initial(self, bytes: Vec<u8>) -> Self {
        self.rx.set(bytes);
        self.rx_off.set(0);
        self
    }

    /// Runs the handshake to its end (the caller bounds it in time). What rustls queues as the
    /// handshake completes (TLS 1.3 session tickets; a client's Finished) is not sent here:
    /// it leaves with the next write, or before the next read waits, so the tickets share a
    /// segment with the response instead of costing each side one more send and wake-up.
    pub async fn handshake(&self) -> io::Result<()> {
        loop {
            if let Some(tickets_only) = self.handshake_done() {
                self.tickets_only.set(tickets_only);
                return Ok(());
            }
            self.flush().await?;
            if !self.feed()? && self.fill(false).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// None while handshaking; then whether only a TLS 1.3 server's tickets are queued (its
    /// last flight, ending in its Finished, went out before the client's Finished came in).
    fn handshake_done(&self) -> Option<bool> {
        let conn = self.conn.borrow();
        if conn.is_handshaking() {
            return None;
        }
        let server13 = matches!(&*conn, rustls::Connection::Server(_))
            && conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3);
        Some(server13 && conn.wants_write())
    }

    /// The protocol agreed by ALPN, if any.
    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.conn.borrow().alpn_protocol().map(<[u8]>::to_vec)
    }

    /// Whether the handshake resumed an earlier session.
    pub fn resumed(&self) -> bool {
        self.conn.borrow().handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    /// Hands buffered ciphertext to rustls until it is all taken or rustls holds a full
    /// buffer of plaintext. True if anything was taken. A protocol error is returned after
    /// rustls has queued its alert (sent by the next flush).
    fn feed(&self) -> io::Result<bool> {
        let rx = self.rx.take();
        let mut off = self.rx_off.get();
        let start = off;
        let mut conn = self.conn.borrow_mut();
        let mut result = Ok(());
        while off < rx.len() {
            match conn.read_tls(&mut &rx[off..]) {
                Ok(0) => break,
                Ok(n) => off += n,
                // Its plaintext buffer is full: the rest waits for the reader.
                Err(_) if off > start => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            if let Err(e) = conn.process_new_packets() {
                result = Err(io::Error::new(io::ErrorKind::InvalidData, e));
                break;
            }
        }
        drop(conn);
        self.rx_off.set(if off >= rx.len() { 0 } else { off });
        let mut rx = rx;
        if off >= rx.len() {
            rx.clear();
        }
        self.rx.set(rx);
        result.map(|()| off > start)
    }

    /// Reads ciphertext from the socket into the pending buffer. `Ok(0)`: the socket is at
    /// EOF. `fresh`: the connection is about to wait idle; when nothing is pending, its
    /// buffers are let go and the wait holds none ([`Stream::read_fresh`]).
    async fn fill(&self, fresh: bool) -> io::Result<usize> {
        if fresh && self.rx_off.get() == 0 {
            let rx = self.rx.take();
            if rx.is_empty() {
                drop(rx);
                self.tx.set(Vec::new());
                let (r, rx) = self.inner.read_fresh(RX_CHUNK).await;
                self.rx.set(rx);
                return r;
            }
            self.rx.set(rx);
        }
        let mut rx = self.rx.take();
        let off = self.rx_off.get();
        if off > 0 {
            rx.drain(..off);
            self.rx_off.set(0);
        }
        if rx.capacity() - rx.len() < RX_CHUNK {
            rx.reserve(RX_CHUNK);
        }
        let (r, rx) = self.inner.read(rx).await;
        self.rx.set(rx);
        r
    }

    /// Sends every record rustls has queued. If a flush is already in progress (another
    /// task's), that one sends these records too.
    async fn flush(&self) -> io::Result<()> {
        if self.flushing.get() {
            return Ok(());
        }
        self.flushing.set(true);
        self.tickets_only.set(false);
        let result = loop {
            let mut tx = self.tx.take();
            tx.clear();
            {
                let mut conn = self.conn.borrow_mut();
                while conn.wants_write() {
                    if let Err(e) = conn.write_tls(&mut tx) {
                        self.tx.set(tx);
                        self.flushing.set(false);
                        return Err(e);
                    }
                }
            }
            if tx.is_empty() {
                self.tx.set(tx);
                break Ok(());
            }
            let (r, tx) = self.inner.write_all(tx).await;
            self.tx.set(tx);
            if let Err(e) = r {
                break Err(e);
            }
        };
        self.flushing.set(false);
        result
    }

    /// `fresh`: see [`TlsStream::fill`]; `buf` gets room only once plaintext is there.
    async fn read_plain(&self, buf: &mut Vec<u8>, fresh: bool) -> io::Result<usize> {
        loop {
            {
                let mut conn = self.conn.borrow_mut();
                let state = conn.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                let avail = state.plaintext_bytes_to_read();
                if avail > 0 {
                    if buf.capacity() == buf.len() {
                        buf.reserve(4096);
                    }
                    let n = avail.min(buf.capacity() - buf.len());
                    let old = buf.len();
                    buf.resize(old + n, 0);
                    conn.reader().read_exact(&mut buf[old..])?;
                    return Ok(n);
                }
                if state.peer_has_closed() {
                    return Ok(0);
                }
            }
            match self.feed() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    let _ = self.flush().await;
                    return Err(e);
                }
            }
            if !self.tickets_only.get() {
                self.flush().await?;
            }
            if self.fill(fresh).await? == 0 {
                // EOF without close_notify: the HTTP framing above tells a truncated message
                // from a complete one.
                return Ok(0);
            }
        }
    }
}

impl<S: Stream> Stream for TlsStream<S> {
    async fn read(&self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        let r = self.read_plain(&mut buf, false).await;
        (r, buf)
    }

    /// No plaintext or ciphertext buffer is held while waiting (the socket's own
    /// `read_fresh` brings the first bytes).
    async fn read_fresh(&self, capacity: usize) -> (io::Result<usize>, Vec<u8>) {
        let mut buf = Vec::new();
        let r = self.read_plain(&mut buf, true).await;
        if buf.capacity() < capacity {
            buf.reserve(capacity - buf.len());
        }
        (r, buf)
    }

    async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let mut off = 0;
        while off < buf.len() {
            let n = match self.conn.borrow_mut().writer().write(&buf[off..]) {
                Ok(n) => n,
                Err(e) => return (Err(e), buf),
            };
            off += n;
            if let Err(e) = self.flush().await {
                return (Err(e), buf);
            }
            if n == 0 && self.conn.borrow().wants_write() {
                // Another task is flushing and the send buffer is full: let it run.
                yield_now().await;
            }
        }
        (Ok(()), buf)
    }

    fn shutdown(&self, how: std::net::Shutdown) {
        if how != std::net::Shutdown::Read {
            // Queued for whoever flushes next; the socket shutdown below follows at once.
            self.conn.borrow_mut().send_close_notify();
        }
        self.inner.shutdown(how);
    }

    fn fd(&self) -> std::os::fd::RawFd {
        self.inner.fd()
    }
}

/// Lets the other tasks of this worker run once.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}
