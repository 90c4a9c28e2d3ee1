//! Differential test against the Python original (osimager 1.11.1) on its own bundled data:
//! `list` output and, for EVERY index target × {qemu, vmware, virtualbox}, the resolved defs
//! (`-x`) and the Packer template (`-u`).
//!
//! Deliberate fixes of original bugs are asserted as such; see docs/COMPAT.md "DEVIATIONS".

mod oracle_common;
mod support;
use oracle_common::*;

const LOCATION: &str = r#"{
  "platforms": ["qemu", "vmware", "virtualbox"],
  "defs": {
    "domain": "lab.test",
    "cidr": "10.9.8.0/24",
    "dns": {"search": ["lab.test"], "servers": ["127.0.0.1"]},
    "ntp": {"servers": ["127.0.0.2"]},
    "vms_path": "/tmp/vms"
  }
}"#;

const SECRETS: &str = "\
images/linux username=root password=Secr3tPw
images/windows username=Administrator password=W1nPw
suse/registration code=REG-123
";

fn setup(sc: &Scratch) {
    std::fs::write(sc.user.join("locations/lab.json"), LOCATION).unwrap();
    std::fs::write(sc.user.join("secrets"), SECRETS).unwrap();
    std::fs::write(
        sc.user.join("config.json"),
        "{\n    \"credential_source\": \"config\"\n}\n",
    )
    .unwrap();
}

#[test]
fn bundled_data_matches_oracle() {
    let _g = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let py = oracle_python();
    let data = oracle_data(&py);
    let sc = Scratch::new("bundled");
    setup(&sc);
    sc.apply();
    let bin = env!("CARGO_BIN_EXE_osimager");
    let dd = data.to_string_lossy().into_owned();

    // Listing commands: byte-identical stdout.
    let mk = py.parent().unwrap().join("mkosimage");
    let mut list_same = 0;
    let listings: &[(&[&str], &[&str])] = &[
        (&["list"], &["--list"]),
        (
            &["list", "--arch", "aarch64"],
            &["--list", "--arch", "aarch64"],
        ),
        (&["list", "--latest"], &["--latest"]),
        (&["list", "--latest", "rhel-9"], &["--latest", "rhel-9"]),
        (&["list", "--avail"], &["--avail"]),
        (&["platforms"], &["--list-platforms"]),
        (&["defs-list"], &["--list-defs"]),
        (&["config", "show"], &["--show-config"]),
    ];
    for (o, m) in listings {
        let mut args = vec!["--data-dir", &dd];
        args.extend_from_slice(o);
        let ours = run_cli(bin, &sc, &args);
        let theirs = run_cli(mk.to_str().unwrap(), &sc, m);
        assert!(
            ours.status.success(),
            "{o:?}: {}",
            String::from_utf8_lossy(&ours.stderr)
        );
        if ours.stdout == theirs.stdout {
            list_same += 1;
        } else {
            eprintln!(
                "listing {o:?} differs:\n--- ours\n{}\n--- oracle\n{}",
                String::from_utf8_lossy(&ours.stdout),
                String::from_utf8_lossy(&theirs.stdout)
            );
        }
    }
    println!("listings identical: {list_same}/{}", listings.len());
    assert_eq!(list_same, listings.len());

    // Every target × platform, named with an IP (no DNS), plus a few with -D, a dotted name,
    // and -latest- aliases.
    let cfg = load_config(&data);
    let keys: Vec<String> = cfg.index().unwrap().keys().map(str::to_string).collect();
    let mut cases: Vec<Case> = Vec::new();
    for k in &keys {
        for p in ["qemu", "vmware", "virtualbox"] {
            cases.push((
                format!("{p}/lab/{k}"),
                Some("host1".into()),
                Some("10.9.8.7".into()),
                None,
            ));
        }
    }
    let extra: &[Case] = &[
        (
            "qemu/lab/rhel-latest-x86_64".into(),
            Some("r1".into()),
            Some("10.9.8.9".into()),
            None,
        ),
        (
            "vmware/lab/debian-12-latest-x86_64".into(),
            Some("d1.lab.test".into()),
            Some("10.9.8.9".into()),
            None,
        ),
        (
            "qemu/lab/alma-9.4-x86_64".into(),
            Some("web.other.test".into()),
            Some("10.9.8.10".into()),
            Some("memory=8192,boot=,foo=bar".into()),
        ),
        (
            "qemu/nowhere/alma-9.4-x86_64".into(),
            Some("a".into()),
            Some("10.9.8.10".into()),
            None,
        ),
        (
            "qemu/lab/nosuch-1-x86_64".into(),
            Some("a".into()),
            Some("10.9.8.10".into()),
            None,
        ),
        (
            "aws/lab/alma-9.4-x86_64".into(),
            Some("a".into()),
            Some("10.9.8.10".into()),
            None,
        ),
        ("qemu/lab".into(), None, None, None),
    ];
    cases.extend_from_slice(extra);
    let t0 = std::time::Instant::now();
    let oracle = run_oracle(&py, &data, &sc, &cases);
    eprintln!("oracle: {} cases in {:?}", cases.len(), t0.elapsed());
    let t1 = std::time::Instant::now();
    let (same, total, diffs) = compare(&data, &sc, &cases, &oracle);
    eprintln!("ours: {} cases in {:?}", cases.len(), t1.elapsed());
    for d in &diffs {
        eprintln!("DIFF {d}");
    }
    println!("identical: {same}/{total}");
    assert_eq!(same, total, "{diffs:#?}");
}
