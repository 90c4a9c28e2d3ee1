//! Go `time.ParseDuration` syntax for `<waitDURATION>`.

use std::time::Duration;

/// A duration as builder keys and `<waitX>` tokens write it — the one rule for every duration
/// osimager reads: Go syntax (`1m30s`, `1.5s`, `250ms`), or a bare whole number of seconds
/// (`600`), which Packer's `<wait10>` uses and configs such as `"ssh_timeout": "600"` rely on.
/// A bare fraction (`1.5`) is refused as Go and Packer refuse it: say `1.5s`. Surrounding spaces
/// and a `+` are allowed; negative durations are refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s.starts_with('-') {
        return Err(format!("negative duration {s:?}"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.bytes().all(|b| b.is_ascii_digit()) {
        parse_go_duration(&format!("{s}s"))
    } else {
        parse_go_duration(s)
    }
    .map_err(|e| format!("{e} in duration {text:?} (use e.g. 30s, 5m, 1h30m, 250ms, or seconds)"))
}

/// Parse a non-negative Go duration (`1m30s`, `1.5s`, `250ms`, `2h`, `10us`, `0`).
/// Units: `h m s ms us µs μs ns`. A sign is rejected here; the caller reports negatives.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(r) = rest.strip_prefix('.') {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &r[..n];
            rest = &r[n..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(format!("expected a number at {rest:?}"));
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err("missing unit".into()),
            u => return Err(format!("unknown unit {u:?}")),
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part
                .parse()
                .map_err(|_| "number too large".to_string())?
        };
        let mut v = int.checked_mul(nanos).ok_or("duration too large")?;
        if !frac_part.is_empty() {
            // Keep at most 18 fractional digits; more cannot matter below a nanosecond.
            let digits = &frac_part[..frac_part.len().min(18)];
            let f: u128 = digits.parse().map_err(|_| "bad fraction".to_string())?;
            v += f * nanos / 10u128.pow(digits.len() as u32);
        }
        total = total.checked_add(v).ok_or("duration too large")?;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| "duration too large")?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// Format a duration the way Go prints one (`1h2m3.5s`, `250ms`, `0s`); parses back exactly.
pub fn format_go_duration(d: Duration) -> String {
    let total = d.as_nanos();
    if total == 0 {
        return "0s".into();
    }
    if total < 1_000 {
        return format!("{total}ns");
    }
    if total < 1_000_000 {
        return frac(total, 1_000, "us");
    }
    if total < 1_000_000_000 {
        return frac(total, 1_000_000, "ms");
    }
    let mut out = String::new();
    let h = total / 3_600_000_000_000;
    let rem = total % 3_600_000_000_000;
    let m = rem / 60_000_000_000;
    let s_ns = rem % 60_000_000_000;
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&frac(s_ns, 1_000_000_000, "s"));
    out
}

fn frac(v: u128, unit: u128, name: &str) -> String {
    let int = v / unit;
    let f = v % unit;
    if f == 0 {
        return format!("{int}{name}");
    }
    let width = (unit.ilog10()) as usize;
    let digits = format!("{f:0width$}");
    format!("{int}.{}{name}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod rule_tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn one_rule_for_every_duration() {
        assert_eq!(parse_duration("600"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration(" +5m "), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in [
            "",
            "-1s",
            "1.5",
            "inf",
            "nan",
            "1e3",
            "5x",
            "m",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
