//! The models Gauntlet checks against.

pub mod etcd;
pub mod kv;
pub mod register;
