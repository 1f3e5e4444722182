//! Snapshots an operator keeps: `Maintenance.Snapshot` streams one, and
//! `gauntlet-server snapshot restore` makes a new cluster's data dir from one.
//!
//! A snapshot file is the state machine's own snapshot (every record: keys with their
//! history, leases, members, alarms, and the store's revision), framed as etcdctl
//! expects an etcd database: an 8-byte big-endian length, the snapshot, zero padding
//! to a multiple of [`PAGE_BYTES`] (etcdctl refuses a body that is not, as a bbolt
//! file always is), then the SHA-256 of all that (32 bytes), the trailer etcd puts
//! after its database so `etcdctl snapshot save` can check the download. It is taken under the state machine's read lock, so it is one
//! point in time; writes wait while it is copied.
//!
//! Restoring is etcdutl's `snapshot restore`: the keys, leases and revision come from
//! the file; the membership comes from the flags (a new cluster, with new member and
//! cluster ids), and the alarms are dropped. Every member of the new cluster restores
//! the same file with its own `--name` and `--initial-advertise-peer-urls`, then starts
//! with `--initial-cluster-state new`.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use sha2::{Digest, Sha256};

use crate::config::Config;

/// Bytes per streamed chunk (etcd's).
pub const CHUNK_BYTES: usize = 32 * 1024;
/// Length of the SHA-256 trailer.
const SHA_BYTES: usize = 32;
/// The body is padded to a multiple of this (etcdctl's check).
pub const PAGE_BYTES: usize = 512;

/// The bytes of a snapshot file for the state machine snapshot `state`; see the module docs.
pub fn framed(state: &[u8]) -> Vec<u8> {
    let len = 8 + state.len();
    let padded = len.div_ceil(PAGE_BYTES) * PAGE_BYTES;
    let mut out = Vec::with_capacity(padded + SHA_BYTES);
    out.extend_from_slice(&(state.len() as u64).to_be_bytes());
    out.extend_from_slice(state);
    out.resize(padded, 0);
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

/// The state machine snapshot inside a snapshot file's body (without the trailer).
fn unframe(body: &[u8]) -> anyhow::Result<&[u8]> {
    anyhow::ensure!(body.len() >= 8, "too short to be a snapshot");
    let len = u64::from_be_bytes(body[..8].try_into().expect("8 bytes"));
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    anyhow::ensure!(
        len <= body.len() - 8,
        "not a gauntlet-server snapshot (its length field says {len} bytes, the file holds {})",
        body.len() - 8
    );
    Ok(&body[8..8 + len])
}

/// `gauntlet-server snapshot restore`'s flags, as etcdutl's.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framed_snapshot_is_page_aligned_checksummed_and_unframes() {
        for n in [0usize, 1, 503, 504, 505, 5000] {
            let state: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let f = framed(&state);
            let (body, sum) = f.split_at(f.len() - SHA_BYTES);
            assert_eq!(body.len() % PAGE_BYTES, 0);
            assert_eq!(Sha256::digest(body).as_slice(), sum);
            assert_eq!(unframe(body).unwrap(), &state[..]);
        }
        assert!(unframe(&[0, 0, 0, 0, 0, 0, 1, 0]).is_err());
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "gauntlet-server snapshot restore",
    about = "Make a new member's data dir from a snapshot file (as etcdutl snapshot restore)"
)]
struct RestoreArgs {
    /// The snapshot file (from `etcdctl snapshot save` or Maintenance.Snapshot).
    file: PathBuf,
    /// Where to put the new data dir (default: `<name>.etcd`); must not exist yet.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where to put the WAL (default: under the data dir).
    #[arg(long)]
    wal_dir: Option<PathBuf>,
    /// This member's name.
    #[arg(long, default_value = "default")]
    name: String,
    /// The new cluster's members: name=peerURL,...
    #[arg(long, default_value = "default=http://localhost:2380")]
    initial_cluster: String,
    /// The new cluster's token.
    #[arg(long, default_value = "etcd-cluster")]
    initial_cluster_token: String,
    /// This member's peer URLs.
    #[arg(long, default_value = "http://localhost:2380")]
    initial_advertise_peer_urls: String,
    /// Do not check the SHA-256 trailer.
    #[arg(long)]
    skip_hash_check: bool,
}

/// Runs `snapshot restore` with `args` (after `snapshot restore`); one line on error.
pub fn restore_command(args: Vec<OsString>) -> std::process::ExitCode {
    let parsed = RestoreArgs::try_parse_from(
        std::iter::once(OsString::from("gauntlet-server snapshot restore")).chain(args),
    );
    let args = match parsed {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return std::process::ExitCode::from(2);
        }
    };
    match restore(&args) {
        Ok(dir) => {
            println!(
                "restored snapshot {} into {}",
                args.file.display(),
                dir.display()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gauntlet-server: snapshot restore: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

fn restore(args: &RestoreArgs) -> anyhow::Result<PathBuf> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", args.name)));
    if data_dir.exists() {
        anyhow::bail!("data-dir {} exists", data_dir.display());
    }
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    anyhow::ensure!(
        bytes.len() > SHA_BYTES,
        "{} is too short to be a snapshot",
        args.file.display()
    );
    let (body, sum) = bytes.split_at(bytes.len() - SHA_BYTES);
    if !args.skip_hash_check && Sha256::digest(body).as_slice() != sum {
        anyhow::bail!(
            "{}: snapshot hash mismatch (damaged, or not a snapshot; --skip-hash-check to restore anyway)",
            args.file.display()
        );
    }
    // The new member's identity, exactly as it will compute it when started with these flags.
    let mut flags = vec![
        OsString::from("gauntlet-server"),
        "--name".into(),
        args.name.clone().into(),
        "--data-dir".into(),
        data_dir.clone().into(),
        "--initial-cluster".into(),
        args.initial_cluster.clone().into(),
        "--initial-cluster-token".into(),
        args.initial_cluster_token.clone().into(),
        "--initial-advertise-peer-urls".into(),
        args.initial_advertise_peer_urls.clone().into(),
    ];
    if let Some(w) = &args.wal_dir {
        flags.push("--wal-dir".into());
        flags.push(w.clone().into());
    }
    let config = Config::from_args(flags).map_err(|stop| match stop {
        crate::config::Stop::Invalid(msg) => anyhow::anyhow!(msg),
        crate::config::Stop::Show(e) => anyhow::anyhow!(e.to_string()),
    })?;
    let made = (|| -> anyhow::Result<()> {
        let db = crate::backend::open(&crate::backend::member_dir(&config.data_dir))?;
        let mut state =
            crate::state::StateMachine::open(db).context("opening the new state machine")?;
        state.set_db_dir(crate::backend::current_dir(&crate::backend::member_dir(
            &config.data_dir,
        ))?);
        state
            .restore_for_new_cluster(unframe(body)?)
            .context("restoring the snapshot")?;
        state.flush()?;
        crate::bootstrap::write_new_identity(&config)
    })();
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&data_dir);
        return Err(e);
    }
    Ok(data_dir)
}
