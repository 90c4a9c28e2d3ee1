//! Key encodings for the hypervisors: QEMU QKeyCode names, PC-XT set-1 scancodes (VirtualBox
//! `keyboardputscancode`) and X11 keysyms (VNC). All assume a US keyboard layout in the guest.

use crate::bootcmd::{Key, KeyEvent, Special};

/// Shifted US-ASCII characters and the unshifted character on the same key.
const SHIFT_PAIRS: &[(char, char)] = &[
    ('~', '`'),
    ('!', '1'),
    ('@', '2'),
    ('#', '3'),
    ('$', '4'),
    ('%', '5'),
    ('^', '6'),
    ('&', '7'),
    ('*', '8'),
    ('(', '9'),
    (')', '0'),
    ('_', '-'),
    ('+', '='),
    ('{', '['),
    ('}', ']'),
    ('|', '\\'),
    (':', ';'),
    ('"', '\''),
    ('<', ','),
    ('>', '.'),
    ('?', '/'),
];

/// The physical key (named by its unshifted character) and whether Shift is needed for `c`.
pub fn us_base_char(c: char) -> Option<(char, bool)> {
    if c.is_ascii_uppercase() {
        return Some((c.to_ascii_lowercase(), true));
    }
    if let Some(&(_, base)) = SHIFT_PAIRS.iter().find(|(s, _)| *s == c) {
        return Some((base, true));
    }
    if c.is_ascii_lowercase() || c.is_ascii_digit() || "`-=[]\\;',./ ".contains(c) {
        return Some((c, false));
    }
    None
}

/// A QEMU key: QKeyCode name, and whether Shift must be held with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QKey {
    /// QKeyCode name as QMP `send-key` takes it (`a`, `ret`, `shift`).
    pub name: &'static str,
    /// Shift must be held while the key is pressed.
    pub shift: bool,
}

const LETTERS: [&str; 26] = [
    "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s",
    "t", "u", "v", "w", "x", "y", "z",
];
const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const FKEYS: [&str; 12] = [
    "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "f10", "f11", "f12",
];

/// QKeyCode for a key (`<` is shift+`comma`, never the ISO-only `less`).
pub fn qcode(key: Key) -> Option<QKey> {
    match key {
        Key::Char(c) => {
            let (base, shift) = us_base_char(c)?;
            let name = match base {
                'a'..='z' => LETTERS[(base as u8 - b'a') as usize],
                '0'..='9' => DIGITS[(base as u8 - b'0') as usize],
                ' ' => "spc",
                '-' => "minus",
                '=' => "equal",
                '[' => "bracket_left",
                ']' => "bracket_right",
                '\\' => "backslash",
                ';' => "semicolon",
                '\'' => "apostrophe",
                '`' => "grave_accent",
                ',' => "comma",
                '.' => "dot",
                '/' => "slash",
                _ => return None,
            };
            Some(QKey { name, shift })
        }
        Key::Special(s) => Some(QKey {
            name: special_qcode(s)?,
            shift: false,
        }),
    }
}

fn special_qcode(s: Special) -> Option<&'static str> {
    use Special::*;
    Some(match s {
        Backspace => "backspace",
        Delete => "delete",
        Enter => "ret",
        Esc => "esc",
        Tab => "tab",
        Spacebar => "spc",
        Insert => "insert",
        Home => "home",
        End => "end",
        PageUp => "pgup",
        PageDown => "pgdn",
        // The PC Menu (Application) key, E0 5D. QEMU's `menu` qcode is another key that the
        // PS/2 keyboard has no scancode for: send-key accepts it and nothing reaches the guest
        // (seen with QEMU 7.2's ps2_put_keycode trace); its VNC keymap maps keysym Menu to
        // `compose` too.
        Menu => "compose",
        Up => "up",
        Down => "down",
        Left => "left",
        Right => "right",
        F(n) => FKEYS.get(usize::from(n).checked_sub(1)?)?,
        LeftAlt => "alt",
        RightAlt => "alt_r",
        LeftCtrl => "ctrl",
        RightCtrl => "ctrl_r",
        LeftShift => "shift",
        RightShift => "shift_r",
        LeftSuper => "meta_l",
        RightSuper => "meta_r",
    })
}

/// A PC-XT set-1 make code; `extended` keys are prefixed with `e0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scancode {
    /// The make code (the break code is `code | 0x80`).
    pub code: u8,
    /// Prefixed with `e0` (arrows, right Ctrl/Alt, navigation keys).
    pub extended: bool,
    /// Shift must be held while the key is pressed.
    pub shift: bool,
}

const LSHIFT: u8 = 0x2a;

fn row_code(base: char) -> Option<u8> {
    for (row, start) in [
        ("1234567890-=", 0x02u8),
        ("qwertyuiop[]", 0x10),
        ("asdfghjkl;'`", 0x1e),
        ("\\zxcvbnm,./", 0x2b),
    ] {
        if let Some(i) = row.find(base) {
            return Some(start + i as u8);
        }
    }
    (base == ' ').then_some(0x39)
}

/// Set-1 make code of a key.
pub fn scancode(key: Key) -> Option<Scancode> {
    use Special::*;
    let (code, extended, shift) = match key {
        Key::Char(c) => {
            let (base, shift) = us_base_char(c)?;
            (row_code(base)?, false, shift)
        }
        Key::Special(s) => match s {
            Esc => (0x01, false, false),
            Backspace => (0x0e, false, false),
            Tab => (0x0f, false, false),
            Enter => (0x1c, false, false),
            LeftCtrl => (0x1d, false, false),
            LeftShift => (0x2a, false, false),
            RightShift => (0x36, false, false),
            LeftAlt => (0x38, false, false),
            Spacebar => (0x39, false, false),
            F(n @ 1..=10) => (0x3a + n, false, false),
            F(11) => (0x57, false, false),
            F(12) => (0x58, false, false),
            F(_) => return None,
            RightAlt => (0x38, true, false),
            RightCtrl => (0x1d, true, false),
            Home => (0x47, true, false),
            Up => (0x48, true, false),
            PageUp => (0x49, true, false),
            Left => (0x4b, true, false),
            Right => (0x4d, true, false),
            End => (0x4f, true, false),
            Down => (0x50, true, false),
            PageDown => (0x51, true, false),
            Insert => (0x52, true, false),
            Delete => (0x53, true, false),
            LeftSuper => (0x5b, true, false),
            RightSuper => (0x5c, true, false),
            Menu => (0x5d, true, false),
        },
    };
    Some(Scancode {
        code,
        extended,
        shift,
    })
}

fn push_code(out: &mut Vec<u8>, sc: Scancode, release: bool) {
    if sc.extended {
        out.push(0xe0);
    }
    out.push(if release { sc.code | 0x80 } else { sc.code });
}

/// The set-1 byte sequence for one event (`None` for a wait or an untypable key). A tap of a
/// shifted character is `2a make break aa`; `Down` of one presses Shift first, `Up` releases it
/// last.
pub fn scancodes(event: &KeyEvent) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let shift = Scancode {
        code: LSHIFT,
        extended: false,
        shift: false,
    };
    match event {
        KeyEvent::Wait(_) => return None,
        KeyEvent::Tap(k) | KeyEvent::Down(k) | KeyEvent::Up(k) => {
            let sc = scancode(*k)?;
            let (press, release) = match event {
                KeyEvent::Tap(_) => (true, true),
                KeyEvent::Down(_) => (true, false),
                _ => (false, true),
            };
            if press {
                if sc.shift {
                    push_code(&mut out, shift, false);
                }
                push_code(&mut out, sc, false);
            }
            if release {
                push_code(&mut out, sc, true);
                if sc.shift {
                    push_code(&mut out, shift, true);
                }
            }
        }
    }
    Some(out)
}

/// Split a scancode stream into `keyboardputscancode` calls of at most `max` codes each
/// (VirtualBox accepts ≤ 25), never separating an `e0` prefix from its code.
pub fn chunk_scancodes(codes: &[u8], max: usize) -> Vec<Vec<u8>> {
    let max = max.max(2);
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut cur = Vec::new();
    let mut i = 0;
    while i < codes.len() {
        let unit = if codes[i] == 0xe0 && i + 1 < codes.len() {
            2
        } else {
            1
        };
        if cur.len() + unit > max {
            chunks.push(std::mem::take(&mut cur));
        }
        cur.extend_from_slice(&codes[i..i + unit]);
        i += unit;
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    chunks
}

/// An X11 keysym and whether Shift must be held (as Packer's VNC driver does for uppercase
/// letters and shifted symbols).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keysym {
    /// The X11 keysym value sent in an RFB KeyEvent.
    pub sym: u32,
    /// Shift must be held while the key is pressed.
    pub shift: bool,
}

/// X11 keysym of a key; printable ASCII is its own code point.
pub fn keysym(key: Key) -> Option<Keysym> {
    use Special::*;
    match key {
        Key::Char(c) => {
            let (_, shift) = us_base_char(c)?;
            Some(Keysym {
                sym: c as u32,
                shift,
            })
        }
        Key::Special(s) => {
            let sym = match s {
                Backspace => 0xff08,
                Tab => 0xff09,
                Enter => 0xff0d,
                Esc => 0xff1b,
                Delete => 0xffff,
                Spacebar => 0x20,
                Home => 0xff50,
                Left => 0xff51,
                Up => 0xff52,
                Right => 0xff53,
                Down => 0xff54,
                PageUp => 0xff55,
                PageDown => 0xff56,
                End => 0xff57,
                Insert => 0xff63,
                Menu => 0xff67,
                F(n @ 1..=12) => 0xffbd + u32::from(n),
                F(_) => return None,
                LeftShift => 0xffe1,
                RightShift => 0xffe2,
                LeftCtrl => 0xffe3,
                RightCtrl => 0xffe4,
                LeftAlt => 0xffe9,
                RightAlt => 0xffea,
                LeftSuper => 0xffeb,
                RightSuper => 0xffec,
            };
            Some(Keysym { sym, shift: false })
        }
    }
}

/// X11 keysym of Shift_L, sent around shifted characters.
pub const KEYSYM_SHIFT_L: u32 = 0xffe1;

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
