//! TLS to upstreams (`backend-protocol: HTTPS` and `GRPCS`), by the route's profile
//! ([`UpstreamTls`]: `proxy-ssl-*`).

use std::sync::Arc;

use rustls_pki_types::CertificateDer;

use crate::snapshot::listener_tls::ListenerTls;
use crate::snapshot::upstream_tls::UpstreamTls;

/// The client configuration of a profile, offering `alpn`.
///
/// With `proxy-ssl-verify` off (ingress-nginx's default), the upstream's certificate is not
/// checked against a CA (in-cluster services mostly use self-signed ones), but the handshake
/// signatures are, so the connection is still encrypted to whoever holds that key. With it
/// on, the chain must lead to one of the Secret's `ca.crt` certificates within
/// `proxy-ssl-verify-depth`, be valid now, and name the server ([`UpstreamTls::name_for`]).
/// Err: what rustls refused in the profile (a client key it cannot use, say).
pub fn upstream_client_config(profile: &UpstreamTls, alpn: &[&[u8]]) -> Result<Arc<rustls::ClientConfig>, String> {
    let settings = ListenerTls {
        protocols: profile.spec.protocols,
        ciphers: profile.spec.ciphers.clone(),
        ..ListenerTls::default()
    };
    let provider = Arc::new(super::listener_crypto(&settings));
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&super::versions(profile.spec.protocols))
        .map_err(|e| format!("upstream TLS: {e}"))?;
    let chain = match profile.spec.verify {
        false => None,
        true => {
            let mut roots = rustls::RootCertStore::empty();
            for c in &profile.roots {
                roots.add(c.clone()).map_err(|e| format!("proxy-ssl-secret: ca.crt holds a bad certificate ({e})"))?;
            }
            let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("proxy-ssl-secret: {e}"))?;
            Some((webpki, profile.spec.depth as usize - 1))
        }
    };
    let builder = builder.dangerous().with_custom_certificate_verifier(Arc::new(UpstreamVerifier { chain, provider }));
    let mut cfg = match &profile.client {
        None => builder.with_no_client_auth(),
        Some(pair) => builder
            .with_client_auth_cert(pair.0.clone(), pair.1.clone_key())
            .map_err(|e| format!("proxy-ssl-secret: tls.key cannot be used with tls.crt ({e})"))?,
    };
    cfg.enable_sni = profile.spec.server_name;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// How an upstream's certificate is checked. `chain`: with `proxy-ssl-verify: on`, the CA
/// verifier, and how many of the certificates the upstream sent (in the order it sent them)
/// may stand between its certificate and a trusted CA, as nginx's `proxy_ssl_verify_depth`
/// limits it. Without, any certificate is taken. The handshake's signatures are always
/// checked, so the connection is encrypted to whoever holds the certificate's key.
#[derive(Debug)]
struct UpstreamVerifier {
    chain: Option<(Arc<rustls::client::WebPkiServerVerifier>, usize)>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for UpstreamVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match &self.chain {
            None => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            Some((webpki, depth)) => {
                let allowed = &intermediates[..intermediates.len().min(*depth)];
                webpki.verify_server_cert(end_entity, allowed, server_name, ocsp_response, now)
            }
        }
    }

    signature_checks!(provider);
}
