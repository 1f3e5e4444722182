//! `--config-file`: etcd's YAML configuration file.
//!
//! etcd's file uses the flag names as keys, with a few shapes of its own:
//!
//! ```yaml
//! name: m1
//! data-dir: /var/lib/etcd
//! listen-client-urls: http://127.0.0.1:2379,http://10.0.0.1:2379   # a comma string
//! log-outputs: [stderr]                                           # a list
//! heartbeat-interval: 100                                         # milliseconds
//! experimental-watch-progress-notify-interval: 600000000000       # a duration: nanoseconds
//! client-transport-security:                                      # TLS keys, nested
//!   cert-file: /etc/etcd/server.crt
//!   client-cert-auth: true
//! peer-transport-security:
//!   cert-file: /etc/etcd/peer.crt
//! ```
//!
//! The file is turned into `--key=value` arguments and parsed by the same clap
//! definition as the command line, so a key takes exactly the values its flag takes
//! and a missing key keeps the flag's default. Durations may also be written as Go
//! durations (`10m`), which etcd's file does not take. Keys etcd ignores (it ignores
//! every key it does not know) are ignored here too, with a warning in the log.

use std::path::Path;

use serde_yaml_ng::Value;

use super::catalog::{self, Kind};

/// Where the TLS keys of `client-transport-security` and `peer-transport-security` go.
fn security_flag(section: &str, key: &str) -> Option<&'static str> {
    let client = section == "client-transport-security";
    Some(match (client, key) {
        (true, "cert-file") => "cert-file",
        (true, "key-file") => "key-file",
        (true, "client-cert-auth") => "client-cert-auth",
        (true, "trusted-ca-file") => "trusted-ca-file",
        (true, "auto-tls") => "auto-tls",
        (true, "crl-file") => "client-crl-file",
        (true, "allowed-hostname") => "client-cert-allowed-hostname",
        (false, "cert-file") => "peer-cert-file",
        (false, "key-file") => "peer-key-file",
        (false, "client-cert-auth") => "peer-client-cert-auth",
        (false, "trusted-ca-file") => "peer-trusted-ca-file",
        (false, "auto-tls") => "peer-auto-tls",
        (false, "crl-file") => "peer-crl-file",
        (false, "allowed-cn") => "peer-cert-allowed-cn",
        (false, "allowed-hostname") => "peer-cert-allowed-hostname",
        (false, "skip-client-san-verification") => "experimental-peer-skip-client-san-verification",
        _ => return None,
    })
}

/// Reads the file and returns the equivalent command-line arguments (without the
/// program name); keys that are ignored add a line to `warnings`.
pub fn args_from_file(path: &Path, warnings: &mut Vec<String>) -> Result<Vec<String>, String> {
    let show = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("--config-file {show}: {e}"))?;
    args_from_yaml(&text, warnings).map_err(|e| format!("--config-file {show}: {e}"))
}

/// [`args_from_file`] on the file's text.
pub fn args_from_yaml(text: &str, warnings: &mut Vec<String>) -> Result<Vec<String>, String> {
    let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    let map = match doc {
        Value::Null => return Ok(Vec::new()),
        Value::Mapping(m) => m,
        _ => return Err("the file must be a YAML mapping of etcd's keys".into()),
    };
    let mut args = Vec::new();
    for (key, value) in map {
        let Some(key) = key.as_str().map(str::to_string) else {
            return Err(format!("key {key:?} is not a string"));
        };
        if key == "client-transport-security" || key == "peer-transport-security" {
            let Value::Mapping(inner) = value else {
                if value.is_null() {
                    continue;
                }
                return Err(format!("{key} must be a mapping of TLS keys"));
            };
            for (sub, v) in inner {
                let sub = sub.as_str().unwrap_or_default().to_string();
                match security_flag(&key, &sub) {
                    Some(flag) => push(&mut args, flag, v, &format!("{key}.{sub}"))?,
                    None => {
                        warnings.push(format!("--config-file: ignoring unknown key {key}.{sub}"))
                    }
                }
            }
            continue;
        }
        match catalog::info(&key) {
            Some(f) if f.name != "config-file" => push(&mut args, f.name, value, &key)?,
            _ => warnings.push(format!("--config-file: ignoring unknown key {key}")),
        }
    }
    Ok(args)
}

/// Appends `--flag=text` for one YAML value; a null or (for lists) empty value
/// keeps the default, as etcd does.
fn push(args: &mut Vec<String>, flag: &str, value: Value, key: &str) -> Result<(), String> {
    let kind = catalog::info(flag).map_or(Kind::Text, |f| f.kind);
    let text = match value {
        Value::Null => return Ok(()),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if kind == Kind::Duration && n.is_u64() => format!("{n}ns"),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s,
        Value::Sequence(items) if kind == Kind::List => items
            .iter()
            .map(|v| scalar(v).ok_or_else(|| format!("{key}: list items must be scalars")))
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
        _ => return Err(format!("{key}: expected a single value")),
    };
    if kind == Kind::List && text.is_empty() {
        return Ok(());
    }
    args.push(format!("--{flag}={text}"));
    Ok(())
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_flags() {
        let mut w = Vec::new();
        let args = args_from_yaml(
            "name: m1\nlisten-client-urls: http://a:1,http://b:2\nlog-outputs: [stderr, stdout]\n\
             pre-vote: false\nheartbeat-interval: 50\n\
             experimental-watch-progress-notify-interval: 2000000000\n\
             client-transport-security:\n  cert-file: /c\n  client-cert-auth: true\n\
             peer-transport-security:\n  auto-tls: true\n  skip-client-san-verification: true\n\
             mystery: 1\ndata-dir: ~\n",
            &mut w,
        )
        .unwrap();
        assert_eq!(
            args,
            [
                "--name=m1",
                "--listen-client-urls=http://a:1,http://b:2",
                "--log-outputs=stderr,stdout",
                "--pre-vote=false",
                "--heartbeat-interval=50",
                "--experimental-watch-progress-notify-interval=2000000000ns",
                "--cert-file=/c",
                "--client-cert-auth=true",
                "--peer-auto-tls=true",
                "--experimental-peer-skip-client-san-verification=true",
            ]
        );
        assert_eq!(w, ["--config-file: ignoring unknown key mystery"]);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let mut w = Vec::new();
        assert!(args_from_yaml("- a\n- b\n", &mut w).is_err());
        assert!(args_from_yaml("name: [a, b]\n", &mut w)
            .unwrap_err()
            .contains("name"));
        assert!(args_from_yaml("name: 'unterminated\n", &mut w).is_err());
    }
}
