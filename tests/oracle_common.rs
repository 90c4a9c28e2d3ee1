//! Shared by the oracle differential tests: set up the Python oracle (osimager 1.11.1), run
//! it over many cases in one process (cached by input hash under target/), and compare with
//! the Rust resolution after normalising random parts (build_id, crypt salts, MAC addresses).
#![allow(dead_code)]

use osimager::config::pyjson::dumps_indent4;
use osimager::config::{resolve, Config, ConfigOptions, ResolveRequest};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Tests in one binary share the process environment (HOME, XDG_*).
pub static ENV_LOCK: Mutex<()> = Mutex::new(());

/// The oracle's own driver: imports osimager and calls what `mkosimage -x/-u` calls, for
/// every case, in one process. `make_index` is memoised per (platform, location) because it
/// is a pure function of the data files (and the only defs it reads are those two).
pub const ORACLE_PY: &str = r#"
import sys, json, io, contextlib
from osimager.core import OSImager
job = json.load(open(sys.argv[1]))
cache = {}
orig = OSImager.make_index
def cached(self):
    k = (self.defs.get('platform'), self.defs.get('location'))
    if k not in cache:
        cache[k] = orig(self)
    return cache[k]
OSImager.make_index = cached
out = []
for target, name, ip, defines in job["cases"]:
    argv = ['-m', job["temp"]] + (['-D', defines] if defines else []) + [target] + ([name] if name else []) + ([ip] if ip else [])
    buf = io.StringIO()
    res = {}
    with contextlib.redirect_stdout(buf):
        try:
            o = OSImager(argv=argv, which='full')
            o.make_build(target, name=o.name, ip=o.ip or "")
            res = {"ok": True, "defs": json.dumps(o.defs, indent=4), "build": json.dumps(o.build, indent=4)}
        except SystemExit as e:
            res = {"ok": False, "error": "exit %s" % e.code}
        except Exception as e:
            res = {"ok": False, "error": str(e)}
    res["stdout"] = buf.getvalue()
    out.append(res)
json.dump(out, open(sys.argv[2], "w"))
"#;

pub fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest().join("target"))
}

/// The oracle's python: $OSIMAGER_ORACLE (a venv dir or a python), /opt/osimager-venv, or a
/// venv created under target/oracle-venv with `pip install osimager==1.11.1`.
pub fn oracle_python() -> PathBuf {
    let ok = |py: &Path| {
        Command::new(py)
            .args(["-c", "import osimager.core"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if let Some(o) = std::env::var_os("OSIMAGER_ORACLE") {
        let p = PathBuf::from(o);
        let py = if p.is_dir() { p.join("bin/python") } else { p };
        assert!(
            ok(&py),
            "OSIMAGER_ORACLE={} cannot import osimager",
            py.display()
        );
        return py;
    }
    for cand in ["/opt/osimager-venv/bin/python"] {
        if ok(Path::new(cand)) {
            return cand.into();
        }
    }
    let venv = target_dir().join("oracle-venv");
    let py = venv.join("bin/python");
    if !ok(&py) {
        let st = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 -m venv");
        assert!(st.success(), "creating {}", venv.display());
        let st = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "osimager==1.11.1"])
            .status()
            .expect("pip install osimager==1.11.1");
        assert!(st.success(), "pip install osimager==1.11.1 failed");
    }
    py
}

/// The oracle package's bundled data directory.
pub fn oracle_data(py: &Path) -> PathBuf {
    let o = Command::new(py)
        .args([
            "-c",
            "import osimager,os;print(os.path.join(os.path.dirname(osimager.__file__),'data'))",
        ])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}

/// A scratch HOME/XDG layout.
pub struct Scratch {
    pub root: PathBuf,
    pub user: PathBuf,
    pub temp: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let root = target_dir().join("oracle-scratch").join(name);
        let _ = std::fs::remove_dir_all(&root);
        let user = root.join("xdg/osimager");
        std::fs::create_dir_all(user.join("locations")).unwrap();
        std::fs::create_dir_all(root.join("home")).unwrap();
        let temp = root.join("tmp");
        std::fs::create_dir_all(&temp).unwrap();
        Scratch { root, user, temp }
    }

    pub fn envs(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("HOME", self.root.join("home")),
            ("XDG_CONFIG_HOME", self.root.join("xdg")),
            ("XDG_DATA_HOME", self.root.join("data")),
            ("XDG_CACHE_HOME", self.root.join("cache")),
        ]
    }

    /// Apply to this process (callers hold ENV_LOCK).
    pub fn apply(&self) {
        for (k, v) in self.envs() {
            std::env::set_var(k, v);
        }
        std::env::remove_var("OSIMAGER_VENV_DIR");
        std::env::remove_var("VENV_DIR");
        std::env::remove_var("VAULT_ADDR");
        std::env::remove_var("VAULT_TOKEN");
    }
}

/// One case: target, name, ip, -D.
pub type Case = (String, Option<String>, Option<String>, Option<String>);

#[derive(serde::Deserialize, Debug, Clone)]
pub struct OracleResult {
    pub ok: bool,
    #[serde(default)]
    pub defs: String,
    #[serde(default)]
    pub build: String,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub stdout: String,
}

fn hash_tree(h: &mut Sha256, dir: &Path) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        h.update(p.to_string_lossy().as_bytes());
        if p.is_dir() {
            hash_tree(h, &p);
        } else if let Ok(b) = std::fs::read(&p) {
            h.update(&b);
        }
    }
}

/// Run the oracle over `cases` (cached under target/oracle-cache by a hash of everything that
/// goes in). Splits the work over two processes.
pub fn run_oracle(py: &Path, data: &Path, sc: &Scratch, cases: &[Case]) -> Vec<OracleResult> {
    let mut h = Sha256::new();
    h.update(ORACLE_PY.as_bytes());
    hash_tree(&mut h, data);
    hash_tree(&mut h, &sc.user);
    h.update(sc.root.to_string_lossy().as_bytes());
    h.update(serde_json::to_string(cases).unwrap().as_bytes());
    let key = hex::encode(h.finalize());
    let cache = target_dir().join("oracle-cache");
    std::fs::create_dir_all(&cache).unwrap();
    let file = cache.join(format!("{key}.json"));
    if let Ok(t) = std::fs::read_to_string(&file) {
        if let Ok(v) = serde_json::from_str::<Vec<OracleResult>>(&t) {
            return v;
        }
    }
    let script = sc.root.join("oracle.py");
    std::fs::write(&script, ORACLE_PY).unwrap();
    let parts = 2usize;
    let chunk = cases.len().div_ceil(parts).max(1);
    let mut children = Vec::new();
    for (i, c) in cases.chunks(chunk).enumerate() {
        let job = sc.root.join(format!("job{i}.json"));
        let res = sc.root.join(format!("res{i}.json"));
        let j = serde_json::json!({"cases": c, "temp": sc.temp});
        std::fs::write(&job, j.to_string()).unwrap();
        let mut cmd = Command::new(py);
        cmd.arg(&script).arg(&job).arg(&res);
        for (k, v) in sc.envs() {
            cmd.env(k, v);
        }
        cmd.env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env_remove("OSIMAGER_VENV_DIR")
            .env_remove("VENV_DIR");
        children.push((cmd.spawn().expect("running the oracle"), res));
    }
    let mut all = Vec::new();
    for (mut ch, res) in children {
        assert!(ch.wait().unwrap().success(), "oracle process failed");
        let v: Vec<OracleResult> =
            serde_json::from_str(&std::fs::read_to_string(&res).unwrap()).unwrap();
        all.extend(v);
    }
    std::fs::write(&file, serde_json::to_string(&all.iter().map(|r| serde_json::json!({"ok": r.ok, "defs": r.defs, "build": r.build, "error": r.error, "stdout": r.stdout})).collect::<Vec<_>>()).unwrap()).unwrap();
    all
}

/// Replace random parts: build ids, crypt salts+hashes, generated MACs.
pub fn normalize(s: &str) -> String {
    static RES: std::sync::OnceLock<[regex::Regex; 3]> = std::sync::OnceLock::new();
    let [re_id, re_crypt, re_mac] = RES.get_or_init(|| {
        [
            regex::Regex::new(r"packer-[0-9a-f]{12}").unwrap(),
            regex::Regex::new(r"\$(1|5|6)\$(rounds=\d+\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]+")
                .unwrap(),
            regex::Regex::new(r"mac=52:54:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}").unwrap(),
        ]
    });
    let s = re_id.replace_all(s, "packer-ID");
    let s = re_crypt.replace_all(&s, "$$$1$$SALT$$HASH");
    re_mac.replace_all(&s, "mac=MAC").into_owned()
}

/// Our result for one case: Ok((defs, build)) as Python-formatted JSON text, or the error.
pub fn ours(cfg: &Config, sc: &Scratch, case: &Case) -> Result<(String, String), String> {
    let req = ResolveRequest {
        target: case.0.clone(),
        name: case.1.clone(),
        ip: case.2.clone(),
        defines: case.3.clone().into_iter().collect(),
        fqdn: None,
        temp_dir: sc.temp.clone(),
        skip: false,
        build_id: None,
        require_secrets: false,
    };
    match resolve::resolve(cfg, &req) {
        Ok(r) => Ok((
            dumps_indent4(&serde_json::Value::Object(r.plan.defs.clone())),
            dumps_indent4(&r.build),
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Compare all cases (two threads, each with its own Config); returns (identical, total,
/// first mismatches).
pub fn compare(
    data: &Path,
    sc: &Scratch,
    cases: &[Case],
    oracle: &[OracleResult],
) -> (usize, usize, Vec<String>) {
    let half = cases.len().div_ceil(2).max(1);
    let results: Vec<(usize, Vec<String>)> = std::thread::scope(|s| {
        let hs: Vec<_> = cases
            .chunks(half)
            .zip(oracle.chunks(half))
            .map(|(c, o)| s.spawn(move || compare_part(&load_config(data), sc, c, o)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let same = results.iter().map(|r| r.0).sum();
    let diffs = results.into_iter().flat_map(|r| r.1).take(8).collect();
    (same, cases.len(), diffs)
}

fn compare_part(
    cfg: &Config,
    sc: &Scratch,
    cases: &[Case],
    oracle: &[OracleResult],
) -> (usize, Vec<String>) {
    let mut same = 0;
    let mut diffs = Vec::new();
    for (case, o) in cases.iter().zip(oracle) {
        let mine = ours(cfg, sc, case);
        let ok = match (&mine, o.ok) {
            (Ok((d, b)), true) => {
                normalize(d) == normalize(&o.defs) && normalize(b) == normalize(&o.build)
            }
            (Err(_), false) => true,
            _ => false,
        };
        if ok {
            same += 1;
        } else if diffs.len() < 5 {
            let detail = match (&mine, o.ok) {
                (Ok((d, b)), true) => first_diff(
                    &format!("{}\n{}", normalize(d), normalize(b)),
                    &format!("{}\n{}", normalize(&o.defs), normalize(&o.build)),
                ),
                (Ok(_), false) => format!(
                    "oracle failed ({}; stdout {:?}) but we resolved",
                    o.error, o.stdout
                ),
                (Err(e), true) => format!("we failed: {e}"),
                _ => String::new(),
            };
            diffs.push(format!("{:?}: {detail}", case));
        }
    }
    (same, diffs)
}

fn first_diff(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}: ours {x:?} oracle {y:?}", i + 1);
        }
    }
    format!(
        "length differs: ours {} lines, oracle {}",
        a.lines().count(),
        b.lines().count()
    )
}

pub fn load_config(data: &Path) -> Config {
    Config::load(&ConfigOptions {
        data_dir: Some(data.to_path_buf()),
        ..ConfigOptions::default()
    })
    .expect("config loads")
}

/// Run a CLI binary with the scratch environment.
pub fn run_cli(bin: &str, sc: &Scratch, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    for (k, v) in sc.envs() {
        cmd.env(k, v);
    }
    cmd.env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .env_remove("OSIMAGER_DATA_DIR");
    cmd.output().expect("running the CLI")
}
