//! The other objects an Ingress's annotations name (Secrets, Services, ConfigMaps): what the
//! providers ask to know whether an object's change concerns a route, and what a partial
//! build resolves with the Ingress's own backends.

use super::{ExternalAuth, PREFIXES};
use crate::model::{Ingress, ObjectKey};
use crate::snapshot::auth::{BasicSpec, SecretType};

/// The value an Ingress gives annotation `key` (under either prefix, the current one first),
/// trimmed.
pub fn value<'i>(ing: &'i Ingress, key: &str) -> Option<&'i str> {
    PREFIXES.iter().find_map(|p| ing.annotations.get(&format!("{p}{key}"))).map(|v| v.trim())
}

/// The object (`name` in the Ingress's namespace, or `namespace/name`) that annotation `key`
/// names, if it names one.
fn named(ing: &Ingress, key: &str) -> Option<ObjectKey> {
    secret_key(ing, value(ing, key)?)
}

/// The Secret an Ingress's `auth-secret` names, if it names one: the provider asks, to know
/// whether a Secret's change concerns any route.
pub fn auth_secret(ing: &Ingress) -> Option<ObjectKey> {
    named(ing, "auth-secret")
}

/// The Service (namespace, name) an Ingress's `auth-url` names, if it names one: a partial
/// build resolves it with the Ingress's own backends.
pub fn auth_service(ing: &Ingress) -> Option<(String, String)> {
    let url = value(ing, "auth-url")?;
    let spec = ExternalAuth::parse(String::new(), "", |k| (k == "auth-url").then_some(("auth-url", url))).ok()??;
    spec.service().map(|(ns, name)| (ns.to_string(), name.to_string()))
}

/// The Service (namespace, name) an Ingress's `default-backend` names, if it names one.
pub fn default_backend(ing: &Ingress) -> Option<(String, String)> {
    Some((ing.key.namespace.clone(), value(ing, "default-backend")?.to_string()))
}

/// The ConfigMap an Ingress's `auth-proxy-set-headers` names, if it names one: the provider
/// asks, to know whether a ConfigMap's change concerns any route.
pub fn auth_config_map(ing: &Ingress) -> Option<ObjectKey> {
    named(ing, "auth-proxy-set-headers")
}

/// The ConfigMap an Ingress's `custom-headers` names, if it names one.
pub fn custom_headers_map(ing: &Ingress) -> Option<ObjectKey> {
    named(ing, "custom-headers")
}

/// The Secret an Ingress's `auth-tls-secret` names (its CA bundle), if it names one.
pub fn auth_tls_secret(ing: &Ingress) -> Option<ObjectKey> {
    named(ing, "auth-tls-secret")
}

/// The Secret an Ingress's `proxy-ssl-secret` names (upstream CA and client certificate).
pub fn proxy_ssl_secret(ing: &Ingress) -> Option<ObjectKey> {
    named(ing, "proxy-ssl-secret")
}

/// The full key under which an Ingress sets `key` (the current prefix first), if it does.
pub fn full_key<'i>(ing: &'i Ingress, key: &str) -> Option<&'i str> {
    PREFIXES.iter().find_map(|p| ing.annotations.get_key_value(&format!("{p}{key}"))).map(|(k, _)| k.as_str())
}

/// `name` (in the Ingress's namespace) or `namespace/name`.
pub(super) fn secret_key(ing: &Ingress, v: &str) -> Option<ObjectKey> {
    ObjectKey::named_in(&ing.key.namespace, v)
}

/// Whether an Ingress (not a canary) makes its hosts' paths regular expressions:
/// `use-regex: "true"`, or a `rewrite-target` (ingress-nginx's `enforceRegexModifier`).
pub fn wants_regex(ing: &Ingress) -> bool {
    let get = |k: &str| value(ing, k);
    let canary = get("canary").and_then(super::parse_bool) == Some(true);
    !canary
        && (get("use-regex").and_then(super::parse_bool) == Some(true)
            || get("rewrite-target").is_some_and(|v| !v.is_empty()))
}

/// Basic authentication from `auth-type`, `auth-secret` (`name` in the Ingress's namespace,
/// or `namespace/name`), `auth-secret-type` and `auth-realm` (each as (annotation, value)).
/// Err: what makes it unenforceable (the routes are refused).
pub(super) fn basic_spec(
    ing: &Ingress,
    [kind, secret, secret_type, realm]: [Option<(&str, &str)>; 4],
) -> Result<Option<BasicSpec>, String> {
    let Some((kind_key, kind)) = kind else { return Ok(None) };
    match kind.to_ascii_lowercase().as_str() {
        "basic" => {}
        "digest" => return Err(format!("annotation {kind_key}: digest authentication is not enforced by ringress")),
        _ => return Err(format!("annotation {kind_key}: {kind:?} is not basic or digest")),
    }
    let Some((secret_annotation, secret)) = secret else {
        return Err(format!("annotation {kind_key} asks for basic authentication, but no auth-secret names its users"));
    };
    let Some(secret) = secret_key(ing, secret) else {
        return Err(format!("annotation {secret_annotation}: {secret:?} is not a Secret name or namespace/name"));
    };
    let secret_type = match secret_type {
        None | Some((_, "auth-file")) => SecretType::File,
        Some((_, "auth-map")) => SecretType::Map,
        Some((k, v)) => return Err(format!("annotation {k}: {v:?} is not auth-file or auth-map")),
    };
    Ok(Some(BasicSpec { secret, secret_type, realm: realm.map_or("", |(_, v)| v).to_string() }))
}
