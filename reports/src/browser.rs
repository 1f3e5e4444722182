//! Loads a report page in headless Chromium (Debian's `chromium-headless-shell`):
//! did it load, did anything on it fail (a missing plot, a script error), and a
//! screenshot of it.
//!
//! The page records its own load errors (see [`crate::html`]); this reads them from
//! the DOM Chromium dumps once the page has loaded. The browser runs under a
//! deadline and is killed when it passes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long Chromium may take for one page.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// What loading the page showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCheck {
    /// The page's load event fired.
    pub loaded: bool,
    /// Load errors the page recorded (resources and scripts).
    pub errors: u32,
    /// The last of them (a URL or a message).
    pub last_error: Option<String>,
}

/// The Chromium binary: `$GAUNTLET_CHROMIUM`, else the first of
/// `chromium-headless-shell`, `chromium` on the PATH.
pub fn chromium() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("GAUNTLET_CHROMIUM") {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium-headless-shell", "chromium"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err("no headless Chromium: install Debian's chromium-headless-shell (`cargo xtask test` does) or set GAUNTLET_CHROMIUM".into())
}

fn run(args: &[String]) -> Result<String, String> {
    let bin = chromium()?;
    let profile = tempfile::tempdir().map_err(|e| format!("a profile dir for Chromium: {e}"))?;
    let mut child = Command::new(&bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--allow-file-access-from-files",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", bin.display()))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > DEADLINE => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "Chromium did not finish within {} s",
                    DEADLINE.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for Chromium: {e}")),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("reading Chromium's output: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "Chromium exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn url(page: &Path) -> Result<String, String> {
    let abs = std::fs::canonicalize(page).map_err(|e| format!("{}: {e}", page.display()))?;
    Ok(format!("file://{}", abs.display()))
}

fn attr(dom: &str, name: &str) -> Option<String> {
    let html = &dom[dom.find("<html")?..];
    let tag = &html[..html.find('>')?];
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_string())
}

/// Loads `page` and reads what it recorded.
pub fn check(page: &Path) -> Result<PageCheck, String> {
    let dom = run(&["--dump-dom".to_string(), url(page)?])?;
    Ok(PageCheck {
        loaded: attr(&dom, "data-loaded").as_deref() == Some("1"),
        errors: attr(&dom, "data-errors")
            .and_then(|e| e.parse().ok())
            .unwrap_or(0),
        last_error: attr(&dom, "data-last-error"),
    })
}

/// Saves a PNG screenshot of `page`, `width` × `height` pixels.
pub fn screenshot(page: &Path, png: &Path, width: u32, height: u32) -> Result<(), String> {
    let png_abs = std::path::absolute(png).map_err(|e| format!("{}: {e}", png.display()))?;
    run(&[
        format!("--screenshot={}", png_abs.display()),
        format!("--window-size={width},{height}"),
        url(page)?,
    ])?;
    match std::fs::metadata(&png_abs) {
        Ok(m) if m.len() > 0 => Ok(()),
        _ => Err(format!(
            "Chromium wrote no screenshot at {}",
            png_abs.display()
        )),
    }
}
