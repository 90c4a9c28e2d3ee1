use super::*;
use tokio::io::AsyncReadExt;
use tokio::net::UnixListener;

struct Qemu {
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
    sock: PathBuf,
}

fn spawn_qemu() -> Qemu {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("qmp.sock");
    let child = tokio::process::Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "tcg",
            "-nodefaults",
            "-display",
            "none",
            "-machine",
            "pc",
            "-m",
            "32",
            "-vga",
            "std",
        ])
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", sock.display()))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("qemu-system-x86_64 must be installed");
    Qemu {
        child,
        _dir: dir,
        sock,
    }
}

async fn next_event(rx: &mut broadcast::Receiver<QmpEvent>, name: &str) -> QmpEvent {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let ev = rx.recv().await.unwrap();
            if ev.name == name {
                return ev;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {name} event"))
}

#[tokio::test]
async fn real_qemu_status_events_screendump_quit() {
    let mut qemu = spawn_qemu();
    let qmp = Qmp::connect_retry(&qemu.sock, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(qmp.greeting()["QMP"]["version"]["qemu"]["major"].is_u64());

    let status = qmp.execute("query-status", None).await.unwrap();
    assert_eq!(status["running"], Value::Bool(true));
    assert_eq!(status["status"], "running");

    let mut events = qmp.subscribe();
    qmp.execute("stop", None).await.unwrap();
    next_event(&mut events, "STOP").await;
    let status = qmp.execute("query-status", None).await.unwrap();
    assert_eq!(status["status"], "paused");
    qmp.execute("cont", None).await.unwrap();
    next_event(&mut events, "RESUME").await;

    let err = qmp.execute("no-such-command", None).await.unwrap_err();
    assert!(
        matches!(&err, QmpError::Command { class, .. } if class == "CommandNotFound"),
        "{err}"
    );

    let png = qemu._dir.path().join("screen.png");
    qmp.execute(
        "screendump",
        Some(json!({"filename": png.to_str().unwrap(), "format": "png"})),
    )
    .await
    .unwrap();
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");

    // Concurrent commands are routed by id.
    let (a, b) = tokio::join!(
        qmp.execute("query-status", None),
        qmp.execute("query-name", None)
    );
    assert!(a.unwrap().get("status").is_some());
    assert!(b.unwrap().is_object());

    let _ = qmp.execute("quit", None).await;
    qemu.child.wait().await.unwrap();
    let err = qmp.execute("query-status", None).await.unwrap_err();
    assert!(matches!(err, QmpError::Closed(_)), "{err}");
    assert!(!qmp.is_connected());
}

/// A scripted server: unknown events, unknown fields and enum values must not disturb the
/// client.
#[tokio::test]
async fn tolerates_unknown_events_and_fields() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("fake.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(b"{\"QMP\": {\"version\": {\"qemu\": {\"major\": 99}}, \"capabilities\": [\"future-cap\"]}}\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let mut seen = String::new();
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            while let Some(pos) = seen.find('\n') {
                let line: String = seen.drain(..=pos).collect();
                let v: Value = serde_json::from_str(&line).unwrap();
                let id = v["id"].clone();
                let reply = format!(
                    "{{\"event\": \"SOMETHING_NEW_IN_QEMU_12\", \"data\": {{\"x\": 1}}, \"timestamp\": {{}}}}\n\
                     not json at all\n\
                     {{\"return\": {{\"status\": \"brand-new-state\", \"running\": false, \"extra\": [1]}}, \"id\": {id}, \"unknown\": true}}\n"
                );
                s.write_all(reply.as_bytes()).await.unwrap();
            }
        }
    });
    let qmp = Qmp::connect(&sock).await.unwrap();
    let mut rx = qmp.subscribe();
    let st = qmp.execute("query-status", None).await.unwrap();
    assert_eq!(st["status"], "brand-new-state");
    let ev = next_event(&mut rx, "SOMETHING_NEW_IN_QEMU_12").await;
    assert_eq!(ev.data["x"], 1);
    drop(qmp);
    server.abort();
}
