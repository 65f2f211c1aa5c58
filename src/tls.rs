//! TLS with rustls, on the worker threads: the server configuration every worker shares, with
//! the certificate picked per handshake by SNI from the live snapshot ([`crate::snapshot::certs`]
//! holds them), with a client certificate asked for on hosts that want one ([`client_cert`]);
//! [`TlsStream`] ([`stream`]), which runs rustls over any
//! [`crate::runtime::Stream`] with owned buffers, so TLS works on the io_uring and epoll
//! backends alike; and the client configuration for TLS to upstreams ([`upstream`]).

/// The handshake-signature checks and schemes every rustls certificate verifier implements,
/// done with the crypto provider at `self.$provider`: written once for the client-certificate
/// and the upstream verifiers.
macro_rules! signature_checks {
    ($provider:tt) => {
        fn verify_tls12_signature(&self, m: &[u8], c: &super::Cert<'_>, d: &super::Dss) -> super::Signed {
            rustls::crypto::verify_tls12_signature(m, c, d, &self.$provider.signature_verification_algorithms)
        }

        fn verify_tls13_signature(&self, m: &[u8], c: &super::Cert<'_>, d: &super::Dss) -> super::Signed {
            rustls::crypto::verify_tls13_signature(m, c, d, &self.$provider.signature_verification_algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.$provider.signature_verification_algorithms.supported_schemes()
        }
    };
}

/// The types in [`signature_checks!`]'s signatures, short.
type Cert<'a> = rustls_pki_types::CertificateDer<'a>;
type Dss = rustls::DigitallySignedStruct;
type Signed = Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error>;

mod client_cert;
mod resumption;
mod stream;
mod upstream;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;

use crate::snapshot::certs::generated_default;
use crate::snapshot::listener_tls::{self, ListenerTls};
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

/// The server configurations every worker shares, built for the HTTPS listener settings of
/// the live snapshot ([`ListenerTls`]): rebuilt by the first handshake that sees those
/// settings change, with the session tickets' keys and the session caches kept, so a
/// ConfigMap change does not end resumption.
pub struct ServerConfigs {
    parts: Parts,
    built: ArcSwap<Built>,
}

/// What every build of the configurations shares.
struct Parts {
    published: &'static Published,
    alpn: Vec<Vec<u8>>,
    generated: Arc<CertifiedKey>,
    /// Resumption state of the plain and the client-certificate configurations (apart, so a
    /// session never resumes across the two).
    resumption: [Resumption; 2],
}

impl std::fmt::Debug for ServerConfigs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfigs").field("settings", &self.built.load().settings).finish_non_exhaustive()
    }
}

/// The two configurations for one version of the listener settings: one for most
/// handshakes, and one that asks the client for a certificate, taken when the ClientHello
/// names a host with a route that wants one (`auth-tls-secret`).
#[derive(Debug)]
pub struct Built {
    settings: ListenerTls,
    pub plain: Arc<ServerConfig>,
    pub client_certs: Arc<ServerConfig>,
}

/// The server configurations, first built for ringress's default listener settings.
pub fn server_config(published: &'static Published, alpn: &[&[u8]]) -> Result<Arc<ServerConfigs>, String> {
    let resumption = || -> Result<Resumption, String> {
        let ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| format!("TLS session tickets: {e}"))?;
        let lifetime = Arc::new(AtomicU32::new(0));
        Ok(Resumption {
            tickets: Arc::new(resumption::Tickets { inner: ticketer, lifetime: lifetime.clone() }),
            cache: Arc::new(resumption::Cache {
                inner: ServerSessionMemoryCache::new(32 * 1024),
                lifetime: lifetime.clone(),
            }),
            lifetime,
        })
    };
    let parts = Parts {
        published,
        alpn: alpn.iter().map(|p| p.to_vec()).collect(),
        generated: generated_default()?,
        resumption: [resumption()?, resumption()?],
    };
    let built = ArcSwap::from_pointee(parts.build(&ListenerTls::default())?);
    Ok(Arc::new(ServerConfigs { parts, built }))
}

struct Resumption {
    tickets: Arc<resumption::Tickets>,
    cache: Arc<resumption::Cache>,
    /// `ssl-session-timeout` in seconds, read by both.
    lifetime: Arc<AtomicU32>,
}

impl ServerConfigs {
    /// The configurations for `settings` (the live snapshot's), built now when they changed.
    /// Settings rustls refuses keep the previous configurations, with an error logged once.
    pub fn current(&self, settings: &ListenerTls) -> Arc<Built> {
        let built = self.built.load_full();
        if built.settings == *settings {
            return built;
        }
        let next = match self.parts.build(settings) {
            Ok(b) => Arc::new(b),
            Err(e) => {
                tracing::error!("TLS listener settings from the ConfigMap: {e}; the previous ones stay");
                Arc::new(Built {
                    settings: settings.clone(),
                    plain: built.plain.clone(),
                    client_certs: built.client_certs.clone(),
                })
            }
        };
        self.built.store(next.clone());
        next
    }
}

impl Parts {
    fn build(&self, settings: &ListenerTls) -> Result<Built, String> {
        let lifetime = u32::try_from(settings.session_timeout.as_secs()).unwrap_or(u32::MAX);
        for r in &self.resumption {
            r.lifetime.store(lifetime, Ordering::Relaxed);
        }
        Ok(Built {
            settings: settings.clone(),
            plain: self.one_config(settings, false)?,
            client_certs: self.one_config(settings, true)?,
        })
    }

    fn one_config(&self, settings: &ListenerTls, client_certs: bool) -> Result<Arc<ServerConfig>, String> {
        let provider = Arc::new(listener_crypto(settings));
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions(settings.protocols))
            .map_err(|e| format!("TLS configuration: {e}"))?;
        let builder = match client_certs {
            true => builder.with_client_cert_verifier(Arc::new(client_cert::AnyClientCert(provider))),
            false => builder.with_no_client_auth(),
        };
        let resolver = SniResolver { published: self.published, generated: self.generated.clone() };
        let mut cfg = builder.with_cert_resolver(Arc::new(resolver));
        cfg.alpn_protocols = self.alpn.clone();
        // Tickets (TLS 1.3 and 1.2), with the key rotated every few hours, or else the
        // stateful cache, which also serves clients that do not take tickets.
        let r = &self.resumption[usize::from(client_certs)];
        if settings.tickets {
            cfg.ticketer = r.tickets.clone();
        }
        cfg.session_storage = r.cache.clone();
        cfg.ignore_client_order = true;
        Ok(Arc::new(cfg))
    }
}

/// The protocol versions of (TLS 1.2, TLS 1.3), newest first.
fn versions((tls12, tls13): (bool, bool)) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if tls12 {
        versions.push(&rustls::version::TLS12);
    }
    versions
}

/// The provider with the listener's suites and groups, in the server's order of preference.
fn listener_crypto(settings: &ListenerTls) -> rustls::crypto::CryptoProvider {
    use rustls::CipherSuite as C;
    // rustls' suites, AES-128-GCM first: as strong in practice, and its SHA-256 runs on the
    // CPU's SHA extensions where the SHA-384 of AES-256-GCM-SHA384 runs in plain code in
    // ring (perf: 13% of a full handshake in sha512_block_data_order_nohw). The server's
    // order wins (`ignore_client_order`), as nginx's ssl_prefer_server_ciphers does.
    // `ssl-ciphers` picks and orders the TLS 1.2 suites (by OpenSSL name).
    let openssl_name = |s: C| match s {
        C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        _ => "",
    };
    let tls12 = settings.ciphers.as_deref().unwrap_or(listener_tls::TLS12_SUITES);
    let rank = |s: C| match s {
        C::TLS13_AES_128_GCM_SHA256 => Some(0),
        C::TLS13_CHACHA20_POLY1305_SHA256 => Some(1),
        C::TLS13_AES_256_GCM_SHA384 => Some(2),
        _ => tls12.iter().position(|n| *n == openssl_name(s)).map(|i| 3 + i),
    };
    let mut provider = data_plane_crypto();
    provider.cipher_suites.retain(|s| rank(s.suite()).is_some());
    provider.cipher_suites.sort_by_key(|s| rank(s.suite()));
    if let Some(groups) = &settings.groups {
        use rustls::NamedGroup as G;
        let name = |g: G| match g {
            G::X25519MLKEM768 => "X25519MLKEM768",
            G::X25519 => "X25519",
            G::secp256r1 => "P-256",
            G::secp384r1 => "P-384",
            _ => "",
        };
        let rank = |g: G| groups.iter().position(|n| *n == name(g));
        provider.kx_groups.retain(|g| rank(g.name()).is_some());
        provider.kx_groups.sort_by_key(|g| rank(g.name()));
    }
    provider
}
