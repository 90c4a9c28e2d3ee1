//! Typing key events through QMP.
//!
//! A tap is one `send-key` (a chord: Shift with the key when the character needs it) whose
//! `hold-time` is half the key interval: QEMU queues the press, waits `hold-time`, queues the
//! release. We then wait the whole interval before the next key, so QEMU's input queue (which
//! drops events beyond 50 pending) never fills. Holds (`<xOn>`/`<xOff>`) use
//! `input-send-event` with explicit down/up events. Typed keys are never logged (they may be
//! passwords).

use crate::bootcmd::{Key, KeyEvent};
use crate::keys::qcode;
use crate::qmp::Qmp;
use crate::{DriverError, DriverResult};
use serde_json::{json, Value};
use std::time::Duration;

fn qkey(key: Key) -> DriverResult<(Value, bool)> {
    let q = qcode(key).ok_or_else(|| {
        DriverError::Msg(format!("key {key:?} has no QEMU key code (only printable US-ASCII and the special keys can be typed)"))
    })?;
    Ok((json!({"type": "qcode", "data": q.name}), q.shift))
}

fn shift() -> Value {
    json!({"type": "qcode", "data": "shift"})
}

fn input_event(key: Value, down: bool) -> Value {
    json!({"type": "key", "data": {"down": down, "key": key}})
}

/// Type `events`, pausing `interval` after each key.
pub(crate) async fn type_events(
    qmp: &Qmp,
    events: &[KeyEvent],
    interval: Duration,
) -> DriverResult<()> {
    let hold_ms = (interval.as_millis() / 2).clamp(1, 1000) as u64;
    tracing::debug!("typing {} key events (interval {interval:?})", events.len());
    for ev in events {
        match ev {
            KeyEvent::Wait(d) => tokio::time::sleep(*d).await,
            KeyEvent::Tap(k) => {
                let (q, needs_shift) = qkey(*k)?;
                let keys = if needs_shift {
                    vec![shift(), q]
                } else {
                    vec![q]
                };
                qmp.execute(
                    "send-key",
                    Some(json!({"keys": keys, "hold-time": hold_ms})),
                )
                .await?;
                tokio::time::sleep(interval).await;
            }
            KeyEvent::Down(k) | KeyEvent::Up(k) => {
                let down = matches!(ev, KeyEvent::Down(_));
                let (q, needs_shift) = qkey(*k)?;
                let mut evs = Vec::new();
                if down {
                    if needs_shift {
                        evs.push(input_event(shift(), true));
                    }
                    evs.push(input_event(q, true));
                } else {
                    evs.push(input_event(q, false));
                    if needs_shift {
                        evs.push(input_event(shift(), false));
                    }
                }
                qmp.execute("input-send-event", Some(json!({"events": evs})))
                    .await?;
                tokio::time::sleep(interval).await;
            }
        }
    }
    Ok(())
}
