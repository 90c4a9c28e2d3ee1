//! `pre_build` / `post_build` hooks.
//!
//! OSImager imports the hook (a Python file named by the spec or platform, resolved through the
//! data layers) into its own process and calls `run(imager)`; the hook reads and may change
//! `imager.defs`, `imager.config` (the builder block), `imager.variables`, `imager.evars`.
//! We are not a Python process, so a Python hook runs under `python3` through a small shim that
//! builds an object with those attributes from a JSON view, calls `run()` and writes the
//! attributes back as JSON; we apply what changed to the build. The behaviour around it is
//! OSImager's: the spec's hook runs before the platform's; an exception prints
//! `error: build script … failed: …` and the build goes on; `SystemExit` (a hook's way to say
//! "stop") aborts the build with its code; a missing script is a warning.
//!
//! Any other file is an *executable hook*: it is run as `HOOK VIEW.json RESULT.json` (the same JSON
//! view, plus `OSIMAGER_HOOK=pre_build|post_build` in its environment). A non-zero exit aborts the
//! build; if it writes RESULT.json (`{"defs":…,"config":…,"variables":…,"evars":…}`, any subset)
//! those sections replace the build's.
//!
//! Deliberate fix: OSImager substitutes markers before pre_build runs, so a hook that changes a
//! def (the bundled CoreOS hook repoints `defs.iso_url` at a customized ISO) has no effect on the
//! template. We carry a changed def into builder values that were exactly the def's old value.

use crate::plan::BuildPlan;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Which hook list to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookPhase {
    PreBuild,
    PostBuild,
}

impl HookPhase {
    pub fn name(self) -> &'static str {
        match self {
            HookPhase::PreBuild => "pre_build",
            HookPhase::PostBuild => "post_build",
        }
    }
}

/// A hook asked to stop the build (`SystemExit` in Python, non-zero exit for executables).
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{phase} hook {script} stopped the build (exit code {code}){}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Stopped {
        phase: &'static str,
        script: PathBuf,
        code: i32,
        message: Option<String>,
    },
    #[error("{phase} hook {script}: cannot run {program}: {source}. Install Python 3 (python3 in PATH) to run Python build hooks")]
    Spawn {
        phase: &'static str,
        script: PathBuf,
        program: String,
        source: std::io::Error,
    },
    #[error("{phase} hook {script}: {what}")]
    Protocol {
        phase: &'static str,
        script: PathBuf,
        what: String,
    },
}

/// The hook scripts named by `value` (a string, or a list of strings — spec's first, then the
/// platform's, as OSImager runs them).
pub fn hook_scripts(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// What the hook sees: OSImager attribute names.
pub fn hook_view(plan: &BuildPlan, settings: &Map<String, Value>, verbose: bool) -> Value {
    json!({
        "defs": plan.defs,
        "config": plan.builder,
        "variables": plan.variables,
        "evars": plan.evars,
        "provisioners": plan.provisioners,
        "settings": settings,
        "spec": {"name": plan.spec},
        "platform": {"name": plan.platform},
        "target": plan.target,
        "temp_dir": plan.defs.get("temp_dir").cloned().unwrap_or(Value::Null),
        "verbose": verbose,
        "debug": false,
    })
}

const SHIM: &str = r#"
import importlib.util, json, sys
view_path, result_path, script = sys.argv[1], sys.argv[2], sys.argv[3]
with open(view_path) as f:
    view = json.load(f)
class Imager:
    pass
im = Imager()
for k, v in view.items():
    setattr(im, k, v)
im.build = {"variables": im.variables, "provisioners": im.provisioners, "builders": [im.config]}
result = {"status": "ok"}
try:
    spec = importlib.util.spec_from_file_location("build_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if hasattr(module, "run"):
        module.run(im)
    else:
        print(f"warning: build script {script} has no run() function")
except SystemExit as e:
    code = e.code
    if code is None:
        result = {"status": "exit", "code": 1, "message": None}
    elif isinstance(code, int):
        result = {"status": "exit", "code": code, "message": None}
    else:
        result = {"status": "exit", "code": 1, "message": str(code)}
except Exception as e:
    print(f"error: build script {script} failed: {e}")
    result = {"status": "error"}
sys.stdout.flush()
result.update({"defs": im.defs, "config": im.config, "variables": im.variables, "evars": im.evars})
with open(result_path, "w") as f:
    json.dump(result, f, default=str)
"#;

/// Run every hook of `phase` named by the plan, applying their changes to `plan`.
/// `resolve` finds a script through the data layers (user dir first, then bundled data).
pub fn run_hooks(
    phase: HookPhase,
    plan: &mut BuildPlan,
    settings: &Map<String, Value>,
    verbose: bool,
    work_dir: &Path,
    resolve: &dyn Fn(&str) -> Option<PathBuf>,
    out: &dyn Fn(&str),
) -> Result<(), HookError> {
    let field = match phase {
        HookPhase::PreBuild => plan.pre_build.clone(),
        HookPhase::PostBuild => plan.post_build.clone(),
    };
    for name in hook_scripts(field.as_ref()) {
        let Some(script) = resolve(&name) else {
            out(&format!("warning: build script not found: {name}"));
            continue;
        };
        if verbose {
            out(&format!("Running build script: {}", script.display()));
        }
        let view = hook_view(plan, settings, verbose);
        if let Some(result) = run_one(phase, &script, &view, work_dir, out)? {
            apply(plan, &result);
        }
    }
    Ok(())
}

fn run_one(
    phase: HookPhase,
    script: &Path,
    view: &Value,
    work_dir: &Path,
    out: &dyn Fn(&str),
) -> Result<Option<Value>, HookError> {
    let protocol = |what: String| HookError::Protocol {
        phase: phase.name(),
        script: script.to_path_buf(),
        what,
    };
    let dir = tempfile::Builder::new()
        .prefix("osimager-hook-")
        .tempdir()
        .map_err(|e| protocol(format!("cannot create a scratch directory: {e}")))?;
    let view_path = dir.path().join("view.json");
    let result_path = dir.path().join("result.json");
    std::fs::write(&view_path, view.to_string())
        .map_err(|e| protocol(format!("cannot write {}: {e}", view_path.display())))?;
    let python = script.extension().is_some_and(|e| e == "py");
    let (program, mut cmd) = if python {
        let mut c = Command::new("python3");
        c.arg("-c")
            .arg(SHIM)
            .arg(&view_path)
            .arg(&result_path)
            .arg(script);
        ("python3".to_string(), c)
    } else {
        let mut c = Command::new(script);
        c.arg(&view_path).arg(&result_path);
        (script.display().to_string(), c)
    };
    cmd.current_dir(work_dir).env("OSIMAGER_HOOK", phase.name());
    // The script's output is part of the build's account (as it was on mkosimage's stdout).
    let output = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| HookError::Spawn {
            phase: phase.name(),
            script: script.to_path_buf(),
            program,
            source,
        })?;
    for line in String::from_utf8_lossy(&output.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&output.stderr).lines())
    {
        out(line);
    }
    let status = output.status;
    let result: Option<Value> = std::fs::read_to_string(&result_path)
        .ok()
        .map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|e| protocol(format!("unreadable result JSON: {e}")))?;
    if !status.success() {
        let what = if python {
            "the Python hook shim failed (see the Python error above)".to_string()
        } else {
            String::new()
        };
        return Err(HookError::Stopped {
            phase: phase.name(),
            script: script.to_path_buf(),
            code: status.code().unwrap_or(1),
            message: (!what.is_empty()).then_some(what),
        });
    }
    if let Some(r) = &result {
        if r.get("status").and_then(Value::as_str) == Some("exit") {
            return Err(HookError::Stopped {
                phase: phase.name(),
                script: script.to_path_buf(),
                code: r.get("code").and_then(Value::as_i64).unwrap_or(1) as i32,
                message: r.get("message").and_then(Value::as_str).map(str::to_string),
            });
        }
    }
    Ok(result)
}

/// Apply a hook's result (`defs`, `config`, `variables`, `evars`; any subset) to the plan.
pub fn apply(plan: &mut BuildPlan, result: &Value) {
    if let Some(Value::Object(c)) = result.get("config") {
        plan.builder = c.clone();
    }
    if let Some(Value::Object(new_defs)) = result.get("defs") {
        for (k, new) in new_defs {
            let old = plan.defs.get(k);
            if old == Some(new) {
                continue;
            }
            if let (Some(Value::String(old_s)), Value::String(_)) = (old, new) {
                if !old_s.is_empty() {
                    for v in plan.builder.values_mut() {
                        if v.as_str() == Some(old_s.as_str()) {
                            *v = new.clone();
                        }
                    }
                }
            }
        }
        plan.defs = new_defs.clone();
    }
    if let Some(Value::Object(v)) = result.get("variables") {
        plan.variables = v.clone();
    }
    if let Some(Value::Object(e)) = result.get("evars") {
        plan.evars = e.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_from_string_or_list() {
        assert_eq!(hook_scripts(Some(&json!("a.py"))), vec!["a.py"]);
        assert_eq!(
            hook_scripts(Some(&json!(["a.py", "", "b"]))),
            vec!["a.py", "b"]
        );
        assert!(hook_scripts(None).is_empty());
    }

    #[test]
    fn changed_def_follows_into_builder() {
        let mut plan = BuildPlan::default();
        plan.defs.insert("iso_url".into(), json!("http://x/a.iso"));
        plan.builder
            .insert("iso_url".into(), json!("http://x/a.iso"));
        plan.builder.insert("other".into(), json!("keep"));
        let mut defs = plan.defs.clone();
        defs.insert("iso_url".into(), json!("file:///tmp/b.iso"));
        apply(&mut plan, &json!({"defs": defs}));
        assert_eq!(plan.builder["iso_url"], "file:///tmp/b.iso");
        assert_eq!(plan.builder["other"], "keep");
    }
}
