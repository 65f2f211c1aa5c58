//! HTTP basic authentication (`auth-type: basic`): the users of an `auth-secret` with their
//! password hashes, read once per build, and the check of a request's credentials.
//!
//! The hash formats real htpasswd files hold: bcrypt (`$2y$`, `$2a$`, `$2b$`), Apache's MD5
//! (`$apr1$`) and crypt(3)'s (`$1$`), SHA-256 and SHA-512 crypt (`$5$`, `$6$`), `{SHA}`,
//! `{SSHA}` and `{PLAIN}` (as nginx reads them). Anything else (DES crypt, an unknown scheme)
//! is a warning naming the Secret and the user, and that user cannot sign in: a password
//! ringress cannot verify is never accepted. Digests are compared in constant time, and an
//! unknown user costs the same hash as a known one.
//!
//! A slow hash (bcrypt, MD5 and SHA crypt run thousands of rounds) would cost more than the
//! request it guards, so each worker remembers its recent verdicts, keyed by a SHA-256 of the
//! credentials and the build's table (a Secret change makes a new table: nothing carries
//! over).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use rustc_hash::FxHashMap;
use subtle::ConstantTimeEq as _;

use crate::model::{ObjectKey, Secret};

/// How the Secret holds its users (`auth-secret-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecretType {
    /// `auth-file` (the default): an htpasswd file under the key `auth`.
    File,
    /// `auth-map`: one key per user, the value its password hash.
    Map,
}

/// What `auth-type: basic` asks for, before the Secret is read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BasicSpec {
    pub secret: ObjectKey,
    pub secret_type: SecretType,
    pub realm: String,
}

/// One password hash.
#[derive(Clone, Debug)]
enum Hash {
    Bcrypt(Box<str>),
    /// MD5 crypt, with its magic (`$apr1$` or `$1$`), salt and encoded digest.
    Md5Crypt {
        magic: &'static str,
        salt: Box<[u8]>,
        digest: [u8; 22],
    },
    /// SHA-256 or SHA-512 crypt, verified from the whole string.
    ShaCrypt(Box<str>),
    Sha1([u8; 20]),
    /// `{SSHA}`: SHA-1 of the password and the salt, then the salt.
    SaltedSha1 {
        digest: [u8; 20],
        salt: Box<[u8]>,
    },
    Plain(Box<[u8]>),
}

/// The users of one `auth-secret`, shared by the routes of every Ingress naming it.
#[derive(Debug)]
pub struct BasicAuth {
    /// Unique per table: keys the verdict cache, so a later table never reuses a verdict.
    id: u64,
    /// The `WWW-Authenticate` value of a 401: `Basic realm="..."`.
    pub challenge: Arc<str>,
    users: FxHashMap<Box<[u8]>, Hash>,
    /// Verified for an unknown user, so the time taken does not tell which users exist.
    decoy: Option<Hash>,
}

impl PartialEq for BasicAuth {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for BasicAuth {}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Verdicts a worker remembers at most; past that it starts over.
const CACHE_ENTRIES: usize = 4096;

thread_local! {
    static VERDICTS: RefCell<FxHashMap<[u8; 32], bool>> = RefCell::new(FxHashMap::default());
}

/// Why `secret` cannot hold the users `spec` asks for, if it cannot: it is missing, lacks
/// its key, or names no user. What refuses the routes, asked by the builder and by the
/// Kubernetes provider (for the Ingress's Event).
pub fn unusable(spec: &BasicSpec, secret: Option<&Secret>) -> Option<String> {
    let name = &spec.secret;
    let Some(secret) = secret else { return Some(format!("auth-secret {name} does not exist")) };
    let empty = match spec.secret_type {
        SecretType::File => match secret.data.get("auth") {
            None => return Some(format!("Secret {name} has no key \"auth\"")),
            Some(file) => {
                !file.split(|&b| b == b'\n').any(|l| !l.trim_ascii().is_empty() && !l.trim_ascii().starts_with(b"#"))
            }
        },
        SecretType::Map => secret.data.is_empty(),
    };
    empty.then(|| format!("Secret {name} holds no users"))
}

impl BasicAuth {
    /// The users of `secret` as `spec` reads it, and a warning for each entry that cannot be
    /// verified. Err: the Secret cannot be used at all (it lacks the key, or holds no users).
    pub fn from_secret(spec: &BasicSpec, secret: &Secret) -> Result<(BasicAuth, Vec<String>), String> {
        if let Some(why) = unusable(spec, Some(secret)) {
            return Err(why);
        }
        let name = &spec.secret;
        let mut warnings = Vec::new();
        let mut entries: Vec<(&[u8], &[u8])> = Vec::new();
        match spec.secret_type {
            SecretType::File => {
                let file = &secret.data["auth"];
                for (n, line) in file.split(|&b| b == b'\n').enumerate() {
                    let line = line.trim_ascii();
                    if line.is_empty() || line.starts_with(b"#") {
                        continue;
                    }
                    match line.iter().position(|&b| b == b':') {
                        Some(i) => entries.push((&line[..i], &line[i + 1..])),
                        None => {
                            warnings.push(format!("Secret {name}: key \"auth\" line {}: no user:hash; ignored", n + 1))
                        }
                    }
                }
            }
            SecretType::Map => {
                entries.extend(secret.data.iter().map(|(user, hash)| (user.as_bytes(), hash.trim_ascii())))
            }
        }
        let mut users = FxHashMap::default();
        let mut decoy = None;
        for (user, hash) in entries {
            let shown = String::from_utf8_lossy(user);
            match Hash::parse(hash) {
                Ok(h) => {
                    decoy.get_or_insert_with(|| h.clone());
                    // As nginx reads a file: the first line of a user counts.
                    match users.entry(Box::from(user)) {
                        std::collections::hash_map::Entry::Vacant(v) => {
                            v.insert(h);
                        }
                        std::collections::hash_map::Entry::Occupied(_) => warnings
                            .push(format!("Secret {name}: user {shown:?} is listed twice; the first entry counts")),
                    }
                }
                Err(why) => warnings.push(format!("Secret {name}: user {shown:?}: {why}; this user cannot sign in")),
            }
        }
        let challenge =
            challenge(&spec.realm).ok_or_else(|| format!("auth-realm {:?} holds a control character", spec.realm))?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Ok((BasicAuth { id, challenge: challenge.into(), users, decoy }, warnings))
    }

    /// Whether an Authorization field value carries the credentials of a user.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let Some(value) = authorization else { return false };
        let key = {
            use sha2::Digest as _;
            let mut h = sha2::Sha256::new();
            h.update(self.id.to_le_bytes());
            h.update(value);
            <[u8; 32]>::from(h.finalize())
        };
        if let Some(known) = VERDICTS.with(|v| v.borrow().get(&key).copied()) {
            return known;
        }
        let verdict = self.check(value);
        VERDICTS.with(|v| {
            let mut v = v.borrow_mut();
            if v.len() >= CACHE_ENTRIES {
                v.clear();
            }
            v.insert(key, verdict);
        });
        verdict
    }

    fn check(&self, value: &[u8]) -> bool {
        let Some((user, password)) = credentials(value) else { return false };
        match self.users.get(&user[..]) {
            Some(h) => h.verify(&password),
            None => {
                if let Some(d) = &self.decoy {
                    d.verify(&password);
                }
                false
            }
        }
    }
}

/// `Basic realm="..."`, with `"` and `\` escaped; None for a control character.
fn challenge(realm: &str) -> Option<String> {
    if realm.chars().any(char::is_control) {
        return None;
    }
    let escaped = realm.replace('\\', "\\\\").replace('"', "\\\"");
    Some(format!("Basic realm=\"{escaped}\""))
}

/// The user and password of a `Basic` Authorization value (RFC 7617): the scheme in any
/// case, then the base64 of `user:password`.
fn credentials(value: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = value.trim_ascii();
    let (scheme, rest) = value.split_at(value.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim_ascii()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl Hash {
    fn parse(h: &[u8]) -> Result<Hash, &'static str> {
        let s = std::str::from_utf8(h).map_err(|_| "the password hash is not text")?;
        let b64 = |v: &str| base64::engine::general_purpose::STANDARD.decode(v).ok();
        if let Some(rest) =
            s.strip_prefix("$apr1$").map(|r| ("$apr1$", r)).or(s.strip_prefix("$1$").map(|r| ("$1$", r)))
        {
            let (magic, rest) = rest;
            let (salt, digest) = rest.split_once('$').ok_or("an MD5-crypt hash without its salt")?;
            let digest: [u8; 22] = digest.as_bytes().try_into().map_err(|_| "an MD5-crypt hash of the wrong length")?;
            if salt.len() > 8 || salt.is_empty() {
                return Err("an MD5-crypt salt must be 1 to 8 characters");
            }
            return Ok(Hash::Md5Crypt { magic, salt: salt.as_bytes().into(), digest });
        }
        if ["$2a$", "$2b$", "$2x$", "$2y$"].iter().any(|p| s.starts_with(p)) {
            return match s.len() {
                60 => Ok(Hash::Bcrypt(s.into())),
                _ => Err("a bcrypt hash of the wrong length"),
            };
        }
        if s.starts_with("$5$") || s.starts_with("$6$") {
            return match sha_crypt::PasswordHashRef::new(s) {
                Ok(_) => Ok(Hash::ShaCrypt(s.into())),
                Err(_) => Err("a malformed SHA-crypt hash"),
            };
        }
        if let Some(v) = s.strip_prefix("{SHA}") {
            let d = b64(v).ok_or("a {SHA} hash that is not base64")?;
            return d.try_into().map(Hash::Sha1).map_err(|_| "a {SHA} hash of the wrong length");
        }
        if let Some(v) = s.strip_prefix("{SSHA}") {
            let d = b64(v).ok_or("an {SSHA} hash that is not base64")?;
            if d.len() <= 20 {
                return Err("an {SSHA} hash without its salt");
            }
            let digest = d[..20].try_into().expect("20 bytes");
            return Ok(Hash::SaltedSha1 { digest, salt: d[20..].into() });
        }
        if let Some(v) = s.strip_prefix("{PLAIN}") {
            return Ok(Hash::Plain(v.as_bytes().into()));
        }
        if s.len() == 13 && s.bytes().all(|b| ITOA64.contains(&b)) {
            return Err("DES crypt(3), which ringress does not verify (it keeps 8 characters of a password; \
                        hash it again with htpasswd -B)");
        }
        Err("the password hash is in a format ringress does not know")
    }

    fn verify(&self, password: &[u8]) -> bool {
        use sha1::Digest as _;
        match self {
            Hash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
            Hash::Md5Crypt { magic, salt, digest } => md5_crypt(password, magic.as_bytes(), salt).ct_eq(digest).into(),
            Hash::ShaCrypt(h) => {
                use sha_crypt::PasswordVerifier as _;
                sha_crypt::ShaCrypt::default().verify_password(password, &**h).is_ok()
            }
            Hash::Sha1(d) => <[u8; 20]>::from(sha1::Sha1::digest(password)).ct_eq(d).into(),
            Hash::SaltedSha1 { digest, salt } => {
                let mut h = sha1::Sha1::new();
                h.update(password);
                h.update(salt);
                <[u8; 20]>::from(h.finalize()).ct_eq(digest).into()
            }
            Hash::Plain(p) => p.len() == password.len() && bool::from(p.ct_eq(password)),
        }
    }
}

/// MD5 crypt (Poul-Henning Kamp's algorithm; Apache's `$apr1$` differs only in the magic):
/// the 22-character encoded digest of `password` with `salt`.
fn md5_crypt(password: &[u8], magic: &[u8], salt: &[u8]) -> [u8; 22] {
    use md5::{Digest as _, Md5};
    let alternate = Md5::new().chain_update(password).chain_update(salt).chain_update(password).finalize();
    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(magic);
    ctx.update(salt);
    let mut left = password.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alternate[..n]);
        left -= n;
    }
    let mut bits = password.len();
    while bits > 0 {
        if bits & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        bits >>= 1;
    }
    let mut digest: [u8; 16] = ctx.finalize().into();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(password);
        } else {
            c.update(digest);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(password);
        }
        if round & 1 == 1 {
            c.update(digest);
        } else {
            c.update(password);
        }
        digest = c.finalize().into();
    }
    let mut out = [0u8; 22];
    let mut at = 0;
    let mut put = |mut v: u32, chars: usize| {
        for _ in 0..chars {
            out[at] = ITOA64[(v & 63) as usize];
            v >>= 6;
            at += 1;
        }
    };
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        put(u32::from(digest[a]) << 16 | u32::from(digest[b]) << 8 | u32::from(digest[c]), 4);
    }
    put(u32::from(digest[11]), 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by Apache's htpasswd 2.4 (`htpasswd -nb -B|-m|-s|-2|-5|-d`) and
    /// `openssl passwd -1`.
    const FILE: &str = "\
userB:$2y$05$BCHuKo2otQeIqmh09ruZoe8ZfFiSCPpj9HW.OAZOelDWrqUT1LdCi
userm:$apr1$SUtP/yu9$ufhij.4xnjHG2nACJWfPH.
users:{SHA}08M479Y6mTyy7NYmKwm4zA0VE2o=
user2:$5$lhdQE3S2DQNS4Exj$7XTBFqzZ.tXgN2EWCW28r837KP9wxUQkDUvo0zA7YXA
user5:$6$8jEsTCNdvGQbCmQQ$ryK47OI6etms2WgA3u2/lp6ZYmP8mXFUsHDzeaPWLnEUw2FsNCHyVyGAJHM05Vm6whzDupGteMmyoeJwbQF5i/
# a comment, then a blank line

userd:4V3cOE68rg/MI
user1:$1$abcdefgh$O3RcxDaJZDBrlS0uVgUNi/
userp:{PLAIN}pass:word-p
";

    fn spec(t: SecretType) -> BasicSpec {
        BasicSpec {
            secret: ObjectKey { namespace: "ns".into(), name: "users".into() },
            secret_type: t,
            realm: "Staff \"only\"".into(),
        }
    }

    fn secret(pairs: &[(&str, &str)]) -> Secret {
        Secret {
            key: ObjectKey { namespace: "ns".into(), name: "users".into() },
            type_: None,
            data: pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect(),
        }
    }

    fn basic(user: &str, password: &str) -> Vec<u8> {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))).into_bytes()
    }

    #[test]
    fn every_htpasswd_format_verifies_and_a_wrong_password_does_not() {
        let (auth, warnings) = BasicAuth::from_secret(&spec(SecretType::File), &secret(&[("auth", FILE)])).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("ns/users") && warnings[0].contains("\"userd\"") && warnings[0].contains("DES"));
        for u in ["B", "m", "s", "2", "5", "p"] {
            let (user, pw) = (format!("user{u}"), format!("pass:word-{u}"));
            assert!(auth.check(&basic(&user, &pw)), "{user}");
            assert!(!auth.check(&basic(&user, &format!("{pw}x"))), "{user} with a wrong password");
            assert!(!auth.check(&basic(&user, "")), "{user} with no password");
        }
        assert!(auth.check(&basic("user1", "md5pw")));
        assert!(!auth.check(&basic("userd", "pass:word-d")), "a hash ringress cannot verify never admits");
        assert!(!auth.check(&basic("nobody", "pass:word-B")));
        assert!(!auth.check(b"Bearer abc"), "another scheme");
        assert!(!auth.check(b"Basic !!!"), "not base64");
        assert!(auth.check(b"basic dXNlcnM6cGFzczp3b3JkLXM="), "the scheme in any case");
        assert_eq!(&*auth.challenge, "Basic realm=\"Staff \\\"only\\\"\"");
    }

    #[test]
    fn the_cache_remembers_verdicts_per_table_only() {
        let s = secret(&[("alice", "{SHA}08M479Y6mTyy7NYmKwm4zA0VE2o=")]);
        let (first, _) = BasicAuth::from_secret(&spec(SecretType::Map), &s).unwrap();
        let right = basic("alice", "pass:word-s");
        assert!(first.admits(Some(&right)) && first.admits(Some(&right)));
        assert!(!first.admits(None) && !first.admits(Some(&basic("alice", "no"))));
        let changed = secret(&[("alice", "{PLAIN}other")]);
        let (second, _) = BasicAuth::from_secret(&spec(SecretType::Map), &changed).unwrap();
        assert!(!second.admits(Some(&right)), "a new table does not reuse the old verdict");
        assert!(second.admits(Some(&basic("alice", "other"))));
    }

    #[test]
    fn unusable_secrets_are_errors_naming_them() {
        let e = BasicAuth::from_secret(&spec(SecretType::File), &secret(&[("users", FILE)])).unwrap_err();
        assert!(e.contains("ns/users") && e.contains("\"auth\""), "{e}");
        let e = BasicAuth::from_secret(&spec(SecretType::File), &secret(&[("auth", "# nobody\n")])).unwrap_err();
        assert!(e.contains("no users"), "{e}");
        let (auth, w) =
            BasicAuth::from_secret(&spec(SecretType::File), &secret(&[("auth", "bob:$2y$05$short\n")])).unwrap();
        assert!(w[0].contains("\"bob\"") && !auth.check(&basic("bob", "x")));
        let dup = "a:{PLAIN}one\na:{PLAIN}two\n";
        let (auth, w) = BasicAuth::from_secret(&spec(SecretType::File), &secret(&[("auth", dup)])).unwrap();
        assert!(auth.check(&basic("a", "one")) && !auth.check(&basic("a", "two")) && w[0].contains("twice"));
    }
}
