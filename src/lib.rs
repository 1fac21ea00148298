//! pg_assistant: the database of an AI-assistant product, with its rules enforced natively.
//!
//! Modules follow DESIGN.md: `common` (shared plumbing), `identity` (JWT claims), `generic`
//! (triggers usable on any table), then one module per domain with its SQL beside it in `sql/`.

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

mod common;
mod generic;
mod identity;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

// C-language declarations of the native trigger functions, needed by every module's tables.
extension_sql_file!("../sql/bootstrap.sql", bootstrap);

#[pg_extern(immutable, strict, parallel_safe)]
/// The first Monday 00:00 UTC strictly after `ts`: when a weekly counter set at `ts` resets.
fn next_week_start(ts: pgrx::datum::TimestampWithTimeZone) -> pgrx::datum::TimestampWithTimeZone {
    pgrx::datum::TimestampWithTimeZone::try_from(common::time::next_week_start(ts.into_inner())).unwrap_or(ts)
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
