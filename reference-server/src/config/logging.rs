//! `--logger`, `--log-outputs`, `--log-level` (and 3.4's `--debug`): where the log goes.
//!
//! `--log-outputs` is a comma list of targets, each `stderr`, `stdout` or a file path
//! (opened for append, created if missing); `default` means stderr, as for etcd's zap
//! logger, and like etcd it cannot be combined with other targets. `systemd/journal`
//! is refused: this server does not speak the journal protocol. Every log line goes
//! to every target. `panic` and `fatal` levels log errors only (this server never
//! panics on purpose because of a log call).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use tracing_subscriber::fmt::MakeWriter;

use super::flags::list;
use super::{Config, Flags};

/// One log target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOutput {
    /// Standard error (also what `default` means).
    Stderr,
    /// Standard output.
    Stdout,
    /// A file, appended to.
    File(PathBuf),
}

/// The validated logging flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// The tracing level: `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    /// Where every line goes, in order, without repeats.
    pub outputs: Vec<LogOutput>,
}

impl LogConfig {
    /// Checks the logging flags; the error is one line naming the flag.
    pub fn from_flags(flags: &Flags) -> Result<LogConfig, String> {
        let level = if flags.debug {
            "debug"
        } else {
            match flags.log_level.as_str() {
                "debug" => "debug",
                "info" => "info",
                "warn" => "warn",
                _ => "error",
            }
        };
        let names = list(&flags.log_outputs);
        if names.len() > 1 && names.iter().any(|n| n == "default") {
            return Err(format!(
                "--log-outputs={}: `default` cannot be combined with other outputs",
                flags.log_outputs
            ));
        }
        let mut outputs = Vec::new();
        for name in names {
            let out = match name.as_str() {
                "default" | "stderr" => LogOutput::Stderr,
                "stdout" => LogOutput::Stdout,
                "systemd/journal" => {
                    return Err(format!(
                        "--log-outputs={}: systemd/journal is not supported by gauntlet-server (use stderr and let systemd collect it)",
                        flags.log_outputs
                    ))
                }
                path => LogOutput::File(PathBuf::from(path)),
            };
            if !outputs.contains(&out) {
                outputs.push(out);
            }
        }
        if outputs.is_empty() {
            outputs.push(LogOutput::Stderr);
        }
        Ok(LogConfig { level, outputs })
    }
}

/// Installs the global tracing subscriber for `config`, then logs the warnings that
/// configuration collected (ignored keys, deprecated values). Fails if a log file
/// cannot be opened; the error names `--log-outputs`.
pub fn init(config: &Config) -> Result<(), String> {
    let log = &config.log;
    let mut targets = Vec::new();
    for out in &log.outputs {
        targets.push(match out {
            LogOutput::Stderr => Target::Stderr,
            LogOutput::Stdout => Target::Stdout,
            LogOutput::File(path) => Target::File(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("--log-outputs: cannot open {}: {e}", path.display()))?,
            ),
        });
    }
    let ansi =
        log.outputs == [LogOutput::Stderr] && std::io::IsTerminal::is_terminal(&io::stderr());
    tracing_subscriber::fmt()
        // The binary's own lines and the library's (every module's), at the level asked
        // for; other crates' warnings only.
        .with_env_filter(tracing_subscriber::EnvFilter::new(format!(
            "gauntlet_server={level},gauntlet_reference_server={level},warn",
            level = log.level
        )))
        .with_writer(Targets(Arc::new(targets)))
        .with_ansi(ansi)
        .try_init()
        .map_err(|e| format!("cannot install the logger: {e}"))?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    Ok(())
}

enum Target {
    Stderr,
    Stdout,
    File(File),
}

/// Every log target; tracing formats a whole line before one `write_all`, so lines
/// from different threads do not interleave within a target.
#[derive(Clone)]
struct Targets(Arc<Vec<Target>>);

impl<'a> MakeWriter<'a> for Targets {
    type Writer = Tee<'a>;

    fn make_writer(&'a self) -> Tee<'a> {
        Tee(&self.0)
    }
}

struct Tee<'a>(&'a [Target]);

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut first_error = None;
        for t in self.0 {
            let r = match t {
                Target::Stderr => io::stderr().write_all(buf),
                Target::Stdout => io::stdout().write_all(buf),
                Target::File(f) => (&*f).write_all(buf),
            };
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(buf.len()), Err)
    }

    fn flush(&mut self) -> io::Result<()> {
        for t in self.0 {
            match t {
                Target::Stderr => io::stderr().flush()?,
                Target::Stdout => io::stdout().flush()?,
                Target::File(f) => (&*f).flush()?,
            }
        }
        Ok(())
    }
}
