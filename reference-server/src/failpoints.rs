//! Failpoints, controlled over HTTP the way etcd's gofail builds are.
//!
//! With `GOFAIL_HTTP=host:port` in the environment the server serves gofail's control
//! protocol there: `GET /` lists every point as `name=term` lines, `PUT /name` with a
//! term arms it, `GET /name` reads its term, `DELETE /name` disarms it. Terms:
//! `panic` (the process aborts on the spot, as a crash: no destructor, no flush),
//! `sleep(N)` (N ms, or a quoted duration such as `sleep("1s")`), `off`, each
//! optionally prefixed with a count (`2*panic`: the next two hits only). `return`
//! is refused: none of these points has a value to return.
//!
//! Points carry etcd's names where the server has the same place (see [`POINTS`]).
//! Without `GOFAIL_HTTP` every point is one relaxed atomic load.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Every point, with etcd's name:
/// - `raftBeforeSave` / `raftAfterSave`: around persisting a Ready's entries and hard state;
/// - `beforeCommit` / `afterCommit`: around committing an applied group to the backend;
/// - `raftBeforeSaveSnap` / `raftAfterSaveSnap`: around recording an incoming snapshot;
/// - `raftBeforeApplySnap` / `raftAfterApplySnap`: around restoring the state machine from it;
/// - `raftBeforeLeaderSend` / `raftBeforeFollowerSend`: before handing raft messages to the
///   transport, on the leader or on a follower;
/// - `beforeSendWatchResponse`: before a watch response with events goes on its stream;
/// - `defragBeforeCopy` / `defragBeforeRename`: before a defragmentation copies the
///   database, and after the copy but before the switch to it;
/// - `compactBeforeCommitBatch` / `compactAfterCommitBatch`: around committing a
///   compaction's deletions.
pub const POINTS: [&str; 15] = [
    "raftBeforeSave",
    "raftAfterSave",
    "beforeCommit",
    "afterCommit",
    "raftBeforeSaveSnap",
    "raftAfterSaveSnap",
    "raftBeforeApplySnap",
    "raftAfterApplySnap",
    "raftBeforeLeaderSend",
    "raftBeforeFollowerSend",
    "beforeSendWatchResponse",
    "defragBeforeCopy",
    "defragBeforeRename",
    "compactBeforeCommitBatch",
    "compactAfterCommitBatch",
];

static ENABLED: AtomicBool = AtomicBool::new(false);
static ARMED: OnceLock<Mutex<BTreeMap<&'static str, Term>>> = OnceLock::new();

/// What an armed point does.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Panic,
    Sleep(Duration),
}

/// An armed point: its action, how many more hits (None: every hit), and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    action: Action,
    left: Option<u32>,
    text: String,
}

/// Parses a gofail term; `Ok(None)` disarms.
fn parse(text: &str) -> Result<Option<Term>, String> {
    let t = text.trim();
    let (left, body) = match t.split_once('*') {
        Some((n, rest)) => (
            Some(
                n.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("`{n}` in `{t}` is not a count"))?,
            ),
            rest.trim(),
        ),
        None => (None, t),
    };
    let action = if body == "off" || body.is_empty() {
        return Ok(None);
    } else if body == "panic" || body.starts_with("panic(") {
        Action::Panic
    } else if let Some(arg) = body
        .strip_prefix("sleep(")
        .and_then(|a| a.strip_suffix(')'))
    {
        let arg = arg.trim();
        let d = match arg.strip_prefix('"').and_then(|a| a.strip_suffix('"')) {
            Some(q) => parse_duration(q)?,
            None => Duration::from_millis(
                arg.parse::<u64>()
                    .map_err(|_| format!("`{arg}` in `{t}` is not a number of ms"))?,
            ),
        };
        Action::Sleep(d)
    } else if body == "return" || body.starts_with("return(") {
        return Err(format!(
            "`{t}`: these failpoints return nothing; use panic, sleep(N) or off"
        ));
    } else {
        return Err(format!(
            "unknown term `{t}`: use panic, sleep(N), sleep(\"1s\"), off, optionally as N*term"
        ));
    };
    Ok(Some(Term {
        action,
        left,
        text: t.to_string(),
    }))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("`{s}` is not a duration such as 500ms or 1s");
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "ms"), |i| s.split_at(i));
    let n: u64 = num.parse().map_err(|_| bad())?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "us" => Ok(Duration::from_micros(n)),
        _ => Err(bad()),
    }
}

fn armed() -> std::sync::MutexGuard<'static, BTreeMap<&'static str, Term>> {
    ARMED
        .get_or_init(|| Mutex::new(BTreeMap::new()))
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The action for one hit of `name`, counting it.
fn take(name: &str) -> Option<Action> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    let mut map = armed();
    let key = *POINTS.iter().find(|p| **p == name)?;
    let term = map.get_mut(key)?;
    let action = term.action.clone();
    if let Some(left) = term.left.as_mut() {
        *left -= 1;
        if *left == 0 {
            map.remove(key);
        }
    }
    Some(action)
}

fn crash(name: &str) -> ! {
    eprintln!("gauntlet-server: failpoint {name}: panic");
    std::process::abort()
}

/// A point on a thread that may block (the raft loop).
pub fn hit(name: &str) {
    match take(name) {
        None => {}
        Some(Action::Panic) => crash(name),
        Some(Action::Sleep(d)) => std::thread::sleep(d),
    }
}

/// A point in async code.
pub async fn hit_async(name: &str) {
    match take(name) {
        None => {}
        Some(Action::Panic) => crash(name),
        Some(Action::Sleep(d)) => tokio::time::sleep(d).await,
    }
}

/// Starts the control endpoint when `GOFAIL_HTTP` is set (`host:port`); a bad value
/// is a one-line error.
pub async fn serve_from_env() -> Result<(), String> {
    let Ok(addr) = std::env::var("GOFAIL_HTTP") else {
        return Ok(());
    };
    let at: SocketAddr = addr
        .parse()
        .map_err(|_| format!("GOFAIL_HTTP `{addr}` is not host:port"))?;
    let listener = tokio::net::TcpListener::bind(at)
        .await
        .map_err(|e| format!("GOFAIL_HTTP {at}: {e}"))?;
    ENABLED.store(true, Ordering::Relaxed);
    use axum::extract::Path;
    use axum::http::StatusCode;
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/",
            get(|| async {
                let map = armed();
                POINTS
                    .iter()
                    .map(|p| format!("{p}={}\n", map.get(p).map_or("", |t| t.text.as_str())))
                    .collect::<String>()
            }),
        )
        .route(
            "/{name}",
            get(|Path(name): Path<String>| async move {
                match POINTS.iter().find(|p| **p == name) {
                    Some(p) => (
                        StatusCode::OK,
                        armed().get(p).map(|t| t.text.clone()).unwrap_or_default(),
                    ),
                    None => (
                        StatusCode::NOT_FOUND,
                        "failpoint: failpoint does not exist\n".into(),
                    ),
                }
            })
            .put(|Path(name): Path<String>, body: String| async move {
                let Some(p) = POINTS.iter().find(|p| **p == name) else {
                    return (
                        StatusCode::NOT_FOUND,
                        "failpoint: failpoint does not exist\n".to_string(),
                    );
                };
                match parse(&body) {
                    Ok(Some(t)) => {
                        tracing::warn!(failpoint = *p, term = %t.text, "failpoint armed");
                        armed().insert(p, t);
                        (StatusCode::NO_CONTENT, String::new())
                    }
                    Ok(None) => {
                        armed().remove(p);
                        (StatusCode::NO_CONTENT, String::new())
                    }
                    Err(e) => (StatusCode::BAD_REQUEST, format!("failpoint: {e}\n")),
                }
            })
            .delete(|Path(name): Path<String>| async move {
                match POINTS.iter().find(|p| **p == name) {
                    Some(p) => {
                        armed().remove(p);
                        StatusCode::NO_CONTENT
                    }
                    None => StatusCode::NOT_FOUND,
                }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    tracing::info!(%at, "failpoint control (gofail) listening");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_parse_as_gofail_writes_them() {
        let t = parse("panic").unwrap().unwrap();
        assert_eq!((t.action, t.left), (Action::Panic, None));
        let t = parse("2*sleep(150)").unwrap().unwrap();
        assert_eq!(
            (t.action, t.left),
            (Action::Sleep(Duration::from_millis(150)), Some(2))
        );
        let t = parse("sleep(\"1s\")").unwrap().unwrap();
        assert_eq!(t.action, Action::Sleep(Duration::from_secs(1)));
        assert_eq!(parse("off").unwrap(), None);
        assert!(parse("return").unwrap_err().contains("return nothing"));
        assert!(parse("explode").unwrap_err().contains("unknown term"));
        assert!(parse("x*panic").unwrap_err().contains("not a count"));
    }

    #[test]
    fn counted_terms_disarm_themselves_and_unset_points_cost_nothing() {
        // Disabled: nothing fires, whatever is armed.
        armed().insert("raftAfterSave", parse("sleep(1)").unwrap().unwrap());
        assert_eq!(take("raftAfterSave"), None);
        ENABLED.store(true, Ordering::Relaxed);
        armed().insert("afterCommit", parse("2*sleep(1)").unwrap().unwrap());
        assert!(take("afterCommit").is_some());
        assert!(take("afterCommit").is_some());
        assert_eq!(take("afterCommit"), None);
        assert_eq!(take("noSuchPoint"), None);
        armed().clear();
    }
}
