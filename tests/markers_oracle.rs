//! Differential tests against the Python original (OSImager 1.11.1):
//! - every `E>…<E` expression in its bundled data, evaluated by our evaluator and by Python's
//!   `eval` over several sets of defs;
//! - `do_sub` itself on a corpus of values, compared with `substitute_value`.
//!
//! Needs the oracle: `python3 -m venv V && V/bin/pip install osimager==1.11.1`, then
//! `OSIMAGER_ORACLE_PYTHON=V/bin/python` (default: the tools venv's python,
//! `$OSIMAGER_TOOLS_VENV/bin/python`).

mod support;

use osimager::config::expr::{self, PyVal};
use osimager::config::markers::{extract_all, substitute_value, DefsEnv};
use osimager::config::secrets::{FileSecrets, SecretStore};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn oracle_python() -> PathBuf {
    let p = std::env::var_os("OSIMAGER_ORACLE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| support::tool("python"));
    let ok = Command::new(&p)
        .args(["-c", "import osimager.utils"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "the Python oracle is missing ({}): install it with \
         `python3 -m venv V && V/bin/pip install osimager==1.11.1` and set \
         OSIMAGER_ORACLE_PYTHON=V/bin/python",
        p.display()
    );
    p
}

fn run_python(script: &str, input: &Value, env: &[(&str, &str)]) -> Value {
    let mut cmd = Command::new(oracle_python());
    cmd.args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start the oracle python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("oracle JSON output")
}

fn data_dir() -> PathBuf {
    let out = Command::new(oracle_python())
        .args([
            "-c",
            "import osimager,os; print(os.path.join(os.path.dirname(osimager.__file__), 'data'))",
        ])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn json_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| json_strings(x, out)),
        Value::Object(m) => {
            for (k, x) in m {
                out.push(k.clone());
                json_strings(x, out);
            }
        }
        _ => {}
    }
}

/// Every E> token in the bundled data (JSON files decoded first, other files as text).
fn corpus_expressions() -> Vec<String> {
    let mut files = Vec::new();
    walk(&data_dir(), &mut files);
    files.sort();
    let mut exprs = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let mut texts = Vec::new();
        if f.extension().is_some_and(|e| e == "json") {
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                json_strings(&v, &mut texts);
            }
        } else {
            texts.push(text);
        }
        for t in texts {
            for tok in extract_all(&t, "E>", "<E") {
                if !exprs.contains(&tok) {
                    exprs.push(tok);
                }
            }
        }
    }
    exprs
}

fn def_sets() -> Vec<Map<String, Value>> {
    let base = json!({
        "ip": "10.1.2.3", "netmask": "255.255.255.0", "gateway": "10.1.2.254", "prefix": "24",
        "dns1": "10.1.2.1", "dns2": "10.1.2.2", "fqdn": "vm1.lab.test", "domain": "lab.test",
        "arch": "x86_64", "local_only": false, "iso_path": "/isos", "iso_name": "a.iso",
        "iso_url": "https://example.test/a.iso", "iso_checksum": "sha256:abc", "nic": "ens3",
        "vmnic": "", "version": "9.4", "minor": "4", "firmware": "efi", "platform": "qemu",
        "platform_name": "qemu", "platform_type": "qemu", "spec_name": "alma", "dist": "alma",
        "vm_storage_pool": "local-lvm", "iso_storage_pool": "local"
    });
    let variants = [
        json!({}),
        json!({"ip": "", "arch": "aarch64", "local_only": true, "firmware": "bios",
               "platform": "virtualbox", "nic": "", "iso_checksum": "", "minor": "10",
               "spec_name": "win11", "platform_name": "vmware", "platform_type": "vsphere-iso"}),
        json!({"ip": "dhcp", "arch": "i386", "platform": "vsphere", "dist": "proxmox-ve",
               "minor": "0", "platform_name": "vsphere"}),
        json!({"ip": "", "platform": "qemu", "dist": "proxmox-ve"}),
        json!({"ip": "", "platform": "proxmox", "arch": "riscv64"}),
        json!({"ip": "", "platform": "aws", "version": "12"}),
        // A def the expressions splice unquoted, left empty: a SyntaxError on both sides.
        json!({"local_only": ""}),
    ];
    variants
        .iter()
        .map(|v| {
            let mut d = base.as_object().unwrap().clone();
            for (k, x) in v.as_object().unwrap() {
                d.insert(k.clone(), x.clone());
            }
            d
        })
        .collect()
}

/// What `>>k<<` (action 2) does to the expression text before E> runs.
fn fill(expr: &str, defs: &Map<String, Value>) -> String {
    let mut out = expr.to_string();
    for k in extract_all(expr, ">>", "<<") {
        let v = defs
            .get(&k)
            .map(|v| PyVal::from_json(v).py_str())
            .unwrap_or_default();
        out = out.replace(&format!(">>{k}<<"), &v);
    }
    out
}

const PY_EVAL: &str = r#"
import json, os, sys
res = []
for src in json.load(sys.stdin):
    try:
        res.append({"ok": repr(eval(src, {"os": os}))})
    except Exception as e:
        res.append({"err": type(e).__name__})
print(json.dumps(res))
"#;

#[test]
fn every_bundled_expression_matches_python_eval() {
    let exprs = corpus_expressions();
    assert!(
        exprs.len() >= 40,
        "found only {} E> expressions",
        exprs.len()
    );
    let mut cases = Vec::new();
    for defs in def_sets() {
        for e in &exprs {
            let filled = fill(e, &defs);
            if !cases.contains(&filled) {
                cases.push(filled);
            }
        }
    }
    let want = run_python(PY_EVAL, &json!(cases), &[]);
    let want = want.as_array().unwrap();
    let mut failures = Vec::new();
    let mut errors = 0;
    for (src, w) in cases.iter().zip(want) {
        let got = expr::eval(src);
        match (w.get("ok").and_then(Value::as_str), &got) {
            (Some(repr), Ok(v)) if v.py_repr() == repr => {}
            (None, Err(_)) => errors += 1,
            _ => failures.push(format!("{src}\n  python: {w}\n  ours:   {got:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The empty unquoted local_only variant must have produced syntax errors on both sides.
    assert!(errors > 0);
    eprintln!(
        "{} evaluations agree ({} expressions, {} errors on both sides)",
        cases.len(),
        exprs.len(),
        errors
    );
}

const PY_DO_SUB: &str = r#"
import json, sys
from osimager.utils import do_sub
from osimager.core import OSImager
class Fake:
    debug = False
    def __init__(self, defs, secrets):
        self.defs = defs
        self.secrets = secrets
        self.vault = None
    get_secret = OSImager.get_secret
import contextlib
inp = json.load(sys.stdin)
fake = Fake(inp["defs"], inp["secrets"])
out = []
with contextlib.redirect_stdout(sys.stderr):
    for item in inp["items"]:
        try:
            out.append({"ok": do_sub(item, fake)})
        except Exception as e:
            out.append({"err": type(e).__name__})
print(json.dumps(out))
"#;

#[test]
fn do_sub_matches_the_original() {
    let defs = json!({
        "name": "vm1", "ip": "10.0.0.5", "cpus": 2, "mem": "1024", "zero": 0, "flag": true,
        "off": false, "nothing": null, "list": ["a", "b"], "csv": "x, y z", "ratio": 2.5,
        "iso_url": "https://example.test/isos/alma-9.iso", "dict": {"k": 1, "l": [1, "x"]},
        "ref": ">>name<<", "bad_num": "abc", "neg": "-3", "quote": "it's", "nested": [[1, 2], "s"],
        "arch": "x86_64", "minor": "7"
    });
    let secrets = json!({"images/linux": {"username": "root", "password": "S3cr3t-pw"}});
    let items = json!([
        "plain", "%>cpus<%", " %>list<% ", "%>flag<%", "%>dict<%", "%>nothing<%", "%>missing<%",
        "cpus=%>cpus<%", "l=>>list<<", "d=>>dict<<", "f=>>flag<< o=>>off<< r=>>ratio<<",
        "n=>>nothing<<.", "m=>>missing<<.", ">>cpus<<", ">>name<<>>ip<<", "a >>b c<< d",
        "x=%>'cpus'<%", "x=>>'cpus'<<", ">>name\n<< x", "a\n>>name<<\nb", "r=%>ref<%",
        "b=+>iso_url<+", "+>iso_url<+", "#>mem*cpus<#", "#>mem/cpus<#", "#>mem-cpus<#",
        "#>mem+cpus<#", "#>ratio*cpus<#", "v=#>zero*cpus<#", "#>cpus * cpus<#",
        "#>bad_num*cpus<#", "#>neg*cpus<#", "#>mem/zero<#", "h=$>OSI_TEST_VAR<$/y",
        "u=$>OSI_NOT_SET_VAR<$.", "$>OSI_TEST_VAR<$", "echo $>A-B<$",
        "pw=|>images/linux:password<|", "|>images/linux<|", "|>images/none:password<|",
        "x|>images/linux:nokey<|y", "|>images/linux:<|",
        "E>'>>name<<'.upper()<E!", "E>1 + 1<E", "E>None<E", "E>'a' if >>flag<< else 'b'<E",
        "E>{0:6,5:7,7:8}[int('>>minor<<')]<E", "E>(1, 2)<E", "x E>(1, 2)<E", "E>[1, 'a']<E",
        "E>{'a': (1, None)}<E", "v=E>'>>a b<<'<E", "E>'_64' if '>>arch<<' == 'x86_64' else ''<E",
        "E>'a'<EE>'b'<E", "E>' x' if 1 else ''<E and E>1.5<E", "E>'q\\'s'<E", "E>\"it's\"<E",
        "[>list<]", "[>csv<]", "[>missing<]", "[>cpus<]", "x [>list<]", "[>nested<]",
        "%>quote<% and >>quote<<", "l=>>nested<<", "k=%>dict<%", "%>name<%%>name<%",
        "a+b", "#>mem*missing<#", "E>'>>arch<<' == 'x86_64'<E", "E>>>cpus<< * 2<E",
        ">>name<< >>name<< %>name<%", "E>len('>>list<<')<E", "#>cpus<#", "#><#", "%><%",
        "+>'y'<+", "1>x y<1", "+>cpus<+", "+>nothing<+", "%>missing<% x", "E>'a\\nb'<E",
        "E>'x' + 1<E", "E>undefined_name<E", "[>'list'<]", "E>os.access('/proc/self', os.R_OK)<E", "E>'a' if '' else None<E", " [>list<] ",
        ["first", "[>list<]", " [>missing<] ", "[>csv<]", "[>name<]", "x [>list<]", 3, "[>nothing<]",
         "[>a<] [>b<]", "[>dict<]", [">>name<<", "[>list<]"]],
        {"l": "[>list<]", "e": "E>1 > 0<E", "s": "  >>cpus<<  ", ">>name<<": ">>name<<",
         "dup%>cpus<%": 1, "dup2": 2},
        {">>name<<_disk": "%>cpus<%", "nested": {"a": [">>ip<<"]}, "n": 5, "k%>cpus<%": 1,
         "%>cpus<%": "v", "%>flag<%": 1, "z": null, "t": true},
        [1.5, null, false, {"x": "%>list<%"}],
        {"[>list<]": 1}
    ]);
    let want = run_python(
        PY_DO_SUB,
        &json!({"defs": defs, "secrets": secrets, "items": items}),
        &[("OSI_TEST_VAR", "hello")],
    );
    let d = defs.as_object().unwrap().clone();
    let store = SecretStore::File(FileSecrets::parse(
        Path::new("secrets"),
        "images/linux username=root password=S3cr3t-pw\n",
    ));
    let env = DefsEnv::new(&d)
        .with_secrets(&store)
        .with_env_vars(HashMap::from([("OSI_TEST_VAR".into(), "hello".into())]));
    let mut failures = Vec::new();
    for (item, w) in items
        .as_array()
        .unwrap()
        .iter()
        .zip(want.as_array().unwrap())
    {
        match (substitute_value(item, &env), w.get("ok")) {
            (Ok(got), Some(ok)) if &got == ok => {}
            (Err(_), None) => {}
            got => failures.push(format!("{item}\n  python: {w}\n  ours:   {got:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
