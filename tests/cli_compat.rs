//! CLI behaviour: argv[0] dispatch, mkosimage flags, config set/show, completions, redaction
//! and actionable errors. Uses the Python original's bundled data as the data tree.

mod oracle_common;
mod support;
use oracle_common::*;

fn setup(name: &str) -> (Scratch, String) {
    let py = oracle_python();
    let data = oracle_data(&py).to_string_lossy().into_owned();
    let sc = Scratch::new(name);
    std::fs::write(
        sc.user.join("locations/lab.json"),
        r#"{"platforms": ["qemu"], "defs": {"domain": "lab.test", "cidr": "10.1.0.0/24", "vms_path": "/tmp/vms"}}"#,
    )
    .unwrap();
    std::fs::write(
        sc.user.join("secrets"),
        "images/linux username=root password=Sup3rSecretPw\n",
    )
    .unwrap();
    (sc, data)
}

fn text(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn mkosimage_names_and_flags() {
    let (sc, data) = setup("cli-mk");
    let bin = env!("CARGO_BIN_EXE_osimager");
    // argv[0] dispatch through a symlink named mkosimage.
    let link = sc.root.join("mkosimage");
    std::os::unix::fs::symlink(bin, &link).unwrap();
    let l = link.to_str().unwrap();
    let o = run_cli(
        l,
        &sc,
        &["--data-dir", &data, "--set", "credential_source=config"],
    );
    assert!(o.status.success(), "{:?}", text(&o));
    let saved = std::fs::read_to_string(sc.user.join("config.json")).unwrap();
    assert!(
        saved.contains("\"credential_source\": \"config\""),
        "{saved}"
    );
    let o = run_cli(l, &sc, &["--data-dir", &data, "--set", "bogus=1"]);
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("invalid setting key: bogus"),
        "{:?}",
        text(&o)
    );
    let o = run_cli(l, &sc, &["--data-dir", &data, "-l", "--arch", "aarch64"]);
    let (out, _) = text(&o);
    assert!(out.starts_with("Available specs:\n"));
    let listed: Vec<&str> = out.lines().skip(1).collect();
    // The oracle's data has aarch64 targets of many distributions: an empty or short listing
    // is a failure, not a vacuous pass.
    assert!(listed.len() >= 50, "aarch64 listing too short: {out}");
    assert!(
        listed.iter().all(|l| l.trim_start().ends_with("-aarch64")),
        "{out}"
    );
    for t in [
        "  debian-12.8-aarch64",
        "  rocky-9.5-aarch64",
        "  alma-8.4-aarch64",
    ] {
        assert!(listed.contains(&t), "{t} missing: {out}");
    }
    let o = run_cli(
        l,
        &sc,
        &[
            "--data-dir",
            &data,
            "-u",
            "qemu/lab/rhel-9.4-x86_64",
            "h",
            "10.1.0.5",
        ],
    );
    let (out, _) = text(&o);
    assert!(
        out.starts_with("warning: removing empty value for:"),
        "{out}"
    );
    assert!(out.contains("\"builders\""));
    // The [[bin]] target behaves the same.
    let mk = std::path::Path::new(bin).with_file_name("mkosimage");
    if mk.exists() {
        let o = run_cli(
            mk.to_str().unwrap(),
            &sc,
            &["--data-dir", &data, "--show-config"],
        );
        assert!(text(&o).0.contains("credential_source    = config"));
    }
}

#[test]
fn osimager_commands_and_errors() {
    let (sc, data) = setup("cli-os");
    let bin = env!("CARGO_BIN_EXE_osimager");
    let run = |args: &[&str]| {
        let mut a = vec!["--data-dir", data.as_str()];
        a.extend_from_slice(args);
        text(&run_cli(bin, &sc, &a))
    };
    let (_, err) = run(&["config", "set", "credential_source=config", "memory=4096"]);
    assert!(err.contains("saved"), "{err}");
    let (out, _) = run(&["config", "show"]);
    assert!(out.contains("memory               = 4096"), "{out}");
    // dump --redact hides secret values; without it they are there.
    let (out, _) = run(&["dump", "qemu/lab/rhel-9.4-x86_64", "h", "10.1.0.5"]);
    assert!(out.contains("Sup3rSecretPw"));
    let (out, _) = run(&[
        "dump",
        "qemu/lab/rhel-9.4-x86_64",
        "h",
        "10.1.0.5",
        "--redact",
    ]);
    assert!(
        !out.contains("Sup3rSecretPw") && out.contains("***"),
        "{out}"
    );
    // Actionable errors.
    let (_, err) = run(&["defs", "qemu/lab/rhel-9.44-x86_64", "h", "10.1.0.5"]);
    assert!(
        err.contains("unknown target 'rhel-9.44-x86_64'") && err.contains("rhel-9.4-x86_64"),
        "{err}"
    );
    let (_, err) = run(&["defs", "qemux/lab/rhel-9.4-x86_64"]);
    assert!(
        err.contains("valid platforms:") && err.contains("qemu"),
        "{err}"
    );
    let (_, err) = run(&["defs", "qemu/nolab/rhel-9.4-x86_64"]);
    assert!(
        err.contains("unknown location 'nolab'") && err.contains("lab"),
        "{err}"
    );
    let (_, err) = run(&["defs", "vmware/lab/rhel-9.4-x86_64", "h", "10.1.0.5"]);
    assert!(
        err.contains("location lab does not support platform vmware")
            && err.contains("allowed platforms: qemu"),
        "{err}"
    );
    // Completions.
    let (out, _) = run(&["completions", "bash"]);
    assert!(out.contains("osimager"));
    let (out, _) = run(&["list", "--latest", "rhel"]);
    assert!(out.starts_with("Latest specs:\n  rhel-latest-"), "{out}");
}

/// `dump`/`defs` write nothing to the build's temp dir: without `-m` they name a fresh one
/// (`$TMPDIR/tmpXXXXXX`, as a build would get) and create nothing; with `-m DIR` the dir is
/// created and named, as before.
#[test]
fn dump_names_a_temp_dir_without_creating_it() {
    let (sc, data) = setup("cli-dump-tmp");
    let bin = env!("CARGO_BIN_EXE_osimager");
    let tmpdir = sc.root.join("tmpdir");
    std::fs::create_dir_all(&tmpdir).unwrap();
    let run = |args: &[&str]| {
        let mut cmd = sc.command(std::path::Path::new(bin));
        cmd.env("TMPDIR", &tmpdir)
            .args(["--data-dir", data.as_str()])
            .args(["config", "set", "credential_source=config"]);
        assert!(cmd.output().unwrap().status.success());
        let mut cmd = sc.command(std::path::Path::new(bin));
        let o = cmd
            .env("TMPDIR", &tmpdir)
            .args(["--data-dir", data.as_str()])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{:?}", text(&o));
        text(&o).0
    };
    let target = ["qemu/lab/rhel-9.4-x86_64", "h", "10.1.0.5"];
    let out = run(&[&["dump"][..], &target[..]].concat());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cd = v["builders"][0]["cd_files"].as_str().unwrap().to_string();
    let named = std::path::Path::new(&cd).parent().unwrap();
    let leaf = named.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(named.parent().unwrap(), tmpdir, "{cd}");
    assert!(
        leaf.len() == 9
            && leaf.starts_with("tmp")
            && leaf[3..].chars().all(|c| c.is_ascii_alphanumeric()),
        "{cd}"
    );
    assert!(!named.exists(), "{cd}");
    assert_eq!(std::fs::read_dir(&tmpdir).unwrap().count(), 0);
    // Two runs name two dirs.
    let again = run(&[&["dump"][..], &target[..]].concat());
    assert_ne!(out, again);
    // defs as well.
    let defs = run(&[&["defs"][..], &target[..]].concat());
    assert!(
        defs.contains(&tmpdir.to_string_lossy().into_owned()),
        "{defs}"
    );
    assert_eq!(std::fs::read_dir(&tmpdir).unwrap().count(), 0);
    // -m DIR: created and named.
    let m = sc.root.join("m/build");
    let m_str = m.to_string_lossy().into_owned();
    let out = run(&[&["dump", "-m", m_str.as_str()][..], &target[..]].concat());
    assert!(m.is_dir());
    assert!(out.contains(&format!("{m_str}/ks.cfg")), "{out}");
}
