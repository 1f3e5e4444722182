//! One progress display for long runs: a bar on a terminal, plain lines elsewhere.
//!
//! By default only what matters is printed (failures, known issues, the stage
//! changes); `-v` prints every case, round and scenario. Everything, printed or
//! not, is kept in the run's log (the certify submission's `e2e.log`).

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The display.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    verbose: bool,
    log: Vec<String>,
}

impl Progress {
    /// A display for `total` units of work; a bar only when stderr is a terminal.
    pub fn new(total: u64, verbose: bool) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Progress {
            bar,
            verbose,
            log: Vec::new(),
        }
    }

    fn print(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// A line everyone sees: a stage, a failure.
    pub fn line(&mut self, line: impl Into<String>) {
        let line = line.into();
        self.print(&line);
        self.log.push(line);
    }

    /// A line shown with `-v` only; always logged.
    pub fn detail(&mut self, line: impl Into<String>) {
        let line = line.into();
        if self.verbose {
            self.print(&line);
        }
        self.log.push(line);
    }

    /// What the bar says is running.
    pub fn stage(&mut self, msg: impl Into<String>) {
        let msg = msg.into();
        match &self.bar {
            Some(b) => b.set_message(msg.clone()),
            None => eprintln!("{msg}"),
        }
        self.log.push(msg);
    }

    /// `n` units done.
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    /// Removes the bar; returns the log.
    pub fn finish(self) -> Vec<String> {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        self.log
    }
}
