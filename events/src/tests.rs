use super::*;

fn rec(event: BuildEvent) -> EventRecord {
    EventRecord::new("b-1", 7, event)
}

#[test]
fn records_serialize_flat_with_a_type_tag() {
    let r = rec(BuildEvent::StepFinished {
        step: "iso".into(),
        outcome: Outcome::Ok,
        duration_ms: 12,
    });
    let v: serde_json::Value = serde_json::to_value(&r).unwrap();
    assert_eq!(v["v"], SCHEMA_VERSION);
    assert_eq!(v["build"], "b-1");
    assert_eq!(v["seq"], 7);
    assert_eq!(v["type"], "step_finished");
    assert_eq!(v["step"], "iso");
    assert_eq!(v["outcome"], "ok");
    assert_eq!(v["duration_ms"], 12);
    assert!(v["time"].as_str().unwrap().ends_with('Z'));
    let back: EventRecord = serde_json::from_value(v).unwrap();
    assert_eq!(back, r);
}

#[test]
fn progress_is_tagged_by_kind_and_optional_fields_are_omitted() {
    let r = rec(BuildEvent::Progress {
        step: "wait_for_ssh".into(),
        progress: Progress::Wait {
            label: "SSH".into(),
            elapsed_ms: 1000,
            timeout_ms: None,
        },
    });
    let s = serde_json::to_string(&r).unwrap();
    assert!(
        s.contains(r#""progress":{"kind":"wait","label":"SSH","elapsed_ms":1000}"#),
        "{s}"
    );
}

#[test]
fn readers_ignore_unknown_fields() {
    let line =
        r#"{"v":1,"build":"x","seq":0,"time":"t","type":"warning","message":"m","new_field":3}"#;
    let r: EventRecord = serde_json::from_str(line).unwrap();
    assert_eq!(
        r.event,
        BuildEvent::Warning {
            message: "m".into()
        }
    );
}

#[test]
fn map_text_reaches_every_text_field() {
    let mut e = BuildEvent::BuildFinished {
        result: BuildResult::Failed,
        duration_ms: 1,
        error: Some(ErrorInfo {
            kind: ErrorKind::Provisioner,
            message: "pw=s3cret".into(),
            step: Some("s3cret".into()),
        }),
        output_dir: Some("/s3cret".into()),
        left_in_place: vec!["s3cret vm".into()],
    };
    e.map_text(&|s| s.replace("s3cret", "***"));
    let text = serde_json::to_string(&e).unwrap();
    assert!(!text.contains("s3cret"), "{text}");
}

#[test]
fn ndjson_sink_writes_one_line_per_record() {
    let sink = NdjsonSink::new(Vec::<u8>::new());
    sink.send(&rec(BuildEvent::StepStarted { step: "a".into() }));
    sink.send(&rec(BuildEvent::StepStarted { step: "b".into() }));
    let out = sink.into_inner();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 2);
    for l in text.lines() {
        let _: EventRecord = serde_json::from_str(l).unwrap();
    }
}
