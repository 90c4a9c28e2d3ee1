//! Unit tests of the loader (merge rules), index and latest aliases on small trees.

use super::layers::Layers;
use super::loader::{Loader, State};
use super::{Config, ConfigOptions, Regexes};
use serde_json::{json, Map, Value};
use std::path::Path;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn layers(dir: &Path) -> Layers {
    Layers {
        user: dir.join("user"),
        system: dir.join("sys"),
    }
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn dicts_update_lists_extend_or_replace() {
    let d = tempfile::tempdir().unwrap();
    let (l, r) = (layers(d.path()), Regexes::default());
    let mut ld = Loader::new(&l, &r, State::default());
    ld.load_data(&mut obj(
        json!({"defs": {"a": 1, "b": [1]}, "provisioners": [{"p": 1}]}),
    ))
    .unwrap();
    ld.load_data(&mut obj(
        json!({"defs": {"b": [2], "c": 3}, "provisioners": [{"p": 2}]}),
    ))
    .unwrap();
    assert_eq!(
        Value::Object(ld.state.defs.clone()),
        json!({"a": 1, "b": [2], "c": 3})
    );
    assert_eq!(ld.state.provisioners.len(), 2);
    ld.load_data(&mut obj(
        json!({"method": "replace", "provisioners": [{"p": 3}]}),
    ))
    .unwrap();
    assert_eq!(ld.state.provisioners, vec![json!({"p": 3})]);
}

#[test]
fn merge_key_list_extends_and_updates() {
    let d = tempfile::tempdir().unwrap();
    let (l, r) = (layers(d.path()), Regexes::default());
    let mut ld = Loader::new(&l, &r, State::default());
    ld.load_data(&mut obj(
        json!({"defs": {"l": ["a"], "m": {"x": 1}, "s": "old"}}),
    ))
    .unwrap();
    let mut data = obj(
        json!({"defs": {"merge": ["l", "m", "s", "gone", "empty"], "l": ["b"], "m": {"y": 2}, "s": "new", "empty": []}}),
    );
    ld.load_data(&mut data).unwrap();
    assert_eq!(
        Value::Object(ld.state.defs.clone()),
        json!({"l": ["a", "b"], "m": {"x": 1, "y": 2}, "s": "new"})
    );
    // The merge list and merged keys are consumed from the data, as in the original.
    assert_eq!(data["defs"], json!({}));
}

#[test]
fn platform_defs_are_protected() {
    let d = tempfile::tempdir().unwrap();
    let (l, r) = (layers(d.path()), Regexes::default());
    let pd = obj(json!({"firmware": "bios"}));
    let st = State {
        defs: pd.clone(),
        platform_defs: pd,
        ..State::default()
    };
    let mut ld = Loader::new(&l, &r, st);
    ld.load_data(&mut obj(json!({"defs": {"firmware": "efi", "x": 1}})))
        .unwrap();
    assert_eq!(ld.state.defs["firmware"], "bios");
    assert_eq!(ld.state.defs["x"], 1);
}

#[test]
fn specifics_fullmatch_case_insensitive_nested_and_hoisted() {
    let d = tempfile::tempdir().unwrap();
    let (l, r) = (layers(d.path()), Regexes::default());
    let st = State {
        defs: obj(json!({"dist": "rhel", "version": "9.4", "arch": "x86_64", "platform": "qemu"})),
        ..State::default()
    };
    let mut ld = Loader::new(&l, &r, st);
    let mut data = obj(json!({
        "version_specific": [
            {"version": "9", "defs": {"wrong": "prefix must not match"}},
            {"version": "9\\..*", "defs": {"v": "9"}, "ansible_version": "2.16",
             "arch_specific": [{"arch": "X86_64", "defs": {"a": "x"}}]}
        ],
        "dist_specific": [{"dist": "RHEL|alma", "defs": {"d": 1}}],
        "firmware_specific": [{"firmware": ".*", "defs": {"fw": 1}}]
    }));
    ld.load_data(&mut data).unwrap();
    let defs = Value::Object(ld.state.defs.clone());
    assert_eq!(defs["v"], "9");
    assert_eq!(defs["a"], "x");
    assert_eq!(defs["d"], 1);
    assert!(defs.get("wrong").is_none());
    assert!(
        defs.get("fw").is_none(),
        "firmware_specific needs defs.firmware"
    );
    assert_eq!(data["ansible_version"], "2.16");
}

#[test]
fn includes_apply_depth_first_and_list_includes_reapply() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "sys/specs/a/spec.json",
        r#"{"defs": {"who": "a", "a": 1}, "provisioners": [{"n": "a"}]}"#,
    );
    write(
        d.path(),
        "sys/specs/b/spec.json",
        r#"{"include": "a", "defs": {"who": "b"}}"#,
    );
    write(
        d.path(),
        "sys/specs/c/spec.json",
        r#"{"defs": {"who": "c"}}"#,
    );
    write(
        d.path(),
        "user/specs/top/spec.json",
        r#"{"include": ["b", "c"], "defs": {"who": "top"}, "provisioners": [{"n": "top"}]}"#,
    );
    let (l, r) = (layers(d.path()), Regexes::default());
    let mut ld = Loader::new(&l, &r, State::default());
    ld.load_data_file("specs", "top").unwrap();
    // a, b, top, c, then top again: the original re-applies the including file (merged over
    // the first include's top-level keys) once per include, so its list items repeat.
    assert_eq!(ld.state.defs["who"], "top");
    let names: Vec<&Value> = ld.state.provisioners.iter().map(|p| &p["n"]).collect();
    assert_eq!(names, vec!["a", "top", "top"]);
}

#[test]
fn bad_input_is_reported_with_position() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "sys/platforms/p.json",
        "{\n  \"defs\": {\"a\": 1,}\n}",
    );
    write(d.path(), "sys/platforms/q.json", r#"{"include": {"x": 1}}"#);
    write(d.path(), "sys/platforms/r.json", r#"{"defs": [1]}"#);
    let (l, r) = (layers(d.path()), Regexes::default());
    let mut ld = Loader::new(&l, &r, State::default());
    let e = ld.load_data_file("platforms", "p").unwrap_err().to_string();
    assert!(e.contains("p.json:2:"), "{e}");
    let e = ld.load_data_file("platforms", "q").unwrap_err().to_string();
    assert!(e.contains("include"), "{e}");
    let e = ld.load_data_file("platforms", "r").unwrap_err().to_string();
    assert!(e.contains("must be an object"), "{e}");
    let e = ld
        .load_data_file("platforms", "nope")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown platform 'nope'"), "{e}");
}

#[test]
fn index_latest_and_arches() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("home");
    write(
        d.path(),
        "sys/platforms/p.json",
        r#"{"arches": ["x86_64"]}"#,
    );
    write(
        d.path(),
        "xdg/osimager/locations/l.toml",
        "arches = [\"aarch64\"]\n",
    );
    write(
        d.path(),
        "sys/specs/s/spec.json",
        r#"{"provides": {"dist": "s", "versions": ["9.[8-10]", "10.0"], "arches": ["x86_64", "aarch64", "ppc64"]},
            "defs": {"iso_url": "http://x/s->>version<<.iso"},
            "version_specific": [{"version": "10\\..*", "arches": ["x86_64"]}]}"#,
    );
    let _g = ENV.lock().unwrap_or_else(|e| e.into_inner());
    std::env::set_var("HOME", &home);
    std::env::set_var("XDG_CONFIG_HOME", d.path().join("xdg"));
    let cfg = Config::load(&ConfigOptions {
        data_dir: Some(d.path().join("sys")),
        ..Default::default()
    })
    .unwrap();
    let idx = cfg.index().unwrap();
    let keys: Vec<&str> = idx.keys().collect();
    assert_eq!(
        keys,
        [
            "s-9.8-aarch64",
            "s-9.8-amd64",
            "s-9.8-x86_64",
            "s-9.9-aarch64",
            "s-9.9-amd64",
            "s-9.9-x86_64",
            "s-9.10-aarch64",
            "s-9.10-amd64",
            "s-9.10-x86_64",
            "s-10.0-amd64",
            "s-10.0-x86_64"
        ]
    );
    assert_eq!(
        idx.resolve_latest("s-latest-aarch64", false),
        "s-9.10-aarch64"
    );
    assert_eq!(
        idx.resolve_latest("s-9-latest-x86_64", false),
        "s-9.10-x86_64"
    );
    assert_eq!(
        idx.resolve_latest("s-latest-x86_64", false),
        "s-10.0-x86_64"
    );
    assert_eq!(
        idx.resolve_latest("s-latest-x86_64", true),
        "s-latest-x86_64"
    );
    assert!(idx.latest_aliases(Some("nodist"), false).is_empty());
    assert_eq!(
        idx.get("s-9.8-x86_64").unwrap().iso_url,
        "http://x/s-9.8.iso"
    );
}

static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());
