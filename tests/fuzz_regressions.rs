//! Replays the committed fuzz inputs (fuzz/regressions/<target>/*) through the same
//! properties the fuzz targets check, so a fixed crash stays fixed without a fuzzer in CI.

include!("../fuzz/fuzz_targets/props.rs");

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions").join(target);
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
fn path_regressions() {
    assert!(replay("path", path) > 0, "no path inputs committed");
}
