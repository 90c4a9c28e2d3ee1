//! Packer's boot-command language → key events (contract; the parser lands with the drivers work).

use std::time::Duration;

/// A key, named independently of any hypervisor's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// A printable US-ASCII character as typed (shift is implied for `A`, `!`, …).
    Char(char),
    Special(Special),
}

/// Non-printing keys of the boot-command language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Special {
    Backspace, Delete, Enter, Esc, Tab, Spacebar, Insert, Home, End, PageUp, PageDown, Menu,
    Up, Down, Left, Right,
    F(u8),
    LeftAlt, RightAlt, LeftCtrl, RightCtrl, LeftShift, RightShift, LeftSuper, RightSuper,
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
