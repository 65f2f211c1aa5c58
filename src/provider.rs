//! Where Kubernetes objects come from, on the control thread: manifest files now ([`file`]),
//! the API server later. Every provider feeds the same pure [`crate::snapshot::build`] and
//! publishes only complete, valid snapshots.

pub mod file;
