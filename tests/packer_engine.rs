//! Packer engine against real Packer 1.6.6 and fake Packer scripts: the template Packer accepts,
//! flag mapping, environment, temp dir lifetime, and the failures (Packer missing, too old,
//! failing, required file missing, venv missing).

mod packer_support;
mod support;

use osimager::engine::packer::{template, PackerError, PackerReport};
use osimager::engine::{BuildOptions, OnError};
use packer_support::*;
use serde_json::json;

fn run_plan(
    s: &Scratch,
    ctx: &osimager::engine::packer::PackerContext,
    plan: &osimager::plan::BuildPlan,
    opts: &BuildOptions,
) -> Result<PackerReport, PackerError> {
    let _ = s;
    run(ctx, plan, opts)
}

#[test]
fn packer_validate_accepts_generated_template() {
    let s = Scratch::new();
    let plan = qemu_plan(&s);
    let opts = BuildOptions {
        dry_run: true,
        keep: true,
        ..Default::default()
    };
    let report = run_plan(&s, &s.ctx(), &plan, &opts).expect("dry run succeeds");
    assert_eq!(report.template, s.temp().join("pkvm.json"));
    let bytes = std::fs::read_to_string(&report.template).unwrap();
    assert_eq!(bytes, template::to_python_json(&plan.packer_template()));
    assert!(
        !bytes.contains("\"MY_VAR\""),
        "evars are not template content"
    );
    let (ok, out) = packer_validate(&report.template, &s.data());
    assert!(ok, "packer validate rejected our template:\n{out}\n{bytes}");
    assert_eq!(
        report.command,
        format!("packer build -on-error=abort {}", report.template.display())
    );
    assert!(report.temp_dir_kept);
}

#[test]
fn keys_packer_1_6_cannot_read_are_refused_with_a_pointer_to_native() {
    let s = Scratch::new();
    let mut plan = qemu_plan(&s);
    plan.builder
        .insert("firmware".into(), json!("/usr/share/OVMF/OVMF_CODE.fd"));
    plan.builder.insert("vga".into(), json!("std"));
    let err = run_plan(&s, &s.ctx(), &plan, &BuildOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PackerError::PackerTooOld { .. }), "{text}");
    assert!(text.contains("Packer 1.6.6"), "{text}");
    assert!(text.contains("firmware, vga"), "{text}");
    assert!(text.contains("--engine native"), "{text}");
    assert!(!s.temp().exists(), "temp dir removed after the failure");

    // The fact behind the check: Packer 1.6.6 itself rejects these keys.
    let t = s.path().join("old.json");
    template::write_template(&t, &plan.packer_template()).unwrap();
    std::fs::create_dir_all(s.temp()).unwrap();
    let (ok, out) = packer_validate(&t, &s.data());
    assert!(!ok);
    assert!(
        out.contains("unknown configuration key: '\"firmware\"'"),
        "{out}"
    );
    assert!(
        out.contains("unknown configuration key: '\"vga\"'"),
        "{out}"
    );
}

#[test]
fn packer_missing_says_what_to_do() {
    let s = Scratch::new();
    let plan = qemu_plan(&s);
    for cmd in ["/nonexistent/bin/packer", "packer-not-installed-anywhere"] {
        let mut ctx = s.ctx();
        ctx.packer_cmd = cmd.into();
        let err = run_plan(&s, &ctx, &plan, &BuildOptions::default()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, PackerError::PackerMissing { .. }), "{text}");
        assert!(text.contains(&format!("'{cmd}' not found")), "{text}");
        assert!(
            text.contains("packer_cmd") && text.contains("--engine native"),
            "{text}"
        );
        assert_eq!(err.exit_code(), 1);
        assert!(!s.temp().exists());
    }
    // A dry run still shows what would run.
    let mut ctx = s.ctx();
    ctx.packer_cmd = "/nonexistent/bin/packer".into();
    let opts = BuildOptions {
        dry_run: true,
        ..Default::default()
    };
    let r = run_plan(&s, &ctx, &plan, &opts).unwrap();
    assert!(r.packer.is_none());
    assert!(r.command.starts_with("/nonexistent/bin/packer build "));
}

#[test]
fn packer_failure_is_reported_and_temp_dir_follows_keep() {
    let s = Scratch::new();
    let mut plan = qemu_plan(&s);
    plan.builder.insert("bogus_key".into(), json!("x"));
    // Without -k: the temp dir is removed.
    let err = run_plan(&s, &s.ctx(), &plan, &BuildOptions::default()).unwrap_err();
    let text = err.to_string();
    match &err {
        PackerError::BuildFailed {
            code, unknown_keys, ..
        } => {
            assert_eq!(*code, 1);
            assert_eq!(unknown_keys, &vec!["bogus_key".to_string()]);
        }
        other => panic!("expected BuildFailed, got {other}"),
    }
    assert!(
        text.starts_with("packer build failed with exit code 1"),
        "{text}"
    );
    assert!(
        text.contains("bogus_key") && text.contains("--engine native"),
        "{text}"
    );
    assert_eq!(err.exit_code(), 1);
    assert!(!s.temp().exists());

    // With -k: kept, with the template in it.
    let opts = BuildOptions {
        keep: true,
        ..Default::default()
    };
    run_plan(&s, &s.ctx(), &plan, &opts).unwrap_err();
    assert!(s.temp().join("pkvm.json").is_file());
}

#[test]
fn required_file_missing_stops_before_packer() {
    let s = Scratch::new();
    let mut plan = qemu_plan(&s);
    plan.required_files = vec![
        r#"{"file": "esxi/tools.vib", "description": "VMware Tools VIB", "url": "https://vendor.example/dl", "location": "esxi/"}"#.into(),
    ];
    let mut ctx = s.ctx();
    ctx.packer_cmd = s.fake_packer(0).display().to_string();
    let err = run_plan(&s, &ctx, &plan, &BuildOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("error: required file not found: esxi/tools.vib"),
        "{text}"
    );
    assert!(text.contains("Description: VMware Tools VIB"), "{text}");
    assert!(
        text.contains("Download from: https://vendor.example/dl"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Place it in: {}",
            s.user().join("files/esxi/").display()
        )),
        "{text}"
    );
    assert!(text.ends_with("Build cannot proceed without the required files listed above."));
    assert_eq!(err.exit_code(), 1);
    assert!(s.packer_called().is_empty(), "packer must not run");
    assert!(!s.temp().exists());

    // Present in the user layer: the build goes on.
    std::fs::create_dir_all(s.user().join("files/esxi")).unwrap();
    std::fs::write(s.user().join("files/esxi/tools.vib"), "vib").unwrap();
    run_plan(&s, &ctx, &plan, &BuildOptions::default()).expect("required file found");
    assert!(!s.packer_called().is_empty());
}

#[test]
fn command_line_environment_and_cwd() {
    let s = Scratch::new();
    let mut plan = qemu_plan(&s);
    plan.venv = Some("2.18".into());
    let venv = s.fake_venv("2.18");
    let mut ctx = s.ctx();
    ctx.packer_cmd = s.fake_packer(0).display().to_string();
    ctx.vault_addr = "http://127.0.0.1:8200".into();
    ctx.vault_token = Some(osimager::secret::Secret::new("hvs.pk-test-token-value"));
    let opts = BuildOptions {
        force: true,
        debug: true,
        timestamp_ui: true,
        on_error: OnError::Ask,
        log: true,
        logfile: Some(s.path().join("packer.log")),
        ..Default::default()
    };
    let report = run_plan(&s, &ctx, &plan, &opts).expect("fake packer succeeds");
    let called = s.packer_called();
    let tpl = s.temp().join("pkvm.json");
    assert!(
        called.contains(&format!(
            "ARGS=build -timestamp-ui -on-error=ask -force -debug {}",
            tpl.display()
        )),
        "{called}"
    );
    assert!(
        called.contains(&format!("CWD={}", s.data().display())),
        "{called}"
    );
    for line in [
        "ANSIBLE_RETRY_FILES_ENABLED=False",
        "ANSIBLE_WARNINGS=False",
        "ANSIBLE_NOCOWS=1",
        "ANSIBLE_DISPLAY_SKIPPED_HOSTS=False",
        "ANSIBLE_STDOUT_CALLBACK=minimal",
        "RES_OPTIONS=nameserver 10.0.2.3",
        "MY_VAR=é-value",
        "PACKER_LOG=1",
        "VAULT_ADDR=http://127.0.0.1:8200",
        "VAULT_TOKEN=hvs.pk-test-token-value",
    ] {
        assert!(
            called.lines().any(|l| l == line),
            "missing {line} in\n{called}"
        );
    }
    assert!(called.contains(&format!(
        "PACKER_LOG_PATH={}",
        s.path().join("packer.log").display()
    )));
    assert!(called.contains(&format!("VIRTUAL_ENV={}", venv.display())));
    assert!(called.contains(&format!("PATH={}:", venv.join("bin").display())));
    // The report never shows the token.
    let shown = report.environment.join("\n");
    assert!(shown.contains("VAULT_TOKEN=***"), "{shown}");
    assert!(!shown.contains("pk-test-token-value"), "{shown}");
    assert!(!s.temp().exists(), "temp dir removed after success");
}

#[test]
fn failing_packer_exit_code_is_kept() {
    let s = Scratch::new();
    let plan = qemu_plan(&s);
    let mut ctx = s.ctx();
    ctx.packer_cmd = s.fake_packer(3).display().to_string();
    let err = run_plan(&s, &ctx, &plan, &BuildOptions::default()).unwrap_err();
    assert_eq!(err.exit_code(), 3);
    assert_eq!(err.to_string(), "packer build failed with exit code 3");
    assert!(!s.temp().exists());
}

#[test]
fn venv_missing_points_at_osimager_venv_and_skip() {
    let s = Scratch::new();
    let mut plan = qemu_plan(&s);
    plan.venv = Some("2.16".into());
    let mut ctx = s.ctx();
    ctx.packer_cmd = s.fake_packer(0).display().to_string();
    let err = run_plan(&s, &ctx, &plan, &BuildOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("post-install requires Ansible 2.16"),
        "{text}"
    );
    assert!(
        text.contains("osimager venv 2.16") && text.contains("mkvenv 2.16"),
        "{text}"
    );
    assert!(text.contains("--skip"), "{text}");
    // --skip: no venv needed and no provisioners in the template.
    ctx.skip = true;
    let opts = BuildOptions {
        keep: true,
        ..Default::default()
    };
    run_plan(&s, &ctx, &plan, &opts).expect("skip needs no venv");
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.temp().join("pkvm.json")).unwrap())
            .unwrap();
    assert_eq!(t["provisioners"], json!([]));
}

#[test]
fn user_temp_dir_is_never_removed_and_files_are_generated_into_it() {
    let s = Scratch::new();
    let plan = qemu_plan(&s);
    let mut ctx = s.ctx();
    ctx.packer_cmd = s.fake_packer(0).display().to_string();
    // A directory the user names (`-m DIR`) reaches the engine as temp_dir + keep (the CLI sets
    // keep for it); a fresh one it made is the engine's to remove.
    let opts = BuildOptions {
        temp_dir: Some(s.temp()),
        keep: true,
        ..Default::default()
    };
    let mut plan = plan;
    plan.inputs.files = vec![osimager::plan::RenderedFile {
        dest: "ks.cfg".into(),
        content: "answers".into(),
    }];
    run(&ctx, &plan, &opts).unwrap();
    assert!(s.temp().join("ks.cfg").is_file());
    assert!(s.temp().join("pkvm.json").is_file());
}

#[test]
fn generation_failure_names_the_dir() {
    let s = Scratch::new();
    let plan = qemu_plan(&s);
    let mut ctx = s.ctx();
    ctx.packer_cmd = s.fake_packer(0).display().to_string();
    // A rendered file that cannot be written (a directory is in its way).
    let mut plan = plan;
    plan.inputs.files = vec![osimager::plan::RenderedFile {
        dest: "preseed.cfg".into(),
        content: "answers".into(),
    }];
    std::fs::create_dir_all(s.temp().join("preseed.cfg")).unwrap();
    let err = run(&ctx, &plan, &BuildOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("generating the spec's files"), "{text}");
    assert!(text.contains(&s.temp().display().to_string()), "{text}");
    assert!(!s.temp().exists());
}

/// What Packer 1.6.6 needs to run the ansible provisioner and the qemu builder out of the box
/// (src/engine/packer/quirks.rs): the communicator's user for Ansible, the ssh-rsa options for
/// its proxy, and TCG where /dev/kvm opens but KVM cannot run a guest (the real probe decides).
#[test]
fn packer_1_6_6_gets_the_proxy_user_ssh_rsa_and_a_working_accelerator() {
    let plan_for = |s: &Scratch| {
        let mut plan = qemu_plan(s);
        plan.builder.remove("accelerator");
        plan.builder
            .insert("ssh_username".into(), json!("{{user `ssh-user`}}"));
        plan.variables
            .insert("ssh-user".into(), json!("pk-builder"));
        plan
    };
    let s = Scratch::new();
    let plan = plan_for(&s);
    let mut ctx = s.ctx();
    ctx.packer_cmd = s.fake_packer(0).display().to_string();
    let opts = BuildOptions {
        keep: true,
        ..Default::default()
    };
    let report = run_plan(&s, &ctx, &plan, &opts).expect("fake packer succeeds");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report.template).unwrap()).unwrap();
    assert_eq!(written["provisioners"][0]["user"], "{{user `ssh-user`}}");
    let called = s.packer_called();
    let line = format!(
        "ANSIBLE_SSH_COMMON_ARGS={}",
        osimager::engine::packer::command::SSH_RSA_OPTIONS
    );
    assert!(
        called.lines().any(|l| l == line),
        "missing {line} in\n{called}"
    );
    let kvm_opens = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let probe = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(osimager_drivers::qemu::kvm_usable("qemu-system-x86_64"));
    let accel = written["builders"][0].get("accelerator").cloned();
    if kvm_opens && !probe.usable {
        assert_eq!(accel, Some(json!("tcg")), "{}", probe.reason);
    } else {
        assert_eq!(accel, None, "Packer chooses: {}", probe.reason);
    }

    // Packer 1.10+: no ssh-rsa options (its ansible plugin's proxy has an ECDSA key); the
    // provisioner's user is still the communicator's.
    let s = Scratch::new();
    let mut ctx = s.ctx();
    let out = s.path().join("packer-called.txt");
    ctx.packer_cmd = s
        .script(
            "packer-1.10",
            &format!(
                "if [ \"$1\" = version ]; then echo 'Packer v1.10.0'; exit 0; fi\nenv > '{}'",
                out.display()
            ),
        )
        .display()
        .to_string();
    let report = run_plan(&s, &ctx, &plan_for(&s), &opts).expect("fake packer succeeds");
    let written = std::fs::read_to_string(&report.template).unwrap();
    assert!(
        written.contains("\"user\": \"{{user `ssh-user`}}\""),
        "{written}"
    );
    assert!(!s.packer_called().contains("HostKeyAlgorithms"));
}
