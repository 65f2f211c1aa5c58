//! TLS termination with rustls: certificates from `kubernetes.io/tls` Secrets chosen by SNI
//! (exact, then one-label wildcard), a default certificate for everything else, and
//! [`TlsStream`], which runs rustls over any [`Stream`] with owned buffers, so TLS works on
//! the io_uring and epoll backends alike.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::sync::Arc;

use rustc_hash::FxHashMap;
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig, ServerConnection, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::model::{Ingress, ObjectKey, Secret};
use crate::runtime::Stream;
use crate::Published;

/// Certificates by host name, built with every snapshot.
#[derive(Debug, Default)]
pub struct CertStore {
    exact: FxHashMap<String, Arc<CertifiedKey>>,
    /// `*.suffix` certificates, keyed by the suffix.
    wildcard: FxHashMap<String, Arc<CertifiedKey>>,
    /// `--default-ssl-certificate`, when it names a usable Secret.
    pub default: Option<Arc<CertifiedKey>>,
    /// Every Secret parsed for this store, with the bytes it was parsed from: the next build
    /// reuses what did not change, and keeps the last good certificate of a Secret that
    /// turned bad.
    parsed: FxHashMap<ObjectKey, ParsedSecret>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
struct ParsedSecret {
    crt: Vec<u8>,
    key: Vec<u8>,
    cert: Arc<CertifiedKey>,
}

impl CertStore {
    /// The certificate for an SNI name: exact host, then a wildcard for exactly one label.
    pub fn lookup(&self, sni: &str) -> Option<&Arc<CertifiedKey>> {
        let lower;
        let name = if sni.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = sni.to_ascii_lowercase();
            lower.as_str()
        } else {
            sni
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        self.exact.get(name).or_else(|| self.wildcard.get(name.split_once('.')?.1))
    }

    /// Whether a request host has a certificate of its own (what `ssl-redirect` looks at).
    pub fn covers(&self, host: &str) -> bool {
        self.lookup(host).is_some()
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Builds the certificate store from the served Ingresses (oldest first: the first to name
/// a host keeps it) and the Secrets. Secrets whose bytes did not change since `prev` are not
/// parsed again; a Secret that no longer parses keeps its previous certificate, loudly.
pub fn build_certs(
    ingresses: &[&Ingress],
    secrets: &[&Secret],
    default_secret: Option<&ObjectKey>,
    prev: &CertStore,
) -> CertStore {
    let by_key: FxHashMap<(&str, &str), &Secret> =
        secrets.iter().map(|s| ((s.key.namespace.as_str(), s.key.name.as_str()), *s)).collect();
    let mut store = CertStore::default();
    let load = |store: &mut CertStore, key: &ObjectKey, used_by: &str| -> Option<Arc<CertifiedKey>> {
        if let Some(p) = store.parsed.get(key) {
            return Some(p.cert.clone());
        }
        let Some(secret) = by_key.get(&(key.namespace.as_str(), key.name.as_str())) else {
            store.warnings.push(format!("{used_by}: Secret {key} not found; the default certificate is used"));
            return None;
        };
        let crt = secret.data.get("tls.crt").cloned().unwrap_or_default();
        let pk = secret.data.get("tls.key").cloned().unwrap_or_default();
        if let Some(old) = prev.parsed.get(key).filter(|p| p.crt == crt && p.key == pk) {
            store.parsed.insert(key.clone(), old.clone());
            return Some(old.cert.clone());
        }
        match parse_tls_secret(secret) {
            Ok(cert) => {
                let cert = Arc::new(cert);
                store.parsed.insert(key.clone(), ParsedSecret { crt, key: pk, cert: cert.clone() });
                Some(cert)
            }
            Err(why) => match prev.parsed.get(key) {
                Some(old) => {
                    store.warnings.push(format!("Secret {key}: {why}; its previous certificate stays in use"));
                    store.parsed.insert(key.clone(), old.clone());
                    Some(old.cert.clone())
                }
                None => {
                    store.warnings.push(format!("Secret {key}: {why}; the default certificate is used"));
                    None
                }
            },
        }
    };
    if let Some(key) = default_secret {
        store.default = load(&mut store, key, "--default-ssl-certificate");
    }
    for ing in ingresses {
        for (i, tls) in ing.tls.iter().enumerate() {
            let Some(name) = &tls.secret_name else {
                store.warnings.push(format!(
                    "Ingress {}: spec.tls[{i}] names no secretName; its hosts get the default certificate",
                    ing.key
                ));
                continue;
            };
            let key = ObjectKey { namespace: ing.key.namespace.clone(), name: name.clone() };
            let used_by = format!("Ingress {} spec.tls[{i}].secretName", ing.key);
            let Some(cert) = load(&mut store, &key, &used_by) else { continue };
            for host in &tls.hosts {
                let host = host.to_ascii_lowercase();
                let (map, name) = match host.strip_prefix("*.") {
                    Some(suffix) => (&mut store.wildcard, suffix.to_string()),
                    None => (&mut store.exact, host.clone()),
                };
                map.entry(name).or_insert_with(|| cert.clone());
            }
        }
    }
    store
}

/// A certificate chain and its key from a Secret's `tls.crt` and `tls.key` (PEM).
pub fn parse_tls_secret(secret: &Secret) -> Result<CertifiedKey, String> {
    let field = |name: &str| secret.data.get(name).filter(|v| !v.is_empty()).ok_or(format!("data.{name} is missing"));
    let (crt, key) = (field("tls.crt")?, field("tls.key")?);
    let chain = CertificateDer::pem_slice_iter(crt)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("data.tls.crt is not a PEM certificate chain ({e})"))?;
    if chain.is_empty() {
        return Err("data.tls.crt holds no CERTIFICATE block".to_string());
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("data.tls.key holds no PEM private key ({e})"))?;
    certified(chain, key)
}

fn certified(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<CertifiedKey, String> {
    let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
        .map_err(|e| format!("data.tls.key is not a usable private key ({e})"))?;
    let ck = CertifiedKey::new(chain, signer);
    match ck.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(ck),
        Err(rustls::Error::InconsistentKeys(_)) => {
            Err("data.tls.key does not belong to the first certificate of data.tls.crt".to_string())
        }
        Err(e) => Err(format!("data.tls.crt: {e}")),
    }
}

/// A self-signed certificate for `ringress-default.invalid`, made at start-up: what clients
/// without SNI, or with a name no Secret covers, are answered with (as ingress-nginx's "fake"
/// certificate).
pub fn generated_default() -> Result<Arc<CertifiedKey>, String> {
    let made = rcgen::generate_simple_self_signed(vec!["ringress-default.invalid".to_string()])
        .map_err(|e| format!("generating the default certificate: {e}"))?;
    let key = PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
    certified(vec![made.cert.der().clone()], key).map(Arc::new)
}

/// Picks the certificate per handshake from the snapshot live at that moment, so a
/// certificate change applies to the next handshake without touching open connections.
#[derive(Debug)]
struct SniResolver {
    published: &'static Published,
    generated: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let snap = self.published.swap().load();
        let found = hello.server_name().and_then(|name| snap.certs.lookup(name));
        Some(found.or(snap.certs.default.as_ref()).unwrap_or(&self.generated).clone())
    }
}

/// The crypto of every TLS connection on the data plane: aws-lc-rs (X25519 and P-256 in
/// assembly; with ring, X25519 alone was a third of a full handshake). Its key exchange
/// groups put the post-quantum hybrid X25519MLKEM768 first for clients that offer it.
fn data_plane_crypto() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// The one server configuration every worker shares: TLS 1.3 and 1.2 with rustls' default
/// (AEAD-only, forward-secret) cipher suites, ALPN, a session cache and rotating tickets.
pub fn server_config(published: &'static Published, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, String> {
    // rustls' suites, AES-128-GCM first: as strong in practice, and its SHA-256 runs on the
    // CPU's SHA extensions where the SHA-384 of AES-256-GCM-SHA384 runs in plain code in
    // ring (perf: 13% of a full handshake in sha512_block_data_order_nohw). The server's
    // order wins (`ignore_client_order`), as nginx's ssl_prefer_server_ciphers does.
    let mut provider = data_plane_crypto();
    provider.cipher_suites.sort_by_key(|s| match s.suite() {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
        rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => 2,
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 3,
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 4,
        _ => 5,
    });
    let provider = Arc::new(provider);
    let generated = generated_default()?;
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { published, generated }));
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // Tickets (TLS 1.3 and 1.2), with the key rotated every few hours, and a stateful cache
    // for clients that do not take tickets.
    cfg.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| format!("TLS session tickets: {e}"))?;
    cfg.session_storage = ServerSessionMemoryCache::new(32 * 1024);
    cfg.ignore_client_order = true;
    Ok(Arc::new(cfg))
}

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

    /// The SNI name the client sent.
    pub fn sni(&self) -> Option<String> {
        match &*self.conn.borrow() {
            rustls::Connection::Server(c) => c.server_name().map(str::to_string),
            rustls::Connection::Client(_) => None,
        }
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

/// How ringress talks TLS to upstreams (`backend-protocol: GRPCS` / `HTTPS`): like
/// ingress-nginx's default (`proxy-ssl-verify: off`), the upstream's certificate is not
/// checked against a CA (in-cluster services mostly use self-signed ones), but the handshake
/// signatures are, so the connection is still encrypted to whoever holds that key.
pub fn upstream_client_config(alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(data_plane_crypto());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("aws-lc-rs supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyUpstreamCertificate(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

#[derive(Debug)]
struct AnyUpstreamCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyUpstreamCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
