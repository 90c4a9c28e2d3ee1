//! CLI against CLI: `mkosimage -x` / `-u` (the original's own entry point, one process per
//! case) against `osimager defs` / `dump`, compared on exit status, stdout and stderr.

use super::compare::{normalize, oracle_diags, our_diags, Outcome};
use super::{cached, input_hash, Case, Scratch};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One CLI comparison: the case, and `dump` (`-u`) or `defs` (`-x`).
#[derive(serde::Serialize, Debug, Clone)]
pub struct CliCase {
    pub case: Case,
    pub dump: bool,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Default)]
pub struct CliRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

fn tail_args(c: &Case) -> Vec<String> {
    let mut a = vec!["-m".to_string(), c.temp.clone()];
    if let Some(d) = &c.defines {
        a.extend(["-D".to_string(), d.clone()]);
    }
    a.push(c.target.clone());
    a.extend(c.name.clone());
    a.extend(c.ip.clone());
    a
}

/// Run `f` over `items` on two worker threads, keeping the order.
fn par<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= items.len() {
                            return mine;
                        }
                        mine.push((i, f(&items[i])));
                    }
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

fn run(cmd: &mut std::process::Command) -> CliRun {
    let o = cmd.output().expect("running a CLI");
    CliRun {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// `mkosimage [-x|-u] -m TEMP [-D …] TARGET NAME IP` for every case (two at a time; cached by
/// a hash of every input).
pub fn oracle_cli(mkosimage: &Path, data: &Path, sc: &Scratch, cases: &[CliCase]) -> Vec<CliRun> {
    let key = input_hash(
        &[
            b"cli-v1",
            mkosimage.to_string_lossy().as_bytes(),
            serde_json::to_string(cases).unwrap().as_bytes(),
        ],
        data,
        sc,
    );
    cached(&key, || {
        par(cases, |c| {
            let mut cmd = sc.command(mkosimage);
            cmd.arg(if c.dump { "-u" } else { "-x" })
                .args(tail_args(&c.case));
            let r = run(&mut cmd);
            let _ = std::fs::remove_dir_all(&c.case.temp);
            r
        })
    })
}

/// `osimager --data-dir DATA defs|dump -m TEMP [-D …] TARGET NAME IP` for every case.
pub fn our_cli(bin: &str, data: &Path, sc: &Scratch, cases: &[CliCase]) -> Vec<CliRun> {
    par(cases, |c| {
        let mut cmd = sc.command(Path::new(bin));
        cmd.arg("--data-dir")
            .arg(data)
            .arg(if c.dump { "dump" } else { "defs" })
            .args(tail_args(&c.case));
        let r = run(&mut cmd);
        let _ = std::fs::remove_dir_all(&c.case.temp);
        r
    })
}

/// The original prints its notices and warnings, then the JSON (from the first line that is
/// `{`), on stdout.
fn split_oracle_stdout(s: &str) -> (&str, &str) {
    match s
        .find("\n{")
        .map(|i| i + 1)
        .or_else(|| s.starts_with('{').then_some(0))
    {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

/// Compare one CLI run pair. Deviations: COMPAT-1 (diagnostics on stderr), COMPAT-3
/// (warnings say where, undefined defs reported); refusals by what was refused (COMPAT-2).
pub fn compare_cli(o: &CliRun, ours: &CliRun) -> Outcome {
    match (o.code, ours.code) {
        (0, 0) => {}
        (a, b) if a != 0 && b != 0 => {
            if a != 1 || b != 1 {
                return Outcome::Mismatch(format!("exit status: ours {b}, oracle {a}"));
            }
            if !ours.stdout.is_empty() {
                return Outcome::Mismatch(format!("error with stdout {:?}", ours.stdout));
            }
            if !ours.stderr.starts_with("error: ") {
                return Outcome::Mismatch(format!("error not on stderr: {:?}", ours.stderr));
            }
            return super::compare::compare_refusals(&ours.stderr, &o.stdout);
        }
        (a, b) => {
            return Outcome::Mismatch(format!(
                "exit status: ours {b} ({}), oracle {a} ({})",
                ours.stderr.trim(),
                o.stdout.trim()
            ))
        }
    }
    let (diag, json) = split_oracle_stdout(&o.stdout);
    if json.is_empty() {
        return Outcome::Mismatch(format!("no JSON in the oracle's stdout: {:?}", o.stdout));
    }
    let (a, b) = (normalize(&ours.stdout), normalize(json));
    if a != b {
        return Outcome::Mismatch(format!(
            "stdout JSON: {}",
            super::compare::first_diff(&a, &b)
        ));
    }
    let (theirs, error_level) = match oracle_diags(diag) {
        Ok(v) => v,
        Err(l) => return Outcome::Mismatch(format!("unexpected oracle stdout line {l:?}")),
    };
    // Our stderr: notices as they are, warnings after `warning: `.
    let (mut notices, mut warnings) = (Vec::new(), Vec::new());
    for l in ours.stderr.lines().filter(|l| !l.trim().is_empty()) {
        match l.strip_prefix("warning: ") {
            Some(w) => warnings.push(w.to_string()),
            None => notices.push(l.to_string()),
        }
    }
    let (mine, compat3, compat11) = our_diags(&notices, &warnings);
    if mine != theirs {
        return Outcome::Mismatch(format!(
            "diagnostics differ: our stderr {mine:?}, oracle stdout {theirs:?}"
        ));
    }
    let mut ids = BTreeSet::new();
    if !diag.trim().is_empty() {
        ids.insert("COMPAT-1");
    }
    if compat3 || error_level {
        ids.insert("COMPAT-3");
    }
    if compat11 {
        ids.insert("COMPAT-11");
    }
    if ids.is_empty() {
        Outcome::Identical
    } else {
        Outcome::Deviates(ids)
    }
}
