//! The fake backend's build: the step sequence, log lines, progress, screenshots and
//! artifacts of a native QEMU build, with a stand-in process for QEMU in the build's work dir.
//!
//! Behaviour is steered with defines (they are arbitrary `-D` items, so nothing new is
//! needed in the API): `fake_step_ms` (time per step, default 100), `fake_fail=STEP`,
//! `fake_hang=STEP` (wait there until cancelled), `fake_log_lines` (provisioner lines,
//! default 20), `fake_disk_kib` (image size, default 256), `fake_stream_s` + `fake_rate`
//! (log lines per second for that long in `provision`: load tests).

use super::png;
use crate::backend::BuildSpec;
use osimager_events::{
    BuildEvent, BuildResult, EngineName, ErrorInfo, ErrorKind, EventRecord, EventSink, LogSource,
    Outcome, Progress,
};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The steps of a native build, in order.
pub const STEPS: [&str; 14] = [
    "validate",
    "temp_dir",
    "files",
    "iso",
    "http_server",
    "create_vm",
    "launch",
    "boot_wait",
    "boot_command",
    "wait_for_ssh",
    "provision",
    "shutdown",
    "export",
    "manifest",
];

struct Knobs {
    step_ms: u64,
    fail: Option<String>,
    hang: Option<String>,
    log_lines: u64,
    disk_kib: u64,
    stream_s: u64,
    rate: u64,
}

impl Knobs {
    fn from(defines: &[String]) -> Knobs {
        let mut k = Knobs {
            step_ms: 100,
            fail: None,
            hang: None,
            log_lines: 20,
            disk_kib: 256,
            stream_s: 0,
            rate: 50,
        };
        for item in defines.iter().flat_map(|d| d.split(',')) {
            let Some((key, v)) = item.split_once('=') else {
                continue;
            };
            let n = v.trim().parse::<u64>().ok();
            match key.trim() {
                "fake_step_ms" => k.step_ms = n.unwrap_or(k.step_ms),
                "fake_fail" => k.fail = Some(v.trim().to_string()),
                "fake_hang" => k.hang = Some(v.trim().to_string()),
                "fake_log_lines" => k.log_lines = n.unwrap_or(k.log_lines),
                "fake_disk_kib" => k.disk_kib = n.unwrap_or(k.disk_kib),
                "fake_stream_s" => k.stream_s = n.unwrap_or(0),
                "fake_rate" => k.rate = n.unwrap_or(k.rate).max(1),
                _ => {}
            }
        }
        k
    }
}

struct Run {
    id: String,
    seq: u64,
    sink: Arc<dyn EventSink>,
    cancel: CancellationToken,
    started: Instant,
    shots: PathBuf,
    nshots: u32,
}

struct Cancelled;

impl Run {
    fn emit(&mut self, event: BuildEvent) {
        self.sink
            .send(&EventRecord::new(self.id.clone(), self.seq, event));
        self.seq += 1;
    }

    fn log(&mut self, source: LogSource, line: impl Into<String>) {
        self.emit(BuildEvent::Log {
            source,
            line: line.into(),
            detail: false,
        });
    }

    async fn sleep(&self, ms: u64) -> Result<(), Cancelled> {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ms)) => Ok(()),
            _ = self.cancel.cancelled() => Err(Cancelled),
        }
    }

    fn screenshot(&mut self, name: &str) {
        let n = self.nshots;
        self.nshots += 1;
        let path = self.shots.join(format!("{n:02}-{name}.png"));
        let shade = (n * 40 % 200) as u8;
        let img = png::encode(320, 200, |x, y| {
            if y > 20 && y < 28 && x > 10 && x < 10 + (n * 30 + 60).min(300) {
                [220, 220, 220]
            } else {
                [shade / 4, shade / 4, 40 + shade / 2]
            }
        });
        if std::fs::create_dir_all(&self.shots).is_ok() && std::fs::write(&path, img).is_ok() {
            self.emit(BuildEvent::Screenshot {
                name: name.into(),
                path: path.to_string_lossy().into_owned(),
            });
        }
    }

    fn finish(
        &mut self,
        result: BuildResult,
        error: Option<ErrorInfo>,
        output_dir: Option<String>,
    ) {
        let duration_ms = self.started.elapsed().as_millis() as u64;
        self.emit(BuildEvent::BuildFinished {
            result,
            duration_ms,
            error,
            output_dir,
            left_in_place: Vec::new(),
        });
    }
}

fn error_kind(step: &str) -> ErrorKind {
    match step {
        "validate" | "files" => ErrorKind::Configuration,
        "iso" => ErrorKind::BadInput,
        "wait_for_ssh" | "shutdown" => ErrorKind::GuestTimeout,
        "provision" => ErrorKind::Provisioner,
        _ => ErrorKind::Hypervisor,
    }
}

/// Run the fake build to its end; every path ends with `build_finished`.
pub async fn run(
    spec: BuildSpec,
    sink: Arc<dyn EventSink>,
    cancel: CancellationToken,
    out_root: PathBuf,
) {
    let k = Knobs::from(&spec.target.defines);
    let spec_name = spec
        .target
        .target
        .rsplit('/')
        .next()
        .unwrap_or("vm")
        .to_string();
    let name = spec.target.name.clone().unwrap_or(spec_name);
    let mut r = Run {
        id: spec.id.clone(),
        seq: 0,
        sink,
        cancel,
        started: Instant::now(),
        shots: spec.work_dir.join("screenshots"),
        nshots: 0,
    };
    r.emit(BuildEvent::BuildStarted {
        target: spec.target.target.clone(),
        engine: EngineName::Native,
        builder_type: "qemu".into(),
        name: name.clone(),
        dry_run: spec.dry_run,
    });
    let out_dir = out_root.join(format!("{name}-{}", spec.id));
    let mut qemu: Option<tokio::process::Child> = None;
    let result = steps(&mut r, &spec, &k, &name, &out_dir, &mut qemu).await;
    if let Some(mut q) = qemu.take() {
        let _ = q.kill().await;
        r.log(LogSource::Engine, "QEMU stopped");
    }
    match result {
        Ok(true) => r.finish(
            BuildResult::Succeeded,
            None,
            (!spec.dry_run).then(|| out_dir.to_string_lossy().into_owned()),
        ),
        Ok(false) => {}
        Err(Cancelled) => r.finish(
            BuildResult::Cancelled,
            Some(ErrorInfo {
                kind: ErrorKind::Cancelled,
                message: "cancelled on request; everything the build created was removed".into(),
                step: None,
            }),
            None,
        ),
    }
}

/// Ok(true): succeeded; Ok(false): failed (already reported).
async fn steps(
    r: &mut Run,
    spec: &BuildSpec,
    k: &Knobs,
    name: &str,
    out_dir: &Path,
    qemu: &mut Option<tokio::process::Child>,
) -> Result<bool, Cancelled> {
    let steps: &[&str] = if spec.dry_run { &STEPS[..1] } else { &STEPS };
    for step in steps {
        let t0 = Instant::now();
        r.emit(BuildEvent::StepStarted {
            step: step.to_string(),
        });
        let body = step_body(r, spec, k, name, out_dir, qemu, step).await;
        let done = |r: &mut Run, outcome| {
            r.emit(BuildEvent::StepFinished {
                step: step.to_string(),
                outcome,
                duration_ms: t0.elapsed().as_millis() as u64,
            })
        };
        if let Err(c) = body {
            done(r, Outcome::Cancelled);
            return Err(c);
        }
        if k.hang.as_deref() == Some(*step) {
            r.log(
                LogSource::Engine,
                format!("{step}: waiting (fake_hang) until cancelled"),
            );
            r.cancel.clone().cancelled().await;
            done(r, Outcome::Cancelled);
            return Err(Cancelled);
        }
        if k.fail.as_deref() == Some(*step) {
            if qemu.is_some() {
                r.screenshot("failure");
            }
            r.log(LogSource::Engine, format!("{step}: failed (fake_fail)"));
            done(r, Outcome::Failed);
            r.finish(
                BuildResult::Failed,
                Some(ErrorInfo {
                    kind: error_kind(step),
                    message: format!("step {step} failed (fake_fail={step}); see the log and the failure screenshot"),
                    step: Some(step.to_string()),
                }),
                None,
            );
            return Ok(false);
        }
        done(r, Outcome::Ok);
    }
    Ok(true)
}

async fn step_body(
    r: &mut Run,
    spec: &BuildSpec,
    k: &Knobs,
    name: &str,
    out_dir: &Path,
    qemu: &mut Option<tokio::process::Child>,
    step: &str,
) -> Result<(), Cancelled> {
    let ms = k.step_ms;
    match step {
        "iso" => {
            let total = 89_274_368u64;
            for i in 1..=4 {
                r.emit(BuildEvent::Progress {
                    step: step.into(),
                    progress: Progress::Bytes {
                        label: "checking testos.iso".into(),
                        done: total * i / 4,
                        total: Some(total),
                    },
                });
                r.sleep(ms / 4).await?;
            }
        }
        "launch" => {
            let child = tokio::process::Command::new("sleep")
                .arg("3600")
                .current_dir(&spec.work_dir)
                .kill_on_drop(true)
                .spawn();
            match child {
                Ok(c) => {
                    r.log(
                        LogSource::Engine,
                        format!("QEMU started (pid {})", c.id().unwrap_or(0)),
                    );
                    *qemu = Some(c);
                }
                Err(e) => r.log(LogSource::Engine, format!("stand-in QEMU process: {e}")),
            }
            r.log(
                LogSource::Serial,
                "SeaBIOS (version 1.16.2-debian-1.16.2-1)",
            );
            r.log(LogSource::Serial, "ISOLINUX 6.04 boot: ");
            r.sleep(ms).await?;
        }
        "boot_wait" => {
            r.emit(BuildEvent::Progress {
                step: step.into(),
                progress: Progress::Wait {
                    label: "boot_wait".into(),
                    elapsed_ms: 0,
                    timeout_ms: Some(3000),
                },
            });
            r.sleep(ms).await?;
            r.screenshot("boot-wait");
        }
        "boot_command" => {
            let total = 51;
            for typed in [10, 25, 40, 51] {
                r.emit(BuildEvent::Progress {
                    step: step.into(),
                    progress: Progress::Keys { typed, total },
                });
                r.sleep(ms / 4).await?;
            }
            r.screenshot("typed");
        }
        "wait_for_ssh" => {
            for i in 1..=3 {
                r.emit(BuildEvent::Progress {
                    step: step.into(),
                    progress: Progress::Wait {
                        label: "waiting for SSH".into(),
                        elapsed_ms: i * ms / 3,
                        timeout_ms: Some(3_600_000),
                    },
                });
                r.log(
                    LogSource::Serial,
                    format!("[   {i}.000000] testos: installing ({i}/3)"),
                );
                r.sleep(ms / 3).await?;
            }
            r.screenshot("installed");
            r.log(LogSource::Engine, "SSH: connected to 127.0.0.1 as testos");
        }
        "provision" => {
            for i in 0..k.log_lines {
                r.log(
                    LogSource::Provisioner,
                    format!("TASK [testos : step {i}] ok: [{name}]"),
                );
            }
            if k.stream_s > 0 {
                let gap = 1_000_000 / k.rate;
                let end = Instant::now() + Duration::from_secs(k.stream_s);
                let mut n = 0u64;
                let mut next = tokio::time::Instant::now();
                while Instant::now() < end {
                    r.log(
                        LogSource::Provisioner,
                        format!("stream line {n}: ok: [{name}] changed=0"),
                    );
                    n += 1;
                    next += Duration::from_micros(gap);
                    tokio::select! {
                        _ = tokio::time::sleep_until(next) => {}
                        _ = r.cancel.cancelled() => return Err(Cancelled),
                    }
                }
            }
            r.sleep(ms).await?;
        }
        "export" => {
            r.sleep(ms).await?;
            match write_image(out_dir, name, k.disk_kib) {
                Ok(files) => {
                    for (p, size, sum) in files {
                        r.emit(BuildEvent::Artifact {
                            path: p.to_string_lossy().into_owned(),
                            size,
                            sha256: Some(sum),
                        });
                    }
                }
                Err(e) => r.emit(BuildEvent::Warning {
                    message: format!("writing the image into {}: {e}", out_dir.display()),
                }),
            }
        }
        _ => {
            r.log(LogSource::Engine, format!("{step}: ok"));
            r.sleep(ms).await?;
        }
    }
    Ok(())
}

/// The disk image (pseudo-random bytes) and SHA256SUMS.
fn write_image(dir: &Path, name: &str, kib: u64) -> std::io::Result<Vec<(PathBuf, u64, String)>> {
    std::fs::create_dir_all(dir)?;
    let disk = dir.join(format!("{name}.qcow2"));
    let mut data = Vec::with_capacity((kib * 1024) as usize);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ kib;
    while data.len() < (kib * 1024) as usize {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate((kib * 1024) as usize);
    std::fs::write(&disk, &data)?;
    let sum = hex::encode(Sha256::digest(&data));
    let sums_text = format!("{sum}  {name}.qcow2\n");
    let sums = dir.join("SHA256SUMS");
    std::fs::write(&sums, &sums_text)?;
    let sums_sum = hex::encode(Sha256::digest(sums_text.as_bytes()));
    Ok(vec![
        (disk, data.len() as u64, sum),
        (sums, sums_text.len() as u64, sums_sum),
    ])
}
