//! Typing accuracy: type long strings with every printable US-ASCII character through the
//! QEMU driver and compare with what the guest echoes on its serial console.
//!
//! * `typing_echo_exact_bios_boot_sector` — the 512-byte echo guest (BIOS int 16h, the same
//!   path ISOLINUX and GRUB read keys through); fast, always runs.
//! * `typing_echo_exact_isolinux_prompt` — the hermetic test OS ISO at its ISOLINUX `boot:`
//!   prompt (`serial 0`); fails when the ISO has not been built
//!   (tests/testos/build-media.sh). Slow-ish: #[ignore].
//! * `typing_interval_sweep` — the measurement behind `DEFAULT_KEY_INTERVAL`: several runs per
//!   interval, printing dropped/garbled counts and keys/s. #[ignore]; run with
//!   `cargo test -p osimager-drivers --test typing_accuracy -- --ignored --nocapture`.

use osimager_drivers::bootcmd::{parse, Fields, KeyEvent};
use osimager_drivers::qemu::{QemuConfig, QemuDriver, DEFAULT_KEY_INTERVAL};
use osimager_drivers::Driver;
use osimager_drivers::{DriverEnv, Media};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ECHO_BOOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/echo_boot.bin");

/// `len` characters cycling through all printable ASCII in a scrambled order (every shifted
/// symbol included), deterministic.
fn mixed_text(len: usize) -> String {
    let all: Vec<char> = (' '..='~').collect();
    (0..len)
        .map(|i| all[(i * 37 + i / 95) % all.len()])
        .collect()
}

/// The boot command that types `text` exactly (`<` must be written as a hold of `<`).
fn events_for(text: &str) -> Vec<KeyEvent> {
    let escaped: String = text
        .chars()
        .map(|c| {
            if c == '<' {
                "<<On><<Off>".to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    let mut ev = parse(&[escaped], &Fields::new()).unwrap();
    ev.retain(|e| !matches!(e, KeyEvent::Up(_)));
    ev.iter_mut().for_each(|e| {
        if let KeyEvent::Down(k) = e {
            *e = KeyEvent::Tap(*k)
        }
    });
    ev
}

fn testos_iso() -> Option<PathBuf> {
    let mut c = Vec::new();
    if let Some(p) = std::env::var_os("OSIMAGER_TESTOS_ISO") {
        c.push(PathBuf::from(p));
    }
    if let Some(cache) = std::env::var_os("OSIMAGER_TESTOS_CACHE") {
        c.push(PathBuf::from(cache).join("current/testos.iso"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        c.push(PathBuf::from(home).join(".cache/osimager-testos/current/testos.iso"));
    }
    c.into_iter().find(|p| p.is_file())
}

async fn wait_for(path: &Path, needle: &str, timeout: Duration) -> String {
    let end = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) || Instant::now() > end {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Boot `media` (boot sector disk image or ISO), wait for `ready` on the serial console,
/// type `text` at `interval`; returns what the guest echoed after `ready` and the typing time.
async fn trial(
    iso: bool,
    media: &Path,
    ready: &str,
    text: &str,
    interval: Duration,
) -> (String, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let b = json!({
        "type": "qemu", "vm_name": "typing", "disk_image": !iso, "disk_size": "8M",
        "accelerator": "tcg", "memory": 64, "headless": true, "communicator": "none",
        "disk_interface": "ide", "boot_key_interval": format!("{}us", interval.as_micros()),
        "qemuargs": [["-netdev", "user,id=user.0,restrict=on"]]
    });
    let env = DriverEnv {
        build_name: "typing".into(),
        work_dir: dir.path().join("work"),
        log_dir: dir.path().join("logs"),
        vars: Vec::new(),
    };
    let media = Media {
        iso_path: Some(media.to_path_buf()),
        http: None,
    };
    let mut d = QemuDriver::new(QemuConfig::from_builder(b.as_object().unwrap(), env).unwrap());
    d.create(&media).await.unwrap();
    d.start().await.unwrap();
    let log = d.serial_log();
    let booted = wait_for(&log, ready, Duration::from_secs(120)).await;
    assert!(
        booted.contains(ready),
        "guest never showed {ready:?}: {booted:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    d.send_keys(&events_for(text), &|_, _| {}).await.unwrap();
    let took = start.elapsed();
    // Let the guest drain its keyboard buffer: until everything is echoed and the log stopped
    // growing, bounded (a starved TCG vCPU on a loaded host can take many seconds).
    let after = |s: &str| {
        s.split_once(ready)
            .map(|x| x.1.to_string())
            .unwrap_or_default()
    };
    let mut last = String::new();
    let drain_until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = after(&std::fs::read_to_string(&log).unwrap_or_default());
        if now == last && now.len() >= text.len() {
            break;
        }
        last = now;
    }
    d.destroy().await.unwrap();
    // ISOLINUX wraps its command line at 80 columns with "\r\r\n\x1b[K"; the typed text
    // itself contains no control characters.
    let echo = after(&std::fs::read_to_string(&log).unwrap_or_default())
        .replace("\x1b[K", "")
        .replace(['\r', '\n'], "");
    (echo, took)
}

fn keys_per_sec(text: &str, took: Duration) -> f64 {
    text.len() as f64 / took.as_secs_f64()
}

#[tokio::test]
async fn typing_echo_exact_bios_boot_sector() {
    let text = mixed_text(300);
    let (echo, took) = trial(
        false,
        Path::new(ECHO_BOOT),
        "R\n",
        &text,
        DEFAULT_KEY_INTERVAL,
    )
    .await;
    assert_eq!(echo, text);
    eprintln!(
        "boot sector: 300 keys in {took:?} = {:.0} keys/s",
        keys_per_sec(&text, took)
    );
}

#[tokio::test]
#[ignore = "slow: boots the test OS ISO (build it with tests/testos/build-media.sh)"]
async fn typing_echo_exact_isolinux_prompt() {
    // Run only on request (#[ignore]); then a missing ISO is a failure, not a silent pass.
    let iso = testos_iso()
        .expect("no testos.iso: set OSIMAGER_TESTOS_ISO or run tests/testos/build-media.sh");
    let text = mixed_text(240);
    let (echo, took) = trial(true, &iso, "boot: ", &text, DEFAULT_KEY_INTERVAL).await;
    assert_eq!(echo, text);
    eprintln!(
        "isolinux: {} keys in {took:?} = {:.0} keys/s",
        text.len(),
        keys_per_sec(&text, took)
    );
}

#[tokio::test]
#[ignore = "measurement: several boots per key interval"]
async fn typing_interval_sweep() {
    let runs: usize = std::env::var("SWEEP_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let text = mixed_text(300);
    let iso = testos_iso();
    let intervals: Vec<u64> = std::env::var("SWEEP_INTERVALS_US")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![0, 500, 1000, 2000, 4000, 6000, 10000, 20000]);
    for us in intervals {
        let interval = Duration::from_micros(us);
        for (name, is_iso, media, ready, t) in [
            (
                "bootsector",
                false,
                PathBuf::from(ECHO_BOOT),
                "R\n",
                text.clone(),
            ),
            (
                "isolinux",
                true,
                iso.clone().unwrap_or_default(),
                "boot: ",
                text[..240].to_string(),
            ),
        ] {
            if is_iso && iso.is_none() {
                continue;
            }
            for run in 0..runs {
                let (echo, took) = trial(is_iso, &media, ready, &t, interval).await;
                let bad = if echo == t {
                    0
                } else {
                    t.len()
                        .abs_diff(echo.len())
                        .max(t.chars().zip(echo.chars()).filter(|(a, b)| a != b).count())
                };
                if echo != t {
                    let at = t
                        .chars()
                        .zip(echo.chars())
                        .take_while(|(a, b)| a == b)
                        .count();
                    let lo = at.saturating_sub(5);
                    println!(
                        "  first difference at {at}: typed {:?} echoed {:?}",
                        t.get(lo..(at + 10).min(t.len())).unwrap_or(""),
                        echo.get(lo..(at + 10).min(echo.len())).unwrap_or("")
                    );
                }
                println!(
                    "interval={us}us media={name} run={run} ok={} bad={bad} keys/s={:.0}",
                    echo == t,
                    keys_per_sec(&t, took)
                );
            }
        }
    }
}
