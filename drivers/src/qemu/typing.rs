//! Typing key events through QMP.
//!
//! Every key goes through `input-send-event` with explicit down and up events: a press
//! (with Shift when the character needs it), a pause of half the key interval, the release,
//! then the rest of the interval. `send-key` is not used because QEMU queues its timed
//! releases separately from `input-send-event`, so mixing the two (taps and `<xOn>` holds)
//! reorders keys; and pressing and releasing in one message can lose keys on devices that
//! report key state (USB HID) rather than a byte queue (PS/2). With a [`VcpuPacer`], each
//! event also waits until the guest's vCPU has run (see `pacer.rs`). Typed keys are never
//! logged (they may be passwords).

use super::pacer::VcpuPacer;
use crate::bootcmd::{Key, KeyEvent};
use crate::keys::qcode;
use crate::qmp::Qmp;
use crate::{DriverError, DriverResult, KeyProgress};
use serde_json::{json, Value};
use std::time::Duration;

fn qkey(key: Key) -> DriverResult<(Value, bool)> {
    let q = qcode(key).ok_or_else(|| {
        DriverError::Msg(format!(
            "key {key:?} has no QEMU key code (only printable US-ASCII and the special keys can be typed)"
        ))
    })?;
    Ok((json!({"type": "qcode", "data": q.name}), q.shift))
}

fn key_events(key: Key, down: bool) -> DriverResult<Value> {
    let (q, needs_shift) = qkey(key)?;
    let ev = |k: Value| json!({"type": "key", "data": {"down": down, "key": k}});
    let shift = json!({"type": "qcode", "data": "shift"});
    let mut evs = Vec::new();
    if down {
        if needs_shift {
            evs.push(ev(shift.clone()));
        }
        evs.push(ev(q));
    } else {
        evs.push(ev(q));
        if needs_shift {
            evs.push(ev(shift));
        }
    }
    Ok(json!({ "events": evs }))
}

async fn send(qmp: &Qmp, pacer: Option<&VcpuPacer>, key: Key, down: bool) -> DriverResult<()> {
    let args = key_events(key, down)?;
    let before = pacer.map(VcpuPacer::sample);
    qmp.execute("input-send-event", Some(args)).await?;
    if let (Some(p), Some(b)) = (pacer, before) {
        p.wait_ran(&b).await;
    }
    Ok(())
}

/// Type `events`: each key press/release is followed by pauses adding up to `interval`.
pub(crate) async fn type_events(
    qmp: &Qmp,
    events: &[KeyEvent],
    interval: Duration,
    pacer: Option<&VcpuPacer>,
    progress: KeyProgress<'_>,
) -> DriverResult<()> {
    let hold = interval / 2;
    tracing::debug!(
        "typing {} key events (interval {interval:?}, vCPU pacing {})",
        events.len(),
        pacer.is_some()
    );
    for (i, ev) in events.iter().enumerate() {
        // Reported before a wait too, so a long `<wait>` does not look like a stall.
        progress(i, events.len());
        match ev {
            KeyEvent::Wait(d) => tokio::time::sleep(*d).await,
            KeyEvent::Tap(k) => {
                send(qmp, pacer, *k, true).await?;
                tokio::time::sleep(hold).await;
                send(qmp, pacer, *k, false).await?;
                tokio::time::sleep(interval - hold).await;
            }
            KeyEvent::Down(k) | KeyEvent::Up(k) => {
                send(qmp, pacer, *k, matches!(ev, KeyEvent::Down(_))).await?;
                tokio::time::sleep(interval).await;
            }
        }
    }
    progress(events.len(), events.len());
    Ok(())
}
