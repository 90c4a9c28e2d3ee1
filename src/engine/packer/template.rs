//! Writing the Packer template byte-for-byte like OSImager's `json.dump(build, fp, indent=4)`:
//! four-space indent, `", "`-free separators at line ends, `": "` between key and value, key
//! order preserved, non-ASCII written as `\uXXXX` (Python's default `ensure_ascii=True`), no
//! trailing newline. Identical bytes make `diff` against an OSImager run meaningful.

use serde_json::Value;
use std::path::Path;

/// Render `value` as Python's `json.dumps(value, indent=4)` would (the configuration engine's
/// serializer, shared so `osimager dump` and the written template are the same bytes).
pub fn to_python_json(value: &Value) -> String {
    crate::config::pyjson::dumps_indent4(value)
}

/// Write the template to `path` (Python-compatible bytes).
pub fn write_template(path: &Path, template: &Value) -> std::io::Result<()> {
    std::fs::write(path, to_python_json(template))
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
