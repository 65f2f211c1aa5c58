//! The command line: subcommands and flags (clap), with the parsers of the flags' values.
//! `main.rs` reads them to start the threads.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::runtime::IoMode;
use crate::snapshot::access::UnsupportedPolicy;

#[derive(Parser)]
#[command(name = "ringress", version, about = "Kubernetes Ingress controller and edge proxy")]
pub struct Cli {
    /// Log filter, as RUST_LOG takes it (`debug`, `info,crate::provider=debug`); RUST_LOG
    /// wins when set. Default: `info,rustls=error`.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the proxy.
    Run(Box<RunArgs>),
    /// Validate manifests and print the routing table; exit non-zero on bad input, or when an
    /// Ingress is refused (a security annotation ringress does not enforce, or cannot parse).
    Check {
        #[arg(long)]
        manifests: PathBuf,
        #[arg(long, default_value = "ringress")]
        ingress_class: String,
        #[arg(long, value_enum, default_value = "refuse")]
        unsupported_security_annotations: SecurityPolicy,
    },
    /// Report, per Ingress and annotation and per ConfigMap key, what ringress would do with an
    /// ingress-nginx installation: supported, no-op, refused, invalid, unsupported, unknown.
    /// Reads a live cluster (read-only: list and get) or manifests. Exit 2 when something
    /// would be refused, 1 on bad input.
    Migrate {
        /// Read Ingresses and the ConfigMap from these YAML files (a file or a directory)
        /// instead of the cluster.
        #[arg(long, conflicts_with = "kubeconfig")]
        manifests: Option<PathBuf>,
        /// The cluster to read (default: KUBECONFIG, ~/.kube/config, in-cluster).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// The class ingress-nginx serves.
        #[arg(long, default_value = "nginx")]
        ingress_class: String,
        /// Also Ingresses that name no class (ingress-nginx's --watch-ingress-without-class, or
        /// its IngressClass being the default).
        #[arg(long)]
        include_classless: bool,
        /// ingress-nginx's ConfigMap, as namespace/name.
        #[arg(long, default_value = "ingress-nginx/ingress-nginx-controller")]
        configmap: String,
        #[arg(long, value_enum, default_value = "text")]
        output: MigrateOutput,
        /// Write the Ingresses for ringress's class into this directory (one file per
        /// Ingress, <namespace>/<name><suffix>.json), to apply beside the originals, and the
        /// ConfigMap's supported keys as ringress's ConfigMap (configmap.json).
        #[arg(long)]
        emit: Option<PathBuf>,
        /// The ConfigMap ringress reads (its --configmap), for --emit.
        #[arg(long, default_value = "ringress/ringress")]
        target_configmap: String,
        /// The class the emitted Ingresses name.
        #[arg(long, default_value = "ringress")]
        target_class: String,
        /// Added to each emitted Ingress's name, so it can live beside the original; empty to
        /// keep the names (to replace the originals at the end of a migration).
        #[arg(long, default_value = "-ringress")]
        name_suffix: String,
    },
    /// Prepare an edge node for the non-root DaemonSet (its init container runs this as root
    /// with CAP_CHOWN and CAP_FOWNER alone): create the access-log directory owned by the
    /// proxy's user, and install the seccomp profile that allows io_uring where the kubelet
    /// looks for Localhost profiles.
    PrepareNode {
        /// The access-log directory (the hostPath), made owned by --owner, mode 0750.
        #[arg(long)]
        log_dir: Option<PathBuf>,
        /// uid:gid the proxy runs as.
        #[arg(long, default_value = "65532:65532")]
        owner: String,
        /// The kubelet's seccomp directory (its root dir + /seccomp, mounted); the profile is
        /// written there as seccomp-ringress.json.
        #[arg(long)]
        seccomp_dir: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum MigrateOutput {
    Text,
    Json,
    /// The README's table of every ingress-nginx annotation and ConfigMap key by what
    /// ringress does with it (no input is read).
    NamesTable,
}

/// `--unsupported-security-annotations`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum SecurityPolicy {
    /// An Ingress with a security annotation ringress does not enforce is not served: its
    /// routes answer 503 naming the annotation.
    Refuse,
    /// Served without that protection, with a warning.
    Warn,
}

impl From<SecurityPolicy> for UnsupportedPolicy {
    fn from(p: SecurityPolicy) -> Self {
        match p {
            SecurityPolicy::Refuse => UnsupportedPolicy::Refuse,
            SecurityPolicy::Warn => UnsupportedPolicy::Warn,
        }
    }
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// A YAML file or a directory of them, watched for changes. Without it, ringress runs in
    /// Kubernetes mode and watches the API server.
    #[arg(long, conflicts_with = "kubeconfig")]
    pub manifests: Option<PathBuf>,
    /// Kubernetes mode: the kubeconfig to use (default: KUBECONFIG, ~/.kube/config, then the
    /// in-cluster service account).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubernetes mode: watch Ingresses, Services, EndpointSlices and Secrets of this
    /// namespace only (default: all namespaces).
    #[arg(long)]
    pub namespace: Option<String>,
    /// The ConfigMap with global settings (ingress-nginx keys), as namespace/name: watched in
    /// Kubernetes mode, read from the manifests with them.
    #[arg(long, default_value = "ringress/ringress", env = "RINGRESS_CONFIGMAP")]
    pub configmap: String,
    /// Kubernetes mode: at most one routing-table publish per this many milliseconds (an
    /// isolated change is published at once; a burst of changes is coalesced).
    #[arg(long, default_value_t = 50)]
    pub sync_debounce_ms: u64,
    /// Kubernetes mode: the address written to status.loadBalancer of the Ingresses we serve
    /// (an IP or a host name; the DaemonSet passes the node's IP). Unset: status is not written.
    #[arg(long, env = "RINGRESS_PUBLISH_ADDRESS")]
    pub publish_address: Option<String>,
    /// Kubernetes mode: the Lease that elects the one replica writing status, as namespace/name.
    #[arg(long, default_value = "ringress/ringress-leader", env = "RINGRESS_ELECTION_LEASE")]
    pub election_lease: String,
    /// Kubernetes mode: this replica's identity in the Lease (default: POD_NAME, else
    /// hostname-pid).
    #[arg(long, env = "POD_NAME")]
    pub election_identity: Option<String>,
    /// Kubernetes mode: seconds a leader's Lease lasts without renewal.
    #[arg(long, default_value_t = 15)]
    pub election_lease_seconds: u64,
    /// Plain HTTP listener.
    #[arg(long, default_value = "0.0.0.0:80")]
    pub http: SocketAddr,
    /// TLS listener (HTTPS); certificates from the Ingresses' spec.tls Secrets, by SNI.
    #[arg(long, default_value = "0.0.0.0:443")]
    pub https: SocketAddr,
    /// The Secret (namespace/name, kubernetes.io/tls) served to clients whose SNI name no
    /// Ingress covers, or that send none. Default: a self-signed certificate made at start.
    #[arg(long)]
    pub default_ssl_certificate: Option<String>,
    /// The Service (namespace/name, its first port) that answers requests no Ingress rule
    /// matches, when no Ingress sets spec.defaultBackend. Default: the proxy's own 404.
    #[arg(long)]
    pub default_backend_service: Option<String>,
    /// Honour the `ssl-passthrough` annotation: the HTTPS port reads each ClientHello's SNI and
    /// passes connections for those hosts to their backend untouched (as ingress-nginx's flag).
    #[arg(long)]
    pub enable_ssl_passthrough: bool,
    /// Kubernetes mode: also serve Gateway API routes (GatewayClasses whose controllerName is
    /// `ringress.dev/gateway-controller`, their Gateways, HTTPRoutes, GRPCRoutes and
    /// ReferenceGrants). The Gateway API CRDs (Standard channel) must be installed.
    #[arg(long)]
    pub gateway_api: bool,
    /// Admin listener: /healthz, /readyz, /debug/routes, /metrics.
    #[arg(long, default_value = "127.0.0.1:10254")]
    pub admin: SocketAddr,
    /// A second listener answering `/metrics` alone, for a scraper off the node (the admin
    /// listener stays on loopback for the kubelet's probes). Unset: none.
    #[arg(long)]
    pub metrics: Option<SocketAddr>,
    /// Address blocks (comma-separated CIDRs) allowed to connect to --metrics; every other
    /// connection is closed at accept.
    #[arg(long, default_value = "127.0.0.0/8,::1/128", value_parser = parse_allow)]
    pub metrics_allow: AllowList,
    /// A file whose bytes key the session-affinity cookies (`affinity: cookie`). Mount the
    /// same Secret on every node so that cookies stay valid across nodes and restarts;
    /// unset, the key is random per process (cookies from before a restart are re-assigned).
    #[arg(long)]
    pub affinity_key_file: Option<PathBuf>,
    /// DNS servers (ADDR or ADDR:PORT, comma-separated or repeated) for ExternalName
    /// Services, instead of /etc/resolv.conf's (whose search list and ndots still apply).
    #[arg(long, value_delimiter = ',', value_parser = parse_dns_server)]
    pub dns_server: Vec<SocketAddr>,
    /// Refuse ExternalName Services: their backends answer 503 (as ingress-nginx's flag).
    #[arg(long)]
    pub disable_svc_external_name: bool,
    /// Let ExternalName Services lead to this node's loopback, link-local and other
    /// non-unicast addresses, which are refused by default (for tests and single-node setups).
    #[arg(long)]
    pub external_name_loopback: bool,
    /// Worker threads; default one per CPU of the process's affinity mask.
    #[arg(long)]
    pub workers: Option<usize>,
    #[arg(long, value_enum, default_value = "auto")]
    pub io: IoMode,
    /// The ingress class served (spec.ingressClassName or kubernetes.io/ingress.class).
    #[arg(long, default_value = "ringress")]
    pub ingress_class: String,
    /// Also serve Ingresses that name no class.
    #[arg(long)]
    pub watch_ingress_without_class: bool,
    /// What to do with an Ingress carrying a security annotation ringress does not enforce
    /// (auth-*, client certificates, ModSecurity, snippets): refuse it (its routes answer 503
    /// naming the annotation), or serve it without that protection, with a warning.
    #[arg(long, value_enum, default_value = "refuse", env = "RINGRESS_UNSUPPORTED_SECURITY_ANNOTATIONS")]
    pub unsupported_security_annotations: SecurityPolicy,
    /// Also start the built-in demo upstream on this address (for the bundled example).
    #[arg(long)]
    pub demo_upstream: Option<SocketAddr>,
    /// Largest request header section, in bytes (431 above).
    #[arg(long, default_value_t = 32 * 1024)]
    pub max_header_bytes: usize,
    /// Most request header fields (431 above).
    #[arg(long, default_value_t = 100)]
    pub max_headers: usize,
    /// Largest request body, e.g. 1m, 512k, 1g; 0 for no limit (413 above).
    #[arg(long, default_value = "1g", value_parser = parse_size)]
    pub max_body_size: u64,
    /// Seconds a client may take to send a request head (408 after).
    #[arg(long, default_value_t = 10.0)]
    pub header_timeout: f64,
    /// Seconds an idle keep-alive connection, or a stalled body, is kept.
    #[arg(long, default_value_t = 60.0)]
    pub idle_timeout: f64,
    /// Seconds to connect to an endpoint before trying the next.
    #[arg(long, default_value_t = 5.0)]
    pub connect_timeout: f64,
    /// Seconds to wait for upstream response bytes (504 after).
    #[arg(long, default_value_t = 60.0)]
    pub upstream_timeout: f64,
    /// Seconds an idle upstream keep-alive connection stays pooled.
    #[arg(long, default_value_t = 30.0)]
    pub upstream_keepalive_timeout: f64,
    /// Concurrent streams per HTTP/2 connection; more are refused (REFUSED_STREAM).
    #[arg(long, default_value_t = 128)]
    pub h2_max_concurrent_streams: u32,
    /// On SIGTERM or SIGINT: stop accepting, close idle connections, let requests in progress
    /// finish (HTTP/1.1 answered `Connection: close`, HTTP/2 sent GOAWAY) for at most this
    /// many seconds, then exit 0. A second signal exits at once.
    #[arg(long, default_value_t = 30.0)]
    pub drain_timeout: f64,
    /// Open client connections per worker; further ones are closed at once.
    #[arg(long, default_value_t = 16384)]
    pub max_connections: usize,
    /// How often the manifests are checked for changes, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub poll_ms: u64,
    /// The access log file (rotated files go beside it). Unset: no access log unless the
    /// ConfigMap's `access-log-path` names one. Rotation, format and budget: ConfigMap keys.
    #[arg(long, env = "RINGRESS_ACCESS_LOG")]
    pub access_log: Option<PathBuf>,
    /// The access log's format: text (the `log-format-upstream` template) or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub access_log_format: String,
    /// L4: also serve LoadBalancer Services that name no loadBalancerClass.
    #[arg(long)]
    pub lb_default_class: bool,
    /// L4: the address forwarded Service ports listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub lb_address: std::net::IpAddr,
    /// L4: an ingress-nginx style tcp-services ConfigMap (namespace/name).
    #[arg(long)]
    pub tcp_services_configmap: Option<String>,
    /// Every connection (HTTP, HTTPS and forwarded L4 ports) starts with a PROXY protocol
    /// header (v1 or v2) from a load balancer in front.
    #[arg(long)]
    pub accept_proxy_protocol: bool,
    /// L4: seconds a forwarded connection may stay silent both ways.
    #[arg(long, default_value_t = 3600.0)]
    pub l4_idle_timeout: f64,
}

/// `--metrics-allow`.
#[derive(Clone, Debug)]
pub struct AllowList(pub Vec<crate::snapshot::Cidr>);

pub fn parse_allow(s: &str) -> Result<AllowList, String> {
    let list = crate::snapshot::parse_cidrs(s)
        .ok_or_else(|| format!("{s:?} is not a list of CIDRs (e.g. 10.244.0.0/16,127.0.0.1)"))?;
    Ok(AllowList(list))
}

/// `ADDR` (port 53) or `ADDR:PORT` (`[V6]:PORT`).
pub fn parse_dns_server(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("{s:?} is not an address (10.96.0.10, 10.96.0.10:53, [fd00::a]:53)"))
}

pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.chars().last() {
        Some('k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('m') => (&s[..s.len() - 1], 1 << 20),
        Some('g') => (&s[..s.len() - 1], 1 << 30),
        _ => (&s[..], 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size (e.g. 512k, 16m, 1g, 0)"))?;
    n.checked_mul(mult).ok_or_else(|| format!("{s:?} is too large"))
}
