//! Jobs as the API and the streams show them.

use crate::backend::{CacheChoice, EngineChoice, OnErrorChoice};
use crate::store::{Job, JobRequest};
use serde::Serialize;

/// A job with what the UI derives from it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// The stored job.
    #[serde(flatten)]
    pub job: Job,
    /// The equivalent `osimager build` command line.
    pub command: String,
}

impl From<Job> for JobView {
    fn from(job: Job) -> JobView {
        let command = command_line(&job.request);
        JobView { job, command }
    }
}

/// The job as JSON text (for the streams).
pub fn job_json(job: &Job) -> String {
    serde_json::to_string(&JobView::from(job.clone())).unwrap_or_else(|_| "null".into())
}

/// `osimager build TARGET [NAME [IP]] [-D …] [--engine …] [--on-error abort] [-f] [-n]`.
pub fn command_line(r: &JobRequest) -> String {
    let mut a = vec![
        "osimager".to_string(),
        "build".into(),
        quote(&r.target.target),
    ];
    if let Some(n) = &r.target.name {
        a.push(quote(n));
        if let Some(ip) = &r.target.ip {
            a.push(quote(ip));
        }
    }
    for d in &r.target.defines {
        a.push("-D".into());
        a.push(quote(d));
    }
    if r.engine != EngineChoice::Auto {
        a.push(format!("--engine {}", r.engine.as_str()));
    }
    if r.on_error != OnErrorChoice::Cleanup {
        a.push(format!("--on-error {}", r.on_error.as_str()));
    }
    if r.cache != CacheChoice::Off {
        a.push(format!("--cache {}", r.cache.as_str()));
    }
    if r.force {
        a.push("--force".into());
    }
    if r.dry_run {
        a.push("--dry-run".into());
    }
    a.join(" ")
}

/// POSIX shell quoting: bare when safe, else single quotes.
pub fn quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::TargetRef;

    #[test]
    fn command_lines_quote_what_a_shell_would_split() {
        let r = JobRequest {
            target: TargetRef {
                target: "qemu/lab/debian-12-x86_64".into(),
                name: Some("web 1".into()),
                ip: Some("10.0.0.5".into()),
                defines: vec!["memory=4096,cpus=2".into(), "note=it's".into()],
            },
            engine: EngineChoice::Native,
            on_error: OnErrorChoice::Abort,
            force: true,
            dry_run: false,
            cache: CacheChoice::Use,
            priority: 3,
            labels: Default::default(),
        };
        assert_eq!(
            command_line(&r),
            "osimager build qemu/lab/debian-12-x86_64 'web 1' 10.0.0.5 -D memory=4096,cpus=2 \
             -D 'note=it'\\''s' --engine native --on-error abort --cache use --force"
        );
    }
}
