//! The VNC client against QEMU's own VNC server (a real RFB peer), with and without VNC
//! Authentication: every printable US-ASCII character reaches the echo guest exactly (read
//! back from its serial console), every special key arrives as the right key (read back from
//! QEMU's `vnc_key_event_map` trace), and the framebuffer can be read as a PNG.

/// Loopback ports found at run time (the repository's shared test harness, tests/support).
#[path = "../../tests/support/ports.rs"]
mod ports;

use osimager_drivers::bootcmd::{Key, KeyEvent, Special};
use osimager_drivers::keys::qcode;
use osimager_drivers::qmp::Qmp;
use osimager_drivers::vnc::{capture_screen, VncClient, VncError};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const ECHO_BOOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/echo_boot.bin");
const PASSWORD: &str = "S3cr:t!x";

/// The echo guest under QEMU with a VNC server on 127.0.0.1 (password=on when asked),
/// QEMU's key trace in `trace`, the serial console in `serial`.
struct EchoVm {
    child: tokio::process::Child,
    qmp: Qmp,
    serial: PathBuf,
    trace: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl EchoVm {
    async fn start(password: bool) -> EchoVm {
        let dir = tempfile::tempdir().unwrap();
        let serial = dir.path().join("serial.log");
        let trace = dir.path().join("trace.log");
        let qmp_path = dir.path().join("qmp.sock");
        let vnc = format!(
            "127.0.0.1:40,to=99{}",
            if password { ",password=on" } else { "" }
        );
        let child = tokio::process::Command::new("qemu-system-x86_64")
            .args([
                "-accel",
                "tcg",
                "-m",
                "32",
                "-display",
                "none",
                "-no-user-config",
            ])
            .args(["-nodefaults", "-vga", "std", "-vnc", &vnc])
            .arg("-drive")
            .arg(format!("file={ECHO_BOOT},format=raw,if=ide,snapshot=on"))
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .args(["-trace", "enable=vnc_key_event_map", "-D"])
            .arg(&trace)
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp_path.display()))
            .stdin(Stdio::null())
            // QEMU announces the VNC port it picked on stderr: keep that out of the test output.
            .stderr(std::fs::File::create(dir.path().join("qemu.log")).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("qemu-system-x86_64 runs");
        let qmp = Qmp::connect_retry(&qmp_path, Duration::from_secs(20))
            .await
            .unwrap();
        if password {
            qmp.execute(
                "set_password",
                Some(json!({"protocol": "vnc", "password": PASSWORD})),
            )
            .await
            .unwrap();
        }
        let v = qmp.execute("query-vnc", None).await.unwrap();
        let port = v["service"].as_str().unwrap().parse().unwrap();
        let vm = EchoVm {
            child,
            qmp,
            serial,
            trace,
            port,
            _dir: dir,
        };
        let booted = wait_for(&vm.serial, "R\n", Duration::from_secs(60)).await;
        assert!(
            booted.contains("R\n"),
            "echo guest did not start: {booted:?}"
        );
        vm
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// (down, keysym, QKeyCode name) of every key QEMU received, in order.
    fn received(&self) -> Vec<(bool, u32, String)> {
        std::fs::read_to_string(&self.trace)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("vnc_key_event_map down ")?;
                let (down, rest) = rest.split_once(", sym 0x")?;
                let (sym, rest) = rest.split_once(" -> ")?;
                let name = rest.split_once('[')?.1.strip_suffix(']')?;
                Some((
                    down == "1",
                    u32::from_str_radix(sym, 16).ok()?,
                    name.to_string(),
                ))
            })
            .collect()
    }

    async fn stop(mut self) {
        let _ = self.qmp.execute("quit", None).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

async fn wait_for(path: &Path, needle: &str, timeout: Duration) -> String {
    let end = Instant::now() + timeout;
    loop {
        // Lossy: special keys echo non-UTF-8 bytes (int 16h returns 0xe0 for extended keys).
        let text = String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned();
        if text.contains(needle) || Instant::now() > end {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until the serial log is longer than `len` bytes; returns its length.
async fn wait_longer(path: &Path, len: usize, timeout: Duration) -> usize {
    let end = Instant::now() + timeout;
    loop {
        let now = std::fs::metadata(path)
            .map(|m| m.len() as usize)
            .unwrap_or(0);
        if now > len || Instant::now() > end {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Type `events` paced by the guest itself: after each key press the next waits until the
/// guest has echoed it (a starved TCG vCPU on a loaded host can take far longer than any fixed
/// interval, and QEMU's PS/2 queue drops what overflows). Every pressed key must echo.
async fn type_paced(client: &mut VncClient, events: &[KeyEvent], serial: &Path) {
    let mut echoed = std::fs::metadata(serial)
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    for ev in events {
        client
            .type_events(std::slice::from_ref(ev), Duration::from_millis(20))
            .await
            .unwrap();
        if matches!(ev, KeyEvent::Tap(_) | KeyEvent::Down(_)) {
            let grown = wait_longer(serial, echoed, Duration::from_secs(20)).await;
            assert!(
                grown > echoed,
                "no echo for {ev:?} within 20 s: {:?}",
                String::from_utf8_lossy(&std::fs::read(serial).unwrap_or_default())
            );
            echoed = grown;
        }
    }
}

fn printable() -> String {
    (' '..='~').collect()
}

fn taps(text: &str) -> Vec<KeyEvent> {
    text.chars().map(|c| KeyEvent::Tap(Key::Char(c))).collect()
}

/// Every special key of the boot-command language but Enter (which ends the echo guest).
fn specials() -> Vec<Special> {
    use Special::*;
    let mut v = vec![
        Backspace, Delete, Esc, Tab, Spacebar, Insert, Home, End, PageUp, PageDown, Menu, Up, Down,
        Left, Right, LeftAlt, RightAlt, LeftCtrl, RightCtrl, LeftShift, RightShift, LeftSuper,
        RightSuper,
    ];
    v.extend((1..=12).map(F));
    v
}

/// Type all printable characters, then Enter; the guest echoes exactly that.
async fn printables_arrive(vm: &EchoVm, client: &mut VncClient) {
    let text = printable();
    let mut events = taps(&text);
    events.push(KeyEvent::Tap(Key::Special(Special::Enter)));
    type_paced(client, &events, &vm.serial).await;
    let echo = wait_for(&vm.serial, "\r\n", Duration::from_secs(60)).await;
    // Before the text: only what the special keys typed earlier echo (control bytes).
    let before = echo
        .strip_prefix("R\n")
        .and_then(|e| e.strip_suffix(&format!("{text}\r\n")))
        .unwrap_or_else(|| panic!("the guest echoed {echo:?}, expected …{text:?}"));
    assert!(
        before.chars().all(|c| !c.is_ascii_graphic()),
        "stray characters before the text: {before:?}"
    );
}

/// Every special key, pressed and released, arrives as that key (QEMU's trace).
async fn specials_arrive(vm: &EchoVm, client: &mut VncClient) {
    let keys = specials();
    let events: Vec<KeyEvent> = keys
        .iter()
        .map(|s| KeyEvent::Tap(Key::Special(*s)))
        .collect();
    client
        .type_events(&events, Duration::from_millis(5))
        .await
        .unwrap();
    let mut expect = Vec::new();
    for s in &keys {
        let k = Key::Special(*s);
        let sym = osimager_drivers::keys::keysym(k).unwrap().sym;
        let name = qcode(k).unwrap().name.to_string();
        expect.push((true, sym, name.clone()));
        expect.push((false, sym, name));
    }
    let end = Instant::now() + Duration::from_secs(20);
    let got = loop {
        let got = vm.received();
        if got.len() >= expect.len() || Instant::now() > end {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(got, expect);
}

#[tokio::test]
async fn vnc_without_password_every_key_arrives() {
    let vm = EchoVm::start(false).await;
    let mut c = VncClient::connect(&vm.addr(), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(c.width > 0 && c.height > 0);
    specials_arrive(&vm, &mut c).await;
    printables_arrive(&vm, &mut c).await;
    drop(c);
    vm.stop().await;
}

#[tokio::test]
async fn vnc_with_password_authenticates_and_every_key_arrives() {
    let vm = EchoVm::start(true).await;
    // No password: refused clearly before anything is typed.
    let e = VncClient::connect(&vm.addr(), Duration::from_secs(10))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, VncError::PasswordRequired), "{e}");
    // A wrong password: the server's SecurityResult says so.
    let e = VncClient::connect_with_password(&vm.addr(), Some("wrong-pw"), Duration::from_secs(10))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, VncError::AuthFailed(_)), "{e}");
    assert!(
        !e.to_string().contains("wrong-pw"),
        "the password leaked: {e}"
    );
    // QEMU delays connections after a failed authentication; the right password works.
    let mut c =
        VncClient::connect_with_password(&vm.addr(), Some(PASSWORD), Duration::from_secs(30))
            .await
            .unwrap();
    assert!(
        vm.received().is_empty(),
        "nothing typed before authentication"
    );
    specials_arrive(&vm, &mut c).await;
    // A screenshot over a second, shared session does not disturb the typing one.
    let frame = capture_screen(&vm.addr(), Some(PASSWORD), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!((frame.width, frame.height), (c.width, c.height));
    printables_arrive(&vm, &mut c).await;
    drop(c);
    vm.stop().await;
}

#[tokio::test]
async fn vnc_screenshot_is_the_console() {
    let vm = EchoVm::start(false).await;
    let frame = capture_screen(&vm.addr(), None, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        frame.width >= 320 && frame.height >= 200,
        "{}x{}",
        frame.width,
        frame.height
    );
    assert_eq!(
        frame.rgb.len(),
        frame.width as usize * frame.height as usize * 3
    );
    // SeaBIOS has printed its banner: the screen is not one colour.
    let first = &frame.rgb[..3];
    assert!(frame.rgb.chunks(3).any(|p| p != first), "blank screen");
    let png = frame.to_png();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // What `file`/image tools read: IHDR width and height.
    assert_eq!(
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from(frame.width)
    );
    vm.stop().await;
}

#[tokio::test]
async fn vnc_connect_errors_are_clear() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    // A server that never greets: timeout, not a hang.
    let e = VncClient::connect(&addr, Duration::from_millis(300))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, VncError::Timeout(..)), "{e}");
    drop(l);
    let e = VncClient::connect(&addr, Duration::from_secs(5))
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("connecting"), "{e}");
}

/// The QEMU driver's own VNC display (vnc_* builder keys) accepts the client too.
#[tokio::test]
async fn qemu_driver_vnc_display_accepts_keys() {
    use osimager_drivers::qemu::{QemuConfig, QemuDriver};
    use osimager_drivers::{Driver, DriverEnv, Media};
    let dir = tempfile::tempdir().unwrap();
    let (lo, hi) = ports::free_port_range(10);
    let b = json!({
        "type": "qemu", "vm_name": "vnc", "disk_image": true, "disk_size": "8M",
        "accelerator": "tcg", "memory": 32, "headless": true, "communicator": "none",
        "disk_interface": "ide", "vnc_bind_address": "127.0.0.1",
        "vnc_port_min": lo, "vnc_port_max": hi,
        "qemuargs": [["-netdev", "user,id=user.0,restrict=on"]]
    });
    let env = DriverEnv {
        build_name: "vnc".into(),
        work_dir: dir.path().join("work"),
        log_dir: dir.path().join("logs"),
        vars: Vec::new(),
    };
    let mut d = QemuDriver::new(QemuConfig::from_builder(b.as_object().unwrap(), env).unwrap());
    d.create(&Media {
        iso_path: Some(ECHO_BOOT.into()),
        http: None,
    })
    .await
    .unwrap();
    d.start().await.unwrap();
    let port = d.vnc_port().expect("QEMU reports its VNC port");
    let log = d.serial_log();
    assert!(wait_for(&log, "R\n", Duration::from_secs(60))
        .await
        .contains("R\n"));
    let mut vnc = VncClient::connect(&format!("127.0.0.1:{port}"), Duration::from_secs(10))
        .await
        .unwrap();
    let typed = "Vnc: Hello, World! ~`{}|:\"_+?>,./[]\\;'=-0123456789 @#$%^&*()<";
    let mut events = taps(typed);
    events.push(KeyEvent::Tap(Key::Special(Special::Enter)));
    type_paced(&mut vnc, &events, &log).await;
    let text = wait_for(&log, "\r\n", Duration::from_secs(30)).await;
    assert_eq!(text, format!("R\n{typed}\r\n"));
    assert!(d.wait_stopped(Duration::from_secs(30)).await.unwrap());
    drop(vnc);
    d.destroy().await.unwrap();
}
