//! The project's own bundled data tree (platforms/ specs/ files/ at the repository root, what
//! the binary uses by default), resolved by osimager itself:
//!
//! * every index target × every platform whose arches include the target's, with DHCP, with a
//!   static IP and with UEFI firmware, resolves, or is refused for the documented reason (the
//!   spec's `platforms` allow-list; docs/DATA.md);
//! * every boot command passes the native engine's parser (`osimager_drivers::bootcmd`:
//!   `validate`, then `parse` with placeholder fields) — these are the boot commands the
//!   native engine would type;
//! * every generated answer file passes its distribution's validator (tests/answer_validators):
//!   kickstart through pykickstart's `ksvalidator` for the target's syntax version, Debian
//!   preseed through `debconf-set-selections --checkonly`, Ubuntu autoinstall against
//!   cloud-init's JSON schema plus the autoinstall keys, autounattend and AutoYaST through
//!   `xmllint` plus their structure, Agama and JSON files parsed and checked.
//!
//! Files are validated once per distinct content (crypt salts aside). The summary goes to
//! `<target>/test-reports/bundled-validators.txt`, which scripts/test.sh prints.

mod answer_validators;
mod support;

use answer_validators::{validate, Item, Kind};
use osimager::config::{files, resolve, Config, ConfigOptions, ResolveRequest};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// The variants of each target × platform: location and IP (`dhcp` = no static address).
const VARIANTS: &[(&str, &str)] = &[("lab", "dhcp"), ("lab", "10.9.8.21"), ("lab-efi", "dhcp")];

fn setup(s: &Path) {
    let user = s.join("xdg/osimager");
    std::fs::create_dir_all(user.join("locations")).unwrap();
    std::fs::create_dir_all(s.join("home")).unwrap();
    // A location with every def the bundled tree reads and a dummy value for every secret
    // (tests/data/bundled/, shared with tests/data/validate-bundled.sh); lab-efi adds UEFI.
    let shared = support::repo().join("tests/data/bundled");
    let lab = std::fs::read_to_string(shared.join("lab.json"))
        .unwrap()
        .replace("@SCRATCH@", &s.display().to_string());
    std::fs::write(user.join("locations/lab.json"), &lab).unwrap();
    let mut efi: serde_json::Value = serde_json::from_str(&lab).unwrap();
    efi["defs"]["firmware"] = "efi".into();
    std::fs::write(user.join("locations/lab-efi.json"), efi.to_string()).unwrap();
    std::fs::copy(shared.join("secrets"), user.join("secrets")).unwrap();
    std::fs::write(
        user.join("config.json"),
        format!(
            "{{\"credential_source\": \"config\", \"iso_path\": \"{}\"}}",
            s.join("iso").display()
        ),
    )
    .unwrap();
    // The test OS spec reads its media directory from this variable ($>…<$).
    std::fs::create_dir_all(s.join("testos/current")).unwrap();
    std::env::set_var("OSIMAGER_TESTOS_CACHE", s.join("testos"));
    std::env::set_var("HOME", s.join("home"));
    std::env::set_var("XDG_CONFIG_HOME", s.join("xdg"));
    std::env::set_var("XDG_DATA_HOME", s.join("data"));
    std::env::set_var("XDG_CACHE_HOME", s.join("cache"));
    for v in [
        "VAULT_ADDR",
        "VAULT_TOKEN",
        "OSIMAGER_DATA_DIR",
        "OSIMAGER_VENV_DIR",
    ] {
        std::env::remove_var(v);
    }
}

/// ksvalidator's syntax version for a kickstart target.
fn ks_version(dist: &str, version: &str) -> Option<String> {
    let major = version.split('.').next()?;
    match dist {
        "rhel" | "rocky" | "alma" => Some(format!("RHEL{major}")),
        "fedora" => Some(format!("F{major}")),
        _ => None,
    }
}

/// Crypt salts and hashes and build ids differ per resolution; everything else identical =
/// the same file.
fn dedupe_key(text: &str) -> String {
    static RE: std::sync::OnceLock<[regex::Regex; 2]> = std::sync::OnceLock::new();
    let [crypt, id] = RE.get_or_init(|| {
        [
            regex::Regex::new(r"\$(1|5|6)\$(rounds=\d+\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]+")
                .unwrap(),
            regex::Regex::new(r"packer-[0-9a-f]{12}").unwrap(),
        ]
    });
    let text = crypt.replace_all(text, "$$CRYPT");
    id.replace_all(&text, "packer-ID").into_owned()
}

#[derive(Default)]
struct Tally {
    resolved: usize,
    refused_documented: usize,
    not_applicable: usize,
    boot_commands: usize,
    failures: Vec<String>,
}

/// One generated file, before deduplication.
struct GenFile {
    kind: Kind,
    text: String,
    dest: String,
    ks_version: Option<String>,
    arch: String,
    origin: String,
}

/// What one worker found.
#[derive(Default)]
struct Found {
    tally: Tally,
    files: Vec<GenFile>,
    generated: BTreeMap<Kind, usize>,
    refused: BTreeSet<String>,
}

/// Resolve `keys` × platforms × variants, check the boot commands, generate the files.
fn check_keys(
    cfg: &Config,
    keys: &[String],
    platforms: &[(String, Vec<String>)],
    work: &Path,
) -> Found {
    let mut f = Found::default();
    let t = &mut f.tally;
    let gen_dir = work.join("gen");
    let py = osimager::config::pyjson::py_str;
    for key in keys {
        let arch = cfg.index().unwrap().get(key).unwrap().arch.clone();
        let arch_x = if arch == "amd64" {
            "x86_64"
        } else {
            arch.as_str()
        };
        for (platform, arches) in platforms {
            if !arches.iter().any(|a| a == arch_x) {
                t.not_applicable += VARIANTS.len();
                continue;
            }
            for (location, ip) in VARIANTS {
                let target = format!("{platform}/{location}/{key}");
                let origin = format!("{target} ip={ip}");
                let req = ResolveRequest {
                    target: target.clone(),
                    name: Some("host1".into()),
                    ip: Some((*ip).into()),
                    temp_dir: work.join("tmp"),
                    ..Default::default()
                };
                let r = match resolve::resolve(cfg, &req) {
                    Ok(r) => r,
                    Err(e) => {
                        let msg = e.to_string();
                        let spec = key.rsplitn(3, '-').last().unwrap_or(key);
                        if msg.starts_with(&format!(
                            "spec {key} does not support platform {platform}"
                        )) {
                            t.refused_documented += 1;
                            f.refused.insert(format!("{spec}: {platform}"));
                        } else {
                            t.failures
                                .push(format!("{origin}: does not resolve: {msg}"));
                        }
                        continue;
                    }
                };
                t.resolved += 1;
                if let Some(bc) = r.plan.builder.get("boot_command") {
                    let cmd: Vec<String> = match bc {
                        serde_json::Value::Array(a) => a.iter().map(py).collect(),
                        other => vec![py(other)],
                    };
                    t.boot_commands += 1;
                    let fields = osimager_drivers::bootcmd::Fields::placeholders();
                    if let Err(e) = osimager_drivers::bootcmd::validate(&cmd)
                        .and_then(|_| osimager_drivers::bootcmd::parse(&cmd, &fields).map(|_| ()))
                    {
                        t.failures
                            .push(format!("{origin}: boot_command: {e}: {cmd:?}"));
                    }
                }
                let _ = std::fs::remove_dir_all(&gen_dir);
                std::fs::create_dir_all(&gen_dir).unwrap();
                let written = match files::generate(cfg, &r.plan, &gen_dir) {
                    Ok(w) => w,
                    Err(e) => {
                        t.failures.push(format!("{origin}: files: {e}"));
                        continue;
                    }
                };
                if written.len() != r.plan.files.len() {
                    // Generation stops at an empty file (as in the original): a data defect.
                    t.failures.push(format!(
                        "{origin}: {} of {} files generated",
                        written.len(),
                        r.plan.files.len()
                    ));
                }
                let dist = r.plan.defs.get("dist").map(py).unwrap_or_default();
                let version = r.plan.defs.get("version").map(py).unwrap_or_default();
                for (gf, path) in r.plan.files.iter().zip(&written) {
                    let source = gf
                        .sources
                        .first()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    let rel = source
                        .rsplit_once("/files/")
                        .map(|x| x.1)
                        .unwrap_or(&source);
                    let Some(kind) = Kind::of(rel, &gf.dest) else {
                        t.failures.push(format!(
                            "{origin}: no validator for generated file {} (from {rel}): add one in tests/answer_validators",
                            gf.dest
                        ));
                        continue;
                    };
                    *f.generated.entry(kind).or_default() += 1;
                    let ks_version = if kind == Kind::Kickstart {
                        let v = ks_version(&dist, &version);
                        if v.is_none() {
                            t.failures.push(format!(
                                "{origin}: no kickstart syntax version for {dist} {version}"
                            ));
                            continue;
                        }
                        v
                    } else {
                        None
                    };
                    f.files.push(GenFile {
                        kind,
                        text: std::fs::read_to_string(path).unwrap(),
                        dest: gf.dest.clone(),
                        ks_version,
                        arch: arch.clone(),
                        origin: origin.clone(),
                    });
                }
            }
        }
    }
    f
}

#[test]
fn bundled_tree_resolves_and_answer_files_pass_their_validators() {
    let venv = support::tools_venv();
    let scratch = tempfile::Builder::new()
        .prefix("bundled-")
        .tempdir()
        .unwrap();
    let s = scratch.path();
    setup(s);
    let cfg = Config::load(&ConfigOptions {
        data_dir: Some(support::repo()),
        ..Default::default()
    })
    .expect("the bundled tree loads");
    let keys: Vec<String> = cfg.index().unwrap().keys().map(str::to_string).collect();
    let platforms: Vec<(String, Vec<String>)> = cfg
        .platforms()
        .unwrap()
        .into_iter()
        .filter(|(n, _)| n != "all")
        .map(|(n, d)| {
            let arches = d
                .get("arches")
                .and_then(|a| a.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            (n, arches)
        })
        .collect();
    assert_eq!(platforms.len(), 11, "{platforms:?}");
    assert!(keys.len() > 100, "{} targets", keys.len());

    // Two workers, each with its own Config, over halves of the index.
    let half = keys.len().div_ceil(2);
    let found: Vec<Found> = std::thread::scope(|sc| {
        let hs: Vec<_> = keys
            .chunks(half)
            .enumerate()
            .map(|(w, chunk)| {
                let platforms = &platforms;
                sc.spawn(move || {
                    let cfg = Config::load(&ConfigOptions {
                        data_dir: Some(support::repo()),
                        ..Default::default()
                    })
                    .expect("the bundled tree loads");
                    check_keys(&cfg, chunk, platforms, &s.join(format!("w{w}")))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut t = Tally::default();
    let mut generated: BTreeMap<Kind, usize> = BTreeMap::new();
    let mut refused_why: BTreeSet<String> = BTreeSet::new();
    // Unique files: dedupe key → item (the first one seen).
    let mut unique: HashMap<String, Item> = HashMap::new();
    let files_dir = s.join("unique");
    std::fs::create_dir_all(&files_dir).unwrap();
    for f in found {
        t.resolved += f.tally.resolved;
        t.refused_documented += f.tally.refused_documented;
        t.not_applicable += f.tally.not_applicable;
        t.boot_commands += f.tally.boot_commands;
        t.failures.extend(f.tally.failures);
        for (k, v) in f.generated {
            *generated.entry(k).or_default() += v;
        }
        refused_why.extend(f.refused);
        for g in f.files {
            let key = format!("{:?}\n{}", g.kind, dedupe_key(&g.text));
            if unique.contains_key(&key) {
                continue;
            }
            let dst = files_dir.join(format!("{:05}-{}", unique.len(), g.dest.replace('/', "_")));
            std::fs::write(&dst, &g.text).unwrap();
            unique.insert(
                key,
                Item {
                    kind: g.kind,
                    path: dst,
                    ks_version: g.ks_version,
                    arch: g.arch,
                    origin: g.origin,
                },
            );
        }
    }

    let items: Vec<Item> = unique.into_values().collect();
    let found = validate(&items, &venv, s);
    let mut by_kind: BTreeMap<Kind, (usize, usize)> = BTreeMap::new();
    for i in &items {
        let e = by_kind.entry(i.kind).or_default();
        e.0 += 1;
        let problems = &found[&i.path];
        if !problems.is_empty() {
            e.1 += 1;
            t.failures.push(format!(
                "{} ({}, first from {}): {}",
                i.kind.name(),
                i.path.display(),
                i.origin,
                problems.join("; ")
            ));
        }
    }

    let mut report = format!(
        "bundled data tree: {} targets x {} platforms x {} variants (DHCP, static IP, UEFI)\n  resolved {}, refused as documented (spec's platforms list) {}, not applicable (platform lacks the arch) {}\n  boot commands checked by the native parser: {}\n",
        keys.len(), platforms.len(), VARIANTS.len(), t.resolved, t.refused_documented, t.not_applicable, t.boot_commands
    );
    report.push_str(&format!(
        "  refused: {}\n",
        refused_why.into_iter().collect::<Vec<_>>().join(", ")
    ));
    report.push_str(&format!(
        "answer-file validators:\n  {:<22} {:>9} {:>7} {:>9} {:>8}  tool\n",
        "kind", "generated", "unique", "validated", "failures"
    ));
    let (mut g_all, mut u_all, mut f_all) = (0, 0, 0);
    for (kind, (u, f)) in &by_kind {
        let g = generated.get(kind).copied().unwrap_or(0);
        g_all += g;
        u_all += u;
        f_all += f;
        report.push_str(&format!(
            "  {:<22} {:>9} {:>7} {:>9} {:>8}  {}\n",
            kind.name(),
            g,
            u,
            u,
            f,
            kind.tools()
        ));
    }
    report.push_str(&format!(
        "  {:<22} {:>9} {:>7} {:>9} {:>8}\n",
        "ALL", g_all, u_all, u_all, f_all
    ));
    if !t.failures.is_empty() {
        report.push_str(&format!("FAILURES ({}), first 30:\n", t.failures.len()));
        for f in t.failures.iter().take(30) {
            report.push_str(&format!("  {f}\n"));
        }
    }
    support::write_report("bundled-validators.txt", &report);
    assert!(
        t.failures.is_empty(),
        "{} failures (see the report above)",
        t.failures.len()
    );
    for kind in [
        Kind::Kickstart,
        Kind::Preseed,
        Kind::CloudConfig,
        Kind::Autounattend,
        Kind::Autoyast,
        Kind::Agama,
    ] {
        assert!(
            by_kind.contains_key(&kind),
            "no {} generated: the tree lost a distribution?",
            kind.name()
        );
    }
}

/// The validators are not vacuous: one broken sample per kind, each flagged for its defect
/// (and the well-formed control sample of each kind passes).
#[test]
fn validators_reject_broken_answer_files() {
    let venv = support::tools_venv();
    let t = tempfile::tempdir().unwrap();
    let hash = "$6$abcdefgh$".to_string() + &"A".repeat(86);
    let samples: Vec<(Kind, &str, String, Option<&str>)> = vec![
        (Kind::Kickstart, "ks-good", format!("text\nlang en_US.UTF-8\nkeyboard us\nrootpw --iscrypted {hash}\nreboot\n"), None),
        (Kind::Kickstart, "ks-bad", "text\nbogusommand --foo\nnetwork --bootproto=dhcpx\n".into(), Some("Unknown command")),
        (Kind::Preseed, "pre-good", "d-i debian-installer/locale string en_US.UTF-8\n".into(), None),
        (Kind::Preseed, "pre-bad", "d-i debian-installer/locale string en_US\nd-i netcfg/get_hostname\n".into(), Some("parse error")),
        (Kind::CloudConfig, "ud-good", format!("#cloud-config\nautoinstall:\n  version: 1\n  locale: en_US.UTF-8\n  keyboard:\n    layout: us\n  identity:\n    hostname: h1\n    username: u\n    password: \"{hash}\"\n  ssh:\n    install-server: true\n    allow-pw: true\n  storage:\n    layout:\n      name: lvm\n"), None),
        (Kind::CloudConfig, "ud-bad-schema", "#cloud-config\npackages: 7\nautoinstall:\n  locale: en_US.UTF-8\n".into(), Some("cloud-init schema")),
        (Kind::CloudConfig, "ud-bad-keys", format!("#cloud-config\nautoinstall:\n  version: 1\n  locale: en_US.UTF-8\n  keyboard:\n    layout: us\n  identity:\n    hostname: h1\n    username: u\n    password: \"{hash}\"\n  ssh:\n    install-server: \"yes\"\n    allow-pw: true\n  storage:\n    layout:\n      name: lvm\n"), Some("ssh.install-server")),
        (Kind::NocloudMeta, "md-bad", "local-hostname: h1\n".into(), Some("instance-id")),
        (Kind::Autounattend, "au-bad", "<unattend xmlns=\"urn:schemas-microsoft-com:unattend\"><settings pass=\"windowsPE\"><component name=\"Microsoft-Windows-Setup\" processorArchitecture=\"arm64\" publicKeyToken=\"31bf3856ad364e35\" language=\"neutral\" versionScope=\"nonSxS\"><UserData><AcceptEula>false</AcceptEula></UserData></component></settings></unattend>\n".into(), Some("processorArchitecture")),
        (Kind::Autoyast, "ay-bad", "<profile xmlns=\"http://www.suse.com/1.0/yast2ns\" xmlns:config=\"http://www.suse.com/1.0/configns\"><general><mode><confirm config:type=\"boolean\">no</confirm></mode></general></profile>\n".into(), Some("boolean")),
        (Kind::Autoyast, "ay-malformed", "<profile xmlns=\"http://www.suse.com/1.0/yast2ns\"><general>\n".into(), Some("xmllint")),
        (Kind::Agama, "ag-bad", "{\"product\": {\"id\": \"SLES\"}, \"softwares\": {}, \"root\": {\"password\": \"plain\"}}".into(), Some("unknown top-level key")),
        (Kind::Json, "js-bad", "{\"ansible_password\": \"\"}".into(), Some("empty")),
        (Kind::Testos, "to-bad", "hostname=h\nusername=u\npassword=p\nrootfs=cdrom\n".into(), Some("disk missing")),
    ];
    let items: Vec<Item> = samples
        .iter()
        .map(|(kind, name, text, _)| {
            let p = t.path().join(name);
            std::fs::write(&p, text).unwrap();
            Item {
                kind: *kind,
                path: p,
                ks_version: (*kind == Kind::Kickstart).then(|| "RHEL9".to_string()),
                arch: "x86_64".into(),
                origin: (*name).into(),
            }
        })
        .collect();
    let found = validate(&items, &venv, t.path());
    for ((_, name, _, expect), item) in samples.iter().zip(&items) {
        let problems = found[&item.path].join("; ");
        match expect {
            None => assert!(problems.is_empty(), "{name} should pass: {problems}"),
            Some(e) => assert!(
                problems.contains(e),
                "{name} should be flagged with {e:?}: {problems:?}"
            ),
        }
    }
}
