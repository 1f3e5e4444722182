//! `gauntlet powerfs`: the power-loss filesystem on its own, for any server and any test
//! driver, with a control socket.
//!
//! It mounts the filesystem over `--mount` (durable state in `--backing`) and serves a
//! Unix socket at `--control`, one request per line, one answer per line:
//!
//! | request | answer |
//! |---|---|
//! | `cut` | `ok {CutReport as JSON}`, sent only once everything unsynced is dropped |
//! | `unsynced` | `ok {"files":…,"bytes":…,"metadata_ops":…}` |
//! | `faults {"eio_on_write":"*.wal","fsync_delay_ms":200,"fsync_delay_glob":"**",…}` | `ok` |
//! | `clear-faults` | `ok` |
//!
//! Anything else, or a bad glob, gets `error <one line>`. Kill your server before `cut`
//! (a power cut stops it); the answer is the acknowledgement that the drop happened, so a
//! driver may restart the server as soon as it reads it. Ctrl-C (or SIGTERM) unmounts and
//! removes the socket.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use gauntlet_harness::powerfs::{Control, Faults, Options, PowerFs};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Flags of `gauntlet powerfs`.
#[derive(Args, Debug)]
pub struct PowerFsArgs {
    /// Directory holding the durable state (must exist).
    #[arg(long)]
    backing: PathBuf,
    /// Where the filesystem is mounted (must exist; the server's data dir goes here).
    #[arg(long)]
    mount: PathBuf,
    /// The control socket's path.
    #[arg(long)]
    control: PathBuf,
    /// Creates, renames and unlinks are lost too unless their directory was fsynced.
    #[arg(long)]
    strict_metadata: bool,
    /// Seed of the torn-write fault's cuts.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// The `faults` request's JSON.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsJson {
    fsync_delay_glob: Option<String>,
    fsync_delay_ms: Option<u64>,
    eio_on_write: Option<String>,
    eio_on_fsync: Option<String>,
    torn_last_write: Option<String>,
}

/// Answers one request line.
fn answer(control: &Control, line: &str) -> String {
    let (verb, rest) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
    let result: Result<String, String> = match verb {
        "cut" => control
            .power_cut()
            .map_err(|e| e.to_string())
            .and_then(|r| serde_json::to_string(&r).map_err(|e| e.to_string())),
        "unsynced" => serde_json::to_string(&control.unsynced()).map_err(|e| e.to_string()),
        "faults" => serde_json::from_str::<FaultsJson>(rest)
            .map_err(|e| format!("bad faults JSON: {e}"))
            .and_then(|f| {
                let fsync_delay = match (f.fsync_delay_glob, f.fsync_delay_ms) {
                    (Some(g), Some(ms)) => Some((g, Duration::from_millis(ms))),
                    (None, None) => None,
                    _ => return Err("fsync_delay_glob and fsync_delay_ms go together".into()),
                };
                control
                    .set_faults(Faults {
                        fsync_delay,
                        eio_on_write: f.eio_on_write,
                        eio_on_fsync: f.eio_on_fsync,
                        torn_last_write: f.torn_last_write,
                    })
                    .map(|()| String::new())
                    .map_err(|e| e.to_string())
            }),
        "clear-faults" => {
            control.clear_faults();
            Ok(String::new())
        }
        other => Err(format!(
            "unknown request `{other}`: cut, unsynced, faults JSON, clear-faults"
        )),
    };
    match result {
        Ok(s) if s.is_empty() => "ok".into(),
        Ok(s) => format!("ok {s}"),
        Err(e) => format!("error {}", e.replace('\n', " ")),
    }
}

/// Runs the subcommand until Ctrl-C or SIGTERM.
pub async fn run(args: &PowerFsArgs) -> anyhow::Result<()> {
    let fs = PowerFs::mount(
        &args.backing,
        &args.mount,
        Options {
            strict_metadata: args.strict_metadata,
            seed: args.seed,
            ..Options::default()
        },
    )
    .with_context(|| format!("mounting over {}", args.mount.display()))?;
    if args.control.exists() {
        anyhow::bail!(
            "{} exists: remove it or choose another --control path",
            args.control.display()
        );
    }
    let listener = tokio::net::UnixListener::bind(&args.control)
        .with_context(|| format!("listening on {}", args.control.display()))?;
    println!(
        "powerfs mounted at {} (durable state in {}); control socket {}",
        args.mount.display(),
        args.backing.display(),
        args.control.display()
    );
    let control = fs.control();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let control = control.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let c = control.clone();
                        let reply = tokio::task::spawn_blocking(move || answer(&c, &line))
                            .await
                            .unwrap_or_else(|e| format!("error {e}"));
                        if write.write_all(format!("{reply}\n").as_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    let _ = std::fs::remove_file(&args.control);
    drop(fs);
    eprintln!("powerfs unmounted from {}", args.mount.display());
    Ok(())
}
