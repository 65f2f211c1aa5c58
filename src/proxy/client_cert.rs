//! Client certificates, checked per request for every downstream protocol: the chain the
//! client sent in its handshake against the CA of the route (`auth-tls-secret`), with nginx's
//! answers (400 when it is missing or does not verify, or a redirect to
//! `auth-tls-error-page`; 403 when `auth-tls-match-cn` does not match) and the fields
//! ingress-nginx sends upstream (`ssl-client-verify`, `ssl-client-subject-dn`,
//! `ssl-client-issuer-dn`, and `ssl-client-cert` when asked). The client's own fields of those
//! names never pass.
//!
//! A request over a connection whose handshake did not ask for a certificate (its SNI named a
//! host without client certificates, or none) is answered 421, as nginx answers a Host that
//! differs from the SNI: the client reconnects naming the host.

use std::cell::RefCell;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::Digest as _;

use super::error::{Kind, ProxyError};
use super::external::Granted;
use crate::snapshot::client_cert::{ClientCert, Verify};

/// What a TLS connection learned in its handshake, kept when a request may need it: when the
/// handshake asked for a client certificate, or Gateway HTTPS listeners have host names.
#[derive(Debug, Default)]
pub(crate) struct TlsInfo {
    /// The handshake asked for a client certificate.
    pub asked: bool,
    /// The client's chain, end entity first (None: it sent none, or was not asked).
    pub chain: Option<Vec<CertificateDer<'static>>>,
    /// The name the ClientHello gave (SNI), lower case.
    pub sni: Option<Box<str>>,
}

/// The fields ingress-nginx sends upstream; the client's of these names are dropped.
const FIELDS: [&str; 4] = ["ssl-client-verify", "ssl-client-subject-dn", "ssl-client-issuer-dn", "ssl-client-cert"];

/// Verdicts per worker, by (rules, end-entity certificate): a keep-alive client, or many
/// connections from one client, costs one chain verification.
const CACHE_ENTRIES: usize = 4096;

/// A chain verified, or why not.
type Verdict = Result<(), Arc<str>>;

thread_local! {
    static VERDICTS: RefCell<FxHashMap<[u8; 32], Verdict>> = RefCell::new(FxHashMap::default());
}

/// Checks a request against a route's client-certificate rules. Ok: the fields for the
/// upstream. Err: the client's answer.
pub(crate) fn check(cc: &ClientCert, https: bool, tls: Option<&TlsInfo>) -> Result<Granted, ProxyError> {
    let refuse = |why: &'static str| {
        let mut e = ProxyError::downstream(Kind::ClientCertificate, why);
        if let Some(page) = &cc.spec.error_page {
            e = ProxyError::downstream(Kind::SignIn, why);
            e.fields.push(("Location", page.as_bytes().to_vec()));
        }
        e
    };
    if !https {
        return Err(refuse("No required SSL certificate was sent"));
    }
    let Some(tls) = tls.filter(|t| t.asked) else {
        return Err(ProxyError::downstream(
            Kind::Misdirected,
            "this host asks for a client certificate: connect naming it (SNI)",
        ));
    };
    let mut fields: Vec<(String, Vec<u8>)> = Vec::with_capacity(4);
    let chain = tls.chain.as_deref().filter(|c| !c.is_empty());
    let Some(chain) = chain else {
        if cc.spec.verify == Verify::On {
            return Err(refuse("No required SSL certificate was sent"));
        }
        fields.push((FIELDS[0].into(), b"NONE".to_vec()));
        return Ok(Granted::fields(&FIELDS, fields));
    };
    let verdict = verify(cc, chain);
    match (&verdict, cc.spec.verify) {
        (Err(why), Verify::On | Verify::Optional) => {
            tracing::debug!(why = %why, "client certificate refused");
            return Err(refuse("The SSL certificate error"));
        }
        (Err(why), Verify::OptionalNoCa) => fields.push((FIELDS[0].into(), format!("FAILED:{why}").into_bytes())),
        (Ok(()), _) => fields.push((FIELDS[0].into(), b"SUCCESS".to_vec())),
    }
    let (subject, issuer) = names(&chain[0]);
    if let Some(re) = &cc.match_cn {
        if verdict.is_err() || !re.is_match(&subject) {
            return Err(ProxyError::downstream(
                Kind::Forbidden,
                "the client certificate's subject is not allowed here",
            ));
        }
    }
    fields.push((FIELDS[1].into(), subject.into_bytes()));
    fields.push((FIELDS[2].into(), issuer.into_bytes()));
    if cc.spec.pass_certificate {
        fields.push((FIELDS[3].into(), escaped_pem(&chain[0])));
    }
    Ok(Granted::fields(&FIELDS, fields))
}

/// The chain against the rules' CA (cached per worker).
fn verify(cc: &ClientCert, chain: &[CertificateDer<'static>]) -> Verdict {
    let mut h = sha2::Sha256::new();
    h.update(cc.id.to_le_bytes());
    for c in chain {
        h.update((c.len() as u64).to_le_bytes());
        h.update(c.as_ref());
    }
    let key: [u8; 32] = h.finalize().into();
    if let Some(v) = VERDICTS.with_borrow(|m| m.get(&key).cloned()) {
        return v;
    }
    let v = if chain.len() > cc.spec.depth as usize {
        Err(Arc::from("the chain is longer than auth-tls-verify-depth allows"))
    } else {
        cc.verifier
            .verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
            .map(|_| ())
            .map_err(|e| Arc::from(e.to_string()))
    };
    VERDICTS.with_borrow_mut(|m| {
        if m.len() >= CACHE_ENTRIES {
            m.clear();
        }
        m.insert(key, v.clone());
    });
    v
}

/// The subject and issuer names in RFC 4514 order (`CN=client,O=Example`), as nginx's
/// `$ssl_client_s_dn` and `$ssl_client_i_dn` give them.
fn names(cert: &CertificateDer<'_>) -> (String, String) {
    use x509_parser::prelude::FromDer as _;
    let Ok((_, parsed)) = x509_parser::certificate::X509Certificate::from_der(cert.as_ref()) else {
        return (String::new(), String::new());
    };
    (dn(parsed.subject()), dn(parsed.issuer()))
}

fn dn(name: &x509_parser::x509::X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            let parts: Vec<String> = rdn
                .iter()
                .map(|attr| {
                    let key = x509_parser::objects::oid2abbrev(attr.attr_type(), registry)
                        .map(str::to_string)
                        .unwrap_or_else(|_| attr.attr_type().to_id_string());
                    let value = attr.as_str().unwrap_or_default();
                    format!("{key}={}", escape_dn(value))
                })
                .collect();
            parts.join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// RFC 4514 §2.4: the characters escaped in an attribute value; control characters (which
/// could not travel in a header) are dropped.
fn escape_dn(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        if c.is_control() {
            continue;
        }
        let lead = i == 0 && (c == ' ' || c == '#');
        if lead || ",+\"\\<>;=".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The certificate as PEM, percent-encoded (nginx's `$ssl_client_escaped_cert`).
fn escaped_pem(cert: &CertificateDer<'_>) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    let mut out = Vec::with_capacity(pem.len() * 2);
    for b in pem.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinguished_names_read_as_rfc_4514_writes_them() {
        let mut params = rcgen::CertificateParams::new(vec!["client.test".into()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Example, Inc");
        params.distinguished_name.push(rcgen::DnType::CommonName, "client");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (subject, issuer) = names(cert.der());
        assert_eq!(subject, "CN=client,O=Example\\, Inc");
        assert_eq!(issuer, subject, "self-signed");
        let pem = String::from_utf8(escaped_pem(cert.der())).unwrap();
        assert!(pem.starts_with("-----BEGIN%20CERTIFICATE-----%0A"), "{pem}");
    }
}
