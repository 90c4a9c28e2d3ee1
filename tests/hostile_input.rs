//! The hostile-input corpus (tests/hostile/cases, written by tests/hostile/make-corpus.py):
//! malformed JSON and TOML of every syntax-error kind, wrong types for every builder key the
//! native engine reads, unknown platform / location / spec, include cycles, symlink loops,
//! paths escaping the data tree, non-UTF-8, huge files, FIFOs, bad boot commands and
//! durations, `E>` expressions and markers built to exhaust time or memory.
//!
//! Each case runs the real `osimager` binary on the base tree (tests/hostile/base) with the
//! case's files laid over it, in a child process with a wall-clock limit and an address-space
//! limit: it must end with the expected exit status and a message naming what is wrong — never
//! a panic, a signal, a hang or unbounded memory. Runs in CI (a few seconds).

use serde::Deserialize;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Wall-clock limit per case: a hang is a failure, not a slow test.
const CASE_LIMIT: Duration = Duration::from_secs(30);
/// Address-space limit per case (a debug build with its thread arenas needs well under this).
const MEMORY_LIMIT: u64 = 4 << 30;

#[derive(Deserialize)]
struct Case {
    about: String,
    args: Vec<String>,
    expect: Vec<String>,
    exit: i32,
    #[serde(default)]
    generate: Vec<Generate>,
}

#[derive(Deserialize)]
struct Generate {
    path: String,
    kind: String,
    #[serde(default)]
    bytes: usize,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copy a tree, keeping symlinks as symlinks (the corpus has loops and links outside).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type().unwrap();
        let _ = std::fs::remove_file(&dst);
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if ft.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

fn generate(user: &Path, g: &Generate) {
    let p = user.join(&g.path);
    let _ = std::fs::remove_file(&p);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    match g.kind.as_str() {
        "fifo" => {
            let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        }
        "huge" => {
            // Valid JSON all the way: the size alone must be refused.
            let mut text = String::from("{\"defs\": {\"pad\": \"");
            text.push_str(&"x".repeat(g.bytes));
            text.push_str("\"}}");
            std::fs::write(&p, text).unwrap();
        }
        other => panic!("unknown generate kind {other}"),
    }
}

struct Outcome {
    code: Option<i32>,
    signal: Option<i32>,
    output: String,
    elapsed: Duration,
    timed_out: bool,
}

fn run_case(dir: &Path, case: &Case) -> Outcome {
    let scratch = tempfile::Builder::new()
        .prefix("hostile-")
        .tempdir()
        .unwrap();
    let user = scratch.path().join("config/osimager");
    copy_tree(&repo().join("tests/hostile/base"), &user);
    // Cases made only of arguments or generated files have no tree (git keeps no empty dirs).
    if dir.join("tree").is_dir() {
        copy_tree(&dir.join("tree"), &user);
    }
    for g in &case.generate {
        generate(&user, g);
    }
    let secrets = user.join("secrets");
    std::fs::write(&secrets, "").unwrap();
    std::fs::set_permissions(
        &secrets,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let s = scratch.path();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_osimager"));
    cmd.arg("--data-dir")
        .arg(repo())
        .args(&case.args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", s.join("home"))
        .env("XDG_CONFIG_HOME", s.join("config"))
        .env("XDG_CACHE_HOME", s.join("cache"))
        .env("XDG_DATA_HOME", s.join("data"))
        .env("XDG_STATE_HOME", s.join("state"))
        .env("TMPDIR", s)
        .env("OSIMAGER_HOSTILE_OUT", s.join("out"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: MEMORY_LIMIT,
                rlim_max: MEMORY_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let t = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut o = Vec::new();
        let mut e = Vec::new();
        let t = std::thread::spawn(move || {
            let _ = out.read_to_end(&mut o);
            o
        });
        let _ = err.read_to_end(&mut e);
        let o = t.join().unwrap_or_default();
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&e),
            String::from_utf8_lossy(&o)
        )
    });
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > CASE_LIMIT {
            timed_out = true;
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = t.elapsed();
    let output = reader.join().unwrap_or_default();
    use std::os::unix::process::ExitStatusExt;
    Outcome {
        code: status.code(),
        signal: status.signal(),
        output,
        elapsed,
        timed_out,
    }
}

/// Problems with one case's outcome (empty = as expected).
fn check(case: &Case, o: &Outcome) -> Vec<String> {
    let mut bad = Vec::new();
    if o.timed_out {
        bad.push(format!("did not finish within {CASE_LIMIT:?}"));
    }
    if let Some(sig) = o.signal {
        bad.push(format!("killed by signal {sig} (crash or memory limit)"));
    }
    if o.code != Some(case.exit) {
        bad.push(format!("exit {:?}, expected {}", o.code, case.exit));
    }
    if o.output.contains("panicked") || o.output.contains("RUST_BACKTRACE") {
        bad.push("panicked".into());
    }
    for e in &case.expect {
        if !o.output.contains(e.as_str()) {
            bad.push(format!("message lacks {e:?}"));
        }
    }
    if case.exit != 0 && o.output.trim().is_empty() {
        bad.push("failed without a message".into());
    }
    bad
}

#[test]
fn base_tree_is_valid() {
    let case = Case {
        about: "the base tree".into(),
        args: vec![
            "build".into(),
            "-n".into(),
            "--engine".into(),
            "native".into(),
            "qemu/hostile/hos-1-x86_64".into(),
        ],
        expect: vec!["dry run: would build".into()],
        exit: 0,
        generate: Vec::new(),
    };
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir(empty.path().join("tree")).unwrap();
    let o = run_case(empty.path(), &case);
    assert!(check(&case, &o).is_empty(), "{}", o.output);
}

#[test]
fn hostile_corpus_ends_in_clean_errors() {
    let root = repo().join("tests/hostile/cases");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    let only = std::env::var("HOSTILE_CASE").ok();
    let (mut tried, mut errors, mut accepted) = (0, 0, 0);
    let mut slowest = (Duration::ZERO, String::new());
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let text = std::fs::read_to_string(dir.join("case.toml")).unwrap();
        let case: Case = toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let o = run_case(dir, &case);
        tried += 1;
        if o.elapsed > slowest.0 {
            slowest = (o.elapsed, name.clone());
        }
        let bad = check(&case, &o);
        if bad.is_empty() {
            if case.exit == 0 {
                accepted += 1;
            } else {
                errors += 1;
            }
        } else {
            failures.push(format!(
                "{name} ({}): {}\n    output: {}",
                case.about,
                bad.join("; "),
                o.output.trim().replace('\n', "\n            ")
            ));
        }
    }
    eprintln!(
        "hostile inputs: {tried} tried, {errors} clean errors, {accepted} accepted as valid, \
         {} wrong; slowest {:.2}s ({})",
        failures.len(),
        slowest.0.as_secs_f64(),
        slowest.1
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        only.is_some() || tried >= 100,
        "corpus missing? {tried} cases"
    );
}
