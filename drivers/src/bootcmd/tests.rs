use super::*;
use proptest::prelude::*;
use std::time::Duration;

fn p(s: &str) -> Result<Vec<KeyEvent>, BootCommandError> {
    parse_str(s, &Fields::placeholders())
}
fn tap(c: char) -> KeyEvent {
    KeyEvent::Tap(Key::Char(c))
}
fn sp(s: Special) -> KeyEvent {
    KeyEvent::Tap(Key::Special(s))
}
fn secs(s: f64) -> KeyEvent {
    KeyEvent::Wait(Duration::from_secs_f64(s))
}

#[test]
fn specials_case_insensitive() {
    use Special::*;
    let cases = [
        ("<bs>", Backspace),
        ("<DEL>", Delete),
        ("<Enter>", Enter),
        ("<return>", Enter),
        ("<esc>", Esc),
        ("<tab>", Tab),
        ("<f1>", F(1)),
        ("<F12>", F(12)),
        ("<up>", Up),
        ("<down>", Down),
        ("<left>", Left),
        ("<right>", Right),
        ("<spacebar>", Spacebar),
        ("<insert>", Insert),
        ("<home>", Home),
        ("<end>", End),
        ("<pageUp>", PageUp),
        ("<PAGEDOWN>", PageDown),
        ("<menu>", Menu),
        ("<leftAlt>", LeftAlt),
        ("<rightAlt>", RightAlt),
        ("<leftCtrl>", LeftCtrl),
        ("<rightctrl>", RightCtrl),
        ("<leftShift>", LeftShift),
        ("<rightShift>", RightShift),
        ("<leftSuper>", LeftSuper),
        ("<rightSuper>", RightSuper),
        ("<leftCommand>", LeftSuper),
        ("<rightCommand>", RightSuper),
        ("<leftOption>", LeftAlt),
        ("<rightOption>", RightAlt),
    ];
    for (text, key) in cases {
        assert_eq!(p(text).unwrap(), vec![sp(key)], "{text}");
    }
    for s in Special::all() {
        assert_eq!(p(&format!("<{}>", s.name())).unwrap(), vec![sp(s)]);
    }
    assert!(p("<f13>").is_err());
    assert!(p("<f0>").is_err());
}

#[test]
fn holds_for_specials_and_chars() {
    let ctrl = Key::Special(Special::LeftCtrl);
    assert_eq!(
        p("<leftCtrlOn>x<leftCtrlOFF>").unwrap(),
        vec![KeyEvent::Down(ctrl), tap('x'), KeyEvent::Up(ctrl)]
    );
    assert_eq!(
        p("<aOn><AOff><<On><>off>").unwrap(),
        vec![
            KeyEvent::Down(Key::Char('a')),
            KeyEvent::Up(Key::Char('A')),
            KeyEvent::Down(Key::Char('<')),
            KeyEvent::Up(Key::Char('>')),
        ]
    );
    assert_eq!(
        p("<leftOptionOn><leftOn>").unwrap(),
        vec![
            KeyEvent::Down(Key::Special(Special::LeftAlt)),
            KeyEvent::Down(Key::Special(Special::Left))
        ]
    );
    // The bundled ubuntu spec's Ctrl+X.
    assert_eq!(
        p("<leftCtrlOn><x><leftCtrlOff>").unwrap(),
        vec![KeyEvent::Down(ctrl), tap('x'), KeyEvent::Up(ctrl)]
    );
}

#[test]
fn waits() {
    assert_eq!(p("<wait>").unwrap(), vec![secs(1.0)]);
    assert_eq!(p("<wait5>").unwrap(), vec![secs(5.0)]);
    assert_eq!(p("<wait0>").unwrap(), vec![secs(0.0)]);
    assert_eq!(p("<wait1m30s>").unwrap(), vec![secs(90.0)]);
    assert_eq!(p("<wait250ms>").unwrap(), vec![secs(0.25)]);
    assert_eq!(p("<wait1.5s>").unwrap(), vec![secs(1.5)]);
    assert_eq!(p("<wait2h>").unwrap(), vec![secs(7200.0)]);
    assert_eq!(
        p("<wait10us><wait7ns>").unwrap(),
        vec![
            KeyEvent::Wait(Duration::from_micros(10)),
            KeyEvent::Wait(Duration::from_nanos(7))
        ]
    );
    assert_eq!(p("<WAIT15s>").unwrap(), vec![secs(15.0)]);
    for bad in ["<wait-5>", "<wait-1s>"] {
        let e = p(bad).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::NegativeWait(_)), "{bad}: {e}");
    }
    for bad in ["<wait5x>", "<wait1.5>", "<waits>", "<waiting>"] {
        let e = p(bad).unwrap_err();
        assert!(
            matches!(e.kind, ErrorKind::BadDuration { .. }),
            "{bad}: {e}"
        );
    }
}

#[test]
fn concatenation_and_literals() {
    let bc = vec!["ab".to_string(), "<enter>".into(), "c".into()];
    assert_eq!(
        parse(&bc, &Fields::new()).unwrap(),
        vec![tap('a'), tap('b'), sp(Special::Enter), tap('c')]
    );
    // A token split across elements still parses: the array is joined first.
    let bc = vec!["<ent".to_string(), "er>".into()];
    assert_eq!(
        parse(&bc, &Fields::new()).unwrap(),
        vec![sp(Special::Enter)]
    );
    // `<` that does not start a token is typed.
    let typed: Vec<_> = "a<b <> <foo bar> x<".chars().map(tap).collect();
    assert_eq!(p("a<b <> <foo bar> x<").unwrap(), typed);
    assert_eq!(
        p("a<b<enter>").unwrap(),
        vec![tap('a'), tap('<'), tap('b'), sp(Special::Enter)]
    );
}

#[test]
fn unknown_tokens_rejected_with_position() {
    let bc = vec!["hello ".to_string(), "world<enterr>".into()];
    let e = parse(&bc, &Fields::new()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnknownToken("enterr".into()));
    assert_eq!(e.element, 1);
    assert_eq!(e.element_char_offset, 5);
    assert_eq!(e.char_offset, 11);
    assert_eq!(e.byte_offset, 11);
    let msg = e.to_string();
    assert!(
        msg.contains("boot_command[1]") && msg.contains("<enterr>"),
        "{msg}"
    );
    let e = p("<enter >").unwrap_err();
    assert!(matches!(e.kind, ErrorKind::BlanksInToken(_)), "{e}");
    // Empty elements do not confuse the element index.
    let bc = vec!["a".to_string(), "".into(), "<nope>".into()];
    assert_eq!(parse(&bc, &Fields::new()).unwrap_err().element, 2);
}

#[test]
fn untypable_rejected() {
    let e = p("ab\ncd").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Untypable('\n'));
    assert_eq!(e.char_offset, 2);
    let e = parse(&["é".to_string(), "ü".into()], &Fields::new()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Untypable('é'));
}

#[test]
fn templates() {
    let f = Fields::new()
        .with("HTTPIP", "10.0.2.2")
        .with("HTTPPort", "8123")
        .with("Name", "vm1");
    let got = parse_str(
        "url=http://{{ .HTTPIP }}:{{.HTTPPort}}/{{  .Name  }}<enter>",
        &f,
    );
    let mut want: Vec<_> = "url=http://10.0.2.2:8123/vm1".chars().map(tap).collect();
    want.push(sp(Special::Enter));
    assert_eq!(got.unwrap(), want);
    // Field values are typed, not parsed.
    let f2 = Fields::new().with("Name", "<enter>");
    let got = parse_str("{{.Name}}", &f2).unwrap();
    assert_eq!(got, "<enter>".chars().map(tap).collect::<Vec<_>>());

    let bc = vec!["ok ".to_string(), "x {{ .Nope }}".into()];
    let e = parse(&bc, &f).unwrap_err();
    assert!(matches!(&e.kind, ErrorKind::UnknownField { field, .. } if field == "Nope"));
    assert_eq!((e.element, e.element_char_offset, e.char_offset), (1, 2, 5));
    assert!(e.to_string().contains(".HTTPIP"), "{e}");
    assert!(matches!(
        parse_str("{{ user `x` }}", &f).unwrap_err().kind,
        ErrorKind::UnsupportedTemplate(_)
    ));
    assert_eq!(
        parse_str("{{ .Name", &f).unwrap_err().kind,
        ErrorKind::UnterminatedTemplate
    );

    assert_eq!(
        render("-p {{.HTTPPort}} {{ .Name }}", &f).unwrap(),
        "-p 8123 vm1"
    );
    let e = render("abc {{ .X }}", &f).unwrap_err();
    assert_eq!((e.byte_offset, e.char_offset), (4, 4));
}

#[test]
fn validate_uses_known_fields() {
    let ok = vec![
        "<esc><wait> auto url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/preseed.cfg".to_string(),
        " hostname={{ .Name }} key='{{ .SSHPublicKey }}'<enter>".into(),
    ];
    validate(&ok).unwrap();
    assert!(validate(&["{{ .SSHHostPort }}".to_string()]).is_err());
    assert!(validate(&["<enterr>".to_string()]).is_err());
}

// The boot commands of the bundled specs, resolved through the config engine for every target
// × platform × firmware, are parsed in tests/bundled_data.rs (the osimager crate).

#[test]
fn go_duration_format() {
    assert_eq!(format_go_duration(Duration::from_secs(90)), "1m30s");
    assert_eq!(format_go_duration(Duration::from_millis(250)), "250ms");
    assert_eq!(format_go_duration(Duration::from_millis(1500)), "1.5s");
    assert_eq!(format_go_duration(Duration::from_secs(3600)), "1h0m0s");
    assert_eq!(format_go_duration(Duration::ZERO), "0s");
}

proptest! {
    #[test]
    fn printable_ascii_is_one_tap_per_char(s in "[ -;=-~]{0,200}") {
        prop_assume!(!s.contains("{{"));
        let got = p(&s).unwrap();
        prop_assert_eq!(got, s.chars().map(tap).collect::<Vec<_>>());
    }

    #[test]
    fn parse_never_panics(parts in proptest::collection::vec(any::<String>(), 0..4)) {
        let _ = parse(&parts, &Fields::placeholders());
    }

    #[test]
    fn parse_never_panics_on_token_soup(s in "([<>{}a-zA-Z0-9.µ -]|wait|On|Off|enter|\\{\\{ \\.Name \\}\\}){0,40}") {
        let _ = p(&s);
    }

    #[test]
    fn wait_round_trips(nanos in 0u64..400_000_000_000_000) {
        let d = Duration::from_nanos(nanos);
        let text = format!("<wait{}>", format_go_duration(d));
        prop_assert_eq!(p(&text).unwrap(), vec![KeyEvent::Wait(d)]);
    }

    #[test]
    fn wait_components_sum(h in 0u64..5, m in 0u64..200, s in 0u64..200, ms in 0u64..2000) {
        let text = format!("<wait{h}h{m}m{s}s{ms}ms>");
        let want = Duration::from_secs(h * 3600 + m * 60 + s) + Duration::from_millis(ms);
        prop_assert_eq!(p(&text).unwrap(), vec![KeyEvent::Wait(want)]);
    }
}
