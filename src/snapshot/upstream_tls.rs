//! TLS to upstreams as an Ingress asks for it (`proxy-ssl-secret`, `proxy-ssl-verify`,
//! `proxy-ssl-verify-depth`, `proxy-ssl-name`, `proxy-ssl-server-name`,
//! `proxy-ssl-protocols`, `proxy-ssl-ciphers`), as plain data: the Secret's certificates are
//! parsed here once per build, and [`crate::tls`] turns a profile into a client
//! configuration (each worker keeps the ones it built, by [`UpstreamTls::id`]).
//!
//! Without these annotations, TLS upstreams (`backend-protocol: HTTPS`, `GRPCS`) get
//! [`UpstreamTls::DEFAULT`]: the certificate is not checked against a CA, as ingress-nginx's
//! default `proxy-ssl-verify: off`.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::model::{ObjectKey, Secret};

/// The annotation keys of upstream TLS, without prefix.
pub const KEYS: &[&str] = &[
    "proxy-ssl-secret",
    "proxy-ssl-verify",
    "proxy-ssl-verify-depth",
    "proxy-ssl-name",
    "proxy-ssl-server-name",
    "proxy-ssl-protocols",
    "proxy-ssl-ciphers",
];

/// What the annotations ask for, before the Secret is read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UpstreamTlsSpec {
    /// `proxy-ssl-secret`: `ca.crt` (to verify), `tls.crt` and `tls.key` (to present).
    pub secret: Option<ObjectKey>,
    /// `proxy-ssl-verify: on`.
    pub verify: bool,
    /// `proxy-ssl-verify-depth` (default 1, as nginx): how many CA certificates may stand
    /// between the upstream's certificate and the trusted root, the root included.
    pub depth: u32,
    /// `proxy-ssl-name`: the name the certificate must carry, sent as SNI when
    /// `proxy-ssl-server-name` is on; `None`: the Service's DNS name.
    pub name: Option<String>,
    /// `proxy-ssl-server-name: on`: SNI is sent.
    pub server_name: bool,
    /// `proxy-ssl-protocols`: TLS 1.2, TLS 1.3.
    pub protocols: (bool, bool),
    /// `proxy-ssl-ciphers`: the TLS 1.2 suites, by OpenSSL name; `None`: all of ringress's.
    pub ciphers: Option<Vec<&'static str>>,
}

/// A route's upstream TLS, ready for the TLS layer.
#[derive(Debug)]
pub struct UpstreamTls {
    /// Equal for equal profiles (spec and Secret contents): keys each worker's client
    /// configurations and upstream connection pools, so a connection is only ever reused
    /// under the profile it was verified for. Never 0 (plain connections); 1 is
    /// [`UpstreamTls::DEFAULT`].
    pub id: u64,
    pub spec: UpstreamTlsSpec,
    /// The trusted CA certificates (`ca.crt`).
    pub roots: Vec<CertificateDer<'static>>,
    /// The certificate chain and key presented to the upstream (`tls.crt`, `tls.key`).
    pub client: Option<Arc<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>>,
}

/// [`UpstreamTls::DEFAULT`], shared.
pub fn default_profile() -> &'static Arc<UpstreamTls> {
    static DEFAULT: std::sync::LazyLock<Arc<UpstreamTls>> = std::sync::LazyLock::new(|| Arc::new(UpstreamTls::DEFAULT));
    &DEFAULT
}

impl PartialEq for UpstreamTls {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for UpstreamTls {}

impl UpstreamTls {
    /// TLS upstreams without `proxy-ssl-*` annotations: encrypted, the certificate not
    /// checked (the handshake's signatures are), no SNI, TLS 1.2 and 1.3.
    pub const DEFAULT: UpstreamTls = UpstreamTls {
        id: 1,
        spec: UpstreamTlsSpec {
            secret: None,
            verify: false,
            depth: 1,
            name: None,
            server_name: false,
            protocols: (true, true),
            ciphers: None,
        },
        roots: Vec::new(),
        client: None,
    };

    /// The name the upstream's certificate is checked against (and sent as SNI): the
    /// `proxy-ssl-name`, else the backend's ExternalName, else `service.namespace.svc`.
    pub fn name_for(&self, backend: &super::Backend) -> String {
        match (&self.spec.name, &backend.dns_name) {
            (Some(n), _) => n.clone(),
            (None, Some(dns)) => dns.trim_end_matches('.').to_string(),
            (None, None) => format!("{}.{}.svc", backend.service.name, backend.service.namespace),
        }
    }

    /// Whether connections need a name (to verify or to send as SNI).
    pub fn names_the_server(&self) -> bool {
        self.spec.verify || self.spec.server_name
    }

    /// The profile of `spec` with its Secret's certificates. Err names the Secret and what
    /// is wrong with it (the routes are refused: a protection asked for cannot be given).
    pub fn from_secret(spec: &UpstreamTlsSpec, secret: Option<&Secret>) -> Result<UpstreamTls, String> {
        let mut roots = Vec::new();
        let mut client = None;
        let mut h = std::hash::DefaultHasher::new();
        spec.hash(&mut h);
        if let Some(key) = &spec.secret {
            let secret = secret.ok_or_else(|| format!("proxy-ssl-secret {key} does not exist"))?;
            let bad = |what: &str, e: &dyn std::fmt::Display| format!("proxy-ssl-secret {key}: {what} ({e})");
            if let Some(ca) = secret.data.get("ca.crt") {
                roots = CertificateDer::pem_slice_iter(ca)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad("ca.crt is not PEM certificates", &e))?;
                if roots.is_empty() {
                    return Err(format!("proxy-ssl-secret {key}: ca.crt holds no certificate"));
                }
                let mut store = rustls::RootCertStore::empty();
                for c in &roots {
                    store.add(c.clone()).map_err(|e| bad("ca.crt holds a bad certificate", &e))?;
                }
                ca.hash(&mut h);
            }
            match (secret.data.get("tls.crt"), secret.data.get("tls.key")) {
                (None, None) => {}
                (Some(crt), Some(pem)) => {
                    // As a TLS Secret is checked: a key that is unusable or not the
                    // certificate's refuses the routes now, not each connection later.
                    super::certs::parse_tls_secret(secret).map_err(|e| format!("proxy-ssl-secret {key}: {e}"))?;
                    let chain = CertificateDer::pem_slice_iter(crt)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| bad("tls.crt is not PEM certificates", &e))?;
                    if chain.is_empty() {
                        return Err(format!("proxy-ssl-secret {key}: tls.crt holds no certificate"));
                    }
                    let key_der =
                        PrivateKeyDer::from_pem_slice(pem).map_err(|e| bad("tls.key is not a PEM key", &e))?;
                    (crt, pem).hash(&mut h);
                    client = Some(Arc::new((chain, key_der)));
                }
                _ => return Err(format!("proxy-ssl-secret {key}: tls.crt and tls.key must both be there, or neither")),
            }
        }
        if spec.verify && roots.is_empty() {
            let why = match &spec.secret {
                None => "proxy-ssl-verify is on, but no proxy-ssl-secret holds the CA to verify with".to_string(),
                Some(key) => format!("proxy-ssl-verify is on, but proxy-ssl-secret {key} has no key ca.crt"),
            };
            return Err(why);
        }
        Ok(UpstreamTls { id: h.finish() | 2, spec: spec.clone(), roots, client })
    }
}

impl UpstreamTlsSpec {
    /// Parses the annotations `get` finds (by key without prefix: the full key and the value).
    /// Ok(None): none of them is set. Err: a value that does not parse (the routes are
    /// refused: the TLS asked for is not what would be used).
    pub fn parse<'v>(
        namespace: &str,
        get: impl Fn(&str) -> Option<(&'v str, &'v str)>,
    ) -> Result<Option<UpstreamTlsSpec>, String> {
        if KEYS.iter().all(|k| get(k).is_none()) {
            return Ok(None);
        }
        let bad = |key: &str, what: &str| {
            let (full, v) = get(key).unwrap_or((key, ""));
            format!("{full}: {v:?} {what}")
        };
        let on_off = |key: &str| match get(key).map(|(_, v)| v.trim()) {
            None => Ok(false),
            Some("on" | "true") => Ok(true),
            Some("off" | "false") => Ok(false),
            Some(_) => Err(bad(key, "is not on or off")),
        };
        let secret = match get("proxy-ssl-secret").map(|(_, v)| v.trim()) {
            None => None,
            Some(v) => Some(
                ObjectKey::named_in(namespace, v)
                    .ok_or_else(|| bad("proxy-ssl-secret", "is not a Secret name or namespace/name"))?,
            ),
        };
        let depth = super::client_cert::verify_depth(get("proxy-ssl-verify-depth"))
            .ok_or_else(|| bad("proxy-ssl-verify-depth", "is not a number from 1 to 16"))?;
        let name = match get("proxy-ssl-name").map(|(_, v)| v.trim()).filter(|v| !v.is_empty()) {
            None => None,
            Some(v) if rustls_pki_types::ServerName::try_from(v).is_ok() => Some(v.to_string()),
            Some(_) => return Err(bad("proxy-ssl-name", "is not a DNS name or IP address")),
        };
        // Protocols older than TLS 1.2 are never offered (so never asked for).
        let protocols = match get("proxy-ssl-protocols") {
            None => (true, true),
            Some((_, v)) => {
                let (mut tls12, mut tls13) = (false, false);
                for p in v.split([' ', ',']).filter(|p| !p.is_empty()) {
                    match p {
                        "TLSv1.2" => tls12 = true,
                        "TLSv1.3" => tls13 = true,
                        "SSLv2" | "SSLv3" | "TLSv1" | "TLSv1.1" => {}
                        _ => return Err(bad("proxy-ssl-protocols", "names an unknown protocol")),
                    }
                }
                if !(tls12 || tls13) {
                    return Err(bad("proxy-ssl-protocols", "names neither TLSv1.2 nor TLSv1.3"));
                }
                (tls12, tls13)
            }
        };
        let ciphers = match get("proxy-ssl-ciphers").map(|(_, v)| v.trim()) {
            None | Some("DEFAULT") => None,
            Some(v) => super::listener_tls::parse_ciphers(v)
                .ok_or_else(|| bad("proxy-ssl-ciphers", "names none of ringress's TLS 1.2 suites"))?,
        };
        Ok(Some(UpstreamTlsSpec {
            secret,
            verify: on_off("proxy-ssl-verify")?,
            depth,
            name,
            server_name: on_off("proxy-ssl-server-name")?,
            protocols,
            ciphers,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&'static str, &'static str)]) -> Result<Option<UpstreamTlsSpec>, String> {
        UpstreamTlsSpec::parse("ns", |k| pairs.iter().find(|(key, _)| *key == k).map(|&(k, v)| (k, v)))
    }

    #[test]
    fn annotations_parse_as_ingress_nginx_documents_them() {
        assert_eq!(parse(&[]), Ok(None));
        let s = parse(&[
            ("proxy-ssl-secret", "tls/upstream-ca"),
            ("proxy-ssl-verify", "on"),
            ("proxy-ssl-verify-depth", "2"),
            ("proxy-ssl-name", "api.internal"),
            ("proxy-ssl-server-name", "on"),
            ("proxy-ssl-protocols", "TLSv1 TLSv1.1 TLSv1.2"),
            ("proxy-ssl-ciphers", "DEFAULT"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.secret, Some(ObjectKey { namespace: "tls".into(), name: "upstream-ca".into() }));
        assert!(s.verify && s.server_name);
        assert_eq!(
            (s.depth, s.name.as_deref(), s.protocols, s.ciphers),
            (2, Some("api.internal"), (true, false), None)
        );
        let s = parse(&[("proxy-ssl-secret", "ca")]).unwrap().unwrap();
        assert_eq!(s.secret.unwrap().namespace, "ns");
        assert!(!s.verify);
        for bad in [
            ("proxy-ssl-verify", "yes"),
            ("proxy-ssl-verify-depth", "0"),
            ("proxy-ssl-name", "bad name"),
            ("proxy-ssl-protocols", "TLSv1.1"),
            ("proxy-ssl-protocols", "TLSv1.4"),
            ("proxy-ssl-ciphers", "RC4-SHA"),
            ("proxy-ssl-secret", "a/b/c"),
        ] {
            let err = parse(&[bad]).unwrap_err();
            assert!(err.starts_with(bad.0), "{err}");
        }
    }

    #[test]
    fn verification_without_a_ca_is_refused_and_equal_profiles_share_an_id() {
        let spec = parse(&[("proxy-ssl-verify", "on")]).unwrap().unwrap();
        assert!(UpstreamTls::from_secret(&spec, None).unwrap_err().contains("no proxy-ssl-secret"));
        let spec = parse(&[("proxy-ssl-verify", "on"), ("proxy-ssl-secret", "ca")]).unwrap().unwrap();
        assert!(UpstreamTls::from_secret(&spec, None).unwrap_err().contains("does not exist"));
        let off = parse(&[("proxy-ssl-server-name", "on")]).unwrap().unwrap();
        let (a, b) = (UpstreamTls::from_secret(&off, None).unwrap(), UpstreamTls::from_secret(&off, None).unwrap());
        assert_eq!(a.id, b.id);
        assert!(a.id > 1);
        let other = parse(&[("proxy-ssl-server-name", "off")]).unwrap().unwrap();
        assert_ne!(UpstreamTls::from_secret(&other, None).unwrap().id, a.id);
    }

    #[test]
    fn a_client_key_that_is_not_the_certificates_is_refused_when_read() {
        let (a, b) = (
            rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap(),
            rcgen::generate_simple_self_signed(vec!["b.test".into()]).unwrap(),
        );
        let secret = |crt: &rcgen::CertifiedKey<rcgen::KeyPair>, key: &rcgen::CertifiedKey<rcgen::KeyPair>| Secret {
            key: ObjectKey { namespace: "ns".into(), name: "client".into() },
            type_: None,
            data: [
                ("tls.crt".to_string(), crt.cert.pem().into_bytes()),
                ("tls.key".to_string(), key.signing_key.serialize_pem().into_bytes()),
                ("ca.crt".to_string(), crt.cert.pem().into_bytes()),
            ]
            .into(),
        };
        let spec = parse(&[("proxy-ssl-secret", "client"), ("proxy-ssl-verify", "on")]).unwrap().unwrap();
        let t = UpstreamTls::from_secret(&spec, Some(&secret(&a, &a))).unwrap();
        assert!(t.client.is_some() && t.roots.len() == 1);
        let err = UpstreamTls::from_secret(&spec, Some(&secret(&a, &b))).unwrap_err();
        assert!(err.contains("does not belong"), "{err}");
    }
}
