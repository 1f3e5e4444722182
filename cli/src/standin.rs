//! `gauntlet stand-in`: an etcd-compatible server that behaves like a foreign one.
//!
//! Gauntlet must never turn "did not test" into "passed" on servers that are not
//! etcd, and must name the request that kills a server. Testing that needs servers
//! that misbehave on purpose. `stand-in` takes etcd's flags, starts a real server
//! (the reference server by default) on a private port, and serves its client URL
//! through a proxy that can:
//!
//! * report another `Status.version` (`--report-version 0.6.1`, an empty string, free
//!   text), as Xline or etcds do;
//! * die on a request (`--die-on invalid-range`, `--die-on request:N`): it prints a
//!   panic line to stderr (the member's log) and exits with status 101, taking the
//!   real server with it, as a server that panics on a request does.
//!
//! Launch it as an `exec:` target through a two-line wrapper script:
//!
//! ```sh
//! #!/bin/sh
//! exec gauntlet stand-in --report-version 0.6.1 --die-on invalid-range -- "$@"
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use gauntlet_harness::{Cache, DieOn, Proxy, ProxyOptions, Target};

/// Flags of `gauntlet stand-in`.
#[derive(Args, Debug)]
pub struct StandInArgs {
    /// Answer Status with this version (may be empty or free text).
    #[arg(long)]
    report_version: Option<String>,
    /// Die on this request: invalid-range (a Range whose end sorts before its key) or
    /// request:N (the N-th unary request this member receives).
    #[arg(long, value_parser = parse_die_on)]
    die_on: Option<DieOn>,
    /// The real server to run (default: the reference server).
    #[arg(long)]
    server: Option<PathBuf>,
    /// etcd's flags, passed on to the real server (after `--`).
    #[arg(last = true)]
    server_args: Vec<String>,
}

fn parse_die_on(s: &str) -> Result<DieOn, String> {
    s.parse()
        .map_err(|e: gauntlet_harness::HarnessError| e.to_string())
}

/// The value of flag `name` (`--name v`, `--name=v`, or Go's single-dash forms) and
/// where it sits: (index of the value, whether it is inline `--name=v`).
fn find_flag(args: &[String], name: &str) -> Option<(usize, bool)> {
    let bare = name.trim_start_matches('-');
    for (i, a) in args.iter().enumerate() {
        let flag = a.trim_start_matches('-');
        if a.starts_with('-') && flag == bare {
            return (i + 1 < args.len()).then_some((i + 1, false));
        }
        if a.starts_with('-') && flag.strip_prefix(bare).is_some_and(|r| r.starts_with('=')) {
            return Some((i, true));
        }
    }
    None
}

fn flag_value(args: &[String], at: (usize, bool)) -> String {
    let (i, inline) = at;
    if inline {
        args[i]
            .split_once('=')
            .map(|x| x.1)
            .unwrap_or_default()
            .to_string()
    } else {
        args[i].clone()
    }
}

fn set_flag_value(args: &mut [String], at: (usize, bool), value: &str) {
    let (i, inline) = at;
    if inline {
        let flag = args[i]
            .split_once('=')
            .map(|x| x.0)
            .unwrap_or_default()
            .to_string();
        args[i] = format!("{flag}={value}");
    } else {
        args[i] = value.to_string();
    }
}

fn kill(child: &Mutex<Child>) {
    let mut c = child
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let _ = c.kill();
    let _ = c.wait();
}

/// Runs the stand-in until the real server exits, a death trigger fires, or
/// SIGTERM/Ctrl-C; the process exits with the server's status (or 101 on death).
pub async fn run(args: StandInArgs) -> anyhow::Result<ExitCode> {
    let server = match &args.server {
        Some(p) => p.clone(),
        None => Target::Reference.server_binary(&Cache::from_env())?,
    };
    let mut server_args = args.server_args.clone();
    let at = find_flag(&server_args, "--listen-client-urls")
        .context("stand-in needs --listen-client-urls among the server's flags")?;
    let urls = flag_value(&server_args, at);
    let first = urls
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let Some(hostport) = first.strip_prefix("http://") else {
        bail!("stand-in proxies a plain http:// client URL, not `{first}`");
    };
    let listen: SocketAddr = hostport
        .trim_end_matches('/')
        .parse()
        .with_context(|| format!("client URL `{first}` is not http://IP:PORT"))?;
    let internal = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("choosing the real server's private port")?;
    set_flag_value(&mut server_args, at, &format!("http://{internal}"));
    let child = Command::new(&server)
        .args(&server_args)
        .spawn()
        .with_context(|| format!("starting {}", server.display()))?;
    let child = Arc::new(Mutex::new(child));
    let on_death = {
        let child = child.clone();
        Arc::new(move |why: &str| {
            eprintln!("stand-in: panic: {why} (this server stands in for one that crashes on that request)");
            kill(&child);
            std::process::exit(101);
        })
    };
    let proxy = Proxy::start_with(
        &format!("http://{internal}"),
        ProxyOptions {
            report_version: args.report_version.clone(),
            die_on: args.die_on,
            on_death: Some(on_death),
            listen: Some(listen),
            ..ProxyOptions::default()
        },
    )
    .await;
    let proxy = match proxy {
        Ok(p) => p,
        Err(e) => {
            kill(&child);
            return Err(e).context("starting the stand-in's proxy");
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let code = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break 0,
            _ = term.recv() => break 0,
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                let status = child
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .try_wait()
                    .context("waiting for the real server")?;
                if let Some(s) = status {
                    break u8::try_from(s.code().unwrap_or(1)).unwrap_or(1);
                }
            }
        }
    };
    drop(proxy);
    kill(&child);
    Ok(ExitCode::from(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn client_url_flag_is_found_and_rewritten_in_every_form() {
        let mut a = v(&["--name", "m0", "--listen-client-urls", "http://127.0.0.1:5"]);
        let at = find_flag(&a, "--listen-client-urls").unwrap();
        assert_eq!(flag_value(&a, at), "http://127.0.0.1:5");
        set_flag_value(&mut a, at, "http://127.0.0.1:9");
        assert_eq!(a[3], "http://127.0.0.1:9");
        let mut b = v(&["-listen-client-urls=http://127.0.0.1:5,http://127.0.0.1:6"]);
        let at = find_flag(&b, "--listen-client-urls").unwrap();
        assert_eq!(flag_value(&b, at), "http://127.0.0.1:5,http://127.0.0.1:6");
        set_flag_value(&mut b, at, "x");
        assert_eq!(b[0], "-listen-client-urls=x");
        assert!(find_flag(&v(&["--listen-peer-urls", "x"]), "--listen-client-urls").is_none());
        assert!(find_flag(&v(&["--listen-client-urls"]), "--listen-client-urls").is_none());
    }
}
