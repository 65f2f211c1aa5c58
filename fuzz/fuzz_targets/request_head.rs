//! Request heads through the proxy's parse, check and rewrite path.
#![no_main]

include!("props.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| request_head(data));
