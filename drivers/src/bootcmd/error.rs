//! Errors of the boot-command parser and the template renderer, with positions.

use std::fmt;

/// What is wrong at a position of a boot command or template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// `<token>` that is neither a special key, a wait, nor a character toggle.
    UnknownToken(String),
    /// `<token >`: a known token with blanks inside the brackets.
    BlanksInToken(String),
    /// `<wait-5s>`.
    NegativeWait(String),
    /// `<wait…>` whose duration does not parse.
    BadDuration {
        /// The whole token, e.g. `wait5x`.
        token: String,
        /// Why its duration does not parse.
        reason: String,
    },
    /// A character no keyboard driver can type (non-ASCII, control character).
    Untypable(char),
    /// `{{ .Field }}` with a field that is not provided.
    UnknownField {
        /// The field name, without the dot.
        field: String,
        /// The fields that are provided.
        known: Vec<String>,
    },
    /// `{{ … }}` that is not a plain `.Field` reference.
    UnsupportedTemplate(String),
    /// `{{` without `}}`.
    UnterminatedTemplate,
    /// A field value contains a character that cannot be typed.
    UntypableField {
        /// The field name, without the dot.
        field: String,
        /// The first character of its value that cannot be typed.
        ch: char,
    },
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::UnknownToken(t) => write!(
                f,
                "unknown token <{t}>; accepted: special keys (bs del enter return esc tab \
                 f1…f12 up down left right spacebar insert home end pageUp pageDown menu \
                 leftAlt rightAlt leftCtrl rightCtrl leftShift rightShift leftSuper rightSuper \
                 leftCommand rightCommand leftOption rightOption, each optionally with On/Off), \
                 <cOn>/<cOff> for a character c, <wait>, <waitN>, <waitDURATION> (e.g. 1m30s)"
            ),
            ErrorKind::BlanksInToken(t) => {
                write!(f, "blanks inside <{t}>; write it without blanks")
            }
            ErrorKind::NegativeWait(t) => {
                write!(f, "negative wait <{t}>; a wait must be zero or more")
            }
            ErrorKind::BadDuration { token, reason } => write!(
                f,
                "bad wait <{token}>: {reason}; write <wait>, <wait10> (seconds) or a Go \
                 duration such as <wait1m30s>, <wait250ms>, <wait1.5s> (units h m s ms us ns)"
            ),
            ErrorKind::Untypable(c) => write!(
                f,
                "character {c:?} cannot be typed; only printable US-ASCII can (use <enter>, \
                 <tab> for those keys)"
            ),
            ErrorKind::UnknownField { field, known } => write!(
                f,
                "unknown template field .{field}; known fields: {}",
                known
                    .iter()
                    .map(|k| format!(".{k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ErrorKind::UnsupportedTemplate(e) => write!(
                f,
                "unsupported template expression {{{{{e}}}}}; only field references such as \
                 {{{{ .HTTPIP }}}} are allowed here"
            ),
            ErrorKind::UnterminatedTemplate => write!(f, "'{{{{' without a closing '}}}}'"),
            ErrorKind::UntypableField { field, ch } => write!(
                f,
                "the value of .{field} contains {ch:?}, which cannot be typed"
            ),
        }
    }
}

/// An error in a template string (`render`). Offsets are into that string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at character {char_offset}: {kind}")]
pub struct TemplateError {
    /// What is wrong.
    pub kind: ErrorKind,
    /// Byte offset of the offending construct.
    pub byte_offset: usize,
    /// Character offset of the offending construct.
    pub char_offset: usize,
}

/// An error in a boot command, located both in the joined command and in the array element.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "boot_command[{element}] at character {element_char_offset} (character {char_offset} of the \
     joined command): {kind}"
)]
pub struct BootCommandError {
    /// What is wrong.
    pub kind: ErrorKind,
    /// Index of the array element where the offending construct starts.
    pub element: usize,
    /// Character offset within that element.
    pub element_char_offset: usize,
    /// Byte offset in the joined command.
    pub byte_offset: usize,
    /// Character offset in the joined command.
    pub char_offset: usize,
}
