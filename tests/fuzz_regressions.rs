//! Replays the committed fuzz inputs (fuzz/regressions/<target>/*, and the corpus a fuzz run
//! left in fuzz/corpus/<target>/*) through the same properties the fuzz targets check, so a
//! fixed crash stays fixed without a fuzzer in CI.

include!("../fuzz/fuzz_targets/props.rs");

fn replay(target: &str, check: fn(&[u8])) -> usize {
    replay_dir("regressions", target, check)
}

fn replay_dir(under: &str, target: &str, check: fn(&[u8])) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(under).join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        if let Err(e) = std::panic::catch_unwind(|| check(&data)) {
            panic!("{}: {:?}", path.display(), e.downcast_ref::<String>());
        }
        n += 1;
    }
    n
}

#[test]
fn request_head_regressions() {
    assert!(replay("request_head", request_head) > 0, "no request_head inputs committed");
}

#[test]
fn chunked_regressions() {
    assert!(replay("chunked", chunked) > 0, "no chunked inputs committed");
}

#[test]
fn sni_regressions() {
    assert!(replay("sni", sni) > 0, "no sni inputs committed");
}

#[test]
fn path_regressions() {
    assert!(replay("path", path) > 0, "no path inputs committed");
}

/// The corpus of a 5-minute `cargo fuzz run path` (5.9 million inputs tried, 335 kept).
#[test]
fn path_corpus() {
    assert!(replay_dir("corpus", "path", path) > 100, "the path corpus is not committed");
}

/// The path property on 200,000 random paths over the characters that matter to it (a
/// structured stand-in for the fuzzer, run on every test run): seeded, so a failure repeats.
#[test]
fn path_property_on_random_paths() {
    const ALPHABET: &[u8] = b"/./.%2eE5fFcCbB3;\\a";
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 24) as usize;
        let mut y = x;
        let input: Vec<u8> = (0..len)
            .map(|_| {
                y = y.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ALPHABET[(y >> 33) as usize % ALPHABET.len()]
            })
            .collect();
        if let Err(e) = std::panic::catch_unwind(|| path(&input)) {
            panic!("{:?}: {:?}", String::from_utf8_lossy(&input), e.downcast_ref::<String>());
        }
    }
}

/// The corpus of a 2-minute `cargo fuzz run sni` (90 million inputs tried, 229 kept).
#[test]
fn sni_corpus() {
    assert!(replay_dir("corpus", "sni", sni) > 100, "the sni corpus is not committed");
}
