//! Gateway API `RequestMirror`: a copy of a request that is whole in hand (head and body,
//! as forwarded) sent to another backend on a task of its own; the answer is read and
//! dropped. The request it copies is never delayed, changed or failed by it. A request whose
//! body is still streaming when it is forwarded is not mirrored (a body is never held back
//! for a copy); at most [`MAX_IN_FLIGHT`] mirrors per worker are in flight, more are skipped.

use std::time::Duration;

use super::h1::client::{self, Attempt, NoBody};
use super::Worker;
use crate::runtime::io::Clock;
use crate::runtime::Io;
use crate::snapshot::{BackendId, Settings, Snapshot};

/// Mirrors in flight per worker, beyond which a request is not mirrored: a slow mirror
/// backend must not pile up tasks and memory.
pub(crate) const MAX_IN_FLIGHT: usize = 256;

/// How long a mirror gets for each step (connect, send, the answer's head).
const STEP: Duration = Duration::from_secs(10);

/// Sends `request` (the forwarded head, and the whole body if any) to each of `to`, on
/// their own tasks, with the request's snapshot (`to`'s ids are its backends, whatever was
/// published since).
pub(crate) fn mirror<I: Io>(w: &Worker<I>, snap: &super::LocalSnapshot, to: &[BackendId], request: &[u8]) {
    let Some(worker) = w.me.upgrade() else { return };
    let current: std::sync::Arc<Snapshot> = (**snap).clone();
    for &backend in to {
        if w.mirrors.get() >= MAX_IN_FLIGHT || current.backend(backend).endpoints.is_empty() {
            super::bump(&w.stats.mirrors_skipped);
            continue;
        }
        w.mirrors.set(w.mirrors.get() + 1);
        super::bump(&w.stats.mirrors);
        let (worker, snap, head) = (worker.clone(), current.clone(), request.to_vec());
        I::spawn(async move {
            let watch = worker.deadlines.register();
            let clock = Clock { deadlines: &worker.deadlines, watch: &watch };
            let settings = Settings {
                connect_timeout: snap.settings.connect_timeout.min(STEP),
                upstream_timeout: STEP,
                upstream_send_timeout: STEP,
                ..snap.settings.clone()
            };
            let pick = crate::upstream::Pick::Policy(snap.settings.load_balance);
            let to = Attempt { snap: &snap, backend, tls: None, settings: &settings, idempotent: false, pick };
            let mut ubuf = Vec::with_capacity(4096);
            if let Ok((up, _)) = client::send(&*worker, clock, &to, head, &mut NoBody, &mut ubuf, |_| {}).await {
                let status =
                    client::response_head(&up.io, &mut ubuf, clock, &settings, false, |_, info| Ok(info.status));
                if let Err(e) = status.await {
                    tracing::debug!(worker = worker.index, error = %e, "the mirror backend did not answer");
                }
                // Its connection is dropped, not pooled: the body was not read.
            }
            worker.mirrors.set(worker.mirrors.get() - 1);
        });
    }
}
