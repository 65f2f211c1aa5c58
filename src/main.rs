//! The command line: parse, start the control thread, the admin thread and the workers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;

use ringress::cli::{Cli, Command, MigrateOutput, RunArgs};
use ringress::proxy::WorkerSpec;
use ringress::runtime::{self, Backend};
use ringress::snapshot::access::UnsupportedPolicy;
use ringress::snapshot::{BuildOptions, Settings};
use ringress::{admin, demo, provider, proxy, Published};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The image gives the binary `cap_net_bind_service` as a permitted-only file capability
/// (`=p`, not `=ep`): exec never fails for want of it (a file capability marked effective
/// makes exec fail with EPERM when the container's bounding set lacks it), and here, as a
/// capability-aware program, ringress makes it effective when it was granted, so a non-root
/// process can bind ports 80 and 443. Without it, binding a low port fails with the flag named.
fn raise_bind_capability() {
    const VERSION_3: u32 = 0x2008_0522;
    const NET_BIND_SERVICE: u32 = 1 << 10;
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header { version: VERSION_3, pid: 0 };
    let mut data = [Data::default(); 2];
    // SAFETY: the header and the two data words of version 3 are what capget/capset read and
    // write; both outlive the calls.
    unsafe {
        if libc::syscall(libc::SYS_capget, &mut header as *mut Header, data.as_mut_ptr()) != 0 {
            return;
        }
        if data[0].permitted & NET_BIND_SERVICE == 0 || data[0].effective & NET_BIND_SERVICE != 0 {
            return;
        }
        data[0].effective |= NET_BIND_SERVICE;
        if libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "could not make CAP_NET_BIND_SERVICE effective");
        }
    }
}

fn secs(v: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v).with_context(|| format!("--{flag}: {v} is not a duration in seconds"))
}

fn main() -> anyhow::Result<()> {
    // kube's rustls client needs a process-wide crypto provider; with more than one compiled
    // in, rustls will not choose, so choose here (ring, as kube's feature selects).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // rustls logs per connection (a warning for every client that sends an IP address as
    // SNI, as wrk and curl do for https://127.0.0.1/): by default only its errors, so a
    // client cannot make every handshake write to stderr. RUST_LOG overrides.
    let cli = Cli::parse();
    let filter = match (tracing_subscriber::EnvFilter::try_from_default_env(), &cli.log_level) {
        (Ok(f), _) => f,
        (Err(_), Some(level)) => tracing_subscriber::EnvFilter::try_new(level)
            .with_context(|| format!("--log-level {level:?}: not a log filter (e.g. debug, info,ringress=debug)"))?,
        (Err(_), None) => "info,rustls=error".into(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Check { manifests, ingress_class, unsupported_security_annotations } => {
            check(&manifests, ingress_class, unsupported_security_annotations.into())
        }
        Command::Run(args) => run(*args),
        Command::PrepareNode { log_dir, owner, seccomp_dir } => prepare_node(log_dir, &owner, seccomp_dir),
        Command::Migrate {
            manifests,
            kubeconfig,
            ingress_class,
            include_classless,
            configmap,
            output,
            emit,
            target_class,
            target_configmap,
            name_suffix,
        } => {
            use ringress::migrate;
            if let MigrateOutput::NamesTable = output {
                println!("{}", migrate::names::table());
                return Ok(());
            }
            let cm = object_key("configmap", &configmap)?;
            let (input, source) = match &manifests {
                Some(path) => (migrate::Input::from_manifests(path, &cm)?, path.display().to_string()),
                None => (migrate::Input::from_cluster(kubeconfig.as_deref(), &cm)?, "the cluster".to_string()),
            };
            let report = migrate::report(&input, source, &ingress_class, include_classless);
            match output {
                MigrateOutput::Text => print!("{report}"),
                MigrateOutput::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                MigrateOutput::NamesTable => unreachable!("printed above"),
            }
            if let Some(dir) = emit {
                let target = object_key("target-configmap", &target_configmap)?;
                let files = migrate::emit(
                    &input,
                    &report,
                    &migrate::Emit {
                        dir: &dir,
                        class: &ingress_class,
                        classless: include_classless,
                        target_class: &target_class,
                        suffix: &name_suffix,
                        config_map: &target,
                    },
                )?;
                eprintln!("wrote {} file(s) for class {target_class:?} under {}", files.len(), dir.display());
            }
            if report.refuses() {
                std::process::exit(2);
            }
            Ok(())
        }
    }
}

/// deploy/seccomp-ringress.json: the container runtimes' usual deny-list with io_uring allowed.
const SECCOMP_PROFILE: &str = include_str!("../deploy/seccomp-ringress.json");

fn prepare_node(log_dir: Option<PathBuf>, owner: &str, seccomp_dir: Option<PathBuf>) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let (uid, gid) = owner
        .split_once(':')
        .and_then(|(u, g)| Some((u.parse::<u32>().ok()?, g.parse::<u32>().ok()?)))
        .with_context(|| format!("--owner {owner:?}: expected uid:gid, e.g. 65532:65532"))?;
    if let Some(dir) = log_dir {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // The mode first: once the directory is the proxy's, changing it needs CAP_FOWNER.
        let mode = std::fs::metadata(&dir)?.permissions().mode() & 0o7777;
        if mode != 0o750 {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750))
                .with_context(|| format!("chmod 0750 {}", dir.display()))?;
        }
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
            .with_context(|| format!("chown {uid}:{gid} {} (needs CAP_CHOWN)", dir.display()))?;
        println!("{}: owned by {uid}:{gid}, mode 0750", dir.display());
    }
    if let Some(dir) = seccomp_dir {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("seccomp-ringress.json");
        if std::fs::read_to_string(&path).ok().as_deref() == Some(SECCOMP_PROFILE) {
            println!("{}: up to date", path.display());
        } else {
            // Whole or not at all: the kubelet may read it while a container starts.
            let tmp = dir.join(".seccomp-ringress.json.tmp");
            std::fs::write(&tmp, SECCOMP_PROFILE).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
            std::fs::rename(&tmp, &path).with_context(|| format!("installing {}", path.display()))?;
            println!("{}: installed", path.display());
        }
    }
    Ok(())
}

fn check(path: &std::path::Path, class: String, policy: UnsupportedPolicy) -> anyhow::Result<()> {
    let objects = provider::file::load(path)?;
    let opts = BuildOptions { class, unsupported_security: policy, ..Default::default() };
    let snap = ringress::snapshot::build(&objects, &opts);
    print!("{}", snap.describe());
    for w in snap.warnings() {
        println!("warning: {w}");
    }
    // Refused Ingresses (fail closed): each named once, with why.
    let mut refused: Vec<String> = snap
        .table
        .routes()
        .into_iter()
        .chain(snap.table.default_route())
        .filter_map(|r| {
            let global = snap.edge.refused.as_deref().filter(|_| r.options.global_auth);
            Some(format!("Ingress {} is not served: {}", r.ingress, r.options.access.refused.as_deref().or(global)?))
        })
        .collect();
    refused.sort();
    refused.dedup();
    for r in &refused {
        println!("error: {r}");
    }
    if !refused.is_empty() {
        anyhow::bail!("{} Ingress(es) refused: they ask for protection ringress does not enforce", refused.len());
    }
    Ok(())
}

fn object_key(flag: &str, v: &str) -> anyhow::Result<ringress::model::ObjectKey> {
    match v.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(ringress::model::ObjectKey { namespace: ns.to_string(), name: name.to_string() })
        }
        _ => bail!("--{flag} {v:?}: expected namespace/name"),
    }
}

fn kube_options(a: &RunArgs) -> anyhow::Result<provider::kube::KubeOptions> {
    let status = match &a.publish_address {
        Some(address) => {
            let identity = a.election_identity.clone().unwrap_or_else(|| {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
                format!("{}-{}", host.trim(), std::process::id())
            });
            Some(provider::kube::StatusOptions {
                address: address.clone(),
                lease: object_key("election-lease", &a.election_lease)?,
                identity,
                lease_duration: Duration::from_secs(a.election_lease_seconds.max(3)),
            })
        }
        None => {
            tracing::info!("no --publish-address: Ingress status is not written");
            None
        }
    };
    Ok(provider::kube::KubeOptions {
        kubeconfig: a.kubeconfig.clone(),
        namespace: a.namespace.clone(),
        config_map: object_key("configmap", &a.configmap)?,
        debounce: Duration::from_millis(a.sync_debounce_ms),
        status,
        gateway_api: a.gateway_api,
    })
}

fn run(a: RunArgs) -> anyhow::Result<()> {
    // Before any thread starts, so every thread inherits the mask: SIGTERM and SIGINT (the
    // drain below) and SIGUSR1 (reopen the access log) are taken only by the main thread's
    // sigwait.
    let signals = runtime::Signals::block();
    raise_bind_capability();
    if let Some(path) = &a.affinity_key_file {
        let secret = std::fs::read(path).with_context(|| format!("reading --affinity-key-file {}", path.display()))?;
        anyhow::ensure!(secret.len() >= 16, "--affinity-key-file {}: at least 16 bytes of key needed", path.display());
        ringress::proxy::affinity::set_key(&secret);
    }
    let settings = Settings {
        max_header_bytes: a.max_header_bytes,
        max_headers: a.max_headers,
        max_body_bytes: a.max_body_size,
        header_timeout: secs(a.header_timeout, "header-timeout")?,
        idle_timeout: secs(a.idle_timeout, "idle-timeout")?,
        connect_timeout: secs(a.connect_timeout, "connect-timeout")?,
        upstream_timeout: secs(a.upstream_timeout, "upstream-timeout")?,
        upstream_send_timeout: secs(a.upstream_timeout, "upstream-timeout")?,
        upstream_idle_timeout: secs(a.upstream_keepalive_timeout, "upstream-keepalive-timeout")?,
        max_connections_per_worker: a.max_connections,
        h2_max_concurrent_streams: a.h2_max_concurrent_streams.max(1),
        drain_timeout: secs(a.drain_timeout, "drain-timeout")?,
        accept_proxy: a.accept_proxy_protocol,
        ..Settings::default()
    };
    let default_certificate =
        a.default_ssl_certificate.as_deref().map(|v| object_key("default-ssl-certificate", v)).transpose()?;
    let mut opts = BuildOptions {
        class: a.ingress_class.clone(),
        watch_without_class: a.watch_ingress_without_class,
        unsupported_security: a.unsupported_security_annotations.into(),
        settings,
        default_certificate,
        config_map: object_key("configmap", &a.configmap)?,
        default_backend_service: a
            .default_backend_service
            .as_deref()
            .map(|v| object_key("default-backend-service", v))
            .transpose()?,
        ssl_passthrough: a.enable_ssl_passthrough,
        l4: ringress::snapshot::l4::L4Options {
            default_class: a.lb_default_class,
            tcp_services: a
                .tcp_services_configmap
                .as_deref()
                .map(|v| object_key("tcp-services-configmap", v))
                .transpose()?,
            reserved: Vec::new(),
            accept_proxy: a.accept_proxy_protocol,
            idle_timeout: secs(a.l4_idle_timeout, "l4-idle-timeout")?,
            address: a.lb_address,
        },
        log: ringress::access_log::Config {
            path: a.access_log.clone(),
            format: if a.access_log_format == "json" {
                ringress::access_log::Format::Json
            } else {
                ringress::access_log::Format::Text
            },
            ..Default::default()
        },
    };

    let backend = runtime::choose_backend(a.io).map_err(anyhow::Error::msg)?;
    let cpus = runtime::allowed_cpus();
    let workers = a.workers.unwrap_or(cpus.len()).max(1);

    if let Some(addr) = a.demo_upstream {
        let l = std::net::TcpListener::bind(addr).with_context(|| format!("--demo-upstream {addr}"))?;
        tracing::info!(addr = %l.local_addr()?, "demo upstream listening");
        std::thread::Builder::new().name("demo-upstream".into()).spawn(move || demo::serve(l))?;
    }

    let listeners = runtime::bind_reuseport(a.http, workers, opts.settings.header_timeout)
        .with_context(|| format!("--http {}", a.http))?;
    let http_addr = listeners[0].local_addr()?;
    let tls_listeners = runtime::bind_reuseport(a.https, workers, opts.settings.header_timeout)
        .with_context(|| format!("--https {}", a.https))?;
    let https_addr = tls_listeners[0].local_addr()?;
    // Redirects to HTTPS name the port when it is not the default.
    opts.settings.https_port = https_addr.port();
    // Ports of our own that a Service can never take.
    opts.l4.reserved = vec![http_addr.port(), https_addr.port(), a.admin.port()];
    opts.l4.reserved.extend(a.metrics.map(|m| m.port()));

    // The process-lifetime shared state: leaked once, read by every thread.
    let published: &'static Published = Box::leak(Box::default());
    let l4_open: &'static proxy::l4::OpenConnections = Box::leak(Box::default());
    // ExternalName Services' names are looked up on a thread of their own.
    let dns = provider::dns::Resolver::start(
        provider::dns::Conf::system(&a.dns_server),
        a.disable_svc_external_name,
        a.external_name_loopback,
        &published.control,
    );
    // The control thread: the file provider (first load here, so bad files fail the start),
    // or the kube provider (its client configured before we go on, so a missing kubeconfig
    // fails the start; the API server itself may still be unreachable, which is retried).
    match a.manifests.clone() {
        Some(manifests) => {
            let loaded = provider::file::fingerprint(&manifests);
            provider::file::reload(&manifests, &opts, published, &dns).context("loading --manifests")?;
            let interval = Duration::from_millis(a.poll_ms.max(10));
            let opts = opts.clone();
            std::thread::Builder::new()
                .name("control".into())
                .spawn(move || provider::file::watch(manifests, opts, published, interval, loaded, dns))?;
        }
        None => {
            // ConfigMaps are watched in one namespace (and the Role allows no other): a
            // tcp-services ConfigMap elsewhere would silently never be seen.
            if let Some(t) = &opts.l4.tcp_services {
                if t.namespace != opts.config_map.namespace {
                    anyhow::bail!(
                        "--tcp-services-configmap {t}: must be in the namespace of --configmap ({}): ringress watches ConfigMaps only there",
                        opts.config_map.namespace
                    );
                }
            }
            let kube = kube_options(&a)?;
            let (tx, rx) = std::sync::mpsc::channel();
            let opts = opts.clone();
            std::thread::Builder::new()
                .name("control".into())
                .spawn(move || provider::kube::run(kube, opts, published, tx, dns))?;
            rx.recv().context("the control thread ended before connecting")??;
        }
    }

    let tls = ringress::tls::server_config(published, &[b"h2", b"http/1.1"]).map_err(anyhow::Error::msg)?;
    let admin_listener = std::net::TcpListener::bind(a.admin).with_context(|| format!("--admin {}", a.admin))?;
    let admin_addr = admin_listener.local_addr()?;
    let metrics_listener = match a.metrics {
        Some(addr) => Some(admin::MetricsListener {
            listener: std::net::TcpListener::bind(addr).with_context(|| format!("--metrics {addr}"))?,
            allow: a.metrics_allow.0.clone(),
        }),
        None => None,
    };
    let metrics_addr = metrics_listener.as_ref().map(|m| m.listener.local_addr()).transpose()?;

    let logger = ringress::access_log::Logger::start(published).context("starting the access-log thread")?;
    let mut stats = Vec::with_capacity(workers);
    let mut handles = Vec::with_capacity(workers);
    for (index, (listener, tls_listener)) in listeners.into_iter().zip(tls_listeners).enumerate() {
        let s = Arc::new(ringress::metrics::worker::WorkerStats::default());
        stats.push(s.clone());
        let cpu =
            if a.workers.is_none() || workers <= cpus.len() { cpus.get(index % cpus.len()).copied() } else { None };
        let log = logger.worker(index);
        let spec = WorkerSpec {
            index,
            workers,
            cpu,
            listener,
            tls_listener,
            tls: tls.clone(),
            published,
            l4_open,
            backend,
            stats: s,
            log,
        };
        handles.push(std::thread::Builder::new().name(format!("worker-{index}")).spawn(move || worker_main(spec))?);
    }

    let registry = ringress::metrics::registry(published, stats.clone(), backend.name(), logger.stats());
    let admin = admin::Admin { published, registry };
    std::thread::Builder::new().name("admin".into()).spawn(move || {
        if let Err(e) = admin.serve(admin_listener, metrics_listener) {
            tracing::error!(error = %e, "the admin listener stopped");
        }
    })?;

    let metrics = metrics_addr.map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(io = backend.name(), workers, http = %http_addr, https = %https_addr, admin = %admin_addr, metrics, "ringress ready");
    drop(handles); // workers run until the process exits
    drain(&signals, published, &stats, &logger);
    // The last lines the workers buffered reach the file before the process ends.
    logger.stop();
    std::process::exit(0)
}

/// Waits for SIGTERM or SIGINT, then drains: `/readyz` turns 503, the workers stop accepting
/// and wind down (idle connections closed, `Connection: close`, GOAWAY), and this returns once
/// no client connection is open, at the drain timeout, or on a second signal.
fn drain(
    signals: &runtime::Signals,
    published: &'static Published,
    stats: &[Arc<ringress::metrics::worker::WorkerStats>],
    logger: &ringress::access_log::Logger,
) {
    let sig = loop {
        match signals.wait(None) {
            Some(libc::SIGUSR1) => logger.reopen(),
            Some(sig) => break sig,
            None => {}
        }
    };
    let timeout = published.load().settings.drain_timeout;
    let open = || stats.iter().map(|s| s.connections_active.load(std::sync::atomic::Ordering::Relaxed)).sum::<u64>();
    tracing::info!(
        signal = sig,
        open = open(),
        timeout_s = timeout.as_secs_f64(),
        "draining: not accepting; finishing requests in progress"
    );
    published.start_drain();
    let started = std::time::Instant::now();
    loop {
        let left = open();
        if left == 0 {
            tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "drained; exiting");
            return;
        }
        if started.elapsed() >= timeout {
            tracing::warn!(open = left, "drain timeout; closing the connections still open");
            return;
        }
        let sig = signals.wait(Some(Duration::from_millis(50)));
        if sig == Some(libc::SIGUSR1) {
            logger.reopen();
        } else if sig.is_some() {
            tracing::warn!(open = left, "second signal; exiting without waiting");
            return;
        }
    }
}

fn worker_main(spec: WorkerSpec) {
    if let Some(cpu) = spec.cpu {
        if let Err(e) = runtime::pin_to_cpu(cpu) {
            tracing::warn!(worker = spec.index, cpu, error = %e, "cannot pin worker");
        }
    }
    let backend = spec.backend;
    let index = spec.index;
    let r = match backend {
        Backend::Uring => runtime::block_on(backend, move || proxy::run_worker::<runtime::Ring>(spec)),
        Backend::TokioUring => runtime::block_on(backend, move || proxy::run_worker::<runtime::Uring>(spec)),
        Backend::Epoll => runtime::block_on(backend, move || proxy::run_worker::<runtime::Epoll>(spec)),
    };
    if let Err(e) = r {
        tracing::error!(worker = index, error = %e, "worker runtime failed to start");
        std::process::exit(1);
    }
}
