//! Typing through `controlvm NAME keyboardputscancode HEX…`.
//!
//! Each key event becomes its PC-XT set-1 scancodes (make, then break = make | 0x80, Shift
//! around shifted characters, an `e0` prefix before extended keys — each code its own
//! argument: VirtualBox rejects `e038` as "not a hex byte"). The codes go out in calls of at
//! most 25 (more at once overflows VirtualBox's keyboard queue: `VERR_PDM_NO_QUEUE_ITEMS`),
//! a key's codes never split over two calls (a make and its break far apart is what makes
//! guests drop or repeat characters), with `boot_keygroup_interval` (100 ms) between calls.
//! `<wait>` sends what is pending, then waits. Typed codes are never logged: they may be a
//! password.

use crate::bootcmd::KeyEvent;
use crate::keys::scancodes;
use crate::{DriverError, DriverResult};
use std::time::Duration;

/// At most this many scancodes per `keyboardputscancode` call.
pub const MAX_CODES_PER_CALL: usize = 25;

/// One step of typing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// One `keyboardputscancode` call; `done` = key events finished after it.
    Send { codes: Vec<u8>, done: usize },
    /// A `<wait>`; `done` = key events finished before it.
    Wait { duration: Duration, done: usize },
}

/// Plan the calls for `events` (pure; see the module docs).
pub fn plan(events: &[KeyEvent], max: usize) -> DriverResult<Vec<Step>> {
    let mut steps = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    for (i, ev) in events.iter().enumerate() {
        match ev {
            KeyEvent::Wait(d) => {
                if !pending.is_empty() {
                    steps.push(Step::Send {
                        codes: std::mem::take(&mut pending),
                        done: i,
                    });
                }
                steps.push(Step::Wait {
                    duration: *d,
                    done: i,
                });
            }
            KeyEvent::Tap(k) | KeyEvent::Down(k) | KeyEvent::Up(k) => {
                let codes = scancodes(ev).ok_or_else(|| {
                    DriverError::Msg(format!(
                        "key {k:?} has no PC scancode (only printable US-ASCII and the special keys \
                         can be typed)"
                    ))
                })?;
                if pending.len() + codes.len() > max {
                    steps.push(Step::Send {
                        codes: std::mem::take(&mut pending),
                        done: i,
                    });
                }
                pending.extend(codes);
            }
        }
    }
    if !pending.is_empty() {
        steps.push(Step::Send {
            codes: pending,
            done: events.len(),
        });
    }
    Ok(steps)
}

/// The arguments of one call: each code as two lower-case hex digits.
pub fn call_args(vm: &str, codes: &[u8]) -> Vec<String> {
    let mut a = vec![
        "controlvm".to_string(),
        vm.to_string(),
        "keyboardputscancode".to_string(),
    ];
    a.extend(codes.iter().map(|c| format!("{c:02x}")));
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootcmd::{parse_str, Fields};

    fn events(s: &str) -> Vec<KeyEvent> {
        parse_str(s, &Fields::placeholders()).unwrap()
    }

    fn sends(steps: &[Step]) -> Vec<Vec<u8>> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Send { codes, .. } => Some(codes.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn taps_and_shift() {
        let s = plan(&events("aA"), 25).unwrap();
        assert_eq!(sends(&s), vec![vec![0x1e, 0x9e, 0x2a, 0x1e, 0x9e, 0xaa]]);
        assert_eq!(
            call_args("vm", &[0xe0, 0x4b, 0x2a]),
            ["controlvm", "vm", "keyboardputscancode", "e0", "4b", "2a"]
        );
    }

    #[test]
    fn at_most_25_codes_and_keys_never_split() {
        // 30 shifted characters (4 codes each) and arrows (e0 xx e0 xx) mixed.
        let text = "ABCDEFGHIJ<left>KLMNOPQRST<right>UVWXYZ!@#$";
        let evs = events(text);
        let steps = plan(&evs, MAX_CODES_PER_CALL).unwrap();
        let all: Vec<u8> = sends(&steps).concat();
        let expected: Vec<u8> = evs.iter().flat_map(|e| scancodes(e).unwrap()).collect();
        assert_eq!(all, expected, "nothing lost or reordered");
        for c in sends(&steps) {
            assert!(c.len() <= MAX_CODES_PER_CALL, "{} codes", c.len());
            // Every call holds whole keys: 4 codes each here.
            assert_eq!(c.len() % 4, 0, "{c:02x?}");
            assert_ne!(c.last(), Some(&0xe0), "an e0 prefix split from its code");
        }
        // 24 codes fit (6 keys), the 7th key starts a new call.
        assert_eq!(sends(&steps)[0].len(), 24);
    }

    #[test]
    fn waits_flush_and_progress_counts_events() {
        let evs = events("ab<wait>c<wait2>");
        let steps = plan(&evs, 25).unwrap();
        assert_eq!(
            steps,
            vec![
                Step::Send {
                    codes: vec![0x1e, 0x9e, 0x30, 0xb0],
                    done: 2
                },
                Step::Wait {
                    duration: Duration::from_secs(1),
                    done: 2
                },
                Step::Send {
                    codes: vec![0x2e, 0xae],
                    done: 4
                },
                Step::Wait {
                    duration: Duration::from_secs(2),
                    done: 4
                },
            ]
        );
    }

    #[test]
    fn held_modifiers_are_separate_events() {
        let evs = events("<leftCtrlOn>c<leftCtrlOff><rightAltOn><rightAltOff>");
        let steps = plan(&evs, 25).unwrap();
        assert_eq!(
            sends(&steps),
            vec![vec![0x1d, 0x2e, 0xae, 0x9d, 0xe0, 0x38, 0xe0, 0xb8]]
        );
    }
}
