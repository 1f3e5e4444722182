//! What a run is pointed at: a [`Target`] to launch, or external endpoints.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{HarnessError, Result};
use crate::provision::Cache;

/// Name of the reference server's binary (built from `reference-server/`).
pub const REFERENCE_SERVER_BIN: &str = "gauntlet-server";

/// Environment variable that overrides where the reference server binary is.
pub const REFERENCE_SERVER_ENV: &str = "GAUNTLET_SERVER_BIN";

/// A launchable server: every form takes etcd's command-line flags.
///
/// Parsed from the strings users type: `reference`, `reference@REV` (a git revision of
/// this repository), `etcd@3.5.1`, `exec:/path/to/server`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// Our own `gauntlet-server`.
    Reference,
    /// Our own `gauntlet-server` as built from a git revision of this repository
    /// ([`crate::revbuild`]: a worktree and cargo, into the target cache).
    ReferenceRev {
        /// The revision as given (a commit, tag or branch).
        rev: String,
    },
    /// Real etcd of this version, from the target cache.
    Etcd {
        /// Version without a leading `v`, e.g. `3.5.1`.
        version: String,
    },
    /// Any binary that takes etcd's flags.
    Exec {
        /// Path to the binary.
        path: PathBuf,
    },
}

impl FromStr for Target {
    type Err = HarnessError;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s == "reference" {
            return Ok(Target::Reference);
        }
        if let Some(rev) = s.strip_prefix("reference@") {
            let valid = !rev.is_empty()
                && !rev.starts_with('-')
                && !rev.contains("..")
                && rev
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._/-^~".contains(c));
            if valid {
                return Ok(Target::ReferenceRev {
                    rev: rev.to_string(),
                });
            }
        }
        if let Some(version) = s.strip_prefix("etcd@") {
            let version = version.trim_start_matches('v');
            let valid = !version.is_empty()
                && version.split('.').count() >= 2
                && version
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            if valid {
                return Ok(Target::Etcd {
                    version: version.to_string(),
                });
            }
        }
        if let Some(path) = s.strip_prefix("exec:") {
            if !path.is_empty() {
                return Ok(Target::Exec {
                    path: PathBuf::from(path),
                });
            }
        }
        Err(HarnessError::UnknownTarget(s.to_string()))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Reference => f.write_str("reference"),
            Target::ReferenceRev { rev } => write!(f, "reference@{rev}"),
            Target::Etcd { version } => write!(f, "etcd@{version}"),
            Target::Exec { path } => write!(f, "exec:{}", path.display()),
        }
    }
}

impl Target {
    /// Resolves the server binary to run, checking that it exists and is executable.
    pub fn server_binary(&self, cache: &Cache) -> Result<PathBuf> {
        match self {
            Target::Reference => find_reference_server(),
            Target::ReferenceRev { rev } => crate::revbuild::cached(cache, rev),
            Target::Etcd { .. } => cache.binary(&self.to_string(), "etcd"),
            Target::Exec { path } => {
                check_executable(path, "give the path of a binary that takes etcd's flags")?;
                Ok(path.clone())
            }
        }
    }

    /// Resolves an etcdctl to use with this target (from the cache for `etcd@`, else the
    /// newest cached etcd's), or `None` when none is cached.
    pub fn etcdctl(&self, cache: &Cache) -> Option<PathBuf> {
        if let Target::Etcd { .. } = self {
            if let Ok(p) = cache.binary(&self.to_string(), "etcdctl") {
                return Some(p);
            }
        }
        None
    }
}

/// Finds `gauntlet-server`: `$GAUNTLET_SERVER_BIN`, else beside the running executable
/// (or its parent, for test binaries under `target/*/deps`).
fn find_reference_server() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(REFERENCE_SERVER_ENV) {
        let p = PathBuf::from(p);
        check_executable(&p, &format!("set by {REFERENCE_SERVER_ENV}"))?;
        return Ok(p);
    }
    let hint = "build it with `cargo build --release -p gauntlet-reference-server` or set GAUNTLET_SERVER_BIN";
    let exe = std::env::current_exe()
        .map_err(|e| HarnessError::io("locating the running executable", e))?;
    let mut dir = exe.parent().map(Path::to_path_buf);
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let candidate = d.join(REFERENCE_SERVER_BIN);
        if candidate.is_file() {
            check_executable(&candidate, hint)?;
            return Ok(candidate);
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    let looked = exe
        .parent()
        .map(|p| p.join(REFERENCE_SERVER_BIN))
        .unwrap_or_default();
    Err(HarnessError::MissingBinary {
        path: looked,
        hint: hint.to_string(),
    })
}

/// Errors unless `path` is a regular file with an executable bit.
pub(crate) fn check_executable(path: &Path, hint: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        _ => Err(HarnessError::MissingBinary {
            path: path.to_path_buf(),
            hint: hint.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!("reference".parse::<Target>().unwrap(), Target::Reference);
        assert_eq!(
            "reference@6aeba3e".parse::<Target>().unwrap(),
            Target::ReferenceRev {
                rev: "6aeba3e".into()
            }
        );
        assert_eq!(
            "etcd@3.5.1".parse::<Target>().unwrap(),
            Target::Etcd {
                version: "3.5.1".into()
            }
        );
        assert_eq!(
            "etcd@v3.4.23".parse::<Target>().unwrap(),
            Target::Etcd {
                version: "3.4.23".into()
            }
        );
        assert_eq!(
            "exec:/bin/x".parse::<Target>().unwrap(),
            Target::Exec {
                path: "/bin/x".into()
            }
        );
    }

    #[test]
    fn rejects_nonsense_with_the_forms_it_takes() {
        for bad in [
            "",
            "etcd",
            "etcd@",
            "etcd@3",
            "etcd@3.5;rm",
            "reference@",
            "reference@--upload-pack=x",
            "reference@a..b",
            "reference@a b",
            "exec:",
            "xline",
            "Reference",
        ] {
            let err = bad.parse::<Target>().unwrap_err().to_string();
            assert!(
                err.contains("unknown target") && err.contains("etcd@VERSION"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "reference",
            "reference@main",
            "etcd@3.5.1",
            "exec:/usr/bin/etcd",
        ] {
            assert_eq!(s.parse::<Target>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn missing_exec_binary_is_a_clear_error() {
        let t: Target = "exec:/nonexistent/server".parse().unwrap();
        let cache = Cache::at(std::env::temp_dir().join("gauntlet-no-cache"));
        let err = t.server_binary(&cache).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/server"), "{err}");
    }
}
