//! The ClientHello reader of ssl-passthrough on hostile bytes.
#![no_main]

include!("props.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| sni(data));
