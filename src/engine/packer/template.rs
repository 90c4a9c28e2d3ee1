//! Writing the Packer template byte-for-byte like OSImager's `json.dump(build, fp, indent=4)`:
//! four-space indent, `", "`-free separators at line ends, `": "` between key and value, key
//! order preserved, non-ASCII written as `\uXXXX` (Python's default `ensure_ascii=True`), no
//! trailing newline. Identical bytes make `diff` against an OSImager run meaningful.

use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// Render `value` as Python's `json.dumps(value, indent=4)` would.
pub fn to_python_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, 0);
    out
}

/// Write the template to `path` (Python-compatible bytes).
pub fn write_template(path: &Path, template: &Value) -> std::io::Result<()> {
    std::fs::write(path, to_python_json(template))
}

fn write_value(out: &mut String, value: &Value, depth: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&python_number(n)),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                write_value(out, item, depth + 1);
            }
            newline(out, depth);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                write_string(out, k);
                out.push_str(": ");
                write_value(out, v, depth + 1);
            }
            newline(out, depth);
            out.push('}');
        }
    }
}

fn newline(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str("    ");
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Python's float repr (shortest round-trip digits; exponent form below 1e-4 and from 1e16, as
/// `1e-05` / `1e+16`); integers print as they are.
fn python_number(n: &serde_json::Number) -> String {
    let Some(f) = n.as_f64().filter(|_| n.is_f64()) else {
        return n.to_string();
    };
    if !f.is_finite() {
        return n.to_string();
    }
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let point = exp + 1;
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            format!(
                "{}.{}",
                &digits[..point as usize],
                &digits[point as usize..]
            )
        };
        format!("{sign}{body}")
    } else {
        let m = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let es = if exp < 0 { '-' } else { '+' };
        format!("{sign}{m}e{es}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_python_layout() {
        let v = json!({"b": [1, "x"], "a": {}, "c": [], "d": {"e": true, "f": null}});
        let expected = "{\n    \"b\": [\n        1,\n        \"x\"\n    ],\n    \"a\": {},\n    \
                        \"c\": [],\n    \"d\": {\n        \"e\": true,\n        \"f\": null\n    }\n}";
        assert_eq!(to_python_json(&v), expected);
    }

    #[test]
    fn escapes_like_ensure_ascii() {
        let v = json!("é\u{1F600}\u{7f}\"\\\n<wait>");
        assert_eq!(
            to_python_json(&v),
            "\"\\u00e9\\ud83d\\ude00\\u007f\\\"\\\\\\n<wait>\""
        );
    }

    #[test]
    fn float_exponents() {
        assert_eq!(to_python_json(&json!(1e-5)), "1e-05");
        assert_eq!(to_python_json(&json!(2.5)), "2.5");
        assert_eq!(to_python_json(&json!(1.0)), "1.0");
        assert_eq!(to_python_json(&json!(-0.001)), "-0.001");
        assert_eq!(to_python_json(&json!(1e16)), "1e+16");
        assert_eq!(to_python_json(&json!(123456.75)), "123456.75");
        assert_eq!(to_python_json(&json!(42)), "42");
    }
}
