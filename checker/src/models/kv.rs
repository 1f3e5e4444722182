//! A key-value map with get, put and append, as in porcupine's key-value tests.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::hash::hash_one;
use crate::history::Operation;
use crate::model::Model;

/// What a request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvOp {
    /// Read the key's value (`""` when missing).
    Get,
    /// Overwrite the key's value.
    Put,
    /// Append to the key's value.
    Append,
}

/// A key-value request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KvInput {
    /// Operation.
    pub op: KvOp,
    /// Key.
    pub key: String,
    /// Value for put and append; ignored for get.
    #[serde(default)]
    pub value: String,
}

/// A key-value response: the value for a get; empty otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KvOutput {
    /// Value returned by a get.
    #[serde(default)]
    pub value: String,
}

/// The key-value model. State: [`KvState`].
#[derive(Clone, Copy, Debug)]
pub struct KvModel {
    /// Split histories by key (P-compositionality). Porcupine's comparison figures are without it.
    pub partition_by_key: bool,
}

impl Default for KvModel {
    fn default() -> Self {
        Self {
            partition_by_key: true,
        }
    }
}

/// A string with its hash computed once, so that states hash in O(keys) however long values grow.
#[derive(Clone, Debug)]
struct Hashed {
    text: Rc<str>,
    hash: u64,
}

impl Hashed {
    fn new(text: &str) -> Self {
        Self {
            hash: hash_one(text),
            text: Rc::from(text),
        }
    }
}

impl PartialEq for Hashed {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && (Rc::ptr_eq(&self.text, &other.text) || self.text == other.text)
    }
}
impl Eq for Hashed {}

/// Key-value state: (key, value) pairs sorted by key, with `""` values absent; shared behind an `Rc`
/// and hashed from the cached hashes of its strings.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct KvState {
    entries: Rc<[(Hashed, Hashed)]>,
}

impl Hash for KvState {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for (k, v) in self.entries.iter() {
            state.write_u64(k.hash ^ v.hash.rotate_left(17));
        }
    }
}

impl KvState {
    /// The value of `key` (`""` when missing).
    pub fn get(&self, key: &str) -> &str {
        match self
            .entries
            .binary_search_by(|(k, _)| k.text.as_ref().cmp(key))
        {
            Ok(i) => &self.entries[i].1.text,
            Err(_) => "",
        }
    }

    fn with(&self, key: &str, value: &str) -> Self {
        let mut entries: Vec<(Hashed, Hashed)> = self.entries.to_vec();
        match entries.binary_search_by(|(k, _)| k.text.as_ref().cmp(key)) {
            Ok(i) if value.is_empty() => {
                entries.remove(i);
            }
            Ok(i) => entries[i].1 = Hashed::new(value),
            Err(_) if value.is_empty() => {}
            Err(i) => entries.insert(i, (Hashed::new(key), Hashed::new(value))),
        }
        // One allocation per state (`Rc<[T]>`), exactly sized: states are most of the memory.
        Self {
            entries: Rc::from(entries),
        }
    }
}

impl Model for KvModel {
    type Input = KvInput;
    type Output = KvOutput;
    type State = KvState;

    fn init(&self) -> KvState {
        KvState::default()
    }

    fn step(
        &self,
        state: &KvState,
        input: &KvInput,
        output: Option<&KvOutput>,
        next: &mut Vec<KvState>,
    ) {
        let current = state.get(&input.key);
        match input.op {
            KvOp::Get => {
                if output.is_none_or(|o| o.value == current) {
                    next.push(state.clone());
                }
            }
            KvOp::Put | KvOp::Append => {
                let value = if input.op == KvOp::Put {
                    input.value.clone()
                } else {
                    format!("{current}{}", input.value)
                };
                next.push(state.with(&input.key, &value));
            }
        }
    }

    fn partition(&self, history: &[Operation<KvInput, KvOutput>]) -> Vec<Vec<usize>> {
        if !self.partition_by_key {
            return vec![(0..history.len()).collect()];
        }
        let mut by_key: HashMap<&str, usize> = HashMap::new();
        let mut parts: Vec<Vec<usize>> = Vec::new();
        for (i, op) in history.iter().enumerate() {
            let p = *by_key.entry(op.input.key.as_str()).or_insert_with(|| {
                parts.push(Vec::new());
                parts.len() - 1
            });
            parts[p].push(i);
        }
        parts
    }

    fn is_read_only(&self, input: &KvInput) -> bool {
        input.op == KvOp::Get
    }

    fn describe_operation(&self, input: &KvInput, output: Option<&KvOutput>) -> String {
        match (input.op, output) {
            (KvOp::Get, Some(o)) => format!("get({:?}) -> {:?}", input.key, o.value),
            (KvOp::Get, None) => format!("get({:?}) -> ?", input.key),
            (KvOp::Put, _) => format!("put({:?}, {:?})", input.key, input.value),
            (KvOp::Append, _) => format!("append({:?}, {:?})", input.key, input.value),
        }
    }

    fn describe_state(&self, state: &KvState) -> String {
        let parts: Vec<String> = state
            .entries
            .iter()
            .map(|(k, v)| format!("{:?}: {:?}", k.text, v.text))
            .collect();
        format!("{{{}}}", parts.join(", "))
    }
}
