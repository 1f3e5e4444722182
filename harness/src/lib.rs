mod error;
mod provision;
mod target;
pub use error::{HarnessError, Result};
pub use provision::*;
pub use target::*;
