//! Packer's boot-command language → key events.
//!
//! Grammar (packer-plugin-sdk `bootcommand/boot_command.pigeon`), applied to the elements of the
//! `boot_command` array joined with no separator:
//! * `<wait>` (1 s), `<wait5>` (seconds), `<waitDURATION>` with a Go duration (`1m30s`, `250ms`);
//! * `<name>` / `<nameOn>` / `<nameOff>` for the special keys (case-insensitive);
//! * `<cOn>` / `<cOff>` hold / release a single character;
//! * `{{ .Field }}` template fields (typed literally, character by character);
//! * any other character is typed as itself.
//!
//! Differences from Packer, on purpose: Packer types an unknown `<token>` literally and only
//! finds unknown template fields when typing starts; we reject both with their position so a
//! build fails before any VM starts. A single character in angle brackets (`<x>`) is the key
//! `x` (bundled specs write `<leftCtrlOn><x><leftCtrlOff>` meaning Ctrl+X; Packer would type
//! `<`, `x`, `>`). Characters nothing can type (non-ASCII, control characters) are rejected.

mod duration;
mod error;
mod parser;
mod template;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use duration::{format_go_duration, parse_duration};
pub use error::{BootCommandError, ErrorKind, TemplateError};
pub use parser::{parse, parse_str, validate};
pub use template::{render, Fields, BOOT_COMMAND_FIELDS};

/// A key, named independently of any hypervisor's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// A printable US-ASCII character as typed (shift is implied for `A`, `!`, …).
    Char(char),
    /// A non-printing key (`<enter>`, `<f2>`, `<leftCtrl>`, …).
    Special(Special),
}

/// Non-printing keys of the boot-command language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Special {
    /// `<bs>`
    Backspace,
    /// `<del>`
    Delete,
    /// `<enter>` or `<return>`
    Enter,
    /// `<esc>`
    Esc,
    /// `<tab>`
    Tab,
    /// `<spacebar>` (a literal blank types the same key)
    Spacebar,
    /// `<insert>`
    Insert,
    /// `<home>`
    Home,
    /// `<end>`
    End,
    /// `<pageUp>`
    PageUp,
    /// `<pageDown>`
    PageDown,
    /// `<menu>` (the context-menu key)
    Menu,
    /// `<up>` (arrow)
    Up,
    /// `<down>` (arrow)
    Down,
    /// `<left>` (arrow)
    Left,
    /// `<right>` (arrow)
    Right,
    /// `<f1>` … `<f12>`: function key N
    F(u8),
    /// `<leftAlt>`
    LeftAlt,
    /// `<rightAlt>` (AltGr)
    RightAlt,
    /// `<leftCtrl>`
    LeftCtrl,
    /// `<rightCtrl>`
    RightCtrl,
    /// `<leftShift>`
    LeftShift,
    /// `<rightShift>`
    RightShift,
    /// `<leftSuper>` (the Windows key)
    LeftSuper,
    /// `<rightSuper>`
    RightSuper,
}

/// One event of a parsed boot command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyEvent {
    /// Press and release (with shift as needed for the character).
    Tap(Key),
    /// `<xOn>`: press and hold.
    Down(Key),
    /// `<xOff>`: release.
    Up(Key),
    /// `<wait…>`: pause (flushes buffered keys).
    Wait(Duration),
}

impl Special {
    /// The special key for a boot-command name (case-insensitive), e.g. `pageUp`, `f11`, `bs`.
    /// Packer's macOS spellings map to the same physical keys: `leftCommand`/`rightCommand` →
    /// Super (the Command key sits where PC keyboards have the Windows key), `leftOption`/
    /// `rightOption` → Alt.
    pub fn from_name(name: &str) -> Option<Special> {
        use Special::*;
        let n = name.to_ascii_lowercase();
        Some(match n.as_str() {
            "bs" => Backspace,
            "del" => Delete,
            "enter" | "return" => Enter,
            "esc" => Esc,
            "tab" => Tab,
            "spacebar" => Spacebar,
            "insert" => Insert,
            "home" => Home,
            "end" => End,
            "pageup" => PageUp,
            "pagedown" => PageDown,
            "menu" => Menu,
            "up" => Up,
            "down" => Down,
            "left" => Left,
            "right" => Right,
            "leftalt" | "leftoption" => LeftAlt,
            "rightalt" | "rightoption" => RightAlt,
            "leftctrl" => LeftCtrl,
            "rightctrl" => RightCtrl,
            "leftshift" => LeftShift,
            "rightshift" => RightShift,
            "leftsuper" | "leftcommand" => LeftSuper,
            "rightsuper" | "rightcommand" => RightSuper,
            _ => {
                let num = n.strip_prefix('f')?;
                if num.starts_with('0') {
                    return None;
                }
                let k: u8 = num.parse().ok()?;
                if (1..=12).contains(&k) {
                    F(k)
                } else {
                    return None;
                }
            }
        })
    }

    /// The canonical boot-command name (`<name>` parses back to this key).
    pub fn name(self) -> String {
        use Special::*;
        match self {
            Backspace => "bs",
            Delete => "del",
            Enter => "enter",
            Esc => "esc",
            Tab => "tab",
            Spacebar => "spacebar",
            Insert => "insert",
            Home => "home",
            End => "end",
            PageUp => "pageUp",
            PageDown => "pageDown",
            Menu => "menu",
            Up => "up",
            Down => "down",
            Left => "left",
            Right => "right",
            F(n) => return format!("f{n}"),
            LeftAlt => "leftAlt",
            RightAlt => "rightAlt",
            LeftCtrl => "leftCtrl",
            RightCtrl => "rightCtrl",
            LeftShift => "leftShift",
            RightShift => "rightShift",
            LeftSuper => "leftSuper",
            RightSuper => "rightSuper",
        }
        .to_string()
    }

    /// Every special key, for tables and tests.
    pub fn all() -> Vec<Special> {
        use Special::*;
        let mut v = vec![
            Backspace, Delete, Enter, Esc, Tab, Spacebar, Insert, Home, End, PageUp, PageDown,
            Menu, Up, Down, Left, Right, LeftAlt, RightAlt, LeftCtrl, RightCtrl, LeftShift,
            RightShift, LeftSuper, RightSuper,
        ];
        v.extend((1..=12).map(F));
        v
    }
}

/// True for the characters a boot command can type: printable US-ASCII (space to `~`).
pub fn is_typable(c: char) -> bool {
    (' '..='~').contains(&c)
}
