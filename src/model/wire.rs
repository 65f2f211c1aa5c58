//! Wire shapes of the Kubernetes objects, as serde reads them from YAML or JSON. Every field is
//! optional here; `parse` decides what is required and says which field is wrong.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct Meta {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub creation_timestamp: Option<String>,
    pub uid: Option<String>,
    pub annotations: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    Str(String),
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct Ingress {
    pub metadata: Meta,
    pub spec: IngressSpec,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct IngressSpec {
    pub ingress_class_name: Option<String>,
    pub default_backend: Option<Backend>,
    /// The legacy (v1beta1) name of `defaultBackend`.
    pub backend: Option<Backend>,
    pub rules: Vec<Rule>,
    pub tls: Vec<Tls>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct Backend {
    pub service: Option<BackendService>,
    pub service_name: Option<String>,
    pub service_port: Option<IntOrString>,
    pub resource: Option<serde_yaml_ng::Value>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct BackendService {
    pub name: Option<String>,
    pub port: Option<BackendPort>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct BackendPort {
    pub number: Option<i64>,
    pub name: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct Rule {
    pub host: Option<String>,
    pub http: Option<RuleHttp>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct RuleHttp {
    pub paths: Vec<Path>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct Path {
    pub path: Option<String>,
    pub path_type: Option<String>,
    pub backend: Option<Backend>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct Tls {
    pub hosts: Vec<String>,
    pub secret_name: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct IngressClass {
    pub metadata: Meta,
    pub spec: IngressClassSpec,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct IngressClassSpec {
    pub controller: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct Service {
    pub metadata: Meta,
    pub spec: ServiceSpec,
    pub status: ServiceStatus,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceStatus {
    pub load_balancer: LoadBalancerStatus,
    pub conditions: Vec<StatusCondition>,
}

/// A `metav1.Condition` (the fields we read).
#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct StatusCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub message: String,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct LoadBalancerStatus {
    pub ingress: Vec<LoadBalancerIngress>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct LoadBalancerIngress {
    pub ip: Option<String>,
    pub hostname: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceSpec {
    pub ports: Vec<ServicePort>,
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub load_balancer_class: Option<String>,
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    pub external_name: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: Option<i64>,
    pub target_port: Option<IntOrString>,
    pub protocol: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct EndpointSlice {
    pub metadata: Meta,
    pub address_type: Option<String>,
    pub endpoints: Vec<Endpoint>,
    pub ports: Vec<EndpointPort>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct Endpoint {
    pub addresses: Vec<String>,
    pub conditions: Conditions,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct Conditions {
    pub ready: Option<bool>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct EndpointPort {
    pub name: Option<String>,
    pub port: Option<i64>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct Endpoints {
    pub metadata: Meta,
    pub subsets: Vec<Subset>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct Subset {
    pub addresses: Vec<SubsetAddress>,
    pub ports: Vec<EndpointPort>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct SubsetAddress {
    pub ip: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct Secret {
    pub metadata: Meta,
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Base64, as the API server returns it.
    pub data: BTreeMap<String, String>,
    /// Plain text, as manifests may write it; wins over `data` for the same key.
    #[serde(rename = "stringData")]
    pub string_data: BTreeMap<String, String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct ConfigMap {
    pub metadata: Meta,
    pub data: BTreeMap<String, String>,
}
