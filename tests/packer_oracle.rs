//! The Packer engine against the ORIGINAL: for a sample of targets of osimager 1.11.1's bundled
//! data, the template written, the command line, the environment and the working directory of
//! `packer build` must equal what `mkosimage` produces. Both runs use the same scratch user
//! config (a test location, credential_source=config, a fake Packer that records what it was
//! given) and both read the oracle's bundled data. Paths of the two temp dirs and the random
//! build_id are normalized; OSImager's `. activate &&` shell prefix is compared with the
//! VIRTUAL_ENV/PATH we set ourselves. The one deliberate template deviation (docs/COMPAT.md,
//! "Packer engine"): when the local user is not the communicator's user, the ansible provisioner
//! gets `"user"` = the builder's `ssh_username`, so Ansible behind Packer's SSH proxy knows whom
//! it really runs as; the expected template is the oracle's with exactly that key added.

mod packer_support;
use packer_support::{build_with_config, run};

mod support;

use osimager::config::{Config, ConfigOptions, ResolveRequest};
use osimager::engine::packer::quirks::local_user_name;
use osimager::engine::packer::template::to_python_json;
use osimager::engine::packer::PackerContext;
use osimager::engine::BuildOptions;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGETS: &[&str] = &[
    "qemu/lab/debian-12.8-x86_64",
    "qemu/lab/rocky-9.5-x86_64",
    "qemu/lab/alpine-3.21-x86_64",
    "qemu/lab/ubuntu-22.04-x86_64",
    "virtualbox/lab/debian-12.8-x86_64",
];

fn oracle_data() -> PathBuf {
    let lib = support::tools_venv().join("lib");
    let py = std::fs::read_dir(&lib)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .expect("oracle venv has lib/python3.*");
    py.path().join("site-packages/osimager/data")
}

fn write_exec(p: &Path, body: &str) {
    std::fs::write(p, body).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Scratch user config shared by both implementations.
fn setup(s: &Path) {
    let cfg = s.join("cfg/osimager");
    std::fs::create_dir_all(cfg.join("locations")).unwrap();
    std::fs::create_dir_all(s.join("bin")).unwrap();
    std::fs::create_dir_all(s.join("home")).unwrap();
    // The original insists on mkisofs for cd_files; xorriso emulates it under that name.
    std::os::unix::fs::symlink("/usr/bin/xorriso", s.join("bin/mkisofs")).unwrap();
    // Records argv, cwd and environment next to the template it is given.
    write_exec(
        &s.join("bin/fake-packer"),
        "#!/bin/sh\n\
         if [ \"$1\" = version ]; then echo \"Packer v${FAKE_PACKER_VERSION:-1.11.2}\"; exit 0; fi\n\
         for last in \"$@\"; do :; done\n\
         out=\"$(dirname \"$last\")/packer-called\"\n\
         { echo \"ARGS=$*\"; echo \"CWD=$(pwd)\"; } > \"$out.args\"\n\
         env > \"$out.env\"\n",
    );
    std::fs::write(
        cfg.join("config.json"),
        format!(
            r#"{{"credential_source": "config", "iso_path": "{0}/iso", "packer_cache_dir": "{0}/cache", "packer_cmd": "{0}/bin/fake-packer"}}"#,
            s.display()
        ),
    )
    .unwrap();
    std::fs::write(
        cfg.join("locations/lab.json"),
        format!(
            r#"{{"defs": {{"domain": "lab.example", "cidr": "10.9.8.0/24",
                "dns": {{"servers": ["127.0.0.1"], "search": ["lab.example"]}},
                "ntp": {{"servers": ["127.0.0.1"]}}, "vms_path": "{}/vms"}}}}"#,
            s.display()
        ),
    )
    .unwrap();
    std::fs::write(
        cfg.join("secrets"),
        "images/linux username=builder password=Dummy-linux-1\n",
    )
    .unwrap();
    // Venvs the specs ask for, with an activate script shaped like the real one.
    for v in ["2.16", "2.17", "2.18"] {
        let dir = s.join("venvs").join(v);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(
            dir.join("bin/activate"),
            format!(
                "VIRTUAL_ENV={}\nexport VIRTUAL_ENV\nPATH=\"$VIRTUAL_ENV/bin:$PATH\"\nexport PATH\nunset PYTHONHOME\n",
                dir.display()
            ),
        )
        .unwrap();
    }
}

fn env_map(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !k.is_empty() {
                m.insert(k.to_string(), v.to_string());
            }
        }
    }
    // Shell bookkeeping of OSImager's extra `sh -c` layer.
    for k in ["_", "SHLVL", "OLDPWD", "PS1", "VIRTUAL_ENV_PROMPT"] {
        m.remove(k);
    }
    // OSImager puts the venv's bin in PATH twice (evars PATH, then activate); once is enough.
    if let Some(p) = m.get_mut("PATH") {
        let mut parts: Vec<&str> = Vec::new();
        for part in p.split(':') {
            if parts.last() != Some(&part) {
                parts.push(part);
            }
        }
        *p = parts.join(":");
    }
    m
}

fn normalize(text: &str, temp: &Path) -> String {
    let id = regex::Regex::new("packer-[0-9a-f]{12}").unwrap();
    // crypt() hashes carry a random salt.
    let crypt = regex::Regex::new(r"\$([156])\$[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]+").unwrap();
    let text = text.replace(&temp.display().to_string(), "<TEMP>");
    let text = id.replace_all(&text, "packer-<ID>");
    crypt
        .replace_all(&text, "$$${1}$$<SALT>$$<HASH>")
        .into_owned()
}

/// The oracle's template text with the Packer engine's deliberate deviation applied: every
/// ansible provisioner that goes through Packer's SSH proxy and names no `user` gets the builder's
/// `ssh_username` as written, unless that is already the user running the test.
fn with_ansible_user(oracle_template: &str) -> String {
    let mut t: serde_json::Value = serde_json::from_str(oracle_template).unwrap();
    let user = t["builders"][0]["ssh_username"].clone();
    let raw = user.as_str().expect("an ssh_username in the builder");
    // The scratch secrets make the communicator user `builder` (through {{ user `ssh-username` }}).
    assert_eq!(t["variables"]["ssh-username"], "builder", "{raw}");
    if local_user_name().as_deref() != Some("builder") {
        for p in t["provisioners"].as_array_mut().unwrap() {
            let p = p.as_object_mut().unwrap();
            let proxied = p["type"] == "ansible" && p.get("use_proxy") != Some(&false.into());
            if proxied && !p.contains_key("user") {
                p.insert("user".into(), user.clone());
            }
        }
    }
    to_python_json(&t)
}

struct Run {
    code: i32,
    stdout: String,
    /// The template written (every run writes one: a missing file is a failure, not "").
    template: String,
    /// argv+cwd and environment the recording Packer saw; None when Packer was not called
    /// (dry runs).
    args: Option<String>,
    env: Option<BTreeMap<String, String>>,
}

fn read_run(temp: &Path, name: &str, code: i32, stdout: String) -> Run {
    let tpl = temp.join(format!("{name}.json"));
    let template = std::fs::read_to_string(&tpl).unwrap_or_else(|e| {
        panic!(
            "no template {} (exit {code}, stdout {stdout:?}): {e}",
            tpl.display()
        )
    });
    let rd = |f: &str| std::fs::read_to_string(temp.join(f)).ok();
    Run {
        code,
        template: normalize(&template, temp),
        args: rd("packer-called.args").map(|a| normalize(&a, temp)),
        env: rd("packer-called.env").map(|e| env_map(&normalize(&e, temp))),
        stdout,
    }
}

fn oracle_run(s: &Path, target: &str, temp: &Path, dry: bool) -> Run {
    oracle_cmd("mkosimage", s, target, temp, dry)
}

fn oracle_cmd(bin: &str, s: &Path, target: &str, temp: &Path, dry: bool) -> Run {
    let mut cmd = Command::new(support::tool(bin));
    if dry {
        cmd.arg("-n");
    }
    let out = cmd
        // `--temp=DIR` in one word: rfosimage takes the first non-flag words as PLAN NAME IP.
        .arg("-k")
        .arg(format!("--temp={}", temp.display()))
        .args([target, "vm1", "10.9.8.20"])
        .output()
        .unwrap();
    let stdout = normalize(&String::from_utf8_lossy(&out.stdout), temp);
    let _ = s;
    read_run(temp, "vm1", out.status.code().unwrap_or(-1), stdout)
}

fn our_run(config: &Config, target: &str, temp: &Path, dry: bool) -> (Run, String) {
    let req = ResolveRequest {
        target: target.into(),
        name: Some("vm1".into()),
        ip: Some("10.9.8.20".into()),
        temp_dir: temp.to_path_buf(),
        ..Default::default()
    };
    let plan = config.resolve(&req).expect("our resolution succeeds");
    let opts = BuildOptions {
        keep: true,
        temp_dir: Some(temp.to_path_buf()),
        dry_run: dry,
        ..Default::default()
    };
    let report = build_with_config(config, &plan, &opts, false).expect("our build");
    let command = normalize(&report.command, temp);
    (read_run(temp, "vm1", 0, String::new()), command)
}

#[test]
fn packer_runs_match_mkosimage() {
    let scratch = tempfile::Builder::new()
        .prefix("pk-oracle-")
        .tempdir()
        .unwrap();
    let s = scratch.path();
    setup(s);
    // One test function: the environment below is process-wide.
    let path = format!(
        "{}/bin:{}",
        s.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::env::set_var("PATH", &path);
    std::env::set_var("HOME", s.join("home"));
    std::env::set_var("XDG_CONFIG_HOME", s.join("cfg"));
    std::env::set_var("XDG_DATA_HOME", s.join("data"));
    std::env::set_var("XDG_CACHE_HOME", s.join("cache"));
    std::env::set_var("OSIMAGER_VENV_DIR", s.join("venvs"));
    std::env::set_var("CHECKPOINT_DISABLE", "1");
    std::env::remove_var("VIRTUAL_ENV");

    let config = Config::load(&ConfigOptions {
        data_dir: Some(oracle_data()),
        ..Default::default()
    })
    .expect("config loads");

    for (i, target) in TARGETS.iter().enumerate() {
        // Dry run: the printed command.
        let ot = s.join(format!("o-dry-{i}"));
        let ut = s.join(format!("u-dry-{i}"));
        let o = oracle_run(s, target, &ot, true);
        assert_eq!(o.code, 0, "{target}: oracle -n failed:\n{}", o.stdout);
        let (u, command) = our_run(&config, target, &ut, true);
        let printed = o.stdout.lines().last().unwrap_or("").to_string();
        let venv = s.join("venvs/2.18");
        let expected = printed
            .strip_prefix(&format!(". {}/bin/activate && ", venv.display()))
            .or_else(|| {
                printed
                    .split_once("/bin/activate && ")
                    .map(|(_, rest)| rest)
            })
            .unwrap_or(&printed)
            .to_string();
        assert_eq!(command, expected, "{target}: -n command line");
        assert!(
            o.args.is_none() && u.args.is_none(),
            "{target}: -n must not call Packer"
        );
        assert!(
            u.template.contains("\"builders\""),
            "{target}: {}",
            u.template
        );
        assert_eq!(
            u.template,
            with_ansible_user(&o.template),
            "{target}: template written by -n"
        );

        // Real run with the recording Packer: argv, cwd, environment, template.
        let ot = s.join(format!("o-run-{i}"));
        let ut = s.join(format!("u-run-{i}"));
        let o = oracle_run(s, target, &ot, false);
        assert_eq!(o.code, 0, "{target}: oracle run failed:\n{}", o.stdout);
        let (u, _) = our_run(&config, target, &ut, false);
        let (Some(oargs), Some(uargs)) = (&o.args, &u.args) else {
            panic!(
                "{target}: packer not called (oracle: {}, ours: {})",
                o.args.is_some(),
                u.args.is_some()
            );
        };
        assert!(
            uargs.contains("ARGS=build ") && uargs.contains("CWD="),
            "{uargs}"
        );
        assert_eq!(uargs, oargs, "{target}: argv and cwd");
        assert_eq!(
            u.template,
            with_ansible_user(&o.template),
            "{target}: template"
        );
        let mut ours = u.env.clone().expect("our Packer environment recorded");
        // CHECKPOINT_DISABLE is set by the test for both; nothing else may differ.
        ours.remove("CHECKPOINT_DISABLE");
        let mut theirs = o
            .env
            .clone()
            .expect("the oracle's Packer environment recorded");
        theirs.remove("CHECKPOINT_DISABLE");
        assert!(
            ours.contains_key("PATH") && ours.contains_key("RES_OPTIONS"),
            "{ours:?}"
        );
        assert_eq!(ours, theirs, "{target}: packer environment");
    }

    // The environment deviation (docs/COMPAT.md): a Packer whose ansible proxy offers only an
    // ssh-rsa host key (before 1.10) gets the OpenSSH options that accept it; nothing else
    // changes. The oracle's virtualbox template has no key 1.6.6 refuses.
    let target = TARGETS[4];
    let o = oracle_run(s, target, &s.join("o-old"), false);
    std::env::set_var("FAKE_PACKER_VERSION", "1.6.6");
    let (u, _) = our_run(&config, target, &s.join("u-old-env"), false);
    std::env::remove_var("FAKE_PACKER_VERSION");
    assert_eq!(u.args, o.args, "{target} with Packer 1.6.6: argv and cwd");
    assert_eq!(
        u.template,
        with_ansible_user(&o.template),
        "{target}: template"
    );
    let mut ours = u.env.clone().expect("our Packer environment recorded");
    ours.remove("FAKE_PACKER_VERSION");
    assert_eq!(
        ours.remove("ANSIBLE_SSH_COMMON_ARGS").as_deref(),
        Some(osimager::engine::packer::command::SSH_RSA_OPTIONS)
    );
    let mut theirs = o
        .env
        .clone()
        .expect("the oracle's Packer environment recorded");
    for env in [&mut ours, &mut theirs] {
        env.remove("CHECKPOINT_DISABLE");
    }
    assert_eq!(
        ours, theirs,
        "{target} with Packer 1.6.6: packer environment"
    );

    // The oracle's qemu platform uses keys the installed Packer 1.6.6 cannot read: the real
    // Packer is refused up front, with the way out.
    let temp = s.join("u-old");
    let plan = config
        .resolve(&ResolveRequest {
            target: TARGETS[0].into(),
            name: Some("vm1".into()),
            ip: Some("10.9.8.20".into()),
            temp_dir: temp.clone(),
            ..Default::default()
        })
        .unwrap();
    let mut plan = plan;
    config.prepare(&mut plan).unwrap();
    let mut ctx = PackerContext::from_plan(
        &plan,
        &BuildOptions::default(),
        &osimager::engine::BuildContext::from_process(),
    );
    ctx.packer_cmd = "/usr/bin/packer".into();
    let err = run(&ctx, &plan, &BuildOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("Packer 1.6.6 (/usr/bin/packer) cannot read the qemu builder key(s)"),
        "{text}"
    );
    assert!(
        text.contains("cpu_model") && text.contains("--engine native"),
        "{text}"
    );
    assert!(!temp.exists());

    // rfosimage: the null builder keeping the communicator keys, through the same run.
    let ot = s.join("o-rf");
    let ut = s.join("u-rf");
    let o = oracle_cmd("rfosimage", s, TARGETS[0], &ot, false);
    assert_eq!(o.code, 0, "rfosimage failed:\n{}", o.stdout);
    let plan = config
        .resolve(&ResolveRequest {
            target: TARGETS[0].into(),
            name: Some("vm1".into()),
            ip: Some("10.9.8.20".into()),
            temp_dir: ut.clone(),
            ..Default::default()
        })
        .unwrap();
    let opts = BuildOptions {
        keep: true,
        temp_dir: Some(ut.clone()),
        ..Default::default()
    };
    build_with_config(&config, &plan, &opts, true).expect("our retrofit");
    let u = read_run(&ut, "vm1", 0, String::new());
    assert!(u.args.is_some(), "retrofit did not call Packer");
    assert_eq!(u.args, o.args, "retrofit argv and cwd");
    let mut ours: serde_json::Value = serde_json::from_str(&u.template).unwrap();
    let theirs: serde_json::Value = serde_json::from_str(&with_ansible_user(&o.template)).unwrap();
    // Deliberate fix: we keep the `communicator` key (OSImager dropped it).
    assert_eq!(ours["builders"][0]["type"], "null");
    assert_eq!(
        ours["builders"][0]
            .as_object_mut()
            .unwrap()
            .remove("communicator"),
        Some(serde_json::json!("ssh"))
    );
    assert_eq!(ours, theirs, "retrofit template");
    assert!(
        !ut.join("debian.seed").exists(),
        "retrofit generates no files"
    );
}
