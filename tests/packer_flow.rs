//! Dispatcher lines (read from a child process's stdout, as a dispatcher would), pre/post-build
//! hooks through the Python shim, retrofit templates validated by real Packer, and ISO URL
//! checks against a local HTTP server on 127.0.0.1.

mod packer_support;
mod support;

use osimager::engine::packer::{urls, PackerError};
use osimager::engine::BuildOptions;
use packer_support::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// Not a test: the child half of `dispatcher_lines` (run by it), a build with `--dispatcher`
/// in the scratch named by PK_DISPATCH_CHILD, the fake Packer exiting with PK_DISPATCH_CODE.
#[test]
#[ignore = "helper: child process of dispatcher_lines, run by it"]
fn dispatcher_child() {
    let root = std::env::var("PK_DISPATCH_CHILD").expect("run by dispatcher_lines");
    let code: i32 = std::env::var("PK_DISPATCH_CODE").unwrap().parse().unwrap();
    let s = Scratch::open(Path::new(&root));
    let plan = qemu_plan(&s);
    let mut ctx = s.ctx();
    ctx.packer_cmd = s.fake_packer(code).display().to_string();
    let mut plan = plan;
    set_inputs(&mut plan, &ctx);
    let opts = BuildOptions {
        engine: osimager::engine::EngineKind::Packer,
        ..Default::default()
    };
    println!("\nCHILD-START");
    // Through the engine entry point, shown by the CLI's front ends: the terminal (Packer's
    // transcript on stdout) and --dispatcher.
    let build =
        osimager::engine::Build::new(plan, opts, osimager::engine::BuildContext::from_process());
    build.events.attach(
        std::sync::Arc::new(osimager::cli::sinks::Terminal::new(false, false, false)),
        false,
    );
    build.events.attach(
        std::sync::Arc::new(osimager::cli::sinks::Dispatcher::default()),
        false,
    );
    let r = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(osimager::engine::run(build));
    println!("CHILD-DONE ok={}", r.is_ok());
}

fn child_stdout(s: &Scratch, code: i32) -> Vec<String> {
    let out = support::process::helper_command("dispatcher_child")
        .env("PK_DISPATCH_CHILD", s.path())
        .env("PK_DISPATCH_CODE", code.to_string())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip_while(|l| *l != "CHILD-START")
        .skip(1)
        .map(str::to_string)
        .collect()
}

#[test]
fn dispatcher_lines() {
    let s = Scratch::new();
    let lines = child_stdout(&s, 0);
    let tpl = s.temp().join("pkvm.json");
    let cmd = format!(
        "{} build {}",
        s.path().join("fake-packer").display(),
        tpl.display()
    );
    assert_eq!(
        lines[..6].to_vec(),
        vec![
            "PROGRESS=5".to_string(),
            "PROGRESS=10".into(),
            cmd.clone(),
            "PROGRESS=15".into(),
            "PROGRESS=100".into(),
            r#"RESULT={"spec": "testos-1-x86_64", "name": "pkvm", "status": "success"}"#.into(),
        ],
        "{lines:#?}"
    );

    let s = Scratch::new();
    let lines = child_stdout(&s, 2);
    assert!(
        lines.iter().any(|l| l
            == r#"ERROR={"message": "packer build failed with exit code 2", "spec": "testos-1-x86_64", "name": "pkvm"}"#),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.starts_with("RESULT=")));
    assert!(!lines.iter().any(|l| l == "PROGRESS=100"));
}

fn hook_plan(s: &Scratch, script: &str, body: &str) -> osimager::plan::BuildPlan {
    let dir = s.data().join("scripts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(script), body).unwrap();
    let mut plan = qemu_plan(s);
    plan.pre_build = Some(json!(format!("scripts/{script}")));
    plan
}

#[test]
fn python_pre_build_hook_changes_the_build() {
    let s = Scratch::new();
    let new_iso = s.path().join("customized.iso");
    std::fs::write(&new_iso, "iso").unwrap();
    let body = format!(
        "import os\n\
         def run(imager):\n\
         \x20   assert imager.defs['name'] == 'pkvm'\n\
         \x20   assert imager.build['builders'][0] is imager.config\n\
         \x20   imager.config['memory'] = 1024\n\
         \x20   imager.evars['HOOK_RAN'] = os.getcwd()\n\
         \x20   imager.defs['iso_url'] = 'file://{}'\n\
         \x20   print('hook says hi')\n",
        new_iso.display()
    );
    let plan = hook_plan(&s, "customize.py", &body);
    let mut ctx = s.ctx();
    ctx.packer_cmd = s.fake_packer(0).display().to_string();
    let opts = BuildOptions {
        keep: true,
        ..Default::default()
    };
    run(&ctx, &plan, &opts).expect("build with hook");
    let t: Value =
        serde_json::from_str(&std::fs::read_to_string(s.temp().join("pkvm.json")).unwrap())
            .unwrap();
    assert_eq!(t["builders"][0]["memory"], json!(1024));
    // The changed def follows into the builder value that was the old def.
    assert_eq!(
        t["builders"][0]["iso_url"],
        json!(format!("file://{}", new_iso.display()))
    );
    let called = s.packer_called();
    assert!(
        called.contains(&format!("HOOK_RAN={}", s.data().display())),
        "hook runs in the data dir; evars reach Packer:\n{called}"
    );
}

#[test]
fn hook_system_exit_stops_and_exception_continues() {
    let s = Scratch::new();
    let plan = hook_plan(&s, "stop.py", "def run(imager):\n    raise SystemExit(4)\n");
    let mut ctx = s.ctx();
    ctx.packer_cmd = s.fake_packer(0).display().to_string();
    let err = run(&ctx, &plan, &BuildOptions::default()).unwrap_err();
    assert_eq!(err.exit_code(), 4, "{err}");
    assert!(err.to_string().contains("pre_build hook"), "{err}");
    assert!(s.packer_called().is_empty());
    assert!(!s.temp().exists());

    let s = Scratch::new();
    let plan = hook_plan(
        &s,
        "boom.py",
        "def run(imager):\n    raise ValueError('boom')\n",
    );
    let mut ctx = s.ctx();
    ctx.packer_cmd = s.fake_packer(0).display().to_string();
    run(&ctx, &plan, &BuildOptions::default()).expect("exceptions only warn");
    assert!(!s.packer_called().is_empty());
}

#[test]
fn executable_post_build_hook_runs_after_success_only() {
    let s = Scratch::new();
    let marker = s.path().join("post-ran");
    let hook = s.script(
        "post.sh",
        &format!(
            "echo \"$OSIMAGER_HOOK $(test -s \"$1\" && echo view)\" > '{}'",
            marker.display()
        ),
    );
    let mut plan = qemu_plan(&s);
    plan.post_build = Some(json!([hook.display().to_string()]));
    let mut ctx = s.ctx();
    ctx.packer_cmd = s.fake_packer(1).display().to_string();
    run(&ctx, &plan, &BuildOptions::default()).unwrap_err();
    assert!(!marker.exists(), "post_build must not run after a failure");
    ctx.packer_cmd = s.fake_packer(0).display().to_string();
    run(&ctx, &plan, &BuildOptions::default()).unwrap();
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "post_build view\n"
    );
}

#[test]
fn retrofit_template_is_a_null_builder_packer_accepts() {
    let s = Scratch::new();
    let mut plan = qemu_plan(&s);
    plan.ip = "127.0.0.1".into();
    let mut ctx = s.ctx();
    ctx.packer_cmd = s.fake_packer(0).display().to_string();
    let opts = BuildOptions {
        keep: true,
        ..Default::default()
    };
    retrofit(&ctx, &plan, &opts).expect("retrofit runs packer");
    let path = s.temp().join("pkvm.json");
    let t: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        t["builders"][0],
        json!({"name": "testos-1-x86_64", "type": "null", "communicator": "ssh",
               "ssh_username": "root", "ssh_password": "secret-pw-123", "ssh_timeout": "5m",
               "ssh_host": "127.0.0.1"})
    );
    assert_eq!(t["provisioners"], json!(plan.provisioners));
    let (ok, out) = packer_validate(&path, &s.data());
    assert!(ok, "packer validate: {out}");

    plan.builder.remove("communicator");
    let err = retrofit(&ctx, &plan, &opts).unwrap_err();
    assert!(matches!(err, PackerError::NoCommunicator));
}

/// A stub HTTP server on 127.0.0.1: `/ok.iso` 200, `/moved.iso` 302, `/tmp.iso` 307 → ok,
/// everything else 404.
fn http_server() -> String {
    support::http_stub::start(|path| match path {
        "/ok.iso" => ("200 OK", String::new()),
        "/moved.iso" => ("302 Found", "Location: /ok.iso\r\n".into()),
        "/tmp.iso" => ("307 Temporary Redirect", "Location: /ok.iso\r\n".into()),
        _ => ("404 Not Found", String::new()),
    })
}

#[test]
fn check_urls_report_against_loopback() {
    let base = http_server();
    let pairs = vec![
        ("alpha-1-x86_64".to_string(), format!("{base}/ok.iso")),
        ("beta-1-x86_64".to_string(), format!("{base}/gone.iso")),
        ("beta-2-x86_64".to_string(), format!("{base}/gone.iso")),
        ("gamma-1-x86_64".to_string(), format!("{base}/moved.iso")),
        ("delta-1-x86_64".to_string(), format!("{base}/tmp.iso")),
    ];
    let groups = urls::group_urls(&pairs);
    let mut out = Vec::new();
    let (ok, failed) = urls::check_urls(&groups, 7, 2, Duration::from_secs(10), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!((ok, failed), (3, 1), "{text}");
    assert_eq!(
        text,
        format!(
            "Checking 4 unique URLs across 5 specs (2 local-only)...\n\n  \
             FAIL (404): beta-1-x86_64\n    also: beta-2-x86_64\n    {base}/gone.iso\n\n\
             Results: 3 OK, 1 FAILED, 2 local-only\n"
        )
    );
    // A closed port is reported with the error text, not a status.
    let (_closed, dead) = support::closed_port();
    let st = urls::head_status(
        &format!("http://127.0.0.1:{dead}/x.iso"),
        Duration::from_secs(5),
    );
    assert!(st.is_err());
}

#[test]
fn iso_404_stops_the_build() {
    let base = http_server();
    let s = Scratch::new();
    let mut plan = qemu_plan(&s);
    let url = format!("{base}/gone.iso");
    plan.defs.insert("iso_url".into(), json!(url));
    plan.defs.insert(
        "iso_path".into(),
        json!(s.path().join("isos").display().to_string()),
    );
    plan.builder.insert("iso_url".into(), json!(url));
    let mut ctx = s.ctx();
    ctx.packer_cmd = s.fake_packer(0).display().to_string();
    let err = run(&ctx, &plan, &BuildOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("ISO URL returned 404 (not found): {url}")),
        "{err}"
    );
    // Found in iso_path: no request, the build goes on.
    std::fs::create_dir_all(s.path().join("isos")).unwrap();
    std::fs::write(s.path().join("isos/gone.iso"), "x").unwrap();
    run(&ctx, &plan, &BuildOptions::default()).expect("local ISO wins");
    // 200: fine.
    let ok = format!("{base}/ok.iso");
    plan.defs.insert("iso_url".into(), json!(ok));
    run(&ctx, &plan, &BuildOptions::default()).expect("reachable ISO");
}
