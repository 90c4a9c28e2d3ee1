//! The boot-command parser (see the module documentation of `bootcmd` for the grammar).

use super::duration::parse_duration;
use super::error::{BootCommandError, ErrorKind};
use super::template::{eval_at, Fields};
use super::{is_typable, Key, KeyEvent, Special};
use std::time::Duration;

/// Parse a `boot_command` array (elements joined with no separator), rendering `{{ .Field }}`
/// references from `fields`. Field values are typed literally (never parsed as `<tokens>`).
pub fn parse(boot_command: &[String], fields: &Fields) -> Result<Vec<KeyEvent>, BootCommandError> {
    let mut starts = Vec::with_capacity(boot_command.len());
    let mut joined = String::new();
    for part in boot_command {
        starts.push(joined.len());
        joined.push_str(part);
    }
    parse_joined(&joined, fields).map_err(|(kind, byte)| {
        let element = starts.partition_point(|&s| s <= byte).saturating_sub(1);
        let elem_start = starts.get(element).copied().unwrap_or(0);
        BootCommandError {
            kind,
            element,
            element_char_offset: joined[elem_start..byte].chars().count(),
            byte_offset: byte,
            char_offset: joined[..byte].chars().count(),
        }
    })
}

/// Parse a single boot-command string (errors report element 0).
pub fn parse_str(command: &str, fields: &Fields) -> Result<Vec<KeyEvent>, BootCommandError> {
    parse(&[command.to_string()], fields)
}

/// Check a boot command before any VM exists: every token must be known and every template
/// field one of [`BOOT_COMMAND_FIELDS`](super::BOOT_COMMAND_FIELDS) (checked with placeholders).
pub fn validate(boot_command: &[String]) -> Result<(), BootCommandError> {
    parse(boot_command, &Fields::placeholders()).map(|_| ())
}

type PResult<T> = Result<T, (ErrorKind, usize)>;

fn parse_joined(s: &str, fields: &Fields) -> PResult<Vec<KeyEvent>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if rest.starts_with("{{") {
            let (field, value, end) = eval_at(s, i, fields).map_err(|k| (k, i))?;
            for ch in value.chars() {
                if !is_typable(ch) {
                    let kind = ErrorKind::UntypableField { field, ch };
                    return Err((kind, i));
                }
                out.push(KeyEvent::Tap(Key::Char(ch)));
            }
            i = end;
            continue;
        }
        let ch = rest.chars().next().unwrap_or_default();
        if ch == '<' {
            if let Some((ev, len)) = token(rest).map_err(|k| (k, i))? {
                out.push(ev);
                i += len;
                continue;
            }
        }
        if !is_typable(ch) {
            return Err((ErrorKind::Untypable(ch), i));
        }
        out.push(KeyEvent::Tap(Key::Char(ch)));
        i += ch.len_utf8();
    }
    Ok(out)
}

fn on_off(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("on") {
        Some(true)
    } else if s.eq_ignore_ascii_case("off") {
        Some(false)
    } else {
        None
    }
}

fn hold(key: Key, on: bool) -> KeyEvent {
    if on {
        KeyEvent::Down(key)
    } else {
        KeyEvent::Up(key)
    }
}

/// `rest` starts with `<`. Returns the event and the byte length consumed, `None` when the `<`
/// is an ordinary character, or an error for an unknown/bad token.
fn token(rest: &str) -> Result<Option<(KeyEvent, usize)>, ErrorKind> {
    // `<>On>` / `<>Off>`: the one toggle whose character is the closing bracket.
    for (suffix, on) in [("on>", true), ("off>", false)] {
        let n = 2 + suffix.len();
        if rest.len() >= n
            && rest.as_bytes()[1] == b'>'
            && rest.is_char_boundary(n)
            && rest[2..n].eq_ignore_ascii_case(suffix)
        {
            return Ok(Some((hold(Key::Char('>'), on), n)));
        }
    }
    let Some(close) = rest[1..].find('>').map(|p| p + 1) else {
        return Ok(None);
    };
    let cand = &rest[1..close];
    let len = close + 1;
    let mut chars = cand.chars();
    let Some(first) = chars.next() else {
        return Ok(None);
    };
    // `<cOn>` / `<cOff>` for any single character c (including `<`).
    if let Some(on) = on_off(chars.as_str()) {
        if !is_typable(first) {
            return Err(ErrorKind::Untypable(first));
        }
        return Ok(Some((hold(Key::Char(first), on), len)));
    }
    if cand.contains('<') {
        return Ok(None);
    }
    if let Some(ev) = named(cand)? {
        return Ok(Some((ev, len)));
    }
    if chars.as_str().is_empty() {
        // `<x>`: the key x.
        if !is_typable(first) {
            return Err(ErrorKind::Untypable(first));
        }
        return Ok(Some((KeyEvent::Tap(Key::Char(first)), len)));
    }
    let squeezed: String = cand.chars().filter(|c| !c.is_whitespace()).collect();
    if squeezed.len() != cand.len()
        && !squeezed.is_empty()
        && matches!(named(&squeezed), Ok(Some(_)))
    {
        return Err(ErrorKind::BlanksInToken(cand.to_string()));
    }
    let token_like = cand
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | 'µ' | 'μ'));
    if token_like {
        return Err(ErrorKind::UnknownToken(cand.to_string()));
    }
    Ok(None)
}

/// A wait or a special key (with optional On/Off), or `None`.
fn named(cand: &str) -> Result<Option<KeyEvent>, ErrorKind> {
    if cand.len() >= 4 && cand.is_char_boundary(4) && cand[..4].eq_ignore_ascii_case("wait") {
        return wait(cand, &cand[4..]).map(Some);
    }
    if let Some(sp) = Special::from_name(cand) {
        return Ok(Some(KeyEvent::Tap(Key::Special(sp))));
    }
    for (suffix, on) in [("on", true), ("off", false)] {
        if cand.len() > suffix.len() {
            let cut = cand.len() - suffix.len();
            if cand.is_char_boundary(cut) && cand[cut..].eq_ignore_ascii_case(suffix) {
                if let Some(sp) = Special::from_name(&cand[..cut]) {
                    return Ok(Some(hold(Key::Special(sp), on)));
                }
            }
        }
    }
    Ok(None)
}

fn wait(token: &str, spec: &str) -> Result<KeyEvent, ErrorKind> {
    if spec.is_empty() {
        return Ok(KeyEvent::Wait(Duration::from_secs(1)));
    }
    if spec.starts_with('-') {
        return Err(ErrorKind::NegativeWait(token.to_string()));
    }
    parse_duration(spec)
        .map(KeyEvent::Wait)
        .map_err(|reason| ErrorKind::BadDuration {
            token: token.to_string(),
            reason,
        })
}
