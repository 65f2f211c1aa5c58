//! Path normalisation: idempotent, no dot-segments left, no escape from the routed prefix.
#![no_main]

include!("props.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| path(data));
