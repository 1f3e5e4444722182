//! `gauntlet check`: linearizability verdicts for recorded histories.
//!
//! Exit code: 0 when every file is linearizable, 1 when any is not, 2 when any verdict is unknown or a
//! file is bad input (and none is not linearizable: a definite violation is the stronger news).
//! Bad input is reported on stderr as `FILE:LINE: message`, and in jsonl as verdict `unknown` with an
//! `error` field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use gauntlet_checker::import::{
    detect_format, kv_history, parse_jepsen, parse_json_lines, register_history, Format,
    ImportError,
};
use gauntlet_checker::models::etcd::EtcdModel;
use gauntlet_checker::models::kv::KvModel;
use gauntlet_checker::models::register::RegisterModel;
use gauntlet_checker::{check, CheckOptions, CheckResult, Model, Operation, Verdict};

/// Which model to check against.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelArg {
    /// Read/write/cas register (Jepsen log, Jepsen EDN or JSON lines).
    Register,
    /// get/put/append key-value map, partitioned by key (Jepsen EDN or JSON lines).
    Kv,
    /// etcd KV API with revisions (JSON lines).
    Etcd,
}

/// Output format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// One human-readable line per file.
    Text,
    /// One JSON object per file.
    Jsonl,
}

/// Arguments of `gauntlet check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Model to check against.
    #[arg(long, value_enum)]
    pub model: ModelArg,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
    /// Write one HTML report per failing file into this directory.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Give up on a file (verdict unknown) after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_s: u64,
    /// History files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

enum FileVerdict {
    Checked {
        verdict: Verdict,
        ops: usize,
        elapsed_ms: u64,
    },
    BadInput(String),
}

/// Checks every file and prints one verdict per file; returns the process exit code (0, 1 or 2).
pub fn run(args: &CheckArgs) -> anyhow::Result<u8> {
    if let Some(dir) = &args.html {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating HTML directory {}", dir.display()))?;
    }
    let (mut any_illegal, mut any_unknown) = (false, false);
    for file in &args.files {
        let result = check_file(args, file);
        let name = file.display().to_string();
        match &result {
            FileVerdict::Checked {
                verdict,
                ops,
                elapsed_ms,
            } => {
                any_illegal |= *verdict == Verdict::NotLinearizable;
                any_unknown |= *verdict == Verdict::Unknown;
                match args.format {
                    OutputFormat::Text => {
                        println!("{name}: {} ({ops} ops, {elapsed_ms} ms)", verdict.as_str())
                    }
                    OutputFormat::Jsonl => println!(
                        "{}",
                        serde_json::json!({"file": name, "verdict": verdict.as_str(), "ops": ops, "elapsed_ms": elapsed_ms})
                    ),
                }
            }
            FileVerdict::BadInput(message) => {
                any_unknown = true;
                match args.format {
                    OutputFormat::Text => println!("{name}: bad input: {message}"),
                    OutputFormat::Jsonl => {
                        println!(
                            "{}",
                            serde_json::json!({"file": name, "verdict": "unknown", "error": message})
                        )
                    }
                }
                eprintln!("error: {name}: {message}");
            }
        }
    }
    Ok(if any_illegal {
        1
    } else if any_unknown {
        2
    } else {
        0
    })
}

fn bad(file: &Path, e: &ImportError) -> FileVerdict {
    FileVerdict::BadInput(format!("{}:{}: {}", file.display(), e.line, e.message))
}

fn check_file(args: &CheckArgs, file: &Path) -> FileVerdict {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => return FileVerdict::BadInput(format!("{}: cannot read: {e}", file.display())),
    };
    let format = detect_format(&text);
    match args.model {
        ModelArg::Register => {
            let history = match format {
                Some(Format::JsonLines) => parse_json_lines(&text),
                _ => parse_jepsen(&text).and_then(|ops| register_history(&ops)),
            };
            match history {
                Ok(h) => run_check(args, file, &RegisterModel, &h),
                Err(e) => bad(file, &e),
            }
        }
        ModelArg::Kv => {
            let history = match format {
                Some(Format::JsonLines) => parse_json_lines(&text),
                _ => parse_jepsen(&text).and_then(|ops| kv_history(&ops)),
            };
            match history {
                Ok(h) => run_check(args, file, &KvModel::default(), &h),
                Err(e) => bad(file, &e),
            }
        }
        ModelArg::Etcd => match parse_json_lines(&text) {
            Ok(h) => run_check(args, file, &EtcdModel, &h),
            Err(e) => bad(file, &e),
        },
    }
}

fn run_check<M: Model>(
    args: &CheckArgs,
    file: &Path,
    model: &M,
    history: &[Operation<M::Input, M::Output>],
) -> FileVerdict {
    let options = CheckOptions {
        timeout: Some(Duration::from_secs(args.timeout_s)),
        stop_on_first_illegal: args.html.is_none(),
        ..CheckOptions::default()
    };
    let result: CheckResult = match check(model, history, &options) {
        Ok(r) => r,
        Err(e) => return FileVerdict::BadInput(format!("{}: {e}", file.display())),
    };
    if result.verdict == Verdict::NotLinearizable {
        if let Some(dir) = &args.html {
            let stem = file
                .file_name()
                .map_or_else(|| "history".into(), |n| n.to_string_lossy().into_owned());
            let out = dir.join(format!("{stem}.html"));
            let page = gauntlet_checker::html::render(
                model,
                &file.display().to_string(),
                history,
                &result,
            );
            if let Err(e) = std::fs::write(&out, page) {
                return FileVerdict::BadInput(format!(
                    "{}: cannot write {}: {e}",
                    file.display(),
                    out.display()
                ));
            }
        }
    }
    FileVerdict::Checked {
        verdict: result.verdict,
        ops: history.len(),
        elapsed_ms: result.elapsed_ms,
    }
}
