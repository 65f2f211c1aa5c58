//! Chunked decoding, whole versus split across two reads.
#![no_main]

include!("props.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| chunked(data));
