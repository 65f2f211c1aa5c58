//! Request paths as routing sees them: one normal form, computed once per request before the
//! route lookup, and the form the upstream receives. Pure; runs on the worker that parsed the
//! request.
//!
//! The rules (README "Path normalisation" says the same for operators):
//! - Percent-encodings must be `%` and two hex digits (else 400). Encoded unreserved characters
//!   (RFC 3986 §2.3: letters, digits, `-._~`) are decoded, so `%2e%2e` is `..`; every other
//!   encoding is kept, with upper-case hex (§6.2.2.1). Nothing is decoded twice.
//! - Runs of `/` are merged into one (nginx's `merge_slashes on`).
//! - Dot-segments are removed (RFC 3986 §5.2.4); a `..` at the root stays at the root. A
//!   segment whose part before its first `;` (or `%3B`) is `.` or `..` is that dot-segment
//!   (servlet containers read `..;x` as `..`).
//! - Encoded slashes and backslashes (`%2F`, `%5C`) and literal backslashes are kept as data,
//!   never as separators. A path in which such a character would make a dot-segment for a
//!   backend that splits on it (`..%2f`, `%2e%2e%5c`, `..\`) cannot be normalised safely and is
//!   refused (400).

use std::borrow::Cow;

use super::h1::chunked::hex;

/// Why a path cannot be normalised (the request is answered 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("invalid percent-encoding in the path")]
    BadEncoding,
    #[error("a dot-segment next to an encoded slash or a backslash in the path")]
    HiddenDotSegment,
    #[error("the path does not start with /")]
    NotAbsolute,
}

impl PathError {
    fn context(self) -> &'static str {
        match self {
            PathError::BadEncoding => "invalid percent-encoding in the path",
            PathError::HiddenDotSegment => "a dot-segment hidden by an encoded slash or a backslash",
            PathError::NotAbsolute => "the path does not start with /",
        }
    }
}

/// 400, with what was wrong.
impl From<PathError> for super::error::ProxyError {
    fn from(e: PathError) -> Self {
        super::error::ProxyError::downstream(super::error::Kind::BadRequest, e.context())
    }
}

/// The normal form of an origin-form path (without its query). Borrowed when the path is
/// already normal, which is the common case and allocates nothing.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if is_plain(b) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(b)?;
    check_hidden_dots(&decoded)?;
    let out = remove_dots(&decoded);
    // Only ASCII was decoded or removed, so valid UTF-8 in stays valid UTF-8 out.
    let out = String::from_utf8(out).map_err(|_| PathError::BadEncoding)?;
    Ok(if out == path { Cow::Borrowed(path) } else { Cow::Owned(out) })
}

/// No `%`, no backslash, no `//`, no segment starting with `.`: nothing to do.
fn is_plain(b: &[u8]) -> bool {
    let mut prev = 0u8;
    for &c in b {
        match c {
            b'%' | b'\\' => return false,
            b'/' | b'.' if prev == b'/' => return false,
            _ => {}
        }
        prev = c;
    }
    true
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

/// Decodes encoded unreserved characters; keeps other encodings with upper-case hex.
fn decode_unreserved(b: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let (hi, lo) = match (b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (Some(h), Some(l)) => (h, l),
            _ => return Err(PathError::BadEncoding),
        };
        let c = hi << 4 | lo;
        if is_unreserved(c) {
            out.push(c);
        } else {
            out.push(b'%');
            out.push(b"0123456789ABCDEF"[hi as usize]);
            out.push(b"0123456789ABCDEF"[lo as usize]);
        }
        i += 3;
    }
    Ok(out)
}

/// A segment's name: the part before its `;` parameters (`;` or, since a backend may decode it
/// before it splits parameters off, `%3B`).
fn segment_name(seg: &[u8]) -> &[u8] {
    let end = (0..seg.len()).find(|&i| seg[i] == b';' || seg[i..].starts_with(b"%3B")).unwrap_or(seg.len());
    &seg[..end]
}

/// A segment that is `.` or `..`, ignoring parameters.
fn is_dot(seg: &[u8]) -> bool {
    matches!(segment_name(seg), b"." | b"..")
}

/// Refuses a path where splitting also on `\`, `%2F` and `%5C` (as some backends do) yields a
/// dot-segment that splitting on `/` alone does not.
fn check_hidden_dots(b: &[u8]) -> Result<(), PathError> {
    let alt = |i: usize| b[i] == b'\\' || (b[i..].len() >= 3 && (b[i..i + 3] == *b"%2F" || b[i..i + 3] == *b"%5C"));
    if !(0..b.len()).any(alt) {
        return Ok(());
    }
    // Pieces between any separator; a dot piece not bounded by `/` on both sides is hidden.
    let mut start = 0;
    let mut start_alt = false;
    let mut i = 0;
    while i <= b.len() {
        let (sep_len, is_alt) = if i == b.len() {
            (0, false)
        } else if b[i] == b'/' {
            (1, false)
        } else if alt(i) {
            (if b[i] == b'\\' { 1 } else { 3 }, true)
        } else {
            i += 1;
            continue;
        };
        if (start_alt || is_alt) && is_dot(&b[start..i]) {
            return Err(PathError::HiddenDotSegment);
        }
        if i == b.len() {
            break;
        }
        i += sep_len;
        start = i;
        start_alt = is_alt;
    }
    Ok(())
}

/// RFC 3986 §5.2.4 on a path that starts with `/`, with empty segments merged.
fn remove_dots(b: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let segments: Vec<&[u8]> = b[1..].split(|&c| c == b'/').collect();
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        let end = i == last;
        if seg.is_empty() && !end {
            continue; // `//` merged
        }
        if is_dot(seg) {
            if segment_name(seg) == b".." {
                // Drop the last output segment (never above the root).
                let cut = out.iter().rposition(|&c| c == b'/').unwrap_or(0);
                out.truncate(cut);
            }
            if end {
                out.push(b'/');
            }
            continue;
        }
        out.push(b'/');
        out.extend_from_slice(seg);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests;
