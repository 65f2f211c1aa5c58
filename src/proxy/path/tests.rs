use super::*;

#[test]
fn normal_forms() {
    let cases: &[(&str, &str)] = &[
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a/b/", "/a/b/"),
        ("/public/../admin/secret.txt", "/admin/secret.txt"),
        ("/public/%2e%2e/admin/secret.txt", "/admin/secret.txt"),
        ("/public/%2E./admin", "/admin"),
        ("/public/x/../../exact", "/exact"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/a/./b/.", "/a/b/"),
        ("/a/b/..", "/a/"),
        ("/..", "/"),
        ("/.", "/"),
        ("//a///b//", "/a/b/"),
        ("/%41%62%7e%2d", "/Ab~-"),
        ("/a%2fb", "/a%2Fb"),
        ("/a%20b%3f", "/a%20b%3F"),
        ("/p/..;x/admin", "/admin"),
        ("/p/.;/admin", "/p/admin"),
        ("/p/..%3bx/admin", "/admin"),
        ("/a;b/c", "/a;b/c"),
        ("/.well-known/x", "/.well-known/x"),
        ("/a/..b/c", "/a/..b/c"),
        ("/%25%32%65", "/%252e"),
    ];
    for (input, want) in cases {
        assert_eq!(normalize(input).as_deref(), Ok(*want), "{input}");
    }
}

#[test]
fn refused() {
    for input in [
        "/public/..%2fadmin/x",
        "/public/%2e%2e%2fadmin%2fsecret",
        "/public/..%5Cadmin",
        "/public/..\\admin",
        "/public%2F..%2Fadmin",
        "/a/.%2F",
    ] {
        assert_eq!(normalize(input), Err(PathError::HiddenDotSegment), "{input}");
    }
    for input in ["/a%", "/a%2", "/a%zz", "/%g0"] {
        assert_eq!(normalize(input), Err(PathError::BadEncoding), "{input}");
    }
    assert_eq!(normalize("a/b"), Err(PathError::NotAbsolute));
}

#[test]
fn plain_paths_are_borrowed() {
    assert!(matches!(normalize("/api/v1/items"), Ok(Cow::Borrowed(_))));
    assert!(matches!(normalize("/a.b/c.d"), Ok(Cow::Borrowed(_))));
    // Normal already, even though the slow path looked at it.
    assert!(matches!(normalize("/a/.well-known"), Ok(Cow::Borrowed(_))));
}

#[test]
fn idempotent_and_no_dot_segments() {
    for input in ["/a/../b/./c//d/", "/%2e/%2E%2e/x", "/x/..;p/y", "/a%2Fb/c", "/~u/%7Eu"] {
        let once = normalize(input).unwrap().into_owned();
        assert_eq!(normalize(&once).unwrap(), once, "{input}");
        assert!(!once.split('/').any(|s| s == "." || s == ".."), "{input} -> {once}");
    }
}
