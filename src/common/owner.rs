//! Running the extension's own maintenance statements as the extension owner.
//!
//! Counters, jobs and guards must not depend on who triggered them: row-level security would
//! hide rows from a counter update, and the protected-column guard must let the extension's
//! own writes through. Like a SECURITY DEFINER function with `SET search_path`, [`as_owner`]
//! switches to the owner with a fixed `search_path` and switches back afterwards. On error,
//! transaction or subtransaction abort restores both, as it does for SECURITY DEFINER.

use pgrx::pg_sys;

use super::schema;

pub fn as_owner<R>(f: impl FnOnce() -> R) -> R {
    let owner = schema::owner();
    let mut saved_user = pg_sys::InvalidOid;
    let mut saved_context = 0;
    // SAFETY: plain backend-state calls, paired below; the GUC nest level is unwound by
    // AtEOXact_GUC on success and by (sub)transaction abort on error.
    let nest = unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        pg_sys::SetUserIdAndSecContext(owner, saved_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32);
        let nest = pg_sys::NewGUCNestLevel();
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            c"pg_catalog, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        nest
    };
    let result = f();
    unsafe {
        pg_sys::AtEOXact_GUC(true, nest);
        pg_sys::SetUserIdAndSecContext(saved_user, saved_context);
    }
    result
}

/// Whether the current role may write counter and limit columns: superusers and roles with
/// BYPASSRLS, which includes the extension's own statements run through [`as_owner`].
pub fn may_write_protected_columns() -> bool {
    // SAFETY: catalog lookups for the current user id.
    unsafe {
        let role = pg_sys::GetUserId();
        pg_sys::superuser_arg(role) || pg_sys::has_bypassrls_privilege(role)
    }
}
