//! TLS with rustls, on the worker threads: the server configuration every worker shares, with
//! the certificate picked per handshake by SNI from the live snapshot ([`crate::snapshot::certs`]
//! holds them), with a client certificate asked for on hosts that want one ([`client_cert`]);
//! [`TlsStream`] ([`stream`]), which runs rustls over any
//! [`crate::runtime::Stream`] with owned buffers, so TLS works on the io_uring and epoll
//! backends alike; and the client configuration for TLS to upstreams ([`upstream`]).

mod client_cert;
mod stream;
mod upstream;

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;

use crate::snapshot::certs::generated_default;
use crate::Published;

pub(crate) use stream::TlsStream;
pub(crate) use upstream::upstream_client_config;

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
pub(crate) fn data_plane_crypto() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// The server configurations every worker shares: one for most handshakes, and one that asks
/// the client for a certificate, taken when the ClientHello names a host with a route that
/// wants one (`auth-tls-secret`).
#[derive(Debug)]
pub struct ServerConfigs {
    pub plain: Arc<ServerConfig>,
    pub client_certs: Arc<ServerConfig>,
}

/// Both server configurations: TLS 1.3 and 1.2 with rustls' default (AEAD-only,
/// forward-secret) cipher suites, ALPN, a session cache and rotating tickets. The
/// client-certificate one has its own tickets and cache, so a session never resumes across
/// the two.
pub fn server_config(published: &'static Published, alpn: &[&[u8]]) -> Result<Arc<ServerConfigs>, String> {
    let plain = one_config(published, alpn, false)?;
    let client_certs = one_config(published, alpn, true)?;
    Ok(Arc::new(ServerConfigs { plain, client_certs }))
}

fn one_config(published: &'static Published, alpn: &[&[u8]], client_certs: bool) -> Result<Arc<ServerConfig>, String> {
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
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS configuration: {e}"))?;
    let builder = match client_certs {
        true => builder.with_client_cert_verifier(Arc::new(client_cert::AnyClientCert(provider))),
        false => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_cert_resolver(Arc::new(SniResolver { published, generated }));
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // Tickets (TLS 1.3 and 1.2), with the key rotated every few hours, and a stateful cache
    // for clients that do not take tickets.
    cfg.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| format!("TLS session tickets: {e}"))?;
    cfg.session_storage = ServerSessionMemoryCache::new(32 * 1024);
    cfg.ignore_client_order = true;
    Ok(Arc::new(cfg))
}
