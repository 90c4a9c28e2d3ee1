//! `--check-urls` end to end on a small data tree whose ISO URLs point at a local HTTP server on
//! 127.0.0.1 (never anywhere else): every spec is resolved against the throw-away `_urlcheck`
//! location (x86_64 specs also index as amd64), each distinct URL is checked once, the report has OSImager's shape, and the
//! throw-away location is removed afterwards.

mod support;

use osimager::config::{Config, ConfigOptions};
use std::time::Duration;

/// A stub HTTP server on 127.0.0.1: paths containing `/good-` answer 200, the rest 404.
fn http_server() -> String {
    support::http_stub::start(|path| {
        if path.contains("/good-") {
            ("200 OK", String::new())
        } else {
            ("404 Not Found", String::new())
        }
    })
}

#[test]
fn check_urls_on_a_local_tree() {
    let base = http_server();
    let scratch = tempfile::Builder::new()
        .prefix("pk-urls-")
        .tempdir()
        .unwrap();
    let s = scratch.path();
    let data = s.join("data");
    std::fs::create_dir_all(data.join("platforms")).unwrap();
    std::fs::write(
        data.join("platforms/virtualbox.json"),
        r#"{"arches": ["x86_64"], "config": {"type": "virtualbox-iso"}}"#,
    )
    .unwrap();
    let spec = |name: &str, versions: &str, url: &str| {
        let dir = data.join("specs").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("spec.json"),
            format!(
                r#"{{"provides": {{"dist": "{name}", "versions": [{versions}], "arches": ["x86_64"]}},
                    "defs": {{"iso_url": "{url}"}},
                    "config": {{"iso_url": ">>iso_url<<"}}}}"#
            ),
        )
        .unwrap();
    };
    spec(
        "good",
        r#""1", "2""#,
        &format!("{base}/good->>version<<.iso"),
    );
    spec("same", r#""1""#, &format!("{base}/good-1.iso"));
    spec("gone", r#""1""#, &format!("{base}/gone.iso"));
    spec("local", r#""1""#, "file:///nonexistent/local.iso");
    std::env::set_var("XDG_CONFIG_HOME", s.join("cfg"));
    std::env::set_var("XDG_DATA_HOME", s.join("xdg-data"));
    std::env::set_var("XDG_CACHE_HOME", s.join("xdg-cache"));
    std::env::set_var("HOME", s.join("home"));
    std::fs::create_dir_all(s.join("cfg/osimager")).unwrap();
    std::fs::write(
        s.join("cfg/osimager/config.json"),
        r#"{"credential_source": "config"}"#,
    )
    .unwrap();

    let config = Config::load(&ConfigOptions {
        data_dir: Some(data),
        ..Default::default()
    })
    .unwrap();
    let mut out = Vec::new();
    let (ok, failed) =
        osimager::cli::check_urls::check_urls(&config, Duration::from_secs(10), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!((ok, failed), (2, 1), "{text}");
    assert_eq!(
        text,
        format!(
            "Checking 3 unique URLs across 8 specs (2 local-only)...\n\n  \
             FAIL (404): gone-1-amd64\n    also: gone-1-x86_64\n    {base}/gone.iso\n\n\
             Results: 2 OK, 1 FAILED, 2 local-only\n"
        )
    );
    assert!(!s.join("cfg/osimager/locations/_urlcheck.json").exists());
}
