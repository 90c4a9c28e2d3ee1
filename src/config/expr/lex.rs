//! Tokenizer for the Python expression subset.

use super::ExprError;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Name(String),
    Str(String),
    Int(i64),
    Float(f64),
    /// Operators and punctuation.
    Op(&'static str),
}

const OPS: [&str; 30] = [
    "**", "//", "==", "!=", "<=", ">=", "->", ":=", "<<", ">>", "+", "-", "*", "/", "%", "<", ">",
    "(", ")", "[", "]", "{", "}", ",", ":", ".", "~", "=", "&", "|",
];

pub fn tokenize(src: &str) -> Result<Vec<Tok>, ExprError> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == ' ' || c == '\t' || c == '\x0c' {
            i += 1;
            continue;
        }
        if c == '\\' && chars.get(i + 1) == Some(&'\n') {
            i += 2;
            continue;
        }
        if c == '\n' || c == '\r' {
            return Err(ExprError::syntax(
                "invalid syntax (line break in expression)",
            ));
        }
        if c == '#' {
            return Err(ExprError::unsupported("a comment"));
        }
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let (tok, next) = number(&chars, i)?;
            toks.push(tok);
            i = next;
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if i < chars.len() && (chars[i] == '\'' || chars[i] == '"') {
                let prefix = word.to_ascii_lowercase();
                match prefix.as_str() {
                    "r" | "u" => {
                        let (s, next) = string(&chars, i, prefix == "r")?;
                        toks.push(Tok::Str(s));
                        i = next;
                        continue;
                    }
                    "f" | "rf" | "fr" => return Err(ExprError::unsupported("an f-string")),
                    "b" | "rb" | "br" => return Err(ExprError::unsupported("a bytes literal")),
                    _ => {}
                }
            }
            toks.push(Tok::Name(word));
            continue;
        }
        if c == '\'' || c == '"' {
            let (s, next) = string(&chars, i, false)?;
            toks.push(Tok::Str(s));
            i = next;
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        match OPS.iter().find(|op| rest.starts_with(**op)) {
            Some(op) => {
                toks.push(Tok::Op(op));
                i += op.chars().count();
            }
            None => {
                return Err(ExprError::syntax(format!(
                    "invalid character '{c}' (U+{:04X})",
                    c as u32
                )))
            }
        }
    }
    Ok(toks)
}

fn number(chars: &[char], start: usize) -> Result<(Tok, usize), ExprError> {
    let mut i = start;
    let take = |i: &mut usize, ok: &dyn Fn(char) -> bool| {
        let s = *i;
        while *i < chars.len() && (ok(chars[*i]) || chars[*i] == '_') {
            *i += 1;
        }
        chars[s..*i]
            .iter()
            .filter(|c| **c != '_')
            .collect::<String>()
    };
    if chars[i] == '0' && matches!(chars.get(i + 1), Some('x' | 'X' | 'o' | 'O' | 'b' | 'B')) {
        let radix = match chars[i + 1].to_ascii_lowercase() {
            'x' => 16,
            'o' => 8,
            _ => 2,
        };
        i += 2;
        let digits = take(&mut i, &|c| c.is_ascii_alphanumeric());
        let v = i64::from_str_radix(&digits, radix)
            .map_err(|_| ExprError::syntax(format!("invalid integer literal '{digits}'")))?;
        return Ok((Tok::Int(v), i));
    }
    let int_part = take(&mut i, &|c| c.is_ascii_digit());
    let mut is_float = false;
    let mut text = int_part.clone();
    if i < chars.len() && chars[i] == '.' {
        is_float = true;
        i += 1;
        text.push('.');
        text.push_str(&take(&mut i, &|c| c.is_ascii_digit()));
    }
    if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
        let save = i;
        i += 1;
        let mut exp = String::from("e");
        if i < chars.len() && (chars[i] == '+' || chars[i] == '-') {
            exp.push(chars[i]);
            i += 1;
        }
        let digits = take(&mut i, &|c| c.is_ascii_digit());
        if digits.is_empty() {
            i = save;
        } else {
            is_float = true;
            text.push_str(&exp);
            text.push_str(&digits);
        }
    }
    if i < chars.len() && (chars[i].is_alphabetic() || chars[i] == '_') {
        if chars[i] == 'j' || chars[i] == 'J' {
            return Err(ExprError::unsupported("a complex literal"));
        }
        return Err(ExprError::syntax("invalid decimal literal"));
    }
    if is_float {
        let t = if text.starts_with('.') {
            format!("0{text}")
        } else {
            text
        };
        let v: f64 = t
            .trim_end_matches('.')
            .parse()
            .map_err(|_| ExprError::syntax(format!("invalid float literal '{t}'")))?;
        return Ok((Tok::Float(v), i));
    }
    if int_part.len() > 1 && int_part.starts_with('0') && int_part.chars().any(|c| c != '0') {
        return Err(ExprError::syntax(
            "leading zeros in decimal integer literals are not permitted",
        ));
    }
    let v: i64 = int_part.parse().map_err(|_| {
        ExprError::new(
            super::ExprErrorKind::Overflow,
            format!("integer literal {int_part} is larger than 64 bits"),
        )
    })?;
    Ok((Tok::Int(v), i))
}

fn string(chars: &[char], start: usize, raw: bool) -> Result<(String, usize), ExprError> {
    let q = chars[start];
    let triple = chars.get(start + 1) == Some(&q) && chars.get(start + 2) == Some(&q);
    let mut i = start + if triple { 3 } else { 1 };
    let mut out = String::new();
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(ExprError::syntax("unterminated string literal"));
        };
        if c == q {
            if !triple {
                return Ok((out, i + 1));
            }
            if chars.get(i + 1) == Some(&q) && chars.get(i + 2) == Some(&q) {
                return Ok((out, i + 3));
            }
        }
        if c == '\n' && !triple {
            return Err(ExprError::syntax("unterminated string literal"));
        }
        if c != '\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let Some(&e) = chars.get(i + 1) else {
            return Err(ExprError::syntax("unterminated string literal"));
        };
        if raw {
            out.push('\\');
            out.push(e);
            i += 2;
            continue;
        }
        i += 2;
        match e {
            '\n' => {}
            '\\' => out.push('\\'),
            '\'' => out.push('\''),
            '"' => out.push('"'),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                let mut n = 1;
                while n < 3 && chars.get(i).is_some_and(|c| c.is_digit(8)) {
                    v = v * 8 + chars[i].to_digit(8).unwrap_or(0);
                    i += 1;
                    n += 1;
                }
                out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
            }
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = chars.get(i..i + n).unwrap_or(&[]).iter().collect();
                let v = (hex.len() == n)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .and_then(char::from_u32)
                    .ok_or_else(|| {
                        ExprError::syntax(format!("truncated \\{e} escape in string literal"))
                    })?;
                out.push(v);
                i += n;
            }
            'N' => return Err(ExprError::unsupported("a \\N{…} escape")),
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
}
