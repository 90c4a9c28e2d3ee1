//! Differential test against the Python original (osimager 1.11.1) on its own bundled data:
//!
//! * the listing commands, byte for byte;
//! * library against library, for EVERY index target × all 11 platforms (plus `-latest-`
//!   aliases, `-D`, dotted names and refusals): the resolved defs (`-x`), the Packer template
//!   (`-u`), the generated answer files (kickstart, preseed, autoinstall, autounattend, …) byte
//!   for byte, and the warnings;
//! * CLI against CLI: `mkosimage -x`/`-u` against `osimager defs`/`dump` for every index target
//!   (alternating -x and -u, the platform rotating over the ones the spec allows) and every
//!   kind of refusal: exit status, stdout and stderr.
//!
//! Only random values are normalised (build ids, crypt salts, generated MACs); both tools get
//! the same temp directory, so temp paths compare literally. Refusals on both sides compare by
//! what was refused. Every other difference must be one of the deviations listed in
//! `oracle_common::deviations::DEVIATIONS` (docs/COMPAT.md), asserted exactly as documented there.
//! The per-platform summary goes to `<target>/test-reports/oracle-diff.txt`, which
//! scripts/test.sh prints.

mod oracle_common;
mod support;

use oracle_common::cli::{compare_cli, oracle_cli, our_cli, CliCase};
use oracle_common::compare::{compare_library, Outcome, Summary};
use oracle_common::deviations::DEVIATIONS;
use oracle_common::*;
use std::collections::BTreeSet;
use std::time::Instant;

/// The original's 11 platforms.
const PLATFORMS: [&str; 11] = [
    "aws",
    "azure",
    "gcp",
    "hyperv",
    "none",
    "proxmox",
    "qemu",
    "virtualbox",
    "vmware",
    "vsphere",
    "xenserver",
];

/// A location every platform may use, with the defs the original's platforms read; `lab2`
/// allows qemu only (for the location-refuses-platform case).
const LOCATION: &str = r#"{
  "defs": {
    "domain": "lab.test",
    "cidr": "10.9.8.0/24",
    "dns": {"search": ["lab.test"], "servers": ["127.0.0.1"]},
    "ntp": {"servers": ["127.0.0.2"]},
    "vms_path": "/tmp/vms",
    "aws_region": "eu-west-1",
    "datacenter": "dc1",
    "cluster": "cluster1",
    "datastore": "ds1",
    "proxmox_node": "pve1"
  }
}"#;
const LOCATION2: &str = r#"{"platforms": ["qemu"], "defs": {"domain": "lab2.test"}}"#;

/// Some platform secrets present, some missing (the original warns `secret not found`).
const SECRETS: &str = "\
images/linux username=root password=Secr3tPw
images/windows username=Administrator password=W1nPw
suse/registration code=REG-123
vsphere/lab server=vc.lab.test username=svc password=Vs-Pw-1
proxmox/lab server=https://pve1.lab.test:8006/api2/json
azure/lab client_id=00000000-0000-0000-0000-000000000001
";

fn setup(sc: &Scratch) {
    std::fs::write(sc.user.join("locations/lab.json"), LOCATION).unwrap();
    std::fs::write(sc.user.join("locations/lab2.json"), LOCATION2).unwrap();
    std::fs::write(sc.user.join("secrets"), SECRETS).unwrap();
    std::fs::write(
        sc.user.join("config.json"),
        "{\n    \"credential_source\": \"config\"\n}\n",
    )
    .unwrap();
}

/// The listing commands: byte-identical stdout.
fn listings(sc: &Scratch, mk: &std::path::Path, dd: &str) -> String {
    let bin = support::osimager_bin();
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
    let mut same = 0;
    for (o, m) in listings {
        let mut args = vec!["--data-dir", dd];
        args.extend_from_slice(o);
        let ours = run_cli(bin, sc, &args);
        let theirs = run_cli(mk.to_str().unwrap(), sc, m);
        assert!(
            ours.status.success(),
            "{o:?}: {}",
            String::from_utf8_lossy(&ours.stderr)
        );
        assert!(ours.stdout.len() > 40, "{o:?}: output too short");
        if ours.stdout == theirs.stdout {
            same += 1;
        } else {
            eprintln!(
                "listing {o:?} differs:\n--- ours\n{}\n--- oracle\n{}",
                String::from_utf8_lossy(&ours.stdout),
                String::from_utf8_lossy(&theirs.stdout)
            );
        }
    }
    assert_eq!(same, listings.len(), "listings differ");
    format!("listings identical: {same}/{}\n", listings.len())
}

/// Cases beyond the index × platform grid: aliases, -D, dotted names, every kind of refusal.
fn extra_cases() -> Vec<Case> {
    let c = |t: &str, n: Option<&str>, ip: Option<&str>, d: Option<&str>| Case::new(t, n, ip, d);
    let ip = Some("10.9.8.9");
    vec![
        c("qemu/lab/rhel-latest-x86_64", Some("r1"), ip, None),
        c(
            "vmware/lab/debian-12-latest-x86_64",
            Some("d1.lab.test"),
            ip,
            None,
        ),
        c(
            "qemu/lab/alma-9.4-x86_64",
            Some("web.other.test"),
            ip,
            Some("memory=4096,extra=1"),
        ),
        c(
            "qemu/lab/alma-9.4-x86_64",
            Some("w"),
            ip,
            Some("memory=8192,boot=,foo=bar"),
        ),
        c("qemu/lab/alma-9.4-x86_64", Some("w"), ip, Some("bad")),
        c("qemu/nowhere/alma-9.4-x86_64", Some("a"), ip, None),
        c("qemux/lab/alma-9.4-x86_64", Some("a"), ip, None),
        c("qemu/lab/nosuch-1-x86_64", Some("a"), ip, None),
        c("qemu/lab/nosuch-latest-x86_64", Some("a"), ip, None),
        c("vmware/lab2/alma-9.4-x86_64", Some("a"), ip, None),
        c("qemu/lab", None, None, None),
    ]
}

#[test]
fn bundled_data_matches_oracle() {
    let _g = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let py = oracle_python();
    let data = oracle_data(&py);
    let mk = oracle_mkosimage(&py);
    let sc = Scratch::new("bundled");
    setup(&sc);
    sc.apply();
    let dd = data.to_string_lossy().into_owned();
    let mut report = listings(&sc, &mk, &dd);

    // Library against library: every index target × every platform, plus the extra cases.
    let cfg = load_config(&data);
    let keys: Vec<String> = cfg.index().unwrap().keys().map(str::to_string).collect();
    assert!(
        keys.len() > 500,
        "the oracle's index has {} targets",
        keys.len()
    );
    let mut cases: Vec<Case> = Vec::new();
    for k in &keys {
        for p in PLATFORMS {
            cases.push(Case::new(
                &format!("{p}/lab/{k}"),
                Some("host1"),
                Some("10.9.8.7"),
                None,
            ));
        }
    }
    cases.extend(extra_cases());
    number_temps(&sc, &mut cases);
    let t = Instant::now();
    let oracle = run_oracle(&py, &data, &sc, &cases);
    let oracle_took = t.elapsed();
    let t = Instant::now();
    let outcomes = compare_library(&data, &sc, &cases, &oracle);
    let ours_took = t.elapsed();
    let mut lib = Summary::default();
    for (c, o) in cases.iter().zip(&outcomes) {
        lib.add(c, "library", o);
    }
    let files = oracle
        .iter()
        .filter_map(|o| o.files.as_ref())
        .map(|f| f.len())
        .sum::<usize>();

    // CLI against CLI: every index target once, on the first platform (rotating) the oracle
    // resolved it for; -x and -u alternate; then every kind of refusal.
    let mut cli_cases: Vec<CliCase> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let grid = |p: usize| &oracle[i * PLATFORMS.len() + p];
        let p = (0..PLATFORMS.len())
            .map(|j| (i + j) % PLATFORMS.len())
            .find(|&p| grid(p).ok)
            .unwrap_or(i % PLATFORMS.len());
        cli_cases.push(CliCase {
            case: Case::new(
                &format!("{}/lab/{k}", PLATFORMS[p]),
                Some("host1"),
                Some("10.9.8.7"),
                None,
            ),
            dump: i % 2 == 1,
        });
    }
    for (i, c) in extra_cases().into_iter().enumerate() {
        cli_cases.push(CliCase {
            case: c,
            dump: i % 2 == 0,
        });
    }
    let mut numbered: Vec<Case> = cli_cases.iter().map(|c| c.case.clone()).collect();
    number_temps(&sc, &mut numbered);
    for (c, n) in cli_cases.iter_mut().zip(numbered) {
        c.case = n;
    }
    let t = Instant::now();
    let theirs = oracle_cli(&mk, &data, &sc, &cli_cases);
    let oracle_cli_took = t.elapsed();
    let t = Instant::now();
    let ours = our_cli(support::osimager_bin(), &data, &sc, &cli_cases);
    let ours_cli_took = t.elapsed();
    let mut cli = Summary::default();
    for ((c, o), u) in cli_cases.iter().zip(&theirs).zip(&ours) {
        let how = if c.dump { "dump/-u" } else { "defs/-x" };
        cli.add(&c.case, how, &compare_cli(o, u));
    }
    let cli_targets: BTreeSet<&str> = cli_cases
        .iter()
        .filter_map(|c| c.case.target.split('/').nth(2))
        .collect();

    report.push_str(&lib.render(&format!(
        "library (make_build + gen_files vs resolve + files::generate): {} cases, {} generated files compared",
        cases.len(),
        files
    )));
    report.push_str(&cli.render(&format!(
        "CLI (mkosimage -x/-u vs osimager defs/dump): {} runs, {} of {} index targets",
        cli_cases.len(),
        keys.iter().filter(|k| cli_targets.contains(k.as_str())).count(),
        keys.len()
    )));
    report.push_str("deviations accepted (docs/COMPAT.md):\n");
    for d in DEVIATIONS {
        report.push_str(&format!("  {} {}: {}\n", d.id, d.title, d.asserted));
    }
    report.push_str(&format!(
        "time: oracle library {:.1}s, ours {:.1}s, oracle CLI {:.1}s, ours CLI {:.1}s, total {:.1}s\n",
        oracle_took.as_secs_f64(),
        ours_took.as_secs_f64(),
        oracle_cli_took.as_secs_f64(),
        ours_cli_took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    ));
    let mismatches: Vec<&String> = lib.mismatches.iter().chain(&cli.mismatches).collect();
    if !mismatches.is_empty() {
        report.push_str(&format!("MISMATCHES ({}), first 20:\n", mismatches.len()));
        for m in mismatches.iter().take(20) {
            report.push_str(&format!("  {m}\n"));
        }
    }
    support::write_report("oracle-diff.txt", &report);

    assert!(
        mismatches.is_empty(),
        "{} mismatches (see the report above)",
        mismatches.len()
    );
    for p in PLATFORMS {
        let t = &lib.by_platform[p];
        assert!(
            t.identical + t.deviating > 0,
            "platform {p}: nothing resolved on both sides"
        );
    }
    assert!(
        keys.iter().all(|k| cli_targets.contains(k.as_str())),
        "a target was never compared through the CLI"
    );
    // Every listed deviation is really observed (the list does not rot).
    let (lt, ct) = (lib.total(), cli.total());
    for d in DEVIATIONS {
        let seen = match d.id {
            "COMPAT-2" => lt.refused_same + ct.refused_same,
            id => {
                lt.deviations.get(id).copied().unwrap_or(0)
                    + ct.deviations.get(id).copied().unwrap_or(0)
            }
        };
        assert!(seen > 0, "deviation {} listed but never observed", d.id);
    }
    assert!(files > 1000, "only {files} generated files compared");
    assert!(matches!(
        outcomes[0],
        Outcome::Identical | Outcome::Deviates(_) | Outcome::RefusedSame(_)
    ));
}
