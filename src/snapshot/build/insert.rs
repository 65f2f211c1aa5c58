//! Placing a route in its host's table: Exact and Prefix paths by key, regular expressions in
//! order; routes of one path chained most specific first; a second route with no conditions
//! for a path is a conflict, which the older claimant wins.

use super::super::table::{prefix_key, HostRoutes};
use super::{gateway, Route};
use crate::model::PathType;

pub(super) fn insert(hr: &mut HostRoutes, route: Route) {
    if route.regex.is_some() {
        // Tried in order, longest expression first (as ingress-nginx orders its regex
        // locations), then the most specific Gateway API conditions; the same expression
        // twice without conditions is a conflict like any other.
        let unconditional = route.gateway.is_none();
        let same = hr.regex.iter().find(|&&i| {
            let r = &hr.routes[i as usize];
            r.path == route.path && unconditional && r.gateway.is_none()
        });
        if let Some(&existing) = same {
            let w = conflict(&route, &hr.routes[existing as usize]);
            hr.warnings.push(w);
            return;
        }
        let rank = gateway::rank(&route);
        let at = hr.regex.iter().position(|&i| {
            let r = &hr.routes[i as usize];
            r.path.len() < route.path.len() || (r.path.len() == route.path.len() && gateway::rank(r) < rank)
        });
        hr.regex.insert(at.unwrap_or(hr.regex.len()), hr.routes.len() as u32);
        hr.routes.push(route);
        return;
    }
    let key: Box<str> = match route.path_type {
        PathType::Exact => route.path.as_str().into(),
        PathType::Prefix | PathType::ImplementationSpecific => prefix_key(&route.path).into(),
    };
    let map = if route.path_type == PathType::Exact { &mut hr.exact } else { &mut hr.prefix };
    let at = hr.routes.len() as u32;
    let Some(&head) = map.get(&key) else {
        map.insert(key, at);
        hr.routes.push(route);
        return;
    };
    // Routes with the same path form a chain, most specific first; two without conditions
    // are a conflict (the older keeps the path).
    let mut chain = vec![head];
    while let Some(n) = hr.routes[*chain.last().expect("not empty") as usize].next {
        chain.push(n);
    }
    if route.gateway.is_none() {
        if let Some(&first) = chain.iter().find(|&&i| hr.routes[i as usize].gateway.is_none()) {
            let w = conflict(&route, &hr.routes[first as usize]);
            hr.warnings.push(w);
            return;
        }
    }
    let rank = gateway::rank(&route);
    let before = chain.iter().position(|&i| gateway::rank(&hr.routes[i as usize]) < rank);
    let mut route = route;
    match before {
        Some(0) => {
            route.next = Some(head);
            let map = if route.path_type == PathType::Exact { &mut hr.exact } else { &mut hr.prefix };
            map.insert(key, at);
        }
        Some(p) => {
            route.next = Some(chain[p]);
            hr.routes[chain[p - 1] as usize].next = Some(at);
        }
        None => hr.routes[*chain.last().expect("not empty") as usize].next = Some(at),
    }
    hr.routes.push(route);
}

fn conflict(route: &Route, first: &Route) -> String {
    format!(
        "conflict: host {} path {} is claimed by {} {} and {} {}; {} (the older) keeps it",
        route.host.as_deref().unwrap_or("*"),
        route.path,
        first.origin.name(),
        first.ingress,
        route.origin.name(),
        route.ingress,
        first.ingress
    )
}
