//! HTTP/1.1 on both sides: the downstream request loop ([`server`]), the upstream exchange
//! ([`client`]), head analysis and rewriting ([`codec`]), chunked framing ([`chunked`]).

pub(crate) mod body;
pub mod chunked;
pub(crate) mod client;
pub mod codec;
pub(crate) mod server;
