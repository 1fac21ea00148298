//! Recognising a dump being restored.
//!
//! `pg_restore` and plain-format dumps run `SET row_security = off` and load every table with
//! `COPY ... FROM stdin`, after `CREATE EXTENSION` has already created the tables and their
//! triggers. Restored rows carry their derived state (counters, completion stamps, messages of
//! completed sessions), so the rules must neither re-count nor re-judge them: a restore would
//! otherwise double every counter or stop at the first message of a completed session.
//!
//! The restore path is taken only when all of these hold:
//! * `row_security` is off;
//! * the current role may write protected columns anyway (superuser or BYPASSRLS);
//! * the statement the client sent is a `COPY <table> FROM ...` (not `COPY (query) TO`, whose
//!   query could switch `row_security` off half-way), and its target is the very table the
//!   trigger fires on (a trigger of another table writing into ours is an ordinary write).

use pgrx::pg_sys;

use super::owner::may_write_protected_columns;

/// Whether the current statement is a `COPY ... FROM` into `relid` by a privileged role with
/// `row_security = off`: a dump being loaded.
pub fn loading_dump(relid: pg_sys::Oid) -> bool {
    // SAFETY: reads of backend globals; ActivePortal is NULL or valid during execution, and its
    // statements list holds the PlannedStmt nodes it runs.
    unsafe {
        if pg_sys::row_security || !may_write_protected_columns() {
            return false;
        }
        let portal = pg_sys::ActivePortal;
        if portal.is_null() || (*portal).commandTag != pg_sys::CommandTag::CMDTAG_COPY {
            return false;
        }
        let stmts = (*portal).stmts;
        if stmts.is_null() || (*stmts).length != 1 {
            return false;
        }
        let planned = pg_sys::list_nth(stmts, 0) as *mut pg_sys::PlannedStmt;
        if planned.is_null() || (*planned).type_ != pg_sys::NodeTag::T_PlannedStmt {
            return false;
        }
        let copy = (*planned).utilityStmt as *mut pg_sys::CopyStmt;
        if copy.is_null() || (*copy).type_ != pg_sys::NodeTag::T_CopyStmt {
            return false;
        }
        if !(*copy).is_from || !(*copy).query.is_null() || (*copy).relation.is_null() {
            return false;
        }
        let target = pg_sys::RangeVarGetRelidExtended(
            (*copy).relation,
            pg_sys::NoLock as pg_sys::LOCKMODE,
            pg_sys::RVROption::RVR_MISSING_OK as u32,
            None,
            std::ptr::null_mut(),
        );
        target == relid
    }
}
