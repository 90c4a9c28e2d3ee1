use super::*;
use crate::config::secrets::{FileSecrets, SecretStore};
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;

fn defs() -> Map<String, Value> {
    json!({
        "name": "vm1",
        "ip": "10.0.0.5",
        "cpus": 2,
        "mem": "1024",
        "zero": 0,
        "flag": true,
        "nothing": null,
        "list": ["a", "b"],
        "csv": "x, y z",
        "iso_url": "https://example.test/isos/alma-9.iso",
        "dict": {"k": 1},
        "ratio": 2.5,
        "bad_num": "abc",
        "ref": ">>name<<"
    })
    .as_object()
    .unwrap()
    .clone()
}

fn store() -> SecretStore {
    SecretStore::File(FileSecrets::parse(
        Path::new("/test/secrets"),
        "images/linux username=root password=S3cr3t-pw\n",
    ))
}

fn sub(text: &str) -> Value {
    let d = defs();
    let st = store();
    let env = DefsEnv::new(&d)
        .with_secrets(&st)
        .with_env_vars(HashMap::from([(
            "HOME_X".to_string(),
            "/home/x".to_string(),
        )]));
    substitute_str(text, &env).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn typed_whole_string_values() {
    assert_eq!(sub("%>cpus<%"), json!(2));
    assert_eq!(sub("  %>list<% "), json!(["a", "b"]));
    assert_eq!(sub("%>flag<%"), json!(true));
    assert_eq!(sub("%>dict<%"), json!({"k": 1}));
    // Every marker returns its typed value when it is the whole string, not only %>k<%.
    assert_eq!(sub(">>cpus<<"), json!(2));
    assert_eq!(sub("#>mem*cpus<#"), json!(2048));
    assert_eq!(sub("E>1 + 1<E"), json!(2));
    assert_eq!(sub("E>None<E"), json!(""));
    assert_eq!(sub("[>list<]"), json!(["a", "b"]));
    assert_eq!(sub("[>csv<]"), json!(["x", "y", "z"]));
    assert_eq!(sub("[>missing<]"), json!([]));
}

#[test]
fn text_substitution_uses_python_str() {
    assert_eq!(sub("cpus=%>cpus<%"), json!("cpus=2"));
    assert_eq!(sub("l=>>list<<"), json!("l=['a', 'b']"));
    assert_eq!(sub("f=>>flag<< r=>>ratio<<"), json!("f=True r=2.5"));
    assert_eq!(sub("d=>>dict<<"), json!("d={'k': 1}"));
    assert_eq!(sub("m=>>missing<<."), json!("m=."));
    assert_eq!(sub("n=>>nothing<<."), json!("n=."));
    assert_eq!(sub("n=%>nothing<%"), json!("n="));
    assert_eq!(sub("%>nothing<%"), json!(""));
    assert_eq!(sub("a >>name<< b >>name<< c"), json!("a vm1 b vm1 c"));
    assert_eq!(sub("b=+>iso_url<+"), json!("b=alma-9.iso"));
    assert_eq!(sub("h=$>HOME_X<$/y"), json!("h=/home/x/y"));
    assert_eq!(sub("u=$>NOT_SET_ANYWHERE<$."), json!("u=."));
    assert_eq!(sub("[>list<] more"), json!("['a', 'b'] more"));
    // Values are not substituted again (one pass per marker, in order).
    assert_eq!(sub("r=%>ref<%"), json!("r=vm1"));
    assert_eq!(sub("plain text"), json!("plain text"));
}

#[test]
fn marker_order_and_quotes_and_names() {
    // Quotes around keys are stripped except for >>k<< and E>.
    assert_eq!(sub("x=%>'cpus'<%"), json!("x=2"));
    assert_eq!(sub("x=>>'cpus'<<"), json!("x=>>'cpus'<<"));
    // Non-variable keys are left alone.
    assert_eq!(sub("a >>b c<< d"), json!("a >>b c<< d"));
    assert_eq!(sub("echo $>A-B<$"), json!("echo $>A-B<$"));
    // Non-greedy, per line.
    assert_eq!(sub(">>name<<>>ip<<"), json!("vm110.0.0.5"));
    assert_eq!(sub(">>name\n<< x"), json!(">>name\n<< x"));
    assert_eq!(sub("a\n>>name<<\nb"), json!("a\nvm1\nb"));
    // >>k<< runs before E>: the expression sees the substituted text.
    assert_eq!(sub("E>'>>name<<'.upper()<E!"), json!("VM1!"));
    // `#>` is applied before `$>`, so an env var in the arithmetic is not expanded.
    assert_eq!(sub("#>cpus*cpus<# MB"), json!("4 MB"));
}

#[test]
fn arithmetic_rules() {
    assert_eq!(sub("#>mem/cpus<#"), json!(512));
    assert_eq!(sub("#>mem-cpus<#"), json!(1022));
    assert_eq!(sub("#>ratio*cpus<#"), json!(5));
    // A falsy or missing def gives "" (and a warning).
    let d = defs();
    let env = DefsEnv::new(&d);
    assert_eq!(
        substitute_str("v=#>zero*cpus<#", &env).unwrap(),
        json!("v=")
    );
    assert_eq!(substitute_str("#>cpus * cpus<#", &env).unwrap(), json!(""));
    let w = env.take_warnings();
    assert_eq!(w.len(), 2);
    assert!(w[0].message.contains("invalid key zero"), "{}", w[0]);
    assert!(w[1].message.contains("invalid key cpus "), "{}", w[1]);
    // Evaluation errors become <eval-error:…> as in the original.
    assert_eq!(
        substitute_str("#>bad_num*cpus<#", &env).unwrap(),
        json!("<eval-error:name 'abc' is not defined>")
    );
}

#[test]
fn list_splices_in_arrays() {
    let d = defs();
    let env = DefsEnv::new(&d);
    let v = json!([
        "first",
        "[>list<]",
        " [>missing<] ",
        "[>csv<]",
        "[>name<]",
        "x [>list<]",
        3
    ]);
    let out = substitute_value(&v, &env).unwrap();
    assert_eq!(
        out,
        json!([
            "first",
            "a",
            "b",
            ["x", "y", "z"],
            ["vm1"],
            "x ['a', 'b']",
            3
        ])
    );
    // Spliced items are inserted as they are (not substituted).
    let d2 = json!({"l": [">>x<<"], "x": "y"})
        .as_object()
        .unwrap()
        .clone();
    let env2 = DefsEnv::new(&d2);
    assert_eq!(
        substitute_value(&json!(["[>l<]", ">>x<<"]), &env2).unwrap(),
        json!([">>x<<", "y"])
    );
}

#[test]
fn objects_keys_and_values() {
    let d = defs();
    let env = DefsEnv::new(&d);
    let v =
        json!({">>name<<_disk": "%>cpus<%", "nested": {"a": [">>ip<<"]}, "n": 5, "k%>cpus<%": 1});
    let out = substitute_value(&v, &env).unwrap();
    assert_eq!(
        out,
        json!({"vm1_disk": 2, "nested": {"a": ["10.0.0.5"]}, "n": 5, "k2": 1})
    );
    let typed_key = substitute_value(&json!({"%>cpus<%": 1}), &env).unwrap();
    assert_eq!(typed_key, json!({"2": 1}));
    let e = substitute_value(&json!({"%>list<%": 1}), &env).unwrap_err();
    assert!(e.to_string().contains("object key"), "{e}");
}

#[test]
fn secrets_and_hashes() {
    assert_eq!(sub("pw=|>images/linux:password<|"), json!("pw=S3cr3t-pw"));
    assert_eq!(
        sub("|>images/linux<|"),
        json!("{'username': 'root', 'password': 'S3cr3t-pw'}")
    );
    for (m, prefix) in [("1", "$1$"), ("5", "$5$"), ("6", "$6$")] {
        let h = sub(&format!("{m}>images/linux:password<{m}"));
        let h = h.as_str().unwrap();
        assert!(h.starts_with(prefix), "{h}");
        let ok = match m {
            "1" => pwhash::md5_crypt::verify("S3cr3t-pw", h),
            "5" => pwhash::sha256_crypt::verify("S3cr3t-pw", h),
            _ => pwhash::sha512_crypt::verify("S3cr3t-pw", h),
        };
        assert!(ok, "{h}");
    }
    // A missing secret in |>…<| is "" plus a warning naming the path.
    let d = defs();
    let st = store();
    let env = DefsEnv::new(&d).with_secrets(&st);
    assert_eq!(
        substitute_str("x|>images/none:password<|y", &env).unwrap(),
        json!("xy")
    );
    let w = env.take_warnings();
    assert!(w[0].message.contains("images/none"), "{}", w[0]);
    // … but hashing a missing secret is an error (the original hashed "").
    let e = substitute_str("6>images/linux:nokey<6", &env).unwrap_err();
    assert!(e.to_string().contains("nokey"), "{e}");
    // No store at all: secret markers are errors that say how to configure one.
    let bare = DefsEnv::new(&d);
    let e = substitute_str("|>images/linux:password<|", &bare).unwrap_err();
    assert!(e.to_string().contains("credential_source"), "{e}");
}

#[test]
fn secret_values_never_in_errors() {
    let d = json!({"pw": "x"}).as_object().unwrap().clone();
    let st = store();
    let env = DefsEnv::new(&d).with_secrets(&st);
    let e = substitute_str("E>'|>images/linux:password<|' + 1<E", &env).unwrap_err();
    let text = e.to_string();
    assert!(!text.contains("S3cr3t-pw"), "{text}");
    assert!(text.contains("***"), "{text}");
}

#[test]
fn expression_errors_carry_the_key_path() {
    let d = defs();
    let env = DefsEnv::new(&d);
    let e = substitute_value(&json!({"boot_command": ["ok", "E>lambda: 1<E"]}), &env).unwrap_err();
    assert_eq!(e.key(), "boot_command[1]");
    assert!(e.to_string().contains("lambda"), "{e}");
    let e = substitute_str("E>undefined_thing<E", &env).unwrap_err();
    assert!(e.to_string().contains("undefined_thing"), "{e}");
}

#[test]
fn expressions_replace_missing_markers() {
    let d = defs();
    let env = DefsEnv::new(&d);
    // A >>k<< that action 2 skipped (not a variable name) is filled by E> itself, and a
    // missing one becomes <MISSING:k>.
    assert_eq!(
        substitute_str("E>'>>a b<<'<E", &env).unwrap(),
        json!("<MISSING:a b>")
    );
}

#[test]
fn packer_vault_references() {
    let d = defs();
    let st = store();
    let env = DefsEnv::new(&d).with_secrets(&st);
    let v = json!({"ssh_password": "{{vault `images/linux` `password`}}",
                   "list": ["u={{ vault `images/linux` `username` }}", "{{vault `images/linux`  `username`}}!"],
                   "gone": "{{vault `images/x` `y`}}"});
    let out = resolve_packer_vault_refs(&v, &env).unwrap();
    assert_eq!(
        out,
        json!({"ssh_password": "S3cr3t-pw",
               "list": ["u={{ vault `images/linux` `username` }}", "root!"],
               "gone": ""})
    );
    let w = env.take_warnings();
    assert_eq!(w.len(), 1);
    assert!(
        w[0].message
            .starts_with("secret not found: images/x/y (secret path 'images/x' not"),
        "{}",
        w[0].message
    );
    let m = w[0].missing_secret.as_ref().unwrap();
    assert_eq!(m.marker, "{{vault `images/x` `y`}}");
    assert!(m.error.contains("images/x"), "{}", m.error);
    assert_eq!(w[0].key, "gone");
    // Without a store the references stay for Packer.
    let bare = DefsEnv::new(&d);
    assert_eq!(resolve_packer_vault_refs(&v, &bare).unwrap(), v);
    assert!(uses_secret_refs(&v));
    assert!(!uses_secret_refs(&json!({"a": ">>b<<"})));
}

#[test]
fn extract_all_is_line_based_and_non_greedy() {
    assert_eq!(extract_all("a>>x<<b>>y<<", ">>", "<<"), ["x", "y"]);
    assert_eq!(extract_all(">>x\n<<", ">>", "<<"), Vec::<String>::new());
    assert_eq!(extract_all(">>>x<<<<", ">>", "<<"), [">x"]);
    assert_eq!(extract_all("E>a<EE>b<E", "E>", "<E"), ["a", "b"]);
    assert!(is_var_name("a_b/c,d:e9"));
    assert!(!is_var_name("a b"));
    assert!(!is_var_name(""));
    assert!(!is_var_name("a-b"));
}

#[test]
fn unset_environment_variable_is_reported() {
    let d = defs();
    let env = DefsEnv::new(&d).with_env_vars(HashMap::new());
    assert_eq!(
        substitute_str("$>OSIMAGER_NOT_SET<$/current", &env).unwrap(),
        json!("/current")
    );
    let w = env.take_warnings();
    assert_eq!(w.len(), 1);
    assert!(
        w[0].message
            .starts_with("$>OSIMAGER_NOT_SET<$: environment variable OSIMAGER_NOT_SET is not set"),
        "{}",
        w[0].message
    );
}
