//! A single read/write/compare-and-set register, as in Jepsen's etcd register test.

use serde::{Deserialize, Serialize};

use crate::model::Model;

/// A register request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterInput {
    /// Read the value.
    Read,
    /// Overwrite the value.
    Write(i64),
    /// Set to `to` if the value is `from`.
    Cas {
        /// Expected value.
        from: i64,
        /// New value.
        to: i64,
    },
}

/// A register response.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterOutput {
    /// The value read; `None` when never written (Jepsen `nil`).
    Read(Option<i64>),
    /// A write was acknowledged.
    Write,
    /// Whether the compare matched (Jepsen's etcd client reports a mismatch as `:fail`).
    Cas(bool),
}

/// The register model. State: the value, `None` before the first write.
#[derive(Clone, Copy, Debug, Default)]
pub struct RegisterModel;

impl Model for RegisterModel {
    type Input = RegisterInput;
    type Output = RegisterOutput;
    type State = Option<i64>;

    fn init(&self) -> Option<i64> {
        None
    }

    fn step(
        &self,
        state: &Option<i64>,
        input: &RegisterInput,
        output: Option<&RegisterOutput>,
        next: &mut Vec<Option<i64>>,
    ) {
        match (input, output) {
            (RegisterInput::Read, None) => next.push(*state),
            (RegisterInput::Read, Some(RegisterOutput::Read(v))) if v == state => next.push(*state),
            (RegisterInput::Write(v), None | Some(RegisterOutput::Write)) => next.push(Some(*v)),
            (RegisterInput::Cas { from, to }, out) => {
                let matched = *state == Some(*from);
                let after = if matched { Some(*to) } else { *state };
                match out {
                    None => next.push(after),
                    Some(RegisterOutput::Cas(ok)) if *ok == matched => next.push(after),
                    Some(_) => {}
                }
            }
            _ => {}
        }
    }

    fn is_read_only(&self, input: &RegisterInput) -> bool {
        matches!(input, RegisterInput::Read)
    }

    fn describe_operation(&self, input: &RegisterInput, output: Option<&RegisterOutput>) -> String {
        let show = |v: &Option<i64>| v.map_or_else(|| "nil".to_string(), |v| v.to_string());
        match (input, output) {
            (RegisterInput::Read, Some(RegisterOutput::Read(v))) => {
                format!("read() -> {}", show(v))
            }
            (RegisterInput::Read, _) => "read() -> ?".to_string(),
            (RegisterInput::Write(v), Some(_)) => format!("write({v})"),
            (RegisterInput::Write(v), None) => format!("write({v}) ?"),
            (RegisterInput::Cas { from, to }, Some(RegisterOutput::Cas(ok))) => {
                format!("cas({from}, {to}) -> {ok}")
            }
            (RegisterInput::Cas { from, to }, _) => format!("cas({from}, {to}) -> ?"),
        }
    }

    fn describe_state(&self, state: &Option<i64>) -> String {
        state.map_or_else(|| "nil".to_string(), |v| v.to_string())
    }
}
