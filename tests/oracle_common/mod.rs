//! Shared by the oracle differential tests: set up the Python oracle (osimager 1.11.1), run it
//! over many cases (in-process `make_build` + `gen_files`, and its real `mkosimage` CLI), cache
//! its answers by a hash of every input, and compare them with osimager's ([`compare`]).
#![allow(dead_code)]

pub mod cli;
pub mod compare;
pub mod deviations;

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Tests in one binary share the process environment (HOME, XDG_*).
pub static ENV_LOCK: Mutex<()> = Mutex::new(());

/// The oracle's own driver: imports osimager and calls what `mkosimage -x/-u` calls
/// (`make_build`), then what a build calls to write the answer files (`gen_files`), for every
/// case, in one process. `make_index` is memoised per (platform, location) because it is a pure
/// function of the data files (and the only defs it reads are those two). Each case has its
/// own temp dir (`-m`), emptied after its files are read.
pub const ORACLE_PY: &str = r#"
import sys, json, io, os, shutil, contextlib
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
for c in job["cases"]:
    target, name, ip, defines, temp = c["target"], c["name"], c["ip"], c["defines"], c["temp"]
    argv = ['-m', temp] + (['-D', defines] if defines else []) + [target] + ([name] if name else []) + ([ip] if ip else [])
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
    if res["ok"]:
        fbuf = io.StringIO()
        with contextlib.redirect_stdout(fbuf):
            try:
                o.gen_files()
                res["files"] = {n: open(os.path.join(temp, n), "rb").read().decode("utf-8")
                                for n in sorted(os.listdir(temp))}
            except SystemExit as e:
                res["files_error"] = "exit %s" % e.code
            except Exception as e:
                res["files_error"] = str(e)
        res["files_stdout"] = fbuf.getvalue()
    shutil.rmtree(temp, ignore_errors=True)
    out.append(res)
json.dump(out, open(sys.argv[2], "w"))
"#;

pub fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn target_dir() -> PathBuf {
    super::support::target_dir()
}

/// The oracle's python: $OSIMAGER_ORACLE (a venv dir or a python), the tools venv
/// ($OSIMAGER_TOOLS_VENV), or a venv created under target/oracle-venv with
/// `pip install osimager==1.11.1`.
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
    if let Some(v) = std::env::var_os("OSIMAGER_TOOLS_VENV") {
        let py = PathBuf::from(v).join("bin/python");
        if ok(&py) {
            return py;
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

/// The oracle's `mkosimage` (next to its python).
pub fn oracle_mkosimage(py: &Path) -> PathBuf {
    py.parent().unwrap().join("mkosimage")
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

    /// A command with the scratch environment (and nothing of the caller's Vault or data dir).
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        for (k, v) in self.envs() {
            cmd.env(k, v);
        }
        cmd.env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env_remove("OSIMAGER_DATA_DIR")
            .env_remove("OSIMAGER_VENV_DIR")
            .env_remove("VENV_DIR");
        cmd
    }
}

/// One case: what `mkosimage [-m TEMP] [-D DEFINES] TARGET [NAME] [IP]` is given.
#[derive(serde::Serialize, Debug, Clone)]
pub struct Case {
    pub target: String,
    pub name: Option<String>,
    pub ip: Option<String>,
    pub defines: Option<String>,
    /// The build temp dir (the same path for both tools, so temp paths compare literally).
    pub temp: String,
}

impl Case {
    pub fn new(target: &str, name: Option<&str>, ip: Option<&str>, defines: Option<&str>) -> Case {
        Case {
            target: target.into(),
            name: name.map(str::to_string),
            ip: ip.map(str::to_string),
            defines: defines.map(str::to_string),
            temp: String::new(),
        }
    }

    /// The platform part of the target.
    pub fn platform(&self) -> &str {
        self.target.split('/').next().unwrap_or("")
    }
}

/// Give every case its own temp dir under the scratch temp (`c<index>`).
pub fn number_temps(sc: &Scratch, cases: &mut [Case]) {
    for (i, c) in cases.iter_mut().enumerate() {
        c.temp = sc.temp.join(format!("c{i}")).display().to_string();
    }
}

#[derive(serde::Deserialize, serde::Serialize, Debug, Clone, Default)]
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
    /// Generated files by name (when `make_build` succeeded and `gen_files` did too).
    #[serde(default)]
    pub files: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    pub files_error: Option<String>,
    #[serde(default)]
    pub files_stdout: String,
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

/// A cache key over everything that goes into an oracle run.
pub fn input_hash(parts: &[&[u8]], data: &Path, sc: &Scratch) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    hash_tree(&mut h, data);
    hash_tree(&mut h, &sc.user);
    h.update(sc.root.to_string_lossy().as_bytes());
    hex::encode(h.finalize())
}

/// Read a cached value (`target/oracle-cache/<key>.json`) or compute and store it.
pub fn cached<T: serde::Serialize + serde::de::DeserializeOwned>(
    key: &str,
    compute: impl FnOnce() -> T,
) -> T {
    let cache = target_dir().join("oracle-cache");
    std::fs::create_dir_all(&cache).unwrap();
    let file = cache.join(format!("{key}.json"));
    if let Ok(t) = std::fs::read_to_string(&file) {
        if let Ok(v) = serde_json::from_str::<T>(&t) {
            return v;
        }
    }
    let v = compute();
    std::fs::write(&file, serde_json::to_string(&v).unwrap()).unwrap();
    v
}

/// Run the oracle's `make_build` + `gen_files` over `cases` (numbered temps required), in two
/// processes; cached by a hash of every input.
pub fn run_oracle(py: &Path, data: &Path, sc: &Scratch, cases: &[Case]) -> Vec<OracleResult> {
    assert!(
        cases.iter().all(|c| !c.temp.is_empty()),
        "number_temps first"
    );
    let key = input_hash(
        &[
            ORACLE_PY.as_bytes(),
            serde_json::to_string(cases).unwrap().as_bytes(),
        ],
        data,
        sc,
    );
    cached(&key, || {
        let script = sc.root.join("oracle.py");
        std::fs::write(&script, ORACLE_PY).unwrap();
        let parts = 2usize;
        let chunk = cases.len().div_ceil(parts).max(1);
        let mut children = Vec::new();
        for (i, c) in cases.chunks(chunk).enumerate() {
            let job = sc.root.join(format!("job{i}.json"));
            let res = sc.root.join(format!("res{i}.json"));
            std::fs::write(&job, serde_json::json!({ "cases": c }).to_string()).unwrap();
            let mut cmd = sc.command(py);
            cmd.arg(&script).arg(&job).arg(&res);
            children.push((cmd.spawn().expect("running the oracle"), res));
        }
        let mut all = Vec::new();
        for (mut ch, res) in children {
            assert!(ch.wait().unwrap().success(), "oracle process failed");
            let v: Vec<OracleResult> =
                serde_json::from_str(&std::fs::read_to_string(&res).unwrap()).unwrap();
            all.extend(v);
        }
        all
    })
}

pub fn load_config(data: &Path) -> osimager::config::Config {
    osimager::config::Config::load(&osimager::config::ConfigOptions {
        data_dir: Some(data.to_path_buf()),
        ..Default::default()
    })
    .expect("config loads")
}

/// Run a CLI binary with the scratch environment.
pub fn run_cli(bin: &str, sc: &Scratch, args: &[&str]) -> std::process::Output {
    sc.command(Path::new(bin))
        .args(args)
        .output()
        .expect("running the CLI")
}
