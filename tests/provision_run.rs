//! Provisioners against a real OpenSSH server and real ansible-playbook (see tests/ssh_common).
//! The "guest" is this machine, reached over SSH on 127.0.0.1.

mod provision_support;
mod ssh_common;
mod support;

use osimager::provision::{run_all, ProvisionError};
use provision_support::{accepted, argv_recorder, capture, context, fixture, recorded};
use serde_json::json;
use ssh_common::ansible_playbook;
use std::path::Path;

/// The "guest" is this machine, whose login shell may find a pyenv shim first (as OSImager specs
/// do for real guests, pin the interpreter through the extra vars).
const PY: &str = "ansible_python_interpreter=/usr/bin/python3";

const PLAYBOOK: &str = "- hosts: all\n  gather_facts: false\n  tasks:\n    - copy:\n        dest: \"{{ out }}\"\n        content: \"{{ greeting }} {{ packer_build_name }} {{ packer_builder_type }} {{ platform }}\\n\"\n";

#[tokio::test]
async fn ansible_key_auth_writes_extra_var_into_guest_file() {
    let f = fixture(None);
    std::fs::write(f.work.path().join("site.yml"), PLAYBOOK).unwrap();
    let out = f.guest.path().join("greeting.txt");
    let mut ctx = context(&f, None);
    ctx.user_vars
        .insert("platform-name".into(), json!("qemu-test"));
    let lines = capture(&mut ctx);
    // The shape OSImager generates: extra_arguments with --extra-vars and {{user `…`}}.
    let provisioners = [json!({
        "type": "ansible",
        "playbook_file": "site.yml",
        "groups": ["testgroup"],
        "extra_arguments": [
            "--extra-vars",
            format!("greeting=hello-from-extra-var out={} platform={{{{user `platform-name`}}}} unset={{{{user `ansible-opts`}}}} {PY}", out.display())
        ]
    })];
    run_all(&provisioners, &ctx)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{:#?}", lines.lock().unwrap()));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "hello-from-extra-var testbuild qemu qemu-test\n"
    );
    // Inventory removed afterwards.
    let left: Vec<_> = std::fs::read_dir(f.work.path().join("tmp"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn ansible_password_auth_keeps_password_out_of_argv_and_output() {
    // Quotes, $ and a Jinja delimiter: the password must reach sshd untouched.
    let pw = "pw-{{ not_a_var }}-'\"$HOME";
    let f = fixture(Some(pw));
    std::fs::write(f.work.path().join("site.yml"), PLAYBOOK).unwrap();
    let out = f.guest.path().join("pw.txt");
    let rec = tempfile::tempdir().unwrap();
    let mut ctx = context(&f, Some(pw));
    ctx.ansible_playbook_cmd = Some(argv_recorder(rec.path()));
    let lines = capture(&mut ctx);
    let provisioners = [json!({
        "type": "ansible",
        "playbook_file": "site.yml",
        "use_proxy": true,
        "extra_arguments": ["-e", format!("greeting=via-password out={} platform=p {PY}", out.display())],
        "ansible_env_vars": ["ANSIBLE_STDOUT_CALLBACK=default"]
    })];
    run_all(&provisioners, &ctx)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{:#?}", lines.lock().unwrap()));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "via-password testbuild qemu p\n"
    );
    // use_proxy: Ansible talks to the relay with a per-run key, so the password
    // is given to ansible-playbook in no form — not in argv, not in a vars file.
    let (argv, vars) = recorded(rec.path());
    assert!(
        argv.iter()
            .any(|a| a == "site.yml" || a.ends_with("/site.yml")),
        "{argv:?}"
    );
    assert!(
        argv.iter().all(|a| !a.contains(pw)
            && !a.contains("not_a_var")
            && !a.contains("ansible_password")),
        "password in argv: {argv:?}"
    );
    if let Some(v) = &vars {
        assert!(!v.contains(pw) && !v.contains("ansible_password"), "{v}");
    }
    let all = lines.lock().unwrap().join("\n");
    assert!(!all.contains(pw));
    assert!(
        all.contains("PLAY RECAP"),
        "ansible_env_vars not applied: {all}"
    );
    // The relay's key is gone.
    assert_eq!(
        std::fs::read_dir(f.work.path().join("tmp"))
            .unwrap()
            .count(),
        0
    );
    // Ansible rode the provisioner's session through the relay: the "guest" saw one login
    // (the communicator's, with the password), however many channels the play opened.
    let logins = accepted(&f);
    assert_eq!(logins.len(), 1, "{logins:#?}");
    assert!(
        logins[0].contains("Accepted password for root"),
        "{logins:?}"
    );
}

#[tokio::test]
async fn ansible_use_proxy_false_logs_in_by_itself_with_the_password() {
    let pw = "pw-direct-{{ not_a_var }}-'\"$HOME";
    let f = fixture(Some(pw));
    std::fs::write(f.work.path().join("site.yml"), PLAYBOOK).unwrap();
    let out = f.guest.path().join("direct.txt");
    let rec = tempfile::tempdir().unwrap();
    let mut ctx = context(&f, Some(pw));
    ctx.ansible_playbook_cmd = Some(argv_recorder(rec.path()));
    let lines = capture(&mut ctx);
    let provisioners = [json!({
        "type": "ansible",
        "playbook_file": "site.yml",
        "use_proxy": false,
        "extra_arguments": ["-e", format!("greeting=direct out={} platform=p {PY}", out.display())],
    })];
    run_all(&provisioners, &ctx)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{:#?}", lines.lock().unwrap()));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "direct testbuild qemu p\n"
    );
    // The real argv of ansible-playbook: no password in it, the password through `-e @file`.
    let (argv, vars) = recorded(rec.path());
    assert!(
        argv.iter()
            .all(|a| !a.contains(pw) && !a.contains("not_a_var")),
        "password in argv: {argv:?}"
    );
    let at = argv
        .iter()
        .position(|a| a.starts_with('@'))
        .expect("a vars file (-e @FILE)");
    assert_eq!(argv[at - 1], "-e", "{argv:?}");
    let vars = vars.expect("the recorder copied the vars file");
    assert!(vars.contains("ansible_password: !unsafe"), "{vars}");
    assert!(!lines.lock().unwrap().join("\n").contains(pw));
    // The 0600 vars file holding the password is gone.
    assert_eq!(
        std::fs::read_dir(f.work.path().join("tmp"))
            .unwrap()
            .count(),
        0
    );
    // Ansible's own OpenSSH logins (ControlMaster=no here: one per task), not the relay's.
    let logins = accepted(&f);
    assert!(logins.len() >= 2, "{logins:#?}");
    assert!(logins.iter().all(|l| l.contains("Accepted password")));
}

#[tokio::test]
async fn ansible_through_the_relay_passes_files_exit_codes_and_stderr() {
    let f = fixture(None);
    let src = f.work.path().join("payload.bin");
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&src, &payload).unwrap();
    let dest = f.guest.path().join("payload.bin");
    let marker = f.guest.path().join("after-failure");
    // A file transfer (sftp subsystem through the relay), a failing command whose exit code
    // and stderr must come back, and a task that runs after the ignored failure.
    let play = format!(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - copy:\n        src: {}\n        dest: {}\n    - shell: echo relay-stderr >&2; exit 3\n      register: r\n      ignore_errors: true\n    - copy:\n        dest: {}\n        content: \"rc={{{{ r.rc }}}} err={{{{ r.stderr }}}}\\n\"\n",
        src.display(),
        dest.display(),
        marker.display()
    );
    std::fs::write(f.work.path().join("relay.yml"), play).unwrap();
    let mut ctx = context(&f, None);
    let lines = capture(&mut ctx);
    let provisioners = [json!({
        "type": "ansible",
        "playbook_file": "relay.yml",
        "use_proxy": true,
        "extra_arguments": ["-e", PY],
    })];
    run_all(&provisioners, &ctx)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{:#?}", lines.lock().unwrap()));
    assert_eq!(std::fs::read(&dest).unwrap(), payload);
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "rc=3 err=relay-stderr\n"
    );
    assert_eq!(accepted(&f).len(), 1, "{:#?}", accepted(&f));
}

#[tokio::test]
async fn ansible_failure_names_the_provisioner() {
    let f = fixture(None);
    std::fs::write(
        f.work.path().join("fail.yml"),
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - fail: msg=boom\n",
    )
    .unwrap();
    // Found through the venv's bin directory (OSImager's ansible_version venvs), with a PATH
    // that has no Ansible at all.
    let mut ctx = context(&f, None);
    ctx.ansible_playbook_cmd = None;
    ctx.venv_bin = Some(ansible_playbook().parent().unwrap().to_path_buf());
    ctx.env.insert("PATH".into(), "/usr/bin:/bin".into());
    let p =
        [json!({"type": "ansible", "playbook_file": "fail.yml", "extra_arguments": ["-e", PY]})];
    let err = run_all(&p, &ctx).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("provisioners[0] (ansible)") && text.contains("ansible-playbook ended with"),
        "{text}"
    );
    assert!(
        text.contains(&ansible_playbook().display().to_string()),
        "{text}"
    );

    // Nowhere to be found: the error says how to get it.
    ctx.venv_bin = None;
    ctx.env.insert("PATH".into(), "/nonexistent".into());
    let text = run_all(&p, &ctx).await.unwrap_err().to_string();
    assert!(
        text.contains("ansible-playbook not found") && text.contains("pip install ansible-core"),
        "{text}"
    );
}

#[tokio::test]
async fn shell_inline_script_env_and_execute_command() {
    let f = fixture(None);
    let g = f.guest.path().display().to_string();
    std::fs::write(
        f.work.path().join("s.sh"),
        format!("#!/bin/sh\necho \"script $1 $PACKER_BUILDER_TYPE\" > {g}/script.txt\nexit 7\n"),
    )
    .unwrap();
    let mut ctx = context(&f, None);
    let lines = capture(&mut ctx);
    let provisioners = [
        json!({"type": "shell", "inline": [format!("echo \"$GREETING $PACKER_BUILD_NAME\" > {g}/inline.txt"), "echo visible-output"],
               "environment_vars": ["GREETING=it's here"]}),
        json!({"type": "shell", "script": "s.sh", "valid_exit_codes": [0, 7],
               "execute_command": "chmod +x {{ .Path }}; {{ .Vars }} {{ .Path }} arg1"}),
        json!({"type": "shell", "inline": "poweroff-is-not-run", "only": ["another-build"]}),
        json!({"type": "shell-local", "inline": [format!("echo \"local $PACKER_BUILD_NAME $X\" > {g}/local.txt")], "environment_vars": ["X=1"]}),
    ];
    run_all(&provisioners, &ctx).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(f.guest.path().join("inline.txt")).unwrap(),
        "it's here testbuild\n"
    );
    assert_eq!(
        std::fs::read_to_string(f.guest.path().join("script.txt")).unwrap(),
        "script arg1 qemu\n"
    );
    assert_eq!(
        std::fs::read_to_string(f.guest.path().join("local.txt")).unwrap(),
        "local testbuild 1\n"
    );
    assert!(lines
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.ends_with("visible-output")));

    let err = run_all(&[json!({"type": "shell", "inline": ["exit 4"]})], &ctx)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("provisioners[0] (shell) failed")
            && err.to_string().contains("exit status 4"),
        "{err}"
    );
}

#[tokio::test]
async fn file_provisioner_uploads_files_directories_and_content() {
    let f = fixture(None);
    let w = f.work.path();
    std::fs::create_dir_all(w.join("tree/sub")).unwrap();
    std::fs::write(w.join("tree/a.txt"), "A").unwrap();
    std::fs::write(w.join("tree/sub/b.txt"), "B").unwrap();
    std::fs::write(w.join("one.txt"), "one").unwrap();
    let g = f.guest.path().display().to_string();
    let ctx = context(&f, None);
    let provisioners = [
        json!({"type": "file", "source": "one.txt", "destination": format!("{g}/")}),
        json!({"type": "file", "source": "tree", "destination": format!("{g}/x")}),
        json!({"type": "file", "source": "tree/", "destination": format!("{g}/y")}),
        json!({"type": "file", "content": "inline {{build_name}}", "destination": format!("{g}/c.txt")}),
        json!({"type": "file", "source": format!("{g}/c.txt"), "destination": "back/", "direction": "download"}),
    ];
    run_all(&provisioners, &ctx).await.unwrap();
    let read = |p: &str| std::fs::read_to_string(Path::new(&g).join(p)).unwrap();
    assert_eq!(read("one.txt"), "one");
    assert_eq!(read("x/tree/sub/b.txt"), "B");
    assert_eq!(read("y/a.txt"), "A");
    assert_eq!(read("c.txt"), "inline testbuild");
    assert_eq!(
        std::fs::read_to_string(w.join("back/c.txt")).unwrap(),
        "inline testbuild"
    );
}

#[tokio::test]
async fn unknown_type_is_rejected_before_anything_runs() {
    let f = fixture(None);
    let marker = f.guest.path().join("ran");
    let ctx = context(&f, None);
    let provisioners = [
        json!({"type": "shell", "inline": [format!("touch {}", marker.display())]}),
        json!({"type": "powershell", "inline": ["Write-Host hi"]}),
    ];
    let err = run_all(&provisioners, &ctx).await.unwrap_err();
    assert!(
        matches!(&err, ProvisionError::UnknownType { index: 1, kind } if kind == "powershell"),
        "{err}"
    );
    assert!(
        err.to_string().contains("\"powershell\"") && err.to_string().contains("provisioners[1]")
    );
    assert!(!marker.exists());

    let err = run_all(
        &[json!({"type": "shell", "inline": ["true"], "typo_key": 1})],
        &ctx,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("typo_key"), "{err}");
}

#[tokio::test]
async fn ansible_galaxy_file_installs_roles_before_the_playbook() {
    let f = fixture(None);
    let w = f.work.path();
    // A role packed as a local tarball: `ansible-galaxy install -r` needs no network for it.
    std::fs::create_dir_all(w.join("src/myrole/tasks")).unwrap();
    std::fs::create_dir_all(w.join("src/myrole/meta")).unwrap();
    std::fs::write(
        w.join("src/myrole/tasks/main.yml"),
        "- copy:\n    dest: \"{{ out }}\"\n    content: \"from-galaxy-role\\n\"\n",
    )
    .unwrap();
    std::fs::write(w.join("src/myrole/meta/main.yml"), "galaxy_info:\n  author: t\n  description: t\n  license: MIT\n  min_ansible_version: '2.9'\n  platforms: []\ndependencies: []\n").unwrap();
    let st = std::process::Command::new("tar")
        .args(["czf", "myrole.tar.gz", "myrole"])
        .current_dir(w.join("src"))
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(
        w.join("requirements.yml"),
        format!("- src: {}/src/myrole.tar.gz\n  name: myrole\n", w.display()),
    )
    .unwrap();
    std::fs::write(
        w.join("site.yml"),
        "- hosts: all\n  gather_facts: false\n  roles:\n    - myrole\n",
    )
    .unwrap();
    let out = f.guest.path().join("role.txt");
    let ctx = context(&f, None);
    let provisioners = [json!({
        "type": "ansible",
        "playbook_file": "site.yml",
        "galaxy_file": "requirements.yml",
        "roles_path": "roles",
        "ansible_env_vars": [format!("ANSIBLE_ROLES_PATH={}/roles", w.display())],
        "extra_arguments": ["-e", format!("out={} {PY}", out.display())]
    })];
    run_all(&provisioners, &ctx).await.unwrap();
    assert!(w.join("roles/myrole/tasks/main.yml").is_file());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "from-galaxy-role\n");
}

#[tokio::test]
async fn expect_disconnect_then_reconnect_for_the_next_provisioner() {
    let f = fixture(None);
    let g = f.guest.path().display().to_string();
    let ctx = context(&f, None);
    // Killing the session's sshd process looks like a reboot to the communicator.
    let provisioners = [
        json!({"type": "shell", "inline": ["kill -KILL $PPID; sleep 5"], "expect_disconnect": true}),
        json!({"type": "shell", "inline": [format!("echo after > {g}/after.txt")]}),
    ];
    run_all(&provisioners, &ctx).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(f.guest.path().join("after.txt")).unwrap(),
        "after\n"
    );

    // Without expect_disconnect the same thing is an error that says what to add.
    let err = run_all(
        &provisioners[..1]
            .iter()
            .map(|p| {
                let mut p = p.clone();
                p.as_object_mut().unwrap().remove("expect_disconnect");
                p
            })
            .collect::<Vec<_>>(),
        &ctx,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("expect_disconnect"), "{err}");
}
