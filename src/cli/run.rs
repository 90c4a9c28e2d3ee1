//! Running a build from the command line: a runtime, the event sinks the flags ask for, Ctrl-C
//! and SIGTERM turned into a cancel request, and a terminal prompter for `-d` / `-e ask`.

use super::sinks::{Dispatcher, Terminal};
use crate::engine::{
    self, Build, BuildContext, BuildError, BuildOptions, Cancel, Events, Prompter,
};
use crate::plan::BuildPlan;
use anyhow::{Context, Result};
use async_trait::async_trait;
use osimager_events::{EventSink, NdjsonSink};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

/// How the CLI shows a build.
#[derive(Debug, Clone, Default)]
pub struct Frontends {
    /// `--dispatcher`: PROGRESS/RESULT/ERROR lines on stdout.
    pub dispatcher: bool,
    /// `--events FILE|-`: the NDJSON event stream.
    pub events: Option<PathBuf>,
    /// `-v`: detail lines on the terminal.
    pub verbose: bool,
    /// `--console`: the guest's serial console on the terminal.
    pub console: bool,
    /// `-t`: timestamps on the terminal.
    pub timestamps: bool,
}

/// Asks on the terminal (stdin/stderr).
struct TerminalPrompter {
    tty: bool,
    interactive_packer: bool,
}

async fn read_line() -> String {
    tokio::task::spawn_blocking(|| {
        let mut s = String::new();
        let _ = std::io::stdin().read_line(&mut s);
        s
    })
    .await
    .unwrap_or_default()
}

#[async_trait]
impl Prompter for TerminalPrompter {
    async fn after_step(&self, step: &str) {
        if self.tty {
            eprintln!(
                "[debug] step {} done; press Enter to continue",
                step.replace('_', " ")
            );
            read_line().await;
        }
    }

    async fn cleanup_after_failure(&self, _error: &str) -> bool {
        if !self.tty {
            return false;
        }
        eprint!("Build failed. Clean up what was created? [C]leanup / [a]bort: ");
        !read_line().await.trim().eq_ignore_ascii_case("a")
    }

    fn terminal(&self) -> bool {
        self.interactive_packer
    }
}

/// The sinks `fe` asks for, attached to `events`.
fn attach_frontends(events: &Events, fe: &Frontends) -> Result<()> {
    events.attach(
        Arc::new(Terminal::new(fe.verbose, fe.console, fe.timestamps)),
        false,
    );
    if fe.dispatcher {
        events.attach(Arc::new(Dispatcher::default()), false);
    }
    if let Some(p) = &fe.events {
        let sink: Arc<dyn EventSink> = if p.as_os_str() == "-" {
            Arc::new(NdjsonSink::new(std::io::stdout()))
        } else {
            let f = std::fs::File::create(p)
                .with_context(|| format!("creating the events file {}", p.display()))?;
            Arc::new(NdjsonSink::new(std::io::BufWriter::new(f)))
        };
        events.attach(sink, false);
    }
    Ok(())
}

/// Build `plan` (already prepared) with `opts`, showing it as `fe` says. `retrofit` runs the
/// provisioners against an existing machine instead.
pub fn build(
    plan: BuildPlan,
    opts: BuildOptions,
    fe: &Frontends,
    retrofit: bool,
) -> Result<(), BuildError> {
    build_in(BuildContext::from_process(), plan, opts, fe, retrofit)
}

/// [`build`] in a given context (e.g. a driver registry with a test driver): the CLI's own
/// path otherwise — signals, terminal renderer, prompter.
pub fn build_in(
    context: BuildContext,
    plan: BuildPlan,
    opts: BuildOptions,
    fe: &Frontends,
    retrofit: bool,
) -> Result<(), BuildError> {
    let events = Events::new(engine::new_build_id(), context.secrets.clone());
    attach_frontends(&events, fe)
        .map_err(|e| BuildError::Config(crate::config::ConfigError::Other(format!("{e:#}"))))?;
    let tty = std::io::stdin().is_terminal();
    let prompter = TerminalPrompter {
        tty,
        interactive_packer: tty && (opts.debug || opts.on_error == engine::OnError::Ask),
    };
    let cancel = Cancel::new();
    let build = Build {
        plan,
        options: opts,
        context,
        events,
        cancel: cancel.clone(),
        prompter: Some(Arc::new(prompter)),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            BuildError::Config(crate::config::ConfigError::Other(format!(
                "cannot start the async runtime: {e}"
            )))
        })?;
    rt.block_on(async move {
        // Installed before the first step so no signal slips through.
        watch_signals(cancel);
        if retrofit {
            engine::retrofit(build).await
        } else {
            engine::run(build).await.map(|_| ())
        }
    })
}

/// Cancel the build on SIGINT / SIGTERM (the engine unwinds and the command exits non-zero).
fn watch_signals(cancel: Cancel) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    tokio::spawn(async move {
        loop {
            let which = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            cancel.cancel(which);
        }
    });
}
