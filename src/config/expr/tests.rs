use super::*;

fn ev(s: &str) -> PyVal {
    eval(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn repr(s: &str) -> String {
    ev(s).py_repr()
}

fn err(s: &str) -> ExprError {
    match eval(s) {
        Ok(v) => panic!("{s}: expected an error, got {}", v.py_repr()),
        Err(e) => e,
    }
}

#[test]
fn literals() {
    assert_eq!(repr("'a\\tb'"), "'a\\tb'");
    assert_eq!(ev("'it''s'"), PyVal::Str("its".into()));
    assert_eq!(ev("\"x\\n\""), PyVal::Str("x\n".into()));
    assert_eq!(ev("r'\\n'"), PyVal::Str("\\n".into()));
    assert_eq!(
        ev("'\\x41\\u00e9\\101\\d'"),
        PyVal::Str("A\u{e9}A\\d".into())
    );
    assert_eq!(ev("'''tri'ple'''"), PyVal::Str("tri'ple".into()));
    assert_eq!(ev("1_000"), PyVal::Int(1000));
    assert_eq!(ev("0x1f"), PyVal::Int(31));
    assert_eq!(repr("1.5e3"), "1500.0");
    assert_eq!(repr(".5"), "0.5");
    assert_eq!(repr("1e16"), "1e+16");
    assert_eq!(repr("1e-5"), "1e-05");
    assert_eq!(repr("0.0001"), "0.0001");
    assert_eq!(repr("None"), "None");
    assert_eq!(repr("(True, False)"), "(True, False)");
    assert_eq!(repr("(1,)"), "(1,)");
    assert_eq!(repr("()"), "()");
    assert_eq!(repr("[1, 'a', None]"), "[1, 'a', None]");
    assert_eq!(repr("{'a': 1, 2: [3]}"), "{'a': 1, 2: [3]}");
    assert_eq!(repr("{1: 'a', 1.0: 'b'}"), "{1: 'b'}");
    assert_eq!(repr("\"it's\""), "\"it's\"");
    assert_eq!(repr("'both \\' and \"'"), "'both \\' and \"'");
}

#[test]
fn conditionals_and_boolean_values() {
    assert_eq!(ev("'a' if 1 else 'b'"), PyVal::Str("a".into()));
    assert_eq!(ev("'a' if '' else 'b'"), PyVal::Str("b".into()));
    assert_eq!(
        ev("'x' if 0 else ('y' if [] else ('z' if {} == {} else 'w'))"),
        PyVal::Str("z".into())
    );
    assert_eq!(
        ev("'a' if 0 else 'b' if 1 else 'c'"),
        PyVal::Str("b".into())
    );
    assert_eq!(ev("'' or 'x'"), PyVal::Str("x".into()));
    assert_eq!(ev("0 or [] or None"), PyVal::None);
    assert_eq!(ev("'a' and 'b'"), PyVal::Str("b".into()));
    assert_eq!(ev("'' and undefined_name"), PyVal::Str(String::new()));
    assert_eq!(ev("1 or undefined_name"), PyVal::Int(1));
    assert_eq!(
        ev("'x' if True else undefined_name"),
        PyVal::Str("x".into())
    );
    assert_eq!(ev("not ''"), PyVal::Bool(true));
    assert_eq!(ev("not 'a' == 'a'"), PyVal::Bool(false));
    assert_eq!(ev("True and not False or 0"), PyVal::Bool(true));
}

#[test]
fn comparisons_and_membership() {
    assert_eq!(ev("'a' == 'a' != 'b'"), PyVal::Bool(true));
    assert_eq!(ev("1 < 2 < 3"), PyVal::Bool(true));
    assert_eq!(ev("3 > 2 > 2"), PyVal::Bool(false));
    assert_eq!(ev("1 == 1.0 == True"), PyVal::Bool(true));
    assert_eq!(ev("'1' == 1"), PyVal::Bool(false));
    assert_eq!(ev("'' in ('', 'dhcp')"), PyVal::Bool(true));
    assert_eq!(ev("'x' not in ['', 'dhcp']"), PyVal::Bool(true));
    assert_eq!(ev("'ab' in 'xaby'"), PyVal::Bool(true));
    assert_eq!(ev("2 in {2: 'a'}"), PyVal::Bool(true));
    assert_eq!(ev("None is None"), PyVal::Bool(true));
    assert_eq!(ev("'a' is not None"), PyVal::Bool(true));
    assert_eq!(ev("[1, 2] < [1, 3]"), PyVal::Bool(true));
    assert_eq!(ev("'abc' >= 'abd'"), PyVal::Bool(false));
}

#[test]
fn arithmetic() {
    assert_eq!(ev("1024 * 4"), PyVal::Int(4096));
    assert_eq!(ev("7 / 2"), PyVal::Float(3.5));
    assert_eq!(ev("-7 // 2"), PyVal::Int(-4));
    assert_eq!(ev("-7 % 3"), PyVal::Int(2));
    assert_eq!(ev("7 % -3"), PyVal::Int(-2));
    assert_eq!(ev("2 ** 10"), PyVal::Int(1024));
    assert_eq!(ev("-2 ** 2"), PyVal::Int(-4));
    assert_eq!(ev("2 ** -1"), PyVal::Float(0.5));
    assert_eq!(ev("1 + 2 * 3 - 4"), PyVal::Int(3));
    assert_eq!(ev("(1 + 2) * 3"), PyVal::Int(9));
    assert_eq!(ev("'a' + 'b' * 3"), PyVal::Str("abbb".into()));
    assert_eq!(
        ev("[1] + [2]"),
        PyVal::List(vec![PyVal::Int(1), PyVal::Int(2)])
    );
    assert_eq!(ev("True + 1"), PyVal::Int(2));
    assert_eq!(err("1 / 0").python_message(), "division by zero");
    assert_eq!(err("1.0 / 0").python_message(), "float division by zero");
    assert_eq!(
        err("1 // 0").python_message(),
        "integer division or modulo by zero"
    );
    assert_eq!(err("9223372036854775807 + 1").kind, ExprErrorKind::Overflow);
}

#[test]
fn builtins_and_methods() {
    assert_eq!(ev("len('>>nic<<')"), PyVal::Int(7));
    assert_eq!(ev("len([1, 2])"), PyVal::Int(2));
    assert_eq!(ev("int(' 12 ')"), PyVal::Int(12));
    assert_eq!(ev("int(-3.9)"), PyVal::Int(-3));
    assert_eq!(ev("int('1_0')"), PyVal::Int(10));
    assert_eq!(
        ev("str(1.0) + str(None) + str(True)"),
        PyVal::Str("1.0NoneTrue".into())
    );
    assert_eq!(ev("str([1, 'a'])"), PyVal::Str("[1, 'a']".into()));
    assert_eq!(ev("float('1.5')"), PyVal::Float(1.5));
    assert_eq!(ev("bool('')"), PyVal::Bool(false));
    assert_eq!(ev("'win10'.startswith('win')"), PyVal::Bool(true));
    assert_eq!(ev("'win10'.startswith(('x', 'wi'))"), PyVal::Bool(true));
    assert_eq!(ev("'a.b.c'.endswith('.c')"), PyVal::Bool(true));
    assert_eq!(ev("'12.04'.replace('.', '')"), PyVal::Str("1204".into()));
    assert_eq!(ev("'aaa'.replace('a', 'b', 2)"), PyVal::Str("bba".into()));
    assert_eq!(ev("'\\n'.join(['a', 'b'])"), PyVal::Str("a\nb".into()));
    assert_eq!(ev("', '.join(('a',))"), PyVal::Str("a".into()));
    assert_eq!(ev("' Ab '.strip().lower()"), PyVal::Str("ab".into()));
    assert_eq!(ev("'xxAxx'.strip('x').upper()"), PyVal::Str("A".into()));
    assert_eq!(repr("'a b  c'.split()"), "['a', 'b', 'c']");
    assert_eq!(repr("'a,b,c'.split(',', 1)"), "['a', 'b,c']");
    assert_eq!(ev("{0:6,1:6,5:7,10:8}[int('5')]"), PyVal::Int(7));
    assert_eq!(ev("[1, 2, 3][-1]"), PyVal::Int(3));
    assert_eq!(ev("'abcdef'[1:4]"), PyVal::Str("bcd".into()));
    assert_eq!(ev("'abcdef'[::-2]"), PyVal::Str("fdb".into()));
    assert_eq!(repr("[1, 2, 3, 4][1:]"), "[2, 3, 4]");
    assert_eq!(ev("os.W_OK"), PyVal::Int(2));
}

#[test]
fn os_access_matches_libc() {
    // /proc/self is always readable; a path that does not exist is never accessible.
    assert_eq!(ev("os.access('/proc/self', os.R_OK)"), PyVal::Bool(true));
    assert_eq!(
        ev("os.access('/nonexistent/x', os.F_OK)"),
        PyVal::Bool(false)
    );
    assert_eq!(
        ev("'kvm' if os.access('/nonexistent/kvm', os.W_OK) else 'none'"),
        PyVal::Str("none".into())
    );
}

#[test]
fn errors_name_the_construct() {
    let cases = [
        ("lambda x: x", "'lambda'"),
        ("[x for x in 'ab']", "comprehension"),
        ("f'{1}'", "f-string"),
        ("b'x'", "bytes"),
        ("'%s' % 1", "formatting"),
        ("'a'.format()", "'format'"),
        ("os.system('true')", "os.system"),
        ("len(x=1)", "keyword argument"),
        ("1 << 2", "bitwise"),
        ("x := 1", "assignment"),
        ("{1, 2}", "set literal"),
        ("[] is []", "'is'"),
    ];
    for (src, needle) in cases {
        let e = err(src);
        assert_eq!(e.kind, ExprErrorKind::Unsupported, "{src}: {e}");
        assert!(e.to_string().contains(needle), "{src}: {e}");
    }
    assert_eq!(err("foo").python_message(), "name 'foo' is not defined");
    assert_eq!(err("__import__('os')").kind, ExprErrorKind::Name);
    assert_eq!(err("'a' +").kind, ExprErrorKind::Syntax);
    assert_eq!(err("('a'").kind, ExprErrorKind::Syntax);
    assert_eq!(err("'abc").kind, ExprErrorKind::Syntax);
    assert_eq!(err("").kind, ExprErrorKind::Syntax);
    assert_eq!(err("'a' if 1").kind, ExprErrorKind::Syntax);
    assert_eq!(err("012").kind, ExprErrorKind::Syntax);
    assert_eq!(
        err("'a' + 1").python_message(),
        "can only concatenate str (not \"int\") to str"
    );
    assert_eq!(err("{'a': 1}['b']").python_message(), "'b'");
    assert_eq!(err("[1][5]").python_message(), "list index out of range");
    assert_eq!(
        err("int('x1')").python_message(),
        "invalid literal for int() with base 10: 'x1'"
    );
    assert_eq!(err("1 < 'a'").kind, ExprErrorKind::Type);
    assert_eq!(
        err("len(5)").python_message(),
        "object of type 'int' has no len()"
    );
    assert_eq!(err("5 in 5").kind, ExprErrorKind::Type);
    assert_eq!(err("'a'.nope").kind, ExprErrorKind::Attribute);
    assert_eq!(err("{[1]: 2}").python_message(), "unhashable type: 'list'");
}

#[test]
fn json_conversion() {
    let v = ev("{'a': (1, 2.5), 3: None, True: 'x'}").to_json().unwrap();
    assert_eq!(
        v,
        serde_json::json!({"a": [1, 2.5], "3": null, "true": "x"})
    );
    assert!(ev("len").to_json().is_err());
    let back = PyVal::from_json(&serde_json::json!({"k": [1, "s", true, null, 1.5]}));
    assert_eq!(back.py_str(), "{'k': [1, 's', True, None, 1.5]}");
}

#[test]
fn float_repr_matches_python() {
    use crate::config::pytext::float_repr;
    let cases = [
        (0.1, "0.1"),
        (1.0, "1.0"),
        (-2.5, "-2.5"),
        (123456789.0, "123456789.0"),
        (1e15, "1000000000000000.0"),
        (1.5e16, "1.5e+16"),
        (1.2345e-7, "1.2345e-07"),
        (0.00012, "0.00012"),
        (f64::INFINITY, "inf"),
        (-0.0, "-0.0"),
        (1.0 / 3.0, "0.3333333333333333"),
    ];
    for (f, want) in cases {
        assert_eq!(float_repr(f), want);
    }
}

/// Inputs built to exhaust the stack, time or memory end in a `Limit` error, within a small
/// stack (issue 15: these overflowed the stack or aborted on allocation before).
#[test]
fn hostile_expressions_hit_limits() {
    let run = || {
        let cases = [
            format!("{}1{}", "(".repeat(5000), ")".repeat(5000)),
            format!("{}1{}", "[".repeat(41), "]".repeat(41)),
            vec!["1"; 1999].join("+"),
            vec!["'a'"; 60].join(" or "),
            format!("''{}", ".strip()".repeat(60)),
            format!("{}True", "not ".repeat(41)),
            format!("{}1", "-".repeat(41)),
            vec!["2"; 41].join("**"),
            vec!["1"; 41].join("+"),
            "'a'*10**12".to_string(),
            "[0]*10**9".to_string(),
            "('x'*9000000)+('x'*9000000)".to_string(),
            "('a'*100000).replace('a','b'*100000)".to_string(),
            "('y'*100000).join(['a']*1000)".to_string(),
            // Found by `scripts/fuzz.sh` (fuzz/regressions/expr/oom-7cb4…): nested
            // repetition, each level cheap by its length, billions of items deep.
            "((((1,2)*31,)*3331,2)*31,)*333".to_string(),
            "[[[0]*4000]*4000]*4000".to_string(),
            "[[0]*5000000]+[[0]*5000000]*3".to_string(),
        ];
        cases
            .iter()
            .map(|c| match eval(c) {
                Err(e) if e.kind == ExprErrorKind::Limit => None,
                other => Some(format!("{}…: {other:?}", &c[..c.len().min(40)])),
            })
            .collect::<Vec<_>>()
    };
    let bad: Vec<String> = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
    // Just inside the limits, in the same stack: evaluates.
    let ok = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(|| {
            (
                eval(&format!("{}1{}", "(".repeat(39), ")".repeat(39))),
                eval(&vec!["1"; 40].join("+")),
            )
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(ok.0.unwrap(), PyVal::Int(1));
    assert_eq!(ok.1.unwrap(), PyVal::Int(40));
    // The budget is per evaluation: the next one starts afresh.
    assert_eq!(eval("len('a'*1000)").unwrap(), PyVal::Int(1000));
}
