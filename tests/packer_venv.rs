//! Ansible venv manager (`osimager venv` / `mkvenv`): listing and errors compared with the
//! original `mkvenv` on its bundled data, interpreter selection with stand-in interpreters, and
//! one real venv created from local wheels (no network: pip reads a local directory).

mod support;

use osimager::venv::{self, VenvContext, VenvError, VenvRequest};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn oracle_data() -> PathBuf {
    let lib = support::tools_venv().join("lib");
    let py = std::fs::read_dir(&lib)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .expect("oracle venv has lib/python3.*");
    py.path().join("site-packages/osimager/data")
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::Builder::new()
                .prefix("pk-venv-")
                .tempdir()
                .unwrap(),
        }
    }
    fn cfg(&self) -> PathBuf {
        self.dir.path().join("cfg")
    }
    fn venvs(&self) -> PathBuf {
        self.dir.path().join("venvs")
    }
    fn ctx(&self) -> VenvContext {
        VenvContext {
            venv_dir: self.venvs(),
            layers: vec![self.cfg().join("osimager"), oracle_data()],
            path_var: None,
        }
    }
    fn oracle(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(support::tool("mkvenv"))
            .args(args)
            .env("XDG_CONFIG_HOME", self.cfg())
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env("OSIMAGER_VENV_DIR", self.venvs())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

fn ours(ctx: &VenvContext, req: &VenvRequest) -> (i32, String) {
    let mut out = Vec::new();
    let code = match venv::run(ctx, req, &mut out) {
        Ok(()) => 0,
        Err(e) => {
            writeln!(out, "error: {e}").unwrap();
            1
        }
    };
    (code, String::from_utf8(out).unwrap())
}

#[test]
fn listing_matches_mkvenv() {
    let e = Env::new();
    // One venv "installed" so both states show.
    std::fs::create_dir_all(e.venvs().join("2.17/bin")).unwrap();
    std::fs::write(e.venvs().join("2.17/bin/activate"), "").unwrap();
    let (oc, oout) = e.oracle(&[]);
    let (c, out) = ours(&e.ctx(), &VenvRequest::default());
    assert_eq!((c, out.as_str()), (oc, oout.as_str()));
    assert!(out.contains("  2.17       installed\n"), "{out}");
}

#[test]
fn unknown_version_matches_mkvenv() {
    let e = Env::new();
    let req = VenvRequest {
        version: Some("9.9".into()),
        all: false,
    };
    let (oc, oout) = e.oracle(&["9.9"]);
    let (c, out) = ours(&e.ctx(), &req);
    assert_eq!((c, out.as_str()), (oc, oout.as_str()));
}

#[test]
fn existing_venv_is_left_alone_like_mkvenv() {
    let e = Env::new();
    std::fs::create_dir_all(e.venvs().join("2.18/bin")).unwrap();
    std::fs::write(e.venvs().join("2.18/bin/activate"), "").unwrap();
    let req = VenvRequest {
        version: Some("2.18".into()),
        all: false,
    };
    let (oc, oout) = e.oracle(&["2.18"]);
    let (c, out) = ours(&e.ctx(), &req);
    assert_eq!((c, out.as_str()), (oc, oout.as_str()));
}

fn fake_python(dir: &Path, name: &str, version: &str) {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\necho 'Python {version}'\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn interpreter_selection_and_commands() {
    let e = Env::new();
    let bin = e.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    fake_python(&bin, "python3.13", "3.13.1");
    fake_python(&bin, "python3.12", "3.12.4");
    fake_python(&bin, "python3", "3.9.18");
    let mut ctx = e.ctx();
    ctx.path_var = Some(bin.clone().into_os_string());

    // 2.16 wants 3.10..3.12: python3.13 is too new, python3.12 fits.
    let plan = ctx.create_plan("2.16").unwrap();
    let v = e.venvs().join("2.16");
    assert_eq!(plan.python, bin.join("python3.12"));
    assert_eq!(
        plan.commands,
        vec![
            vec![
                bin.join("python3.12").display().to_string(),
                "-m".into(),
                "venv".into(),
                v.display().to_string()
            ],
            vec![
                v.join("bin/pip").display().to_string(),
                "install".into(),
                "ansible-core==2.16.*".into()
            ],
        ]
    );
    // 2.12 wants 3.8..3.10: only the generic python3 (3.9) fits.
    assert_eq!(ctx.create_plan("2.12").unwrap().python, bin.join("python3"));
    // 2.18 has no maximum: the newest wins.
    assert_eq!(
        ctx.create_plan("2.18").unwrap().python,
        bin.join("python3.13")
    );
    // 2.9 needs Python 2.7: none here.
    let err = ctx.create_plan("2.9").unwrap_err();
    assert!(matches!(err, VenvError::NoPython { .. }));
    assert_eq!(
        err.to_string(),
        "no Python >= 2.7 and <= 2.7 found for ansible 2.9\n  \
         Install a compatible Python version and ensure it is in your PATH"
    );
}

/// A minimal pure-Python wheel (zip with METADATA/WHEEL/RECORD), so pip installs offline.
fn write_wheel(dir: &Path, name: &str, version: &str) {
    let py = format!(
        "import zipfile\n\
         n, v, d = '{name}', '{version}', r'{}'\n\
         di = f'{{n}}-{{v}}.dist-info'\n\
         files = {{f'{{n}}/__init__.py': 'VERSION = \"' + v + '\"\\n',\n\
                  f'{{di}}/METADATA': f'Metadata-Version: 2.1\\nName: {{n}}\\nVersion: {{v}}\\n',\n\
                  f'{{di}}/WHEEL': 'Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n'}}\n\
         with zipfile.ZipFile(f'{{d}}/{{n}}-{{v}}-py3-none-any.whl', 'w') as z:\n\
         \x20   for k, c in files.items(): z.writestr(k, c)\n\
         \x20   z.writestr(f'{{di}}/RECORD', ''.join(f'{{k}},,\\n' for k in files) + f'{{di}}/RECORD,,\\n')\n",
        dir.display()
    );
    let st = Command::new("python3").arg("-c").arg(py).status().unwrap();
    assert!(st.success());
}

/// Slow (ensurepip takes 10–30 s on a busy machine): runs with OSIMAGER_SLOW_TESTS=1 and in
/// CI (`CI=true` or OSIMAGER_E2E=1); otherwise skipped visibly.
#[test]
fn creates_a_real_venv_from_local_wheels() {
    if std::env::var("OSIMAGER_SLOW_TESTS").as_deref() != Ok("1") && !support::ci() {
        support::skip("slow: set OSIMAGER_SLOW_TESTS=1 to create a real venv");
        return;
    }
    let e = Env::new();
    let wheels = e.dir.path().join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    write_wheel(&wheels, "pkprereq", "1.0");
    write_wheel(&wheels, "pkansible", "7.1.3");
    let user = e.cfg().join("osimager");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(
        user.join("ansible.json"),
        r#"{"versions": [
            {"version": "7.1", "python_min": "3.8", "pkg": "pkansible", "requirements": ["pkprereq==1.0"]}
        ]}"#,
    )
    .unwrap();
    // pip reads only the local wheel directory (set before any other thread uses pip).
    std::env::set_var("PIP_NO_INDEX", "1");
    std::env::set_var("PIP_FIND_LINKS", &wheels);
    std::env::set_var("PIP_DISABLE_PIP_VERSION_CHECK", "1");
    let ctx = e.ctx();
    let req = VenvRequest {
        version: Some("7.1".into()),
        all: false,
    };
    let (c, out) = ours(&ctx, &req);
    assert_eq!(c, 0, "{out}");
    let v = e.venvs().join("7.1");
    assert!(
        out.contains("Installing prerequisite: pkprereq==1.0...\n"),
        "{out}"
    );
    assert!(out.contains("Installing pkansible==7.1.*...\n"), "{out}");
    assert!(
        out.ends_with(&format!("Venv 7.1 created at {}\n", v.display())),
        "{out}"
    );
    assert!(ctx.is_installed("7.1"));
    let got = Command::new(v.join("bin/python"))
        .args(["-c", "import pkansible, pkprereq; print(pkansible.VERSION)"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&got.stdout), "7.1.3\n");
}

#[test]
fn failed_install_removes_the_half_made_venv() {
    // A stand-in interpreter whose `-m venv DIR` makes a venv with a pip that always fails.
    let e = Env::new();
    let bin = e.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let p = bin.join("python3.20");
    std::fs::write(
        &p,
        "#!/bin/sh
         if [ \"$1\" = --version ]; then echo 'Python 3.20.0'; exit 0; fi
         mkdir -p \"$3/bin\" && : > \"$3/bin/activate\" && \
         printf '#!/bin/sh\\nexit 1\\n' > \"$3/bin/pip\" && chmod +x \"$3/bin/pip\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut ctx = e.ctx();
    ctx.path_var = Some(bin.into_os_string());
    let req = VenvRequest {
        version: Some("2.18".into()),
        all: false,
    };
    let (c, out) = ours(&ctx, &req);
    assert_eq!(c, 1, "{out}");
    assert!(
        out.contains(&format!(
            "error: failed to install ansible-core==2.18.* into {}",
            e.venvs().join("2.18").display()
        )),
        "{out}"
    );
    assert!(!e.venvs().join("2.18").exists());
}
