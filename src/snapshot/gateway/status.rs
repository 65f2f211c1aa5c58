//! The statuses the lowering decides for GatewayClasses, Gateways (and their listeners) and
//! routes, as the specification defines their conditions; the provider's writer only writes
//! them.

use crate::model::gateway::{ObjectRef, RouteKind};
use crate::model::ObjectKey;

/// One status condition, as `metav1.Condition` has it (the writer adds the times and the
/// observed generation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

pub(super) fn cond(type_: &'static str, status: bool, reason: &'static str, message: impl Into<String>) -> Condition {
    Condition { type_, status, reason, message: message.into() }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerStatus {
    pub name: String,
    /// (group, kind) of the route kinds the listener takes.
    pub supported_kinds: Vec<&'static str>,
    pub attached_routes: u32,
    pub conditions: Vec<Condition>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayStatus {
    pub key: ObjectKey,
    pub generation: i64,
    pub conditions: Vec<Condition>,
    pub listeners: Vec<ListenerStatus>,
}

/// One `status.parents` entry of a route: the parentRef as written, and its conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParentStatus {
    pub parent: ObjectRef,
    pub conditions: Vec<Condition>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteStatus {
    pub kind: RouteKind,
    pub key: ObjectKey,
    pub generation: i64,
    pub parents: Vec<ParentStatus>,
}

/// Everything the status writer writes: `(name, generation)` of our GatewayClasses, our
/// Gateways, and the routes that name one of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Statuses {
    pub classes: Vec<(String, i64)>,
    pub gateways: Vec<GatewayStatus>,
    pub routes: Vec<std::sync::Arc<RouteStatus>>,
}

impl Statuses {
    /// Every condition that says something is wrong, as a sentence naming the object (what
    /// file mode logs, having no status to write).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let bad = |c: &Condition| (c.type_ == "Conflicted" || c.type_ == "PartiallyInvalid") == c.status;
        for g in &self.gateways {
            for l in &g.listeners {
                for c in l.conditions.iter().filter(|c| bad(c) && c.type_ != "Programmed") {
                    out.push(format!("Gateway {} listener {}: {} {}: {}", g.key, l.name, c.type_, c.reason, c.message));
                }
            }
        }
        for r in &self.routes {
            for p in &r.parents {
                for c in p.conditions.iter().filter(|c| bad(c)) {
                    let kind = r.kind.name();
                    out.push(format!(
                        "{kind} {} (parent {}): {} {}: {}",
                        r.key, p.parent.name, c.type_, c.reason, c.message
                    ));
                }
            }
        }
        out
    }
}
