//! The handshake side of client certificates: on hosts that want one, the client is asked for
//! a certificate, and one it sends must be signed by the key it proves it holds. Whether the
//! chain is trusted is decided per request against the route's CA (`proxy::client_cert`), so a
//! missing or untrusted certificate is an HTTP answer (400, or the error page), as nginx gives,
//! rather than a failed handshake.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::DistinguishedName;
use rustls_pki_types::{CertificateDer, UnixTime};

/// Asks for a certificate, does not require one, and takes any chain whose handshake
/// signature verifies.
#[derive(Debug)]
pub(super) struct AnyClientCert(pub Arc<CryptoProvider>);

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    signature_checks!(0);
}
