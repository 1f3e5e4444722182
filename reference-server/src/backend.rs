//! Where the state machine's sled database lives, and how it is defragmented.
//!
//! The database is a directory under `member/`; the small file `member/db` names the
//! current one (`gauntlet.db` until the first defragmentation, then `gauntlet.db.N`).
//! Defragmenting copies the live records into a fresh directory `gauntlet.db.N+1`,
//! flushes it, and only then switches the pointer (write a temporary file, fsync,
//! rename), so a crash at any point leaves either the old database or the complete new
//! one. Directories the pointer does not name are leftovers: they are deleted at start,
//! and the one a defragmentation leaves behind is deleted a little later (readers that
//! cloned its handle, such as a catching-up watcher, may still be reading it).
//!
//! While the copy runs it holds the state machine's write lock: applying entries, and
//! reads that need the state, wait, as etcd's defragmentation blocks its backend.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use crate::state::StateMachine;

/// The pointer file naming the current database directory, under `member/`.
const POINTER: &str = "db";
/// The first database directory's name (and the stem of later ones).
const FIRST: &str = "gauntlet.db";
/// How long the directory a defragmentation left behind is kept before deletion.
const OLD_DIR_GRACE: Duration = Duration::from_secs(30);
/// How often sled writes the state machine to disk on its own. The state machine need
/// not be durable for an acknowledgement (the WAL is); this only bounds the replay after
/// a crash. The log is compacted only behind an explicit flush.
const SLED_FLUSH_MS: u64 = 1000;
/// sled's page cache. Reads of recent revisions hit it; older ones come from the OS's
/// page cache. sled's accounting undercounts its real use, so it is kept modest.
const SLED_CACHE_BYTES: u64 = 128 << 20;

fn current_name(member_dir: &Path) -> anyhow::Result<String> {
    let path = member_dir.join(POINTER);
    match std::fs::read_to_string(&path) {
        Ok(name) => {
            let name = name.trim().to_string();
            anyhow::ensure!(
                name.starts_with(FIRST) && !name.contains('/'),
                "{} names no database directory of ours: `{name}`",
                path.display()
            );
            Ok(name)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FIRST.to_string()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn open_dir(dir: &Path) -> anyhow::Result<sled::Db> {
    crate::durable::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    sled::Config::new()
        .path(dir)
        .cache_capacity(SLED_CACHE_BYTES)
        .mode(sled::Mode::HighThroughput)
        .flush_every_ms(Some(SLED_FLUSH_MS))
        .open()
        .with_context(|| {
            format!(
                "opening the database in {} (is another member using this --data-dir?)",
                dir.display()
            )
        })
}

/// Opens the current database under `member_dir`, deleting leftovers of interrupted or
/// finished defragmentations.
pub fn open(member_dir: &Path) -> anyhow::Result<sled::Db> {
    crate::durable::create_dir_all(member_dir)
        .with_context(|| format!("creating {}", member_dir.display()))?;
    let current = current_name(member_dir)?;
    for entry in std::fs::read_dir(member_dir)
        .with_context(|| format!("listing {}", member_dir.display()))?
    {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(FIRST) && name != current {
            tracing::info!(dir = %entry.path().display(), "removing a database directory left by a defragmentation");
            std::fs::remove_dir_all(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    open_dir(&member_dir.join(current))
}

/// The directory of the database [`open`] opens under `member_dir`.
pub fn current_dir(member_dir: &Path) -> anyhow::Result<PathBuf> {
    Ok(member_dir.join(current_name(member_dir)?))
}

/// Sizes around one defragmentation.
#[derive(Debug, Clone, Copy)]
pub struct Defragmented {
    /// Bytes on disk before.
    pub before_bytes: u64,
    /// Bytes on disk after.
    pub after_bytes: u64,
}

/// Copies the live state into a fresh database and switches to it; see the module docs.
pub fn defragment(member_dir: &Path, state: &mut StateMachine) -> anyhow::Result<Defragmented> {
    let current = current_name(member_dir)?;
    let n: u64 = current
        .strip_prefix(FIRST)
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let next = format!("{FIRST}.{}", n + 1);
    let next_dir = member_dir.join(&next);
    if next_dir.exists() {
        std::fs::remove_dir_all(&next_dir)
            .with_context(|| format!("removing {}", next_dir.display()))?;
    }
    let before_bytes = state.db_size_bytes();
    crate::failpoints::hit("defragBeforeCopy");
    let db = open_dir(&next_dir)?;
    let old = state.switch_db(db).context("copying the database")?;
    state.set_db_dir(next_dir.clone());
    state.flush().context("making the copy durable")?;
    crate::failpoints::hit("defragBeforeRename");
    crate::durable::write_atomic(&member_dir.join(POINTER), next.as_bytes()).unwrap_or_else(|e| {
        // The state now lives in the new database, but a restart would open the old
        // one: the log may already be compacted past it. Stop rather than risk it.
        eprintln!(
            "fatal: cannot switch {} to {next} after defragmenting: {e}",
            member_dir.join(POINTER).display()
        );
        std::process::exit(1);
    });
    let after_bytes = state.db_size_bytes();
    let old_dir = member_dir.join(current);
    std::thread::spawn(move || {
        drop(old);
        std::thread::sleep(OLD_DIR_GRACE);
        if let Err(e) = std::fs::remove_dir_all(&old_dir) {
            tracing::warn!(dir = %old_dir.display(), "cannot remove the database left by a defragmentation: {e}");
        }
    });
    Ok(Defragmented {
        before_bytes,
        after_bytes,
    })
}

/// The member directory under a data dir.
pub fn member_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("member")
}
