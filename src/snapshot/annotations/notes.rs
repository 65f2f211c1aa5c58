//! What ringress says about an Ingress's annotations ([`Note`]), and the annotations it
//! accepts and ignores by design ([`NO_OP`]).

/// ingress-nginx annotations ringress accepts and ignores (no warning, no Event) because its design makes them meaningless.
pub const NO_OP: &[(&str, &str)] = &[
    ("proxy-buffering", "ringress streams responses as they arrive; nginx's buffers have no counterpart"),
    ("proxy-buffers-number", "ringress streams responses as they arrive; nginx's buffers have no counterpart"),
    ("proxy-busy-buffers-size", "ringress streams responses as they arrive; nginx's buffers have no counterpart"),
    ("proxy-max-temp-file-size", "ringress never spools responses to disk"),
    ("client-body-buffer-size", "per-route buffer sizing; ringress sizes its buffers per connection"),
    ("proxy-http-version", "ringress speaks HTTP/1.1 with keep-alive to HTTP upstreams"),
    ("connection-proxy-header", "ringress manages the upstream Connection header and keep-alive itself"),
    ("enable-rewrite-log", "nginx's rewrite debug log; ringress's rewrites are shown by /debug/routes"),
    ("ssl-prefer-server-ciphers", "ringress's TLS (rustls) always uses its own cipher order"),
    ("http2-push-preload", "HTTP/2 server push: dropped by browsers and by ingress-nginx itself"),
];

/// What ringress says about one of an Ingress's annotations: ignored (a key it does not
/// implement, a value that does not parse, a protection served without under `warn`), or the
/// reason the Ingress's routes are refused. Logged, printed by `ringress check`, counted by
/// annotation, and recorded as a Warning Event on the Ingress.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Note {
    /// The annotation's full key, with its prefix.
    pub annotation: String,
    pub message: String,
    /// The routes answer 503 because of it (fail closed).
    pub refused: bool,
    /// A key ringress does not implement (rather than a value it cannot use).
    pub unsupported: bool,
}

impl Note {
    pub(super) fn ignored(annotation: &str, what: String) -> Note {
        Note {
            annotation: annotation.to_string(),
            message: format!("{what}; ignored"),
            refused: false,
            unsupported: false,
        }
    }

    pub(super) fn unsupported(annotation: &str) -> Note {
        Note {
            annotation: annotation.to_string(),
            message: format!("annotation {annotation} is not supported by ringress; ignored"),
            refused: false,
            unsupported: true,
        }
    }

    pub(super) fn refused(annotation: &str, why: &str) -> Note {
        Note {
            annotation: annotation.to_string(),
            message: format!("{why}; its routes answer 503"),
            refused: true,
            unsupported: false,
        }
    }
}
