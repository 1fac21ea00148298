//! pg_assistant: the database of an AI-assistant product, with its rules enforced natively.
//!
//! Modules follow DESIGN.md: `common` (shared plumbing), `identity` (JWT claims), `generic`
//! (triggers usable on any table), then one module per domain with its SQL beside it in `sql/`.

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

mod behavior;
mod chat;
mod common;
mod conversations;
mod generic;
mod identity;
mod lifecycle;
mod privileges;
mod web;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

// C-language declarations of the native trigger functions, needed by every module's tables.
extension_sql_file!("../sql/bootstrap.sql", bootstrap);
extension_sql_file!(
    "../sql/identity.sql",
    name = "identity",
    requires = ["bootstrap", next_week_start, current_user_id, current_app_role, create_profile_row, install_auth_hook]
);
extension_sql_file!(
    "../sql/chat.sql",
    name = "chat",
    requires = [
        "identity",
        chat::reset_weekly_limits,
        chat::delete_expired_sessions,
        chat::delete_old_logs,
        chat::verify_counts,
        chat::repair_counts
    ]
);

extension_sql_file!(
    "../sql/behavior.sql",
    name = "behavior",
    requires = [
        "chat",
        behavior::insights::backfill_behavior_insights,
        behavior::insights::refresh_activity_recency,
        behavior::insights::cleanup_expired_behavior_events,
        behavior::similarity::similar_patterns
    ]
);

extension_sql_file!(
    "../sql/conversations.sql",
    name = "conversations",
    requires = [
        "behavior",
        identity::current_tenant_id,
        identity::sees_every_tenant_sql
    ]
);
extension_sql_file!(
    "../sql/web.sql",
    name = "web",
    requires = ["conversations", identity::sees_web_analytics, conversations::refresh_analytics_views]
);

extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    common::time::register_gucs();
    lifecycle::register_gucs();
    common::trusted::register_invalidation_callback();
    // SAFETY: registering static callbacks once per backend.
    unsafe {
        pg_sys::RegisterXactCallback(Some(on_xact_end), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(on_subxact_end), std::ptr::null_mut());
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_xact_end(_event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    chat::forget_statement_state();
    conversations::forget_statement_state();
    common::owner::forget_depth();
}

#[pg_guard]
unsafe extern "C-unwind" fn on_subxact_end(
    event: pg_sys::SubXactEvent::Type,
    my: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    chat::forget_statement_state();
    conversations::forget_statement_state();
    common::owner::on_subxact(event, my);
}

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
