//! ringress: a Kubernetes Ingress controller and edge proxy.
//!
//! Architecture, by thread:
//! - **Control thread** ([`provider`]): reads Kubernetes objects (from manifest files, or from
//!   the API server through kube-rs watchers), turns them into an immutable [`snapshot::Snapshot`] with one pure
//!   function ([`snapshot::build`]), and publishes it through [`Published`] (arc-swap). A
//!   config that does not parse never reaches a worker.
//! - **Worker threads** ([`runtime`]): one per CPU of the process's affinity mask, each pinned,
//!   each with its own io_uring (or epoll) runtime, its own SO_REUSEPORT listener, its own
//!   upstream pools and balancer state. They share nothing mutable; the only thing they read
//!   from elsewhere is the published snapshot, through a per-worker `arc_swap::Cache`.
//! - **Admin thread** ([`admin`]): `/healthz`, `/readyz`, `/debug/routes`.
//!
//! The proxy ([`proxy`]) is written once, against the small owned-buffer I/O trait in
//! [`runtime::io`], and runs unchanged on both backends.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod access_log;
pub mod admin;
pub mod cli;
pub mod demo;
pub mod metrics;
pub mod migrate;
pub mod model;
pub mod provider;
pub mod proxy;
pub mod runtime;

pub mod snapshot;
pub mod tls;
pub(crate) mod upstream;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

/// The published snapshot plus readiness; shared by the control thread (writer), workers and
/// the admin thread (readers).
#[derive(Debug)]
pub struct Published {
    current: ArcSwap<snapshot::Snapshot>,
    ready: AtomicBool,
    /// SIGTERM came: workers stop accepting and wind their connections down.
    draining: AtomicBool,
    /// What the control thread did to get here.
    pub control: provider::ControlStats,
}

impl Default for Published {
    fn default() -> Self {
        Published {
            current: ArcSwap::from_pointee(snapshot::Snapshot::default()),
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            control: provider::ControlStats::default(),
        }
    }
}

impl Published {
    /// Numbers the snapshot and makes it the one every new request sees. Once ready, never
    /// unready again.
    pub fn publish(&self, mut snap: snapshot::Snapshot) -> u64 {
        let generation = self.current.load().generation + 1;
        snap.generation = generation;
        self.current.store(Arc::new(snap));
        self.ready.store(true, Ordering::Release);
        generation
    }

    pub fn load(&self) -> Arc<snapshot::Snapshot> {
        self.current.load_full()
    }

    pub fn swap(&self) -> &ArcSwap<snapshot::Snapshot> {
        &self.current
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Starts the drain: `/readyz` answers 503 from now on, and each worker, within a tick,
    /// stops accepting, closes idle keep-alive connections, answers `Connection: close` and
    /// sends HTTP/2 GOAWAY.
    pub fn start_drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}
