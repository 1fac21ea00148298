//! Helpers shared by every module: errors, the extension's schema, kept SPI plans,
//! cached column numbers and the plumbing every native trigger goes through.

pub mod columns;
pub mod error;
pub mod lookup;
pub mod owner;
pub mod parent;
pub mod plans;
pub mod restore;
pub mod schema;
pub mod time;
pub mod trigger;
pub mod trusted;
