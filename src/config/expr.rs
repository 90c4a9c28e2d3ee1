//! A safe evaluator for the Python expressions of `E>expr<E` markers (and the arithmetic of
//! `#>a*b<#`). Own tokenizer, parser and interpreter; no host Python.
//!
//! Supported (the subset OSImager data uses, plus its obvious neighbours): string literals
//! (quotes, triple quotes, `r`/`u` prefixes, escapes, adjacent concatenation), int and float
//! literals, `None`/`True`/`False`; tuples, lists and dicts (with subscription and slices);
//! `a if c else b`; `or`/`and`/`not` with Python truthiness and short-circuit values;
//! comparisons (chained) `== != < > <= >= in not in is is not`; `+ - * / // % **` and unary
//! `- + ~`; builtins `len int str float bool`; str methods `startswith endswith replace join
//! lower upper strip lstrip rstrip split`; `os.access(path, os.W_OK)` and `os.R_OK/W_OK/X_OK/F_OK`.
//! Anything else is an error naming the construct. Ints are 64-bit (overflow is an error).

mod eval;
mod lex;
mod parse;
mod value;

pub use eval::py_int;
pub use value::PyVal;

/// Kinds of evaluation errors (Python exception classes, plus constructs we do not support).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExprErrorKind {
    Syntax,
    Name,
    Type,
    Value,
    ZeroDivision,
    Key,
    Index,
    Attribute,
    Overflow,
    /// Valid Python outside the supported subset.
    Unsupported,
    /// The expression or its result is larger than the evaluator allows (nesting, length,
    /// size of a string or list): data files are small, so this is an input built to exhaust
    /// time or memory.
    Limit,
}

impl ExprErrorKind {
    fn label(self) -> &'static str {
        match self {
            ExprErrorKind::Syntax => "SyntaxError",
            ExprErrorKind::Name => "NameError",
            ExprErrorKind::Type => "TypeError",
            ExprErrorKind::Value => "ValueError",
            ExprErrorKind::ZeroDivision => "ZeroDivisionError",
            ExprErrorKind::Key => "KeyError",
            ExprErrorKind::Index => "IndexError",
            ExprErrorKind::Attribute => "AttributeError",
            ExprErrorKind::Overflow => "OverflowError",
            ExprErrorKind::Unsupported => "unsupported construct",
            ExprErrorKind::Limit => "limit exceeded",
        }
    }
}

/// An expression that could not be evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct ExprError {
    pub kind: ExprErrorKind,
    /// The message (for Python exceptions, the text Python's `str(exception)` gives).
    pub message: String,
}

impl ExprError {
    pub(crate) fn new(kind: ExprErrorKind, message: impl Into<String>) -> Self {
        ExprError {
            kind,
            message: message.into(),
        }
    }
    pub(crate) fn unsupported(construct: impl std::fmt::Display) -> Self {
        ExprError::new(
            ExprErrorKind::Unsupported,
            format!("{construct} is not supported in E> expressions"),
        )
    }
    pub(crate) fn syntax(message: impl Into<String>) -> Self {
        ExprError::new(ExprErrorKind::Syntax, message)
    }
    pub(crate) fn type_err(message: impl Into<String>) -> Self {
        ExprError::new(ExprErrorKind::Type, message)
    }
    /// What Python's `str(exception)` would print (used for `<eval-error:…>`).
    pub fn python_message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for ExprError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.label(), self.message)
    }
}

impl std::error::Error for ExprError {}

/// At most this many tokens in one expression (OSImager's own are under 50): keeps parsing,
/// evaluation and dropping the tree within a small stack whatever the input.
pub const MAX_TOKENS: usize = 2_000;
/// At most this many levels in the expression's tree: nested brackets, unary operators, `not`s,
/// `**`s, `if`/`else`s, and the links of operator and call chains (`a + b + c` is 2 deep).
/// OSImager's own expressions nest 5 deep at most; a debug build needs about 10 KiB of stack
/// per level, so 40 fits a 1 MiB stack (tokio's workers have 2 MiB).
pub const MAX_NESTING: usize = 40;
/// At most this many bytes (strings) or items (lists, tuples) produced by one evaluation in
/// total (`'a' * 10**12`, doubling concatenations, `replace`, `join`).
pub const MAX_PRODUCED: usize = 16 << 20;

/// Evaluate one expression.
pub fn eval(source: &str) -> Result<PyVal, ExprError> {
    let tokens = lex::tokenize(source)?;
    if tokens.len() > MAX_TOKENS {
        return Err(ExprError::new(
            ExprErrorKind::Limit,
            format!(
                "the expression has {} tokens; the limit is {MAX_TOKENS}",
                tokens.len()
            ),
        ));
    }
    let ast = parse::parse(&tokens)?;
    eval::eval_budgeted(&ast)
}

#[cfg(test)]
mod tests;
