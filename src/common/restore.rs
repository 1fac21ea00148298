//! Recognising a dump being restored.
//!
//! `pg_restore` and plain-format dumps run `SET row_security = off` and load every table with
//! `COPY ... FROM stdin`, after `CREATE EXTENSION` has already created the tables and their
//! triggers. Restored rows carry their derived state (counters, completion stamps, messages of
//! completed sessions), so the rules must neither re-count nor re-judge them: a restore would
//! otherwise double every counter or stop at the first message of a completed session.
//!
//! `row_security = off` cannot be abused to skip the rules: for a role that row-level security
//! applies to, it makes the COPY fail instead of bypassing the policies, so only roles that may
//! write counters anyway can be in this state.

use pgrx::pg_sys;

/// Whether the current statement is a `COPY` run with `row_security = off`: a dump being loaded.
pub fn loading_dump() -> bool {
    // SAFETY: reads of backend globals; ActivePortal is NULL or valid during execution.
    unsafe {
        !pg_sys::row_security
            && !pg_sys::ActivePortal.is_null()
            && (*pg_sys::ActivePortal).commandTag == pg_sys::CommandTag::CMDTAG_COPY
    }
}
