//! The other objects an Ingress's annotations name (Secrets, Services, ConfigMaps): what the
//! providers ask to know whether an object's change concerns a route, and what a partial
//! build resolves with the Ingress's own backends.

use super::{ExternalAuth, PREFIXES};
use crate::model::{Ingress, ObjectKey};

/// The Secret an Ingress's `auth-secret` names (under either prefix), if it names one: the
/// provider asks, to know whether a Secret's change concerns any route.
pub fn auth_secret(ing: &Ingress) -> Option<ObjectKey> {
    let v = PREFIXES.iter().find_map(|p| ing.annotations.get(&format!("{p}auth-secret")))?;
    secret_key(ing, v.trim())
}

/// The Service (namespace, name) an Ingress's `auth-url` names, if it names one: a partial
/// build resolves it with the Ingress's own backends.
pub fn auth_service(ing: &Ingress) -> Option<(String, String)> {
    let url = PREFIXES.iter().find_map(|p| ing.annotations.get(&format!("{p}auth-url")))?;
    let spec =
        ExternalAuth::parse(String::new(), "", |k| (k == "auth-url").then_some(("auth-url", url.as_str()))).ok()??;
    spec.service().map(|(ns, name)| (ns.to_string(), name.to_string()))
}

/// The Service (namespace, name) an Ingress's `default-backend` names, if it names one.
pub fn default_backend(ing: &Ingress) -> Option<(String, String)> {
    let v = PREFIXES.iter().find_map(|p| ing.annotations.get(&format!("{p}default-backend")))?;
    Some((ing.key.namespace.clone(), v.trim().to_string()))
}

/// The ConfigMap an Ingress's `auth-proxy-set-headers` names, if it names one: the provider
/// asks, to know whether a ConfigMap's change concerns any route.
pub fn auth_config_map(ing: &Ingress) -> Option<ObjectKey> {
    let v = PREFIXES.iter().find_map(|p| ing.annotations.get(&format!("{p}auth-proxy-set-headers")))?;
    secret_key(ing, v.trim())
}

/// The ConfigMap an Ingress's `custom-headers` names, if it names one.
pub fn custom_headers_map(ing: &Ingress) -> Option<ObjectKey> {
    let v = PREFIXES.iter().find_map(|p| ing.annotations.get(&format!("{p}custom-headers")))?;
    secret_key(ing, v.trim())
}

/// The Secret an Ingress's `auth-tls-secret` names (its CA bundle), if it names one.
pub fn auth_tls_secret(ing: &Ingress) -> Option<ObjectKey> {
    let v = PREFIXES.iter().find_map(|p| ing.annotations.get(&format!("{p}auth-tls-secret")))?;
    secret_key(ing, v.trim())
}

/// The full key under which an Ingress sets `key` (the current prefix first), if it does.
pub fn full_key<'i>(ing: &'i Ingress, key: &str) -> Option<&'i str> {
    PREFIXES.iter().find_map(|p| ing.annotations.get_key_value(&format!("{p}{key}"))).map(|(k, _)| k.as_str())
}

/// `name` (in the Ingress's namespace) or `namespace/name`.
pub(super) fn secret_key(ing: &Ingress, v: &str) -> Option<ObjectKey> {
    match v.split_once('/') {
        None if !v.is_empty() => Some(ObjectKey { namespace: ing.key.namespace.clone(), name: v.to_string() }),
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Some(ObjectKey { namespace: ns.to_string(), name: name.to_string() })
        }
        _ => None,
    }
}

/// Whether an Ingress (not a canary) makes its hosts' paths regular expressions:
/// `use-regex: "true"`, or a `rewrite-target` (ingress-nginx's `enforceRegexModifier`).
pub fn wants_regex(ing: &Ingress) -> bool {
    let get = |k: &str| PREFIXES.iter().find_map(|p| ing.annotations.get(&format!("{p}{k}"))).map(|v| v.trim());
    let canary = get("canary").and_then(super::parse_bool) == Some(true);
    !canary
        && (get("use-regex").and_then(super::parse_bool) == Some(true)
            || get("rewrite-target").is_some_and(|v| !v.is_empty()))
}
