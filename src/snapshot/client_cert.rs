//! Client certificates (`auth-tls-secret` and its family): what an Ingress asks for, with its
//! CA bundle (and revocation lists) read from the Secret once per build.
//!
//! The TLS layer asks a client for a certificate only on hosts with a route that wants one
//! (chosen by SNI); the chain it sends is verified against the route's CA when a request
//! arrives (the proxy's `client_cert` module), as nginx answers 400 for a missing or bad
//! certificate rather than failing the handshake.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};

use crate::model::{ObjectKey, Secret};

/// `auth-tls-verify-client`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verify {
    /// A certificate the CA signed is required (400 otherwise).
    On,
    /// Asked for; one that is sent must verify (400 otherwise).
    Optional,
    /// Asked for; passed to the upstream whether or not it verifies.
    OptionalNoCa,
}

/// What the annotations ask for, before the Secret is read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientCertSpec {
    pub secret: ObjectKey,
    pub verify: Verify,
    /// `auth-tls-verify-depth` (default 1): how many CA certificates may stand between the
    /// client's certificate and the trusted root, the root included.
    pub depth: u32,
    /// `auth-tls-error-page`: where a failed verification is redirected (302) instead of 400.
    pub error_page: Option<String>,
    /// `auth-tls-pass-certificate-to-upstream`: the certificate goes upstream as
    /// `ssl-client-cert` (URL-encoded PEM).
    pub pass_certificate: bool,
    /// `auth-tls-match-cn`: a regular expression the subject DN must match (403 otherwise).
    pub match_cn: Option<String>,
}

/// A route's client-certificate rules, ready to check a chain.
pub struct ClientCert {
    pub spec: ClientCertSpec,
    pub verifier: Arc<dyn ClientCertVerifier>,
    pub match_cn: Option<regex::Regex>,
    /// Distinct per build of the rules: keys each worker's cache of verdicts.
    pub id: u64,
}

impl std::fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCert").field("spec", &self.spec).field("id", &self.id).finish()
    }
}

impl PartialEq for ClientCert {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for ClientCert {}

/// The annotation keys of client certificates, without prefix.
pub const KEYS: &[&str] = &[
    "auth-tls-secret",
    "auth-tls-verify-client",
    "auth-tls-verify-depth",
    "auth-tls-error-page",
    "auth-tls-pass-certificate-to-upstream",
    "auth-tls-match-cn",
];

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl ClientCertSpec {
    /// Parses the annotations `get` finds (by key without prefix: the full key and the value).
    /// Ok(None): no `auth-tls-secret`, or `auth-tls-verify-client: off`. Err: what makes them
    /// unenforceable (the routes are refused).
    pub fn parse<'v>(
        namespace: &str,
        get: impl Fn(&str) -> Option<(&'v str, &'v str)>,
    ) -> Result<Option<ClientCertSpec>, String> {
        let Some((secret_key, secret)) = get("auth-tls-secret") else { return Ok(None) };
        let bad = |key: &str, what: &str| {
            let (full, v) = get(key).unwrap_or((key, ""));
            format!("{full}: {v:?} {what}")
        };
        let secret = secret.trim();
        let Some(secret) = ObjectKey::named_in(namespace, secret) else {
            return Err(format!("{secret_key}: {secret:?} is not a Secret name or namespace/name"));
        };
        let verify = match get("auth-tls-verify-client").map(|(_, v)| v.trim()) {
            None | Some("on") => Verify::On,
            Some("optional") => Verify::Optional,
            Some("optional_no_ca") => Verify::OptionalNoCa,
            Some("off") => return Ok(None),
            Some(_) => return Err(bad("auth-tls-verify-client", "is not on, off, optional or optional_no_ca")),
        };
        let depth = verify_depth(get("auth-tls-verify-depth"))
            .ok_or_else(|| bad("auth-tls-verify-depth", "is not a number from 1 to 16"))?;
        let error_page = match get("auth-tls-error-page").map(|(_, v)| v.trim()).filter(|v| !v.is_empty()) {
            None => None,
            Some(v)
                if (v.starts_with("http://") || v.starts_with("https://") || v.starts_with('/'))
                    && !v.bytes().any(|b| b.is_ascii_control() || b == b' ') =>
            {
                Some(v.to_string())
            }
            Some(_) => return Err(bad("auth-tls-error-page", "is not a URL")),
        };
        let pass_certificate = match get("auth-tls-pass-certificate-to-upstream") {
            None => false,
            Some((_, v)) => super::annotations::parse_bool(v.trim())
                .ok_or_else(|| bad("auth-tls-pass-certificate-to-upstream", "is not true or false"))?,
        };
        let match_cn = get("auth-tls-match-cn").map(|(_, v)| v.trim().to_string()).filter(|v| !v.is_empty());
        Ok(Some(ClientCertSpec { secret, verify, depth, error_page, pass_certificate, match_cn }))
    }
}

/// A `*-verify-depth` annotation's value: 1 to 16; 1 when not set. None: not one of those.
pub(super) fn verify_depth(v: Option<(&str, &str)>) -> Option<u32> {
    match v {
        None => Some(1),
        Some((_, v)) => v.trim().parse::<u32>().ok().filter(|d| (1..=16).contains(d)),
    }
}

impl ClientCert {
    /// The rules with the CA bundle (`ca.crt`) and revocation lists (`ca.crl`, optional) of
    /// `secret`. Err names the Secret and what is wrong with it.
    pub fn from_secret(spec: &ClientCertSpec, secret: Option<&Secret>) -> Result<ClientCert, String> {
        let name = &spec.secret;
        let secret = secret.ok_or_else(|| format!("auth-tls-secret {name} does not exist"))?;
        let ca = secret.data.get("ca.crt").ok_or_else(|| format!("auth-tls-secret {name} has no key ca.crt"))?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(ca)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("auth-tls-secret {name}: ca.crt is not PEM certificates ({e})"))?;
        let mut roots = rustls::RootCertStore::empty();
        for c in certs {
            roots.add(c).map_err(|e| format!("auth-tls-secret {name}: ca.crt holds a bad certificate ({e})"))?;
        }
        if roots.is_empty() {
            return Err(format!("auth-tls-secret {name}: ca.crt holds no certificate"));
        }
        let crls: Vec<CertificateRevocationListDer<'static>> = match secret.data.get("ca.crl") {
            None => Vec::new(),
            Some(pem) => CertificateRevocationListDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("auth-tls-secret {name}: ca.crl is not PEM revocation lists ({e})"))?,
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .with_crls(crls)
            .allow_unauthenticated()
            .build()
            .map_err(|e| format!("auth-tls-secret {name}: {e}"))?;
        let match_cn = match &spec.match_cn {
            None => None,
            Some(re) => Some(
                regex::RegexBuilder::new(re)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| format!("auth-tls-match-cn: {re:?} is not a regular expression ({e})"))?,
            ),
        };
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Ok(ClientCert { spec: spec.clone(), verifier, match_cn, id })
    }
}
