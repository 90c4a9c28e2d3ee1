//! A small QMP client: one reader task routes `"id"`-tagged responses to the waiting caller and
//! broadcasts events to subscribers. It tolerates events and fields it does not know (newer
//! QEMU adds them) — the reason this is hand-written rather than the `qapi` crate.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::{broadcast, oneshot};

/// QMP failures.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// An I/O error on the monitor socket while doing `context`.
    #[error("QMP {context}: {source}")]
    Io {
        /// What was being done (connecting, sending a command, …).
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// QEMU closed the monitor (it exited); what the client was doing then.
    #[error("QMP connection to QEMU closed (QEMU exited or closed the monitor) while {0}")]
    Closed(String),
    /// QEMU answered a command with an `error` object.
    #[error("QMP command {command} failed: {class}: {desc}")]
    Command {
        /// The QMP command that failed (`execute` name).
        command: String,
        /// QEMU's error class, e.g. `GenericError`, `DeviceNotFound`.
        class: String,
        /// QEMU's human-readable description.
        desc: String,
    },
    /// QEMU sent something that is not valid QMP (JSON, greeting, reply).
    #[error("QMP protocol error: {0}")]
    Protocol(String),
    /// No answer in time (how long, while doing what).
    #[error("QMP: timed out after {0:?} {1}")]
    Timeout(Duration, String),
}

/// An asynchronous QMP event.
#[derive(Debug, Clone, PartialEq)]
pub struct QmpEvent {
    /// Event name, e.g. `SHUTDOWN`, `STOP`, `RESET`.
    pub name: String,
    /// The event's `data` object (`Null` when QEMU sends none).
    pub data: Value,
    /// QEMU's `timestamp` object (`seconds`, `microseconds`).
    pub timestamp: Value,
}

type Reply = Result<Value, (String, String)>;
/// `None` once the connection is gone: callers registering after that fail at once.
type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Reply>>>>>;

/// A negotiated QMP connection (capabilities already exchanged).
pub struct Qmp {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Pending,
    events: broadcast::Sender<QmpEvent>,
    next_id: AtomicU64,
    greeting: Value,
    path: PathBuf,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Qmp {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Qmp {
    /// Connect to a QMP unix socket, read the greeting and send `qmp_capabilities`.
    pub async fn connect(path: &Path) -> Result<Qmp, QmpError> {
        let stream = UnixStream::connect(path).await.map_err(|e| QmpError::Io {
            context: format!("connecting to {}", path.display()),
            source: e,
        })?;
        let (read, write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let greeting_line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .map_err(|_| {
                QmpError::Timeout(Duration::from_secs(30), "waiting for the greeting".into())
            })?
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof => {
                    QmpError::Closed("reading the greeting".into())
                }
                _ => QmpError::Io {
                    context: "reading the greeting".into(),
                    source: e,
                },
            })?
            .ok_or_else(|| QmpError::Closed("reading the greeting".into()))?;
        let greeting: Value = serde_json::from_str(&greeting_line)
            .map_err(|e| QmpError::Protocol(format!("bad greeting {greeting_line:?}: {e}")))?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(format!(
                "expected a {{\"QMP\": …}} greeting, got {greeting_line}"
            )));
        }
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let (events, _) = broadcast::channel(1024);
        let reader = tokio::spawn(read_loop(lines, pending.clone(), events.clone()));
        let qmp = Qmp {
            writer: tokio::sync::Mutex::new(write),
            pending,
            events,
            next_id: AtomicU64::new(1),
            greeting,
            path: path.to_path_buf(),
            reader,
        };
        qmp.execute("qmp_capabilities", None).await?;
        Ok(qmp)
    }

    /// Connect, retrying while the socket does not exist yet or refuses (QEMU starting up).
    pub async fn connect_retry(path: &Path, timeout: Duration) -> Result<Qmp, QmpError> {
        let deadline = Instant::now() + timeout;
        loop {
            match Qmp::connect(path).await {
                Ok(q) => return Ok(q),
                Err(QmpError::Io { source, .. })
                    if Instant::now() < deadline
                        && matches!(
                            source.kind(),
                            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                        ) =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(QmpError::Io { source, .. }) if Instant::now() >= deadline => {
                    return Err(QmpError::Timeout(
                        timeout,
                        format!("connecting to {} ({source})", path.display()),
                    ))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The server's greeting (`{"QMP": {"version": …, "capabilities": …}}`).
    pub fn greeting(&self) -> &Value {
        &self.greeting
    }

    /// Receive every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<QmpEvent> {
        self.events.subscribe()
    }

    /// Run a command; returns its `"return"` value or the QMP error.
    pub async fn execute(
        &self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, QmpError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            match p.as_mut() {
                Some(map) => map.insert(id, tx),
                None => return Err(QmpError::Closed(format!("sending {command}"))),
            };
        }
        let mut msg = json!({"execute": command, "id": id});
        if let Some(args) = arguments {
            msg["arguments"] = args;
        }
        let mut line = msg.to_string();
        line.push('\n');
        let write = async {
            let mut w = self.writer.lock().await;
            w.write_all(line.as_bytes()).await?;
            w.flush().await
        };
        if let Err(e) = write.await {
            self.forget(id);
            return Err(match e.kind() {
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                    QmpError::Closed(format!("sending {command}"))
                }
                _ => QmpError::Io {
                    context: format!("sending {command} to {}", self.path.display()),
                    source: e,
                },
            });
        }
        match rx.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err((class, desc))) => Err(QmpError::Command {
                command: command.to_string(),
                class,
                desc,
            }),
            Err(_) => Err(QmpError::Closed(format!(
                "waiting for the reply to {command}"
            ))),
        }
    }

    fn forget(&self, id: u64) {
        if let Some(map) = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            map.remove(&id);
        }
    }

    /// True while the reader still has a connection.
    pub fn is_connected(&self) -> bool {
        self.pending.lock().map(|p| p.is_some()).unwrap_or(false)
    }
}

async fn read_loop(
    mut lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    pending: Pending,
    events: broadcast::Sender<QmpEvent>,
) {
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            tracing::warn!("QMP: ignoring a line that is not JSON: {line:?}");
            continue;
        };
        if let Some(name) = v.get("event").and_then(Value::as_str) {
            tracing::debug!("QMP event {name}");
            let _ = events.send(QmpEvent {
                name: name.to_string(),
                data: v.get("data").cloned().unwrap_or(Value::Null),
                timestamp: v.get("timestamp").cloned().unwrap_or(Value::Null),
            });
            continue;
        }
        let Some(id) = v.get("id").and_then(Value::as_u64) else {
            tracing::debug!("QMP: ignoring a message without id: {line}");
            continue;
        };
        let reply = if let Some(r) = v.get("return") {
            Ok(r.clone())
        } else if let Some(e) = v.get("error") {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            Err((s("class"), s("desc")))
        } else {
            tracing::debug!("QMP: ignoring an unknown message: {line}");
            continue;
        };
        let tx = pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .and_then(|m| m.remove(&id));
        if let Some(tx) = tx {
            let _ = tx.send(reply);
        }
    }
    // Connection gone: dropping the senders wakes every waiter with `Closed`.
    pending.lock().unwrap_or_else(|e| e.into_inner()).take();
}

#[cfg(test)]
#[path = "qmp_tests.rs"]
mod tests;
