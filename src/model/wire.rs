//! Wire shapes of the Kubernetes objects, as serde reads them from YAML or JSON. Every field is
//! optional here; `parse` decides what is required and says which field is wrong.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub creation_timestamp: Option<String>,
    pub uid: Option<String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    Str(String),
}

#[derive(Deserialize, Debug)]
pub struct Ingress {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default)]
    pub spec: IngressSpec,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    pub ingress_class_name: Option<String>,
    pub default_backend: Option<Backend>,
    /// The legacy (v1beta1) name of `defaultBackend`.
    pub backend: Option<Backend>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub tls: Vec<Tls>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    pub service: Option<BackendService>,
    pub service_name: Option<String>,
    pub service_port: Option<IntOrString>,
    pub resource: Option<serde_yaml_ng::Value>,
}

#[derive(Deserialize, Debug, Default)]
pub struct BackendService {
    pub name: Option<String>,
    pub port: Option<BackendPort>,
}

#[derive(Deserialize, Debug, Default)]
pub struct BackendPort {
    pub number: Option<i64>,
    pub name: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
pub struct Rule {
    pub host: Option<String>,
    pub http: Option<RuleHttp>,
}

#[derive(Deserialize, Debug, Default)]
pub struct RuleHttp {
    #[serde(default)]
    pub paths: Vec<Path>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct Path {
    pub path: Option<String>,
    pub path_type: Option<String>,
    pub backend: Option<Backend>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct Tls {
    #[serde(default)]
    pub hosts: Vec<String>,
    pub secret_name: Option<String>,
}

#[derive(Deserialize, Debug)]
pub struct IngressClass {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default)]
    pub spec: IngressClassSpec,
}

#[derive(Deserialize, Debug, Default)]
pub struct IngressClassSpec {
    pub controller: Option<String>,
}

#[derive(Deserialize, Debug)]
pub struct Service {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default)]
    pub spec: ServiceSpec,
    #[serde(default)]
    pub status: ServiceStatus,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    #[serde(default)]
    pub load_balancer: LoadBalancerStatus,
    #[serde(default)]
    pub conditions: Vec<StatusCondition>,
}

/// A `metav1.Condition` (the fields we read).
#[derive(Deserialize, Debug, Default)]
pub struct StatusCondition {
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Deserialize, Debug, Default)]
pub struct LoadBalancerStatus {
    #[serde(default)]
    pub ingress: Vec<LoadBalancerIngress>,
}

#[derive(Deserialize, Debug, Default)]
pub struct LoadBalancerIngress {
    pub ip: Option<String>,
    pub hostname: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub load_balancer_class: Option<String>,
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    pub external_name: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: Option<i64>,
    pub target_port: Option<IntOrString>,
    pub protocol: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSlice {
    #[serde(default)]
    pub metadata: Meta,
    pub address_type: Option<String>,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub ports: Vec<EndpointPort>,
}

#[derive(Deserialize, Debug, Default)]
pub struct Endpoint {
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub conditions: Conditions,
}

#[derive(Deserialize, Debug, Default)]
pub struct Conditions {
    pub ready: Option<bool>,
}

#[derive(Deserialize, Debug, Default)]
pub struct EndpointPort {
    pub name: Option<String>,
    pub port: Option<i64>,
}

#[derive(Deserialize, Debug)]
pub struct Endpoints {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default)]
    pub subsets: Vec<Subset>,
}

#[derive(Deserialize, Debug, Default)]
pub struct Subset {
    #[serde(default)]
    pub addresses: Vec<SubsetAddress>,
    #[serde(default)]
    pub ports: Vec<EndpointPort>,
}

#[derive(Deserialize, Debug, Default)]
pub struct SubsetAddress {
    pub ip: Option<String>,
}

#[derive(Deserialize, Debug)]
pub struct Secret {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Base64, as the API server returns it.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    /// Plain text, as manifests may write it; wins over `data` for the same key.
    #[serde(default, rename = "stringData")]
    pub string_data: BTreeMap<String, String>,
}

#[derive(Deserialize, Debug)]
pub struct ConfigMap {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}
