//! Python-compatible text forms of JSON values: `json.dumps(v, indent=4)` (the exact bytes
//! OSImager prints for `-x`/`-u`) and `str(v)` (how Python renders a value inside text).

use super::pytext::{float_repr, str_repr};
use serde_json::Value;
use std::fmt::Write;

/// `json.dumps(value, indent=4)` with Python's defaults (`ensure_ascii=True`).
pub fn dumps_indent4(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v, 0);
    out
}

fn write_value(out: &mut String, v: &Value, level: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&py_number(n)),
        Value::String(s) => write_json_str(out, s),
        Value::Array(a) => {
            if a.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline_indent(out, level + 1);
                write_value(out, e, level + 1);
            }
            newline_indent(out, level);
            out.push(']');
        }
        Value::Object(m) => {
            if m.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, e)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline_indent(out, level + 1);
                write_json_str(out, k);
                out.push_str(": ");
                write_value(out, e, level + 1);
            }
            newline_indent(out, level);
            out.push('}');
        }
    }
}

fn newline_indent(out: &mut String, level: usize) {
    out.push('\n');
    for _ in 0..level {
        out.push_str("    ");
    }
}

fn write_json_str(out: &mut String, s: &str) {
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
                for u in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Python's `repr(float)` / `str(int)` for a JSON number.
pub fn py_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    // A JSON number is finite, so Python's `NaN`/`Infinity` spellings never arise.
    float_repr(n.as_f64().unwrap_or(0.0))
}

/// Python `str(v)` of a value parsed from JSON (`True`, `None`, `{'a': 1}`, …).
pub fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        _ => py_repr(v),
    }
}

/// Python `repr(v)`.
pub fn py_repr(v: &Value) -> String {
    let mut out = String::new();
    repr_into(&mut out, v);
    out
}

fn repr_into(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Value::Number(n) => out.push_str(&py_number(n)),
        Value::String(s) => out.push_str(&str_repr(s)),
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                repr_into(out, e);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, e)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&str_repr(k));
                out.push_str(": ");
                repr_into(out, e);
            }
            out.push('}');
        }
    }
}

/// Python truthiness of a JSON value.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().map(|f| f != 0.0).unwrap_or(true),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dumps_matches_python() {
        let v = json!({"a": [1, "é", {}], "b": [], "c": true, "d": null, "e": 1.5});
        assert_eq!(
            dumps_indent4(&v),
            "{\n    \"a\": [\n        1,\n        \"\\u00e9\",\n        {}\n    ],\n    \"b\": [],\n    \"c\": true,\n    \"d\": null,\n    \"e\": 1.5\n}"
        );
    }

    #[test]
    fn repr_matches_python() {
        assert_eq!(
            py_str(&json!({"a": [1, true, null], "b": "it's"})),
            "{'a': [1, True, None], 'b': \"it's\"}"
        );
        assert_eq!(py_str(&json!(2.0)), "2.0");
        assert_eq!(py_str(&json!(1e20)), "1e+20");
        // Python escapes every character `str.isprintable()` rejects, not only ASCII controls.
        assert_eq!(
            py_str(&json!(["\u{a0}", "\u{2028}", "é", "\u{7f}", "\u{200b}"])),
            "['\\xa0', '\\u2028', 'é', '\\x7f', '\\u200b']"
        );
        assert_eq!(py_str(&json!({"k\u{85}": 1e16})), "{'k\\x85': 1e+16}");
    }
}
