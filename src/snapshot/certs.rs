//! Certificates from `kubernetes.io/tls` Secrets, parsed with every snapshot and looked up by
//! SNI name (exact, then a wildcard for one label). Pure data: the TLS layer
//! picks from it per handshake.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::model::{Ingress, ObjectKey, Secret};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::IngressTls;

    /// A `kubernetes.io/tls` Secret with a fresh self-signed certificate for `names`.
    fn secret(name: &str, names: &[&str]) -> Secret {
        let made = rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let mut data = std::collections::BTreeMap::new();
        data.insert("tls.crt".to_string(), made.cert.pem().into_bytes());
        data.insert("tls.key".to_string(), made.signing_key.serialize_pem().into_bytes());
        let key = ObjectKey { namespace: "default".into(), name: name.into() };
        Secret { key, type_: Some("kubernetes.io/tls".into()), data }
    }

    fn ingress(name: &str, tls: &[(&[&str], &str)]) -> Ingress {
        Ingress {
            key: ObjectKey { namespace: "default".into(), name: name.into() },
            uid: None,
            creation_timestamp: None,
            annotations: Default::default(),
            class_name: None,
            default_backend: None,
            rules: Vec::new(),
            tls: tls
                .iter()
                .map(|(hosts, s)| IngressTls {
                    hosts: hosts.iter().map(|h| h.to_string()).collect(),
                    secret_name: Some(s.to_string()),
                })
                .collect(),
            origin: Default::default(),
        }
    }

    #[test]
    fn wildcards_cover_exactly_one_label_and_exact_names_win() {
        let (wild, exact) = (secret("wild", &["*.example.com"]), secret("exact", &["a.example.com"]));
        let ing = ingress("i", &[(&["*.Example.com"], "wild"), (&["a.example.com"], "exact")]);
        let store = build_certs(&[&ing], &[&wild, &exact], None, &CertStore::default());
        assert!(store.warnings.is_empty(), "{:?}", store.warnings);
        assert_eq!(store.len(), 2);
        let w = store.lookup("b.example.com").expect("one label under the wildcard");
        let e = store.lookup("a.example.com").expect("the exact name");
        assert!(!Arc::ptr_eq(w, e), "the exact certificate wins over the wildcard");
        assert!(Arc::ptr_eq(store.lookup("B.EXAMPLE.COM.").unwrap(), w), "case and a trailing dot do not matter");
        for miss in ["example.com", "a.b.example.com", "bexample.com", ""] {
            assert!(store.lookup(miss).is_none(), "{miss:?} is not covered");
        }
    }

    #[test]
    fn the_first_ingress_keeps_a_host_and_bad_secrets_keep_the_last_good_certificate() {
        let (one, two) = (secret("one", &["x.test"]), secret("two", &["x.test"]));
        let (old, new) = (ingress("old", &[(&["x.test"], "one")]), ingress("new", &[(&["x.test"], "two")]));
        let store = build_certs(&[&old, &new], &[&one, &two], None, &CertStore::default());
        let first = store.lookup("x.test").unwrap().clone();
        // `one` turns bad: its previous certificate stays, with a warning naming the Secret.
        let mut broken = one.clone();
        broken.data.insert("tls.key".into(), b"not a key".to_vec());
        let next = build_certs(&[&old], &[&broken], None, &store);
        assert!(Arc::ptr_eq(next.lookup("x.test").unwrap(), &first));
        assert!(
            next.warnings.iter().any(|w| w.contains("Secret default/one") && w.contains("previous")),
            "{:?}",
            next.warnings
        );
        // Never seen good: no certificate, and the default is used.
        let fresh = build_certs(&[&old], &[&broken], None, &CertStore::default());
        assert!(fresh.lookup("x.test").is_none());
        // A key that belongs to another certificate is refused by name.
        let mut mixed = one.clone();
        mixed.data.insert("tls.key".into(), two.data["tls.key"].clone());
        let err = parse_tls_secret(&mixed).err().unwrap();
        assert!(err.contains("does not belong"), "{err}");
    }
}
