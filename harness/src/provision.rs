//! The target cache: real server binaries, fetched from pinned sources.
//!
//! A *source list* (TOML, see `harness/sources.toml`, built in) says for each target
//! where its binaries come from and what their sha256 must be. `fetch` downloads,
//! verifies, extracts and moves the binaries into the cache in one rename, so a
//! half-finished fetch never looks cached. The cache layout is
//!
//! ```text
//! $GAUNTLET_CACHE/                    (default: the user's cache dir + /gauntlet)
//!   sources.toml                      optional user sources, same format as the built-in list
//!   targets/etcd@3.5.1/etcd           the binaries
//!   targets/etcd@3.5.1/etcdctl
//!   targets/etcd@3.5.1/gauntlet-target.json   manifest: source and sha256 of each binary
//! ```
//!
//! Contract: a target directory with a manifest is complete; `fetch` of a target whose
//! binaries still match their manifest does nothing.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{HarnessError, Result};

/// Environment variable naming the cache directory.
pub const CACHE_ENV: &str = "GAUNTLET_CACHE";
/// The built-in source list.
pub const BUILTIN_SOURCES: &str = include_str!("../sources.toml");
/// Manifest file name inside each cached target directory.
const MANIFEST: &str = "gauntlet-target.json";
/// Deadline for one download or one package-tool invocation.
const FETCH_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest archive a `url` source may download.
const MAX_DOWNLOAD_BYTES: u64 = 1 << 30;

/// How a source gets its artifact.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SourceKind {
    /// A Python wheel (a zip) from the package index, via `pip download`.
    PypiWheel {
        /// Package name.
        package: String,
        /// Exact version.
        version: String,
        /// sha256 of the wheel file.
        sha256: String,
    },
    /// Debian packages, via `apt-get download` and `dpkg-deb -x`.
    Debian {
        /// The packages, each pinned to a version and a sha256.
        packages: Vec<DebPackage>,
    },
    /// An archive (`.tar.gz`, `.tgz` or `.zip`) over HTTP(S).
    Url {
        /// The archive's address.
        url: String,
        /// sha256 of the archive.
        sha256: String,
    },
    /// A directory on this machine.
    Local {
        /// The directory; binary paths are relative to it.
        path: PathBuf,
        /// Optional sha256 of each binary, by binary name.
        #[serde(default)]
        sha256: BTreeMap<String, String>,
    },
}

/// One pinned Debian package.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct DebPackage {
    /// Package name.
    pub name: String,
    /// Exact Debian version.
    pub version: String,
    /// sha256 of the .deb file.
    pub sha256: String,
}

/// Where one target's binaries come from.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Source {
    /// The target this source provides, e.g. `etcd@3.5.1`.
    pub target: String,
    /// How to get it.
    #[serde(flatten)]
    pub kind: SourceKind,
    /// Binary name → path inside the extracted artifact.
    pub binaries: BTreeMap<String, String>,
}

impl Source {
    /// One line naming the kind and location, for messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            SourceKind::PypiWheel {
                package, version, ..
            } => format!("pypi-wheel {package}=={version}"),
            SourceKind::Debian { packages } => {
                let p: Vec<_> = packages
                    .iter()
                    .map(|p| format!("{}={}", p.name, p.version))
                    .collect();
                format!("debian {}", p.join(" "))
            }
            SourceKind::Url { url, .. } => format!("url {url}"),
            SourceKind::Local { path, .. } => format!("local {}", path.display()),
        }
    }
}

#[derive(Debug, Deserialize)]
struct SourceFile {
    #[serde(default)]
    source: Vec<Source>,
}

/// The sources known to this run: built-in ones, replaced per target by the user's.
#[derive(Debug, Clone)]
pub struct SourceList {
    sources: Vec<Source>,
}

impl SourceList {
    /// Parses a source list; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<SourceList> {
        let file: SourceFile = toml::from_str(text).map_err(|e| HarnessError::SourceList {
            path: origin.to_path_buf(),
            reason: e.to_string(),
        })?;
        for s in &file.source {
            if s.binaries.is_empty() {
                return Err(HarnessError::SourceList {
                    path: origin.to_path_buf(),
                    reason: format!("source for {} lists no binaries", s.target),
                });
            }
            s.target
                .parse::<crate::Target>()
                .map_err(|e| HarnessError::SourceList {
                    path: origin.to_path_buf(),
                    reason: e.to_string(),
                })?;
            for name in s.binaries.keys() {
                if name.contains('/') || name.is_empty() || name == MANIFEST {
                    return Err(HarnessError::SourceList {
                        path: origin.to_path_buf(),
                        reason: format!("bad binary name `{name}` for {}", s.target),
                    });
                }
            }
        }
        Ok(SourceList {
            sources: file.source,
        })
    }

    /// The built-in list.
    pub fn builtin() -> SourceList {
        Self::parse(BUILTIN_SOURCES, Path::new("<built-in sources.toml>"))
            .unwrap_or_else(|e| panic!("the built-in source list is invalid: {e}"))
    }

    /// The built-in list overlaid with `$GAUNTLET_CACHE/sources.toml` when it exists.
    pub fn for_cache(cache: &Cache) -> Result<SourceList> {
        let mut list = Self::builtin();
        let user = cache.root().join("sources.toml");
        if user.exists() {
            let text = fs::read_to_string(&user)
                .map_err(|e| HarnessError::io(format!("reading {}", user.display()), e))?;
            list.overlay(Self::parse(&text, &user)?);
        }
        Ok(list)
    }

    /// Adds `other`'s sources; a source for a target already listed replaces it.
    pub fn overlay(&mut self, other: SourceList) {
        for s in other.sources {
            self.sources.retain(|x| x.target != s.target);
            self.sources.push(s);
        }
    }

    /// The source for `target`.
    pub fn get(&self, target: &str) -> Result<&Source> {
        self.sources
            .iter()
            .find(|s| s.target == target)
            .ok_or_else(|| HarnessError::NoSource {
                target: target.to_string(),
                known: self
                    .sources
                    .iter()
                    .map(|s| s.target.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// All sources.
    pub fn all(&self) -> &[Source] {
        &self.sources
    }
}

/// What a cached target's manifest records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// The target.
    pub target: String,
    /// The source it came from ([`Source::describe`]).
    pub source: String,
    /// Binary name → sha256 of the cached file.
    pub binaries: BTreeMap<String, String>,
}

/// A cached target, as `gauntlet targets list` shows it.
#[derive(Debug, Clone)]
pub struct CachedTarget {
    /// Its directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

/// What [`Cache::fetch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The target was already cached and verified; nothing was downloaded.
    AlreadyCached(PathBuf),
    /// The target was fetched into this directory.
    Fetched(PathBuf),
}

/// The target cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// The cache at `$GAUNTLET_CACHE`, else `<user cache dir>/gauntlet`, else `~/.cache/gauntlet`.
    pub fn from_env() -> Cache {
        if let Some(p) = std::env::var_os(CACHE_ENV).filter(|p| !p.is_empty()) {
            return Cache::at(PathBuf::from(p));
        }
        let base = dirs::cache_dir()
            .or_else(|| dirs::home_dir().map(|h| h.join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        Cache::at(base.join("gauntlet"))
    }

    /// The cache at `root`.
    pub fn at(root: PathBuf) -> Cache {
        Cache { root }
    }

    /// The cache directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn target_dir(&self, target: &str) -> PathBuf {
        self.root.join("targets").join(target)
    }

    /// Path of binary `name` of a cached `target`; errors when it is not cached.
    pub fn binary(&self, target: &str, name: &str) -> Result<PathBuf> {
        let dir = self.target_dir(target);
        if !dir.join(MANIFEST).is_file() {
            return Err(HarnessError::NotCached {
                target: target.to_string(),
                cache: self.root.clone(),
            });
        }
        let path = dir.join(name);
        crate::target::check_executable(
            &path,
            &format!("re-fetch with `gauntlet targets fetch {target}`"),
        )?;
        Ok(path)
    }

    /// Every cached target, sorted by name.
    pub fn list(&self) -> Result<Vec<CachedTarget>> {
        let dir = self.root.join("targets");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(HarnessError::io(format!("listing {}", dir.display()), e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if let Some(manifest) = read_manifest(&path) {
                out.push(CachedTarget {
                    dir: path,
                    manifest,
                });
            }
        }
        out.sort_by(|a, b| a.manifest.target.cmp(&b.manifest.target));
        Ok(out)
    }

    /// Fetches `target` from its source unless it is already cached with matching hashes.
    pub fn fetch(&self, sources: &SourceList, target: &str) -> Result<FetchOutcome> {
        let source = sources.get(target)?;
        let dest = self.target_dir(target);
        if let Some(m) = read_manifest(&dest) {
            if verify(&dest, &m).is_ok() {
                return Ok(FetchOutcome::AlreadyCached(dest));
            }
        }
        let fail = |reason: String| HarnessError::Fetch {
            target: target.to_string(),
            source_desc: source.describe(),
            reason,
        };
        let parent = self.root.join("targets");
        fs::create_dir_all(&parent)
            .map_err(|e| fail(format!("creating {}: {e}", parent.display())))?;
        let work = tempfile::Builder::new()
            .prefix(".fetch-")
            .tempdir_in(&parent)
            .map_err(|e| fail(format!("creating a work dir in {}: {e}", parent.display())))?;
        let extracted = work.path().join("x");
        fs::create_dir_all(&extracted).map_err(|e| fail(e.to_string()))?;
        obtain(source, work.path(), &extracted).map_err(fail)?;

        let staged = work.path().join("out");
        fs::create_dir_all(&staged).map_err(|e| fail(e.to_string()))?;
        let mut manifest = Manifest {
            target: target.to_string(),
            source: source.describe(),
            binaries: BTreeMap::new(),
        };
        for (name, rel) in &source.binaries {
            let from = extracted.join(rel.trim_start_matches('/'));
            let to = staged.join(name);
            fs::copy(&from, &to)
                .map_err(|e| fail(format!("binary {name} not at {rel} in the artifact: {e}")))?;
            set_executable(&to).map_err(|e| fail(e.to_string()))?;
            let digest = sha256_file(&to).map_err(|e| fail(e.to_string()))?;
            if let SourceKind::Local { sha256, .. } = &source.kind {
                if let Some(want) = sha256.get(name) {
                    if !want.eq_ignore_ascii_case(&digest) {
                        return Err(fail(format!(
                            "sha256 of {name} is {digest}, the source pins {want}"
                        )));
                    }
                }
            }
            manifest.binaries.insert(name.clone(), digest);
        }
        let json = serde_json::to_string_pretty(&manifest).map_err(|e| fail(e.to_string()))?;
        fs::write(staged.join(MANIFEST), json).map_err(|e| fail(e.to_string()))?;
        if dest.exists() {
            fs::remove_dir_all(&dest)
                .map_err(|e| fail(format!("removing stale {}: {e}", dest.display())))?;
        }
        match fs::rename(&staged, &dest) {
            Ok(()) => Ok(FetchOutcome::Fetched(dest)),
            // A concurrent fetch won the race; accept its result if it verifies.
            Err(_) if read_manifest(&dest).is_some_and(|m| verify(&dest, &m).is_ok()) => {
                Ok(FetchOutcome::AlreadyCached(dest))
            }
            Err(e) => Err(fail(format!("moving into {}: {e}", dest.display()))),
        }
    }
}

fn read_manifest(dir: &Path) -> Option<Manifest> {
    let text = fs::read_to_string(dir.join(MANIFEST)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Checks every binary of a manifest against its recorded sha256.
pub fn verify(dir: &Path, m: &Manifest) -> std::result::Result<(), String> {
    for (name, want) in &m.binaries {
        let got = sha256_file(&dir.join(name)).map_err(|e| format!("{name}: {e}"))?;
        if &got != want {
            return Err(format!(
                "{name}: sha256 {got} does not match the manifest's {want}"
            ));
        }
    }
    Ok(())
}

/// Downloads and unpacks a source's artifact into `extracted`; the error is the reason.
fn obtain(source: &Source, work: &Path, extracted: &Path) -> std::result::Result<(), String> {
    match &source.kind {
        SourceKind::PypiWheel {
            package,
            version,
            sha256,
        } => {
            let dl = work.join("dl");
            let spec = format!("{package}=={version}");
            let dl_str = dl.to_string_lossy().to_string();
            run_tool(
                "python3",
                &[
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--disable-pip-version-check",
                    "-d",
                    &dl_str,
                    &spec,
                ],
                work,
            )?;
            let wheel = single_file(&dl, ".whl")?;
            check_sha256(&wheel, sha256)?;
            unzip(&wheel, extracted)
        }
        SourceKind::Debian { packages } => {
            let dl = work.join("dl");
            fs::create_dir_all(&dl).map_err(|e| e.to_string())?;
            for p in packages {
                let spec = format!("{}={}", p.name, p.version);
                if run_tool("apt-get", &["download", &spec], &dl).is_err() {
                    // A fresh machine has no package lists yet; refresh them once, as root only.
                    if nix::unistd::geteuid().is_root() {
                        run_tool("apt-get", &["update", "-qq"], &dl)?;
                    }
                    run_tool("apt-get", &["download", &spec], &dl).map_err(|e| {
                        format!("{e} (is the Debian archive reachable, and `apt-get update` done?)")
                    })?;
                }
                let prefix = format!("{}_", p.name);
                let deb = fs::read_dir(&dl)
                    .map_err(|e| e.to_string())?
                    .flatten()
                    .map(|e| e.path())
                    .find(|f| {
                        f.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
                    })
                    .ok_or_else(|| format!("apt-get download left no {prefix}*.deb"))?;
                check_sha256(&deb, &p.sha256).map_err(|e| format!("{}: {e}", p.name))?;
                let deb_s = deb.to_string_lossy().to_string();
                let out_s = extracted.to_string_lossy().to_string();
                run_tool("dpkg-deb", &["-x", &deb_s, &out_s], work)?;
            }
            Ok(())
        }
        SourceKind::Url { url, sha256 } => {
            let file = work.join("download");
            download(url, &file)?;
            check_sha256(&file, sha256)?;
            if url.ends_with(".zip") {
                unzip(&file, extracted)
            } else if url.ends_with(".tar.gz") || url.ends_with(".tgz") {
                untar_gz(&file, extracted)
            } else {
                Err("unsupported archive: the url must end in .tar.gz, .tgz or .zip".to_string())
            }
        }
        SourceKind::Local { path, .. } => {
            for rel in source.binaries.values() {
                let from = path.join(rel);
                let to = extracted.join(rel);
                if let Some(parent) = to.parent() {
                    fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                }
                fs::copy(&from, &to).map_err(|e| format!("{}: {e}", from.display()))?;
            }
            Ok(())
        }
    }
}

/// Runs a package tool with a deadline; the error carries its last stderr line.
fn run_tool(program: &str, args: &[&str], cwd: &Path) -> std::result::Result<(), String> {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let mut stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.take(1 << 20).read_to_string(&mut s);
        }
        s
    });
    let deadline = std::time::Instant::now() + FETCH_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if std::time::Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{program} {} timed out after {} s",
                    args.join(" "),
                    FETCH_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for {program}: {e}")),
        }
    };
    let err = reader.join().unwrap_or_default();
    if status.success() {
        Ok(())
    } else {
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output")
            .trim()
            .to_string();
        Err(format!(
            "{program} {} failed ({status}): {last}",
            args.join(" ")
        ))
    }
}

fn single_file(dir: &Path, suffix: &str) -> std::result::Result<PathBuf, String> {
    let files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    match files.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(format!(
            "expected one {suffix} file in {}, found {}",
            dir.display(),
            files.len()
        )),
    }
}

fn download(url: &str, to: &Path) -> std::result::Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(FETCH_TIMEOUT))
        .build()
        .into();
    let resp = agent
        .get(url)
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?;
    let mut body = resp.into_body();
    let mut reader = body.with_config().limit(MAX_DOWNLOAD_BYTES).reader();
    let mut file = fs::File::create(to).map_err(|e| e.to_string())?;
    std::io::copy(&mut reader, &mut file).map_err(|e| format!("GET {url}: {e}"))?;
    Ok(())
}

fn check_sha256(file: &Path, want: &str) -> std::result::Result<(), String> {
    let got = sha256_file(file).map_err(|e| e.to_string())?;
    if got.eq_ignore_ascii_case(want) {
        Ok(())
    } else {
        Err(format!(
            "sha256 of {} is {got}, the source pins {want}",
            file.file_name().unwrap_or_default().to_string_lossy()
        ))
    }
}

/// Hex sha256 of a file's contents.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

fn set_executable(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut perm = fs::metadata(p)?.permissions();
    perm.set_mode(perm.mode() | 0o755);
    fs::set_permissions(p, perm)
}

/// Rejects archive entries that would escape the extraction directory.
fn safe_join(root: &Path, name: &str) -> std::result::Result<PathBuf, String> {
    let rel = Path::new(name);
    if rel.components().any(|c| {
        !matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    }) {
        return Err(format!("archive entry `{name}` escapes the archive"));
    }
    Ok(root.join(rel))
}

fn unzip(file: &Path, into: &Path) -> std::result::Result<(), String> {
    let f = fs::File::open(file).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(f).map_err(|e| format!("not a zip archive: {e}"))?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| e.to_string())?;
        if entry.is_dir() {
            continue;
        }
        let out = safe_join(into, entry.name())?;
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        let mut w = fs::File::create(&out).map_err(|e| e.to_string())?;
        std::io::copy(&mut entry, &mut w).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn untar_gz(file: &Path, into: &Path) -> std::result::Result<(), String> {
    let f = fs::File::open(file).map_err(|e| e.to_string())?;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    for entry in ar
        .entries()
        .map_err(|e| format!("not a tar.gz archive: {e}"))?
    {
        let mut entry = entry.map_err(|e| format!("corrupt tar.gz archive: {e}"))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .to_string();
        let out = safe_join(into, &name)?;
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        entry.unpack(&out).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_list_has_both_etcd_versions() {
        let list = SourceList::builtin();
        assert!(list.get("etcd@3.5.1").is_ok());
        assert!(list.get("etcd@3.4.23").is_ok());
        let err = list.get("etcd@9.9.9").unwrap_err().to_string();
        assert!(
            err.contains("etcd@3.5.1") && err.contains("etcd@9.9.9"),
            "{err}"
        );
    }

    #[test]
    fn user_source_replaces_builtin_for_its_target() {
        let mut list = SourceList::builtin();
        let user = SourceList::parse(
            "[[source]]\ntarget = \"etcd@3.5.1\"\nkind = \"local\"\npath = \"/opt/etcd\"\n[source.binaries]\netcd = \"etcd\"\n",
            Path::new("user.toml"),
        )
        .unwrap();
        list.overlay(user);
        assert!(matches!(
            list.get("etcd@3.5.1").unwrap().kind,
            SourceKind::Local { .. }
        ));
        assert!(matches!(
            list.get("etcd@3.4.23").unwrap().kind,
            SourceKind::Debian { .. }
        ));
    }

    #[test]
    fn bad_source_lists_name_the_file_and_the_problem() {
        for (text, needle) in [
            ("[[source]]\ntarget = \"etcd@3.5.1\"\nkind = \"ftp\"\n[source.binaries]\netcd = \"x\"\n", "ftp"),
            ("[[source]]\ntarget = \"etcd@3.5.1\"\nkind = \"local\"\npath = \"/x\"\nbinaries = {}\n", "no binaries"),
            ("[[source]]\ntarget = \"nonsense\"\nkind = \"local\"\npath = \"/x\"\n[source.binaries]\netcd = \"x\"\n", "unknown target"),
            ("[[source]]\ntarget = \"etcd@3.5.1\"\nkind = \"local\"\npath = \"/x\"\n[source.binaries]\n\"../etcd\" = \"x\"\n", "bad binary name"),
        ] {
            let err = SourceList::parse(text, Path::new("mine.toml")).unwrap_err().to_string();
            assert!(err.contains("mine.toml") && err.contains(needle), "{err}");
        }
    }

    fn fake_binary(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        set_executable(&p).unwrap();
        p
    }

    #[test]
    fn local_fetch_is_verified_and_second_fetch_is_a_no_op() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(&src).unwrap();
        let bin = fake_binary(&src, "etcd", "echo etcd");
        let digest = sha256_file(&bin).unwrap();
        let cache = Cache::at(tmp.path().join("cache"));
        let text = format!(
            "[[source]]\ntarget = \"etcd@9.0.0\"\nkind = \"local\"\npath = \"{}\"\nsha256 = {{ etcd = \"{digest}\" }}\n[source.binaries]\netcd = \"etcd\"\n",
            src.display()
        );
        let list = SourceList::parse(&text, Path::new("t.toml")).unwrap();
        assert!(matches!(
            cache.fetch(&list, "etcd@9.0.0").unwrap(),
            FetchOutcome::Fetched(_)
        ));
        assert!(matches!(
            cache.fetch(&list, "etcd@9.0.0").unwrap(),
            FetchOutcome::AlreadyCached(_)
        ));
        let listed = cache.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].manifest.binaries["etcd"], digest);
        assert!(cache.binary("etcd@9.0.0", "etcd").is_ok());
        // A corrupted cached binary is noticed and fetched again.
        fs::write(cache.binary("etcd@9.0.0", "etcd").unwrap(), "garbage").unwrap();
        assert!(matches!(
            cache.fetch(&list, "etcd@9.0.0").unwrap(),
            FetchOutcome::Fetched(_)
        ));
    }

    #[test]
    fn pinned_hash_mismatch_fails_and_caches_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(&src).unwrap();
        fake_binary(&src, "etcd", "echo etcd");
        let cache = Cache::at(tmp.path().join("cache"));
        let text = format!(
            "[[source]]\ntarget = \"etcd@9.0.1\"\nkind = \"local\"\npath = \"{}\"\nsha256 = {{ etcd = \"00\" }}\n[source.binaries]\netcd = \"etcd\"\n",
            src.display()
        );
        let list = SourceList::parse(&text, Path::new("t.toml")).unwrap();
        let err = cache.fetch(&list, "etcd@9.0.1").unwrap_err().to_string();
        assert!(err.contains("local") && err.contains("sha256"), "{err}");
        assert!(cache.list().unwrap().is_empty());
        assert!(matches!(
            cache.binary("etcd@9.0.1", "etcd"),
            Err(HarnessError::NotCached { .. })
        ));
    }

    #[test]
    fn url_source_downloads_a_tarball_from_a_local_server() {
        use std::io::Write;
        let tmp = tempfile::tempdir().unwrap();
        // Build a .tar.gz with one binary in a release-style folder.
        let tgz = tmp.path().join("etcd.tar.gz");
        {
            let gz = flate2::write::GzEncoder::new(
                fs::File::create(&tgz).unwrap(),
                flate2::Compression::fast(),
            );
            let mut b = tar::Builder::new(gz);
            let body = b"#!/bin/sh\necho hi\n";
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o755);
            h.set_cksum();
            b.append_data(&mut h, "etcd-v9-linux/etcd", &body[..])
                .unwrap();
            b.into_inner().unwrap().finish().unwrap();
        }
        let bytes = fs::read(&tgz).unwrap();
        let digest = sha256_file(&tgz).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).unwrap();
            write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                bytes.len()
            )
            .unwrap();
            s.write_all(&bytes).unwrap();
        });
        let text = format!(
            "[[source]]\ntarget = \"etcd@9.1.0\"\nkind = \"url\"\nurl = \"http://{addr}/etcd.tar.gz\"\nsha256 = \"{digest}\"\n[source.binaries]\netcd = \"etcd-v9-linux/etcd\"\n"
        );
        let list = SourceList::parse(&text, Path::new("t.toml")).unwrap();
        let cache = Cache::at(tmp.path().join("cache"));
        assert!(matches!(
            cache.fetch(&list, "etcd@9.1.0").unwrap(),
            FetchOutcome::Fetched(_)
        ));
        server.join().unwrap();
        assert!(cache.binary("etcd@9.1.0", "etcd").is_ok());
    }

    #[test]
    fn unreachable_url_names_the_source() {
        let tmp = tempfile::tempdir().unwrap();
        // Bind then drop: nothing listens on this port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let text = format!(
            "[[source]]\ntarget = \"etcd@9.2.0\"\nkind = \"url\"\nurl = \"http://127.0.0.1:{port}/x.tar.gz\"\nsha256 = \"00\"\n[source.binaries]\netcd = \"etcd\"\n"
        );
        let list = SourceList::parse(&text, Path::new("t.toml")).unwrap();
        let err = Cache::at(tmp.path().join("c"))
            .fetch(&list, "etcd@9.2.0")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("etcd@9.2.0") && err.contains(&format!("url http://127.0.0.1:{port}")),
            "{err}"
        );
    }

    #[test]
    fn archive_entries_cannot_escape() {
        assert!(safe_join(Path::new("/x"), "../etc/passwd").is_err());
        assert!(safe_join(Path::new("/x"), "/etc/passwd").is_err());
        assert!(safe_join(Path::new("/x"), "a/b").is_ok());
    }
}
