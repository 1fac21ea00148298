//! Running the extension's own maintenance statements as the extension owner, and deciding who
//! else may do what the owner does.
//!
//! Counters, jobs and guards must not depend on who triggered them: row-level security would
//! hide rows from a counter update, and the protected-column guard must let the extension's
//! own writes through. Like a SECURITY DEFINER function with `SET search_path`, [`as_owner`]
//! switches to the owner with a fixed `search_path` and switches back afterwards. On error,
//! transaction or subtransaction abort restores both, as it does for SECURITY DEFINER.
//!
//! Before it switches, [`as_owner`] makes sure no code a non-superuser wrote can run inside:
//! the extension's tables carry only triggers it trusts (see [`super::trusted`]).

use std::cell::Cell;

use pgrx::pg_sys;

use super::error::{PgaError, INSUFFICIENT_PRIVILEGE};
use super::{schema, trusted};

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    // The depth at the start of each open subtransaction: an error caught inside the owner
    // context (a trusted trigger's EXCEPTION block) aborts a subtransaction that started there.
    static SUBXACT_DEPTHS: std::cell::RefCell<Vec<(pg_sys::SubTransactionId, u32)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether the current code runs inside [`as_owner`].
pub fn in_owner_context() -> bool {
    DEPTH.get() > 0
}

pub fn as_owner<R>(f: impl FnOnce() -> R) -> R {
    owner_context(false, f)
}

/// [`as_owner`] for statements that touch one row by its primary key (the one-row paths):
/// they are planned without sequential scans. Counter rows are rewritten constantly, and a
/// table that was small when a backend made its plan would otherwise be scanned whole, dead
/// versions included, on every statement.
pub fn as_owner_by_key<R>(f: impl FnOnce() -> R) -> R {
    owner_context(true, f)
}

/// A setting for the rest of the current owner context (reverted when it ends).
pub fn set_local(name: &std::ffi::CStr, value: &std::ffi::CStr) {
    // SAFETY: a plain GUC assignment saved in the current nest level.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
    }
}

fn owner_context<R>(by_key: bool, f: impl FnOnce() -> R) -> R {
    trusted::require_trusted_triggers();
    let owner = schema::owner();
    let mut saved_user = pg_sys::InvalidOid;
    let mut saved_context = 0;
    // SAFETY: plain backend-state calls, paired below; the GUC nest level is unwound by
    // AtEOXact_GUC on success and by (sub)transaction abort on error.
    let nest = unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        pg_sys::SetUserIdAndSecContext(owner, saved_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32);
        pg_sys::NewGUCNestLevel()
    };
    set_local(c"search_path", c"pg_catalog, pg_temp");
    if by_key {
        set_local(c"enable_seqscan", c"off");
    }
    // An error unwinds past the decrement; (sub)transaction abort restores the depth (lib.rs).
    DEPTH.set(DEPTH.get() + 1);
    let result = f();
    DEPTH.set(DEPTH.get().saturating_sub(1));
    unsafe {
        pg_sys::AtEOXact_GUC(true, nest);
        pg_sys::SetUserIdAndSecContext(saved_user, saved_context);
    }
    result
}

/// Run a native call (one that parses no SQL and fires no trigger, such as `nextval`) with the
/// owner's privileges: only the user id is switched.
pub fn as_owner_native<R>(f: impl FnOnce() -> R) -> R {
    let mut saved_user = pg_sys::InvalidOid;
    let mut saved_context = 0;
    // SAFETY: paired with the restore below; (sub)transaction abort restores it on error.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        pg_sys::SetUserIdAndSecContext(schema::owner(), saved_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32);
    }
    let result = f();
    unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_context) };
    result
}

/// At transaction end: an error inside [`as_owner`] skipped its decrement.
pub fn forget_depth() {
    DEPTH.set(0);
    SUBXACT_DEPTHS.with(|s| s.borrow_mut().clear());
}

/// Subtransaction events: an aborted subtransaction leaves the depth it started with.
pub fn on_subxact(event: pg_sys::SubXactEvent::Type, subxact: pg_sys::SubTransactionId) {
    SUBXACT_DEPTHS.with(|stack| {
        let mut stack = stack.borrow_mut();
        match event {
            pg_sys::SubXactEvent::SUBXACT_EVENT_START_SUB => stack.push((subxact, DEPTH.get())),
            pg_sys::SubXactEvent::SUBXACT_EVENT_COMMIT_SUB | pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB => {
                if let Some(at) = stack.iter().rposition(|&(id, _)| id == subxact) {
                    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
                        DEPTH.set(stack[at].1);
                    }
                    stack.truncate(at);
                }
            }
            _ => {}
        }
    });
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

/// Jobs and maintenance functions act on every user's rows: only superusers and roles with
/// BYPASSRLS (the table owner, pg_cron jobs run by them, Supabase's `service_role`) may run
/// them, whatever EXECUTE grants exist (`42501` otherwise).
pub fn require_privileged_caller(function: &str) {
    if may_write_protected_columns() {
        return;
    }
    PgaError::new(INSUFFICIENT_PRIVILEGE, format!("permission denied for function {function}"))
        .detail(format!("{function}() acts on every user's rows; role \"{}\" is neither a superuser nor has BYPASSRLS.", current_role_name()))
        .hint("Run it as the extension owner, from a pg_cron job of a superuser, or as a role with BYPASSRLS (service_role on Supabase).")
        .raise()
}

/// The error PostgreSQL itself gives when a new row fails a row-level security policy. Rules
/// that would otherwise read someone else's row raise it first, naming nothing of theirs.
pub fn row_security_violation(table: &str) -> ! {
    PgaError::new(INSUFFICIENT_PRIVILEGE, format!("new row violates row-level security policy for table \"{table}\"")).raise()
}

fn current_role_name() -> String {
    // SAFETY: GetUserNameFromId with noerr returns a palloc'd name or NULL.
    unsafe {
        let name = pg_sys::GetUserNameFromId(pg_sys::GetUserId(), true);
        if name.is_null() {
            String::from("?")
        } else {
            std::ffi::CStr::from_ptr(name).to_string_lossy().into_owned()
        }
    }
}
