use super::*;
use crate::bootcmd::{is_typable, Key, KeyEvent, Special};

/// Every printable US-ASCII character: (char, qcode, shift, set-1 make code). Written out by
/// hand from the US layout and the QKeyCode / set-1 tables, not derived from the code.
#[rustfmt::skip]
const US_ASCII: &[(char, &str, bool, u8)] = &[
    (' ', "spc", false, 0x39),
    ('!', "1", true, 0x02),
    ('"', "apostrophe", true, 0x28),
    ('#', "3", true, 0x04),
    ('$', "4", true, 0x05),
    ('%', "5", true, 0x06),
    ('&', "7", true, 0x08),
    ('\'', "apostrophe", false, 0x28),
    ('(', "9", true, 0x0a),
    (')', "0", true, 0x0b),
    ('*', "8", true, 0x09),
    ('+', "equal", true, 0x0d),
    (',', "comma", false, 0x33),
    ('-', "minus", false, 0x0c),
    ('.', "dot", false, 0x34),
    ('/', "slash", false, 0x35),
    ('0', "0", false, 0x0b),
    ('1', "1", false, 0x02),
    ('2', "2", false, 0x03),
    ('3', "3", false, 0x04),
    ('4', "4", false, 0x05),
    ('5', "5", false, 0x06),
    ('6', "6", false, 0x07),
    ('7', "7", false, 0x08),
    ('8', "8", false, 0x09),
    ('9', "9", false, 0x0a),
    (':', "semicolon", true, 0x27),
    (';', "semicolon", false, 0x27),
    ('<', "comma", true, 0x33),
    ('=', "equal", false, 0x0d),
    ('>', "dot", true, 0x34),
    ('?', "slash", true, 0x35),
    ('@', "2", true, 0x03),
    ('A', "a", true, 0x1e),
    ('B', "b", true, 0x30),
    ('C', "c", true, 0x2e),
    ('D', "d", true, 0x20),
    ('E', "e", true, 0x12),
    ('F', "f", true, 0x21),
    ('G', "g", true, 0x22),
    ('H', "h", true, 0x23),
    ('I', "i", true, 0x17),
    ('J', "j", true, 0x24),
    ('K', "k", true, 0x25),
    ('L', "l", true, 0x26),
    ('M', "m", true, 0x32),
    ('N', "n", true, 0x31),
    ('O', "o", true, 0x18),
    ('P', "p", true, 0x19),
    ('Q', "q", true, 0x10),
    ('R', "r", true, 0x13),
    ('S', "s", true, 0x1f),
    ('T', "t", true, 0x14),
    ('U', "u", true, 0x16),
    ('V', "v", true, 0x2f),
    ('W', "w", true, 0x11),
    ('X', "x", true, 0x2d),
    ('Y', "y", true, 0x15),
    ('Z', "z", true, 0x2c),
    ('[', "bracket_left", false, 0x1a),
    ('\\', "backslash", false, 0x2b),
    (']', "bracket_right", false, 0x1b),
    ('^', "6", true, 0x07),
    ('_', "minus", true, 0x0c),
    ('`', "grave_accent", false, 0x29),
    ('a', "a", false, 0x1e),
    ('b', "b", false, 0x30),
    ('c', "c", false, 0x2e),
    ('d', "d", false, 0x20),
    ('e', "e", false, 0x12),
    ('f', "f", false, 0x21),
    ('g', "g", false, 0x22),
    ('h', "h", false, 0x23),
    ('i', "i", false, 0x17),
    ('j', "j", false, 0x24),
    ('k', "k", false, 0x25),
    ('l', "l", false, 0x26),
    ('m', "m", false, 0x32),
    ('n', "n", false, 0x31),
    ('o', "o", false, 0x18),
    ('p', "p", false, 0x19),
    ('q', "q", false, 0x10),
    ('r', "r", false, 0x13),
    ('s', "s", false, 0x1f),
    ('t', "t", false, 0x14),
    ('u', "u", false, 0x16),
    ('v', "v", false, 0x2f),
    ('w', "w", false, 0x11),
    ('x', "x", false, 0x2d),
    ('y', "y", false, 0x15),
    ('z', "z", false, 0x2c),
    ('{', "bracket_left", true, 0x1a),
    ('|', "backslash", true, 0x2b),
    ('}', "bracket_right", true, 0x1b),
    ('~', "grave_accent", true, 0x29),
];

#[test]
fn table_covers_all_printable_ascii() {
    let chars: Vec<char> = US_ASCII.iter().map(|r| r.0).collect();
    let all: Vec<char> = (' '..='~').collect();
    assert_eq!(chars, all);
}

#[test]
fn qcodes_for_us_ascii() {
    for &(c, name, shift, _) in US_ASCII {
        assert_eq!(qcode(Key::Char(c)), Some(QKey { name, shift }), "{c:?}");
    }
    assert_ne!(qcode(Key::Char('<')).unwrap().name, "less");
    assert_eq!(qcode(Key::Char('\n')), None);
    assert_eq!(qcode(Key::Char('é')), None);
}

#[test]
fn scancodes_for_us_ascii() {
    for &(c, _, shift, make) in US_ASCII {
        let sc = scancode(Key::Char(c)).unwrap();
        assert_eq!(
            (sc.code, sc.extended, sc.shift),
            (make, false, shift),
            "{c:?}"
        );
        let seq = scancodes(&KeyEvent::Tap(Key::Char(c))).unwrap();
        let want = if shift {
            vec![0x2a, make, make | 0x80, 0xaa]
        } else {
            vec![make, make | 0x80]
        };
        assert_eq!(seq, want, "{c:?}");
    }
}

#[test]
fn keysyms_for_us_ascii() {
    for &(c, _, shift, _) in US_ASCII {
        assert_eq!(
            keysym(Key::Char(c)),
            Some(Keysym {
                sym: c as u32,
                shift
            }),
            "{c:?}"
        );
    }
}

#[test]
fn specials_encode_everywhere() {
    use Special::*;
    let table: &[(Special, &str, &[u8], u32)] = &[
        (Backspace, "backspace", &[0x0e, 0x8e], 0xff08),
        (Delete, "delete", &[0xe0, 0x53, 0xe0, 0xd3], 0xffff),
        (Enter, "ret", &[0x1c, 0x9c], 0xff0d),
        (Esc, "esc", &[0x01, 0x81], 0xff1b),
        (Tab, "tab", &[0x0f, 0x8f], 0xff09),
        (Spacebar, "spc", &[0x39, 0xb9], 0x20),
        (Insert, "insert", &[0xe0, 0x52, 0xe0, 0xd2], 0xff63),
        (Home, "home", &[0xe0, 0x47, 0xe0, 0xc7], 0xff50),
        (End, "end", &[0xe0, 0x4f, 0xe0, 0xcf], 0xff57),
        (PageUp, "pgup", &[0xe0, 0x49, 0xe0, 0xc9], 0xff55),
        (PageDown, "pgdn", &[0xe0, 0x51, 0xe0, 0xd1], 0xff56),
        (Menu, "compose", &[0xe0, 0x5d, 0xe0, 0xdd], 0xff67),
        (Up, "up", &[0xe0, 0x48, 0xe0, 0xc8], 0xff52),
        (Down, "down", &[0xe0, 0x50, 0xe0, 0xd0], 0xff54),
        (Left, "left", &[0xe0, 0x4b, 0xe0, 0xcb], 0xff51),
        (Right, "right", &[0xe0, 0x4d, 0xe0, 0xcd], 0xff53),
        (F(1), "f1", &[0x3b, 0xbb], 0xffbe),
        (F(10), "f10", &[0x44, 0xc4], 0xffc7),
        (F(11), "f11", &[0x57, 0xd7], 0xffc8),
        (F(12), "f12", &[0x58, 0xd8], 0xffc9),
        (LeftAlt, "alt", &[0x38, 0xb8], 0xffe9),
        (RightAlt, "alt_r", &[0xe0, 0x38, 0xe0, 0xb8], 0xffea),
        (LeftCtrl, "ctrl", &[0x1d, 0x9d], 0xffe3),
        (RightCtrl, "ctrl_r", &[0xe0, 0x1d, 0xe0, 0x9d], 0xffe4),
        (LeftShift, "shift", &[0x2a, 0xaa], 0xffe1),
        (RightShift, "shift_r", &[0x36, 0xb6], 0xffe2),
        (LeftSuper, "meta_l", &[0xe0, 0x5b, 0xe0, 0xdb], 0xffeb),
        (RightSuper, "meta_r", &[0xe0, 0x5c, 0xe0, 0xdc], 0xffec),
    ];
    for &(s, q, codes, sym) in table {
        let k = Key::Special(s);
        assert_eq!(qcode(k).map(|q| q.name), Some(q), "{s:?}");
        assert_eq!(scancodes(&KeyEvent::Tap(k)).unwrap(), codes, "{s:?}");
        assert_eq!(keysym(k), Some(Keysym { sym, shift: false }), "{s:?}");
    }
    for s in Special::all() {
        let k = Key::Special(s);
        assert!(
            qcode(k).is_some() && scancode(k).is_some() && keysym(k).is_some(),
            "{s:?}"
        );
    }
}

#[test]
fn holds_split_make_and_break() {
    let ctrl = Key::Special(Special::RightCtrl);
    assert_eq!(scancodes(&KeyEvent::Down(ctrl)).unwrap(), vec![0xe0, 0x1d]);
    assert_eq!(scancodes(&KeyEvent::Up(ctrl)).unwrap(), vec![0xe0, 0x9d]);
    assert_eq!(
        scancodes(&KeyEvent::Down(Key::Char('A'))).unwrap(),
        vec![0x2a, 0x1e]
    );
    assert_eq!(
        scancodes(&KeyEvent::Up(Key::Char('A'))).unwrap(),
        vec![0x9e, 0xaa]
    );
    assert_eq!(scancodes(&KeyEvent::Wait(std::time::Duration::ZERO)), None);
}

#[test]
fn chunks_respect_limit_and_prefixes() {
    let mut codes = Vec::new();
    for c in (' '..='~').filter(|c| is_typable(*c)) {
        codes.extend(scancodes(&KeyEvent::Tap(Key::Char(c))).unwrap());
        codes.extend(scancodes(&KeyEvent::Tap(Key::Special(Special::Home))).unwrap());
    }
    let chunks = chunk_scancodes(&codes, 25);
    assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= 25));
    assert!(chunks.iter().all(|c| *c.last().unwrap() != 0xe0));
    assert_eq!(chunks.concat(), codes);
}
