//! What `tests/native_e2e.rs` checks in a CLI build's `--events` NDJSON and `--dispatcher`
//! lines (docs/EVENTS.md).

use std::path::Path;
use std::time::Duration;

/// The `--events` file of a CLI build: documented NDJSON (docs/EVENTS.md), steps in order,
/// progress while steps run, no secret; and the `--dispatcher` lines in the output.
pub fn check_events(scratch: &Path, name: &str, output: &[String], password: &str) {
    use osimager_events::{BuildEvent, EventRecord, Outcome};
    let text = std::fs::read_to_string(scratch.join(format!("{name}.events.ndjson"))).unwrap();
    assert!(!text.contains(password), "the password is in the events");
    let recs: Vec<EventRecord> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(
        recs.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (0..recs.len() as u64).collect::<Vec<_>>(),
        "sequence numbers without gaps"
    );
    assert!(matches!(recs[0].event, BuildEvent::BuildStarted { .. }));
    assert!(matches!(
        recs.last().unwrap().event,
        BuildEvent::BuildFinished {
            result: osimager_events::BuildResult::Succeeded,
            ..
        }
    ));
    let finished: Vec<&str> = recs
        .iter()
        .filter_map(|r| match &r.event {
            BuildEvent::StepFinished { step, outcome, .. } => {
                assert_ne!(*outcome, Outcome::Failed, "{step}");
                Some(step.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        finished,
        [
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
            "cleanup"
        ]
    );
    // Progress arrives while a step runs: the SSH wait reports long before it ends.
    let t = |r: &EventRecord| humantime::parse_rfc3339(&r.time).unwrap();
    let ssh_end = recs
        .iter()
        .find(
            |r| matches!(&r.event, BuildEvent::StepFinished { step, .. } if step == "wait_for_ssh"),
        )
        .unwrap();
    let early = recs.iter().filter(|r| {
        matches!(&r.event, BuildEvent::Progress { step, .. } if step == "wait_for_ssh")
            && t(ssh_end).duration_since(t(r)).unwrap_or_default() > Duration::from_secs(10)
    });
    assert!(early.count() >= 5, "no progress while waiting for SSH");
    for step in ["boot_command", "export"] {
        assert!(
            recs.iter()
                .any(|r| matches!(&r.event, BuildEvent::Progress { step: s, .. } if s == step)),
            "no progress in {step}"
        );
    }
    assert!(recs.iter().any(|r| matches!(
        &r.event,
        BuildEvent::Log {
            source: osimager_events::LogSource::Serial,
            ..
        }
    )));
    assert!(recs.iter().any(|r| matches!(
        &r.event,
        BuildEvent::Log {
            source: osimager_events::LogSource::Provisioner,
            ..
        }
    )));
    assert!(recs.iter().any(|r| matches!(
        &r.event,
        BuildEvent::Artifact {
            sha256: Some(_),
            ..
        }
    )));
    // --dispatcher: PROGRESS lines on stdout as steps finish, then PROGRESS=100 and RESULT.
    let lines: Vec<&str> = output
        .iter()
        .map(String::as_str)
        .filter(|l| l.starts_with("PROGRESS=") || l.starts_with("RESULT="))
        .collect();
    assert!(
        lines.iter().filter(|l| l.starts_with("PROGRESS=")).count() >= 10,
        "{lines:?}"
    );
    assert_eq!(
        lines.last().copied(),
        Some(
            format!(
                r#"RESULT={{"spec": "testos-1-x86_64", "name": "{name}", "status": "success"}}"#
            )
            .as_str()
        ),
        "{lines:?}"
    );
}
