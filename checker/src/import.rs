//! Reading histories: Jepsen EDN, `jepsen.util` log lines, and our JSON lines.
//!
//! Jepsen records an `:invoke` line when a process sends a request and one completion line when it
//! learns the outcome: `:ok` (took effect), `:fail` (definitely did not), or `:info` (maybe). A process
//! never has two requests in flight. Times here are line numbers: only their order matters. A request
//! still open at the end of the file is an unknown outcome.

use std::collections::HashMap;

use serde::de::DeserializeOwned;

use crate::history::{Operation, Outcome};
use crate::models::kv::{KvInput, KvOp, KvOutput};
use crate::models::register::{RegisterInput, RegisterOutput};

/// Longest line accepted, in bytes.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// A problem in an input file, with the 1-based line it was found on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ImportError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

fn err(line: usize, message: impl Into<String>) -> ImportError {
    ImportError {
        line,
        message: message.into(),
    }
}

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{:process 0, :type :invoke, :f :read, :value nil}` per line.
    JepsenEdn,
    /// `INFO  jepsen.util - 3 :invoke :cas [3 0]` per line (fields separated by tabs or spaces).
    JepsenLog,
    /// One JSON [`Operation`] per line.
    JsonLines,
}

/// Guesses the format from the first non-blank line; `None` for an empty file.
pub fn detect_format(text: &str) -> Option<Format> {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(if first.starts_with("{:") {
        Format::JepsenEdn
    } else if first.starts_with('{') {
        Format::JsonLines
    } else {
        Format::JepsenLog
    })
}

/// An EDN value, as far as Jepsen histories need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdnValue {
    /// `nil`
    Nil,
    /// `true` / `false`
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
    /// `:keyword` (without the colon).
    Keyword(String),
    /// `[a b ...]`
    Vector(Vec<EdnValue>),
}

/// How a Jepsen operation completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// `:ok` with the completion's value.
    Ok(EdnValue),
    /// `:fail` with the completion's value.
    Fail(EdnValue),
    /// `:info`: maybe applied.
    Info,
    /// No completion before the end of the file: maybe applied.
    Missing,
}

/// One Jepsen operation: an invocation paired with its completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JepsenOp {
    /// Jepsen process.
    pub process: u64,
    /// `:f`, without the colon.
    pub f: String,
    /// `:key`, for key-value histories.
    pub key: Option<String>,
    /// The invocation's `:value`.
    pub value: EdnValue,
    /// The completion.
    pub completion: Completion,
    /// Line of the invocation.
    pub call_line: usize,
    /// Line of the completion (one past the last line if missing).
    pub return_line: usize,
}

struct Event {
    process: u64,
    kind: String,
    f: String,
    key: Option<String>,
    value: EdnValue,
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len()
            && (self.s[self.pos].is_ascii_whitespace() || self.s[self.pos] == b',')
        {
            self.pos += 1;
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }
    fn token(&mut self) -> &str {
        let start = self.pos;
        while self.pos < self.s.len() && !b" \t\r\n,[]{}\"".contains(&self.s[self.pos]) {
            self.pos += 1;
        }
        std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("")
    }
    fn value(&mut self) -> Result<EdnValue, String> {
        self.skip_ws();
        match self.peek() {
            None => Err("expected a value, found end of line".into()),
            Some(b'"') => {
                self.pos += 1;
                let mut out = Vec::new();
                loop {
                    match self.peek() {
                        None => return Err("unterminated string".into()),
                        Some(b'"') => {
                            self.pos += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let c = self
                                .s
                                .get(self.pos + 1)
                                .copied()
                                .ok_or("unterminated escape")?;
                            out.push(match c {
                                b'n' => b'\n',
                                b't' => b'\t',
                                b'r' => b'\r',
                                other => other,
                            });
                            self.pos += 2;
                        }
                        Some(c) => {
                            out.push(c);
                            self.pos += 1;
                        }
                    }
                }
                String::from_utf8(out)
                    .map(EdnValue::Str)
                    .map_err(|_| "string is not UTF-8".into())
            }
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    match self.peek() {
                        None => return Err("unterminated vector".into()),
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(EdnValue::Vector(items));
                        }
                        _ => items.push(self.value()?),
                    }
                }
            }
            Some(b':') => {
                self.pos += 1;
                let t = self.token();
                if t.is_empty() {
                    return Err("empty keyword".into());
                }
                Ok(EdnValue::Keyword(t.to_string()))
            }
            Some(_) => {
                let t = self.token();
                match t {
                    "nil" => Ok(EdnValue::Nil),
                    "true" => Ok(EdnValue::Bool(true)),
                    "false" => Ok(EdnValue::Bool(false)),
                    "" => Err(format!(
                        "unexpected character {:?}",
                        self.peek().map(char::from).unwrap_or(' ')
                    )),
                    _ => t
                        .parse::<i64>()
                        .map(EdnValue::Int)
                        .map_err(|_| format!("cannot read value {t:?}")),
                }
            }
        }
    }
}

fn keyword(v: &EdnValue, what: &str) -> Result<String, String> {
    match v {
        EdnValue::Keyword(k) => Ok(k.clone()),
        other => Err(format!("{what} must be a keyword, found {other:?}")),
    }
}

fn parse_edn_line(line: &str) -> Result<Event, String> {
    let mut c = Cursor {
        s: line.as_bytes(),
        pos: 0,
    };
    c.skip_ws();
    if c.peek() != Some(b'{') {
        return Err("expected an EDN map starting with '{'".into());
    }
    c.pos += 1;
    let (mut process, mut kind, mut f, mut key, mut value) =
        (None, None, None, None, EdnValue::Nil);
    loop {
        c.skip_ws();
        match c.peek() {
            None => return Err("unterminated map".into()),
            Some(b'}') => break,
            _ => {}
        }
        let k = keyword(&c.value()?, "map key")?;
        let v = c.value()?;
        match k.as_str() {
            "process" => match v {
                EdnValue::Int(p) if p >= 0 => process = Some(p as u64),
                other => {
                    return Err(format!(
                        ":process must be a non-negative integer, found {other:?}"
                    ))
                }
            },
            "type" => kind = Some(keyword(&v, ":type")?),
            "f" => f = Some(keyword(&v, ":f")?),
            "key" => {
                key = Some(match v {
                    EdnValue::Str(s) => s,
                    EdnValue::Int(i) => i.to_string(),
                    EdnValue::Keyword(k) => k,
                    other => return Err(format!(":key must be a string, found {other:?}")),
                })
            }
            "value" => value = v,
            _ => {}
        }
    }
    Ok(Event {
        process: process.ok_or("missing :process")?,
        kind: kind.ok_or("missing :type")?,
        f: f.ok_or("missing :f")?,
        key,
        value,
    })
}

fn parse_log_line(line: &str) -> Result<Event, String> {
    let rest = line
        .split_once("jepsen.util")
        .ok_or("expected a jepsen.util log line")?
        .1;
    let rest = rest
        .trim_start()
        .strip_prefix('-')
        .ok_or("expected '-' after jepsen.util")?;
    let mut c = Cursor {
        s: rest.as_bytes(),
        pos: 0,
    };
    let process = match c.value()? {
        EdnValue::Int(p) if p >= 0 => p as u64,
        other => {
            return Err(format!(
                "process must be a non-negative integer, found {other:?}"
            ))
        }
    };
    let kind = keyword(&c.value()?, "type")?;
    let f = keyword(&c.value()?, "f")?;
    let value = c.value()?;
    Ok(Event {
        process,
        kind,
        f,
        key: None,
        value,
    })
}

fn pair(
    text: &str,
    parse: fn(&str) -> Result<Event, String>,
) -> Result<Vec<JepsenOp>, ImportError> {
    let mut ops: Vec<JepsenOp> = Vec::new();
    let mut open: HashMap<u64, usize> = HashMap::new();
    let mut last_line = 0;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        last_line = n;
        if line.len() > MAX_LINE_BYTES {
            return Err(err(n, format!("line longer than {MAX_LINE_BYTES} bytes")));
        }
        if line.trim().is_empty() {
            continue;
        }
        let ev = parse(line).map_err(|m| err(n, m))?;
        if ev.kind == "invoke" {
            if let Some(&prev) = open.get(&ev.process) {
                return Err(err(
                    n,
                    format!(
                        "process {} invokes again before its call on line {} completed",
                        ev.process, ops[prev].call_line
                    ),
                ));
            }
            open.insert(ev.process, ops.len());
            ops.push(JepsenOp {
                process: ev.process,
                f: ev.f,
                key: ev.key,
                value: ev.value,
                completion: Completion::Missing,
                call_line: n,
                return_line: 0,
            });
            continue;
        }
        let completion = match ev.kind.as_str() {
            "ok" => Completion::Ok(ev.value),
            "fail" => Completion::Fail(ev.value),
            "info" => Completion::Info,
            other => return Err(err(n, format!("unknown :type :{other}"))),
        };
        let Some(idx) = open.remove(&ev.process) else {
            return Err(err(
                n,
                format!(
                    "return without call: process {} has no operation in flight",
                    ev.process
                ),
            ));
        };
        let op = &mut ops[idx];
        if op.f != ev.f {
            return Err(err(
                n,
                format!(
                    "completion :{} does not match the call :{} on line {}",
                    ev.f, op.f, op.call_line
                ),
            ));
        }
        op.completion = completion;
        op.return_line = n;
    }
    for &idx in open.values() {
        ops[idx].return_line = last_line + 1;
    }
    Ok(ops)
}

/// Parses Jepsen EDN history lines and pairs invocations with completions.
pub fn parse_jepsen_edn(text: &str) -> Result<Vec<JepsenOp>, ImportError> {
    pair(text, parse_edn_line)
}

/// Parses `jepsen.util` log lines (tabs or spaces) and pairs invocations with completions.
pub fn parse_jepsen_log(text: &str) -> Result<Vec<JepsenOp>, ImportError> {
    pair(text, parse_log_line)
}

/// Parses either Jepsen format, detected from the first line.
pub fn parse_jepsen(text: &str) -> Result<Vec<JepsenOp>, ImportError> {
    match detect_format(text) {
        Some(Format::JepsenEdn) => parse_jepsen_edn(text),
        Some(Format::JepsenLog) => parse_jepsen_log(text),
        Some(Format::JsonLines) => Err(err(1, "this is JSON, not a Jepsen history")),
        None => Ok(Vec::new()),
    }
}

fn int(v: &EdnValue, line: usize, what: &str) -> Result<i64, ImportError> {
    match v {
        EdnValue::Int(i) => Ok(*i),
        other => Err(err(
            line,
            format!("{what} must be an integer, found {other:?}"),
        )),
    }
}

fn base_op<I, O>(op: &JepsenOp, input: I, outcome: Outcome<O>) -> Operation<I, O> {
    Operation {
        client_id: op.process,
        call_ns: op.call_line as u64,
        return_ns: op.return_line as u64,
        input,
        outcome,
    }
}

/// Converts Jepsen register operations (`:read`, `:write`, `:cas [from to]`).
///
/// A `:fail` cas is a compare that did not match (how Jepsen's etcd client reports it, and how porcupine
/// reads it); other `:fail`s had no effect; `:info` and missing completions are unknown.
pub fn register_history(
    ops: &[JepsenOp],
) -> Result<Vec<Operation<RegisterInput, RegisterOutput>>, ImportError> {
    ops.iter()
        .map(|op| {
            let line = op.call_line;
            let input = match (op.f.as_str(), &op.value) {
                ("read", _) => RegisterInput::Read,
                ("write", v) => RegisterInput::Write(int(v, line, "write value")?),
                ("cas", EdnValue::Vector(v)) if v.len() == 2 => RegisterInput::Cas {
                    from: int(&v[0], line, "cas from")?,
                    to: int(&v[1], line, "cas to")?,
                },
                ("cas", other) => {
                    return Err(err(
                        line,
                        format!("cas value must be [from to], found {other:?}"),
                    ))
                }
                (f, _) => return Err(err(line, format!("unknown register operation :{f}"))),
            };
            let outcome = match (&op.completion, &input) {
                (Completion::Ok(v), RegisterInput::Read) => {
                    Outcome::Ok(RegisterOutput::Read(match v {
                        EdnValue::Nil => None,
                        v => Some(int(v, op.return_line, "read value")?),
                    }))
                }
                (Completion::Ok(_), RegisterInput::Write(_)) => Outcome::Ok(RegisterOutput::Write),
                (Completion::Ok(_), RegisterInput::Cas { .. }) => {
                    Outcome::Ok(RegisterOutput::Cas(true))
                }
                (Completion::Fail(_), RegisterInput::Cas { .. }) => {
                    Outcome::Ok(RegisterOutput::Cas(false))
                }
                (Completion::Fail(_), _) => Outcome::Failed,
                (Completion::Info | Completion::Missing, _) => Outcome::Unknown,
            };
            Ok(base_op(op, input, outcome))
        })
        .collect()
}

/// Converts Jepsen key-value operations (`:get`, `:put`, `:append` with `:key`; nil reads as `""`).
pub fn kv_history(ops: &[JepsenOp]) -> Result<Vec<Operation<KvInput, KvOutput>>, ImportError> {
    ops.iter()
        .map(|op| {
            let line = op.call_line;
            let kind = match op.f.as_str() {
                "get" => KvOp::Get,
                "put" => KvOp::Put,
                "append" => KvOp::Append,
                f => return Err(err(line, format!("unknown key-value operation :{f}"))),
            };
            let key = op
                .key
                .clone()
                .ok_or_else(|| err(line, "key-value operation without :key"))?;
            let text = |v: &EdnValue, line| match v {
                EdnValue::Nil => Ok(String::new()),
                EdnValue::Str(s) => Ok(s.clone()),
                EdnValue::Int(i) => Ok(i.to_string()),
                other => Err(err(
                    line,
                    format!("value must be a string, found {other:?}"),
                )),
            };
            let value = if kind == KvOp::Get {
                String::new()
            } else {
                text(&op.value, line)?
            };
            let outcome = match &op.completion {
                Completion::Ok(v) if kind == KvOp::Get => Outcome::Ok(KvOutput {
                    value: text(v, op.return_line)?,
                }),
                Completion::Ok(_) => Outcome::Ok(KvOutput {
                    value: String::new(),
                }),
                Completion::Fail(_) => Outcome::Failed,
                Completion::Info | Completion::Missing => Outcome::Unknown,
            };
            Ok(base_op(
                op,
                KvInput {
                    op: kind,
                    key,
                    value,
                },
                outcome,
            ))
        })
        .collect()
}

/// Parses one JSON [`Operation`] per line (blank lines skipped).
pub fn parse_json_lines<I: DeserializeOwned, O: DeserializeOwned>(
    text: &str,
) -> Result<Vec<Operation<I, O>>, ImportError> {
    let mut ops = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if line.len() > MAX_LINE_BYTES {
            return Err(err(
                i + 1,
                format!("line longer than {MAX_LINE_BYTES} bytes"),
            ));
        }
        let op: Operation<I, O> =
            serde_json::from_str(line).map_err(|e| err(i + 1, e.to_string()))?;
        if matches!(op.outcome, Outcome::Ok(_)) && op.return_ns < op.call_ns {
            return Err(err(
                i + 1,
                format!(
                    "returns at {} ns before its call at {} ns",
                    op.return_ns, op.call_ns
                ),
            ));
        }
        ops.push(op);
    }
    Ok(ops)
}

/// Writes one JSON [`Operation`] per line.
pub fn to_json_lines<I: serde::Serialize, O: serde::Serialize>(
    history: &[Operation<I, O>],
) -> String {
    let mut out = String::new();
    for op in history {
        out.push_str(&serde_json::to_string(op).unwrap_or_default());
        out.push('\n');
    }
    out
}
