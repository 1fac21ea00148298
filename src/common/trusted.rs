//! No code a non-superuser wrote ever runs with the extension owner's privileges.
//!
//! Owner-context statements write the extension's tables, and whatever triggers those tables
//! carry would run as the owner. [`require_trusted_triggers`] refuses (`42501`) to enter the
//! owner context while any of the extension's tables carries a trigger it does not trust:
//!
//! * internal triggers (foreign keys) are trusted: PostgreSQL's own code;
//! * otherwise the trigger must have no `WHEN` condition (which could call anyone's function)
//!   and its function must be one of the extension's own, or be owned by a superuser AND pin
//!   its `search_path` to nothing but `pg_catalog` / `pg_temp` (`SET search_path = ''`). A
//!   foreign-key cascade (a user deleting their own session) fires the BEFORE triggers of the
//!   child table as the table owner but under the caller's `search_path`, so a superuser's
//!   function that leaves one name unqualified (`now()`) would run the caller's look-alike.
//!
//! The verdict is kept per backend and dropped by every invalidation that can change it: the
//! relcache invalidation that `CREATE TRIGGER`, `ALTER TABLE` or `DROP TRIGGER` on those tables
//! sends, and any change of a function (`ALTER FUNCTION ... OWNER TO`, `CREATE OR REPLACE`) or
//! of a role (`ALTER ROLE ... NOSUPERUSER`), which a pooled backend learns of only through the
//! `pg_proc` and `pg_authid` syscache invalidations. The check costs two loads on the hot path. Privileges are the first line (ordinary roles never hold TRIGGER
//! on the extension's tables, see `harden_privileges`); this is the second.

use std::cell::Cell;
use std::ffi::CStr;

use pgrx::pg_sys;

use super::error::{PgaError, INSUFFICIENT_PRIVILEGE};
use super::schema;

const MAX_TABLES: usize = 64;

thread_local! {
    /// Bumped by every relcache invalidation that may concern the extension's tables.
    static INVALIDATIONS: Cell<u64> = const { Cell::new(0) };
    /// The value of INVALIDATIONS when the tables were last found clean.
    static VERIFIED_AT: Cell<Option<u64>> = const { Cell::new(None) };
    /// The tables' OIDs as last verified (read by the invalidation callback, which may not
    /// touch the catalog); InvalidOid-terminated.
    static TABLE_OIDS: [Cell<pg_sys::Oid>; MAX_TABLES] = const { [const { Cell::new(pg_sys::InvalidOid) }; MAX_TABLES] };
}

/// Registered once per backend in `_PG_init`.
pub fn register_invalidation_callback() {
    // SAFETY: static callbacks, registered once per backend.
    unsafe {
        let arg = pg_sys::Datum::from(0usize);
        pg_sys::CacheRegisterRelcacheCallback(Some(on_relcache_invalidation), arg);
        pg_sys::CacheRegisterSyscacheCallback(pg_sys::SysCacheIdentifier::PROCOID as i32, Some(on_syscache_invalidation), arg);
        pg_sys::CacheRegisterSyscacheCallback(pg_sys::SysCacheIdentifier::AUTHOID as i32, Some(on_syscache_invalidation), arg);
    }
}

// A function or a role changed: whose function a trigger calls, or whether its owner is a
// superuser, may be different now.
unsafe extern "C-unwind" fn on_syscache_invalidation(_arg: pg_sys::Datum, _cacheid: i32, _hash: u32) {
    INVALIDATIONS.set(INVALIDATIONS.get().wrapping_add(1));
}

// Runs inside invalidation processing: no catalog access, no allocation, no error.
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    // Before the first verification the tables are not known yet: every invalidation counts.
    let ours = relid == pg_sys::InvalidOid
        || TABLE_OIDS.with(|oids| {
            oids[0].get() == pg_sys::InvalidOid
                || oids.iter().map(Cell::get).take_while(|&o| o != pg_sys::InvalidOid).any(|o| o == relid)
        });
    if ours {
        INVALIDATIONS.set(INVALIDATIONS.get().wrapping_add(1));
    }
}

/// Changes whenever an invalidation may concern the extension's tables, functions or roles
/// (the extension cache of `schema` revalidates itself on it too).
pub fn generation() -> u64 {
    INVALIDATIONS.get()
}

/// Raise `42501` unless every table of the extension carries only trusted triggers.
pub fn require_trusted_triggers() {
    let generation = INVALIDATIONS.get();
    if VERIFIED_AT.get() == Some(generation) {
        return;
    }
    let relids: Vec<pg_sys::Oid> = schema::OWN_TABLES.iter().filter_map(|t| schema::relation(t)).collect();
    TABLE_OIDS.with(|oids| {
        for (i, slot) in oids.iter().enumerate() {
            slot.set(relids.get(i).copied().unwrap_or(pg_sys::InvalidOid));
        }
    });
    for relid in relids {
        verify_table(relid);
    }
    // Invalidations that arrived while we looked (opening a table accepts them) leave the
    // generation ahead of what we record, so the next call looks again.
    VERIFIED_AT.set(Some(generation));
}

/// [`require_trusted_triggers`], looking again whatever was verified before (the DDL guard).
pub fn require_trusted_triggers_now() {
    VERIFIED_AT.set(None);
    require_trusted_triggers();
}

fn verify_table(relid: pg_sys::Oid) {
    // The triggers are copied out before anything else is looked up: a catalog lookup may accept
    // invalidation messages, which can rebuild the relation's trigger descriptor under us.
    // SAFETY: the relation is opened (and locked, as the statement that follows will) while its
    // trigdesc is copied; nothing in between accepts invalidations.
    let (table, triggers) = unsafe {
        let rel = pg_sys::relation_open(relid, pg_sys::AccessShareLock as i32);
        let trigdesc = (*rel).trigdesc;
        let triggers: Vec<TriggerFacts> = if trigdesc.is_null() {
            Vec::new()
        } else {
            std::slice::from_raw_parts((*trigdesc).triggers, (*trigdesc).numtriggers as usize)
                .iter()
                .map(|t| TriggerFacts {
                    name: CStr::from_ptr(t.tgname).to_string_lossy().into_owned(),
                    function: t.tgfoid,
                    internal: t.tgisinternal,
                    has_when: !t.tgqual.is_null(),
                })
                .collect()
        };
        let table = qualified_name(rel);
        pg_sys::relation_close(rel, pg_sys::NoLock as i32);
        (table, triggers)
    };
    let Some(t) = triggers.iter().find(|t| !trusted(t)) else { return };
    let function = describe_function(t.function);
    let why = if t.has_when {
        format!("Trigger \"{}\" has a WHEN condition; it calls {function}.", t.name)
    } else {
        format!(
            "Trigger \"{}\" calls {function}, which is neither pg_assistant's nor a superuser's with a pinned search_path.",
            t.name
        )
    };
    PgaError::new(
        INSUFFICIENT_PRIVILEGE,
        format!("pg_assistant will not act as the extension owner: table {table} has trigger \"{}\" that it does not trust", t.name),
    )
    .detail(format!("{why} pg_assistant's own statements run with the owner's privileges, and so would the trigger."))
    .hint(format!(
        "Drop it (DROP TRIGGER {} ON {table}), or have a superuser own its function and pin it: ALTER FUNCTION ... SET search_path = ''.",
        quote(&t.name)
    ))
    .raise();
}

/// What the verdict needs of one trigger, copied out of the relcache.
struct TriggerFacts {
    name: String,
    function: pg_sys::Oid,
    internal: bool,
    has_when: bool,
}

fn trusted(t: &TriggerFacts) -> bool {
    if t.internal {
        return true;
    }
    !t.has_when && trusted_function(t.function)
}

fn trusted_function(function: pg_sys::Oid) -> bool {
    // SAFETY: catalog lookups by OID.
    unsafe {
        if pg_sys::getExtensionOfObject(pg_sys::ProcedureRelationId, function) == schema::extension_oid() {
            return true;
        }
    }
    function_facts(function).is_some_and(|(owner, pinned)| pinned && unsafe { pg_sys::superuser_arg(owner) })
}

/// The function's owner, and whether its own settings (`proconfig`) pin `search_path` to
/// nothing a non-superuser can create objects in: empty, `pg_catalog`, `pg_temp`.
fn function_facts(function: pg_sys::Oid) -> Option<(pg_sys::Oid, bool)> {
    // SAFETY: one syscache lookup, released before returning; proconfig is a text[].
    let (owner, config): (pg_sys::Oid, Vec<String>) = unsafe {
        let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::PROCOID as i32, pg_sys::Datum::from(function));
        if tuple.is_null() {
            return None;
        }
        let owner = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_proc>(tuple)).proowner;
        let mut isnull = false;
        let datum = pg_sys::SysCacheGetAttr(
            pg_sys::SysCacheIdentifier::PROCOID as i32,
            tuple,
            pg_sys::Anum_pg_proc_proconfig as pg_sys::AttrNumber,
            &mut isnull,
        );
        let config = if isnull {
            Vec::new()
        } else {
            <Vec<String> as pgrx::FromDatum>::from_polymorphic_datum(datum, false, pg_sys::TEXTARRAYOID).unwrap_or_default()
        };
        pg_sys::ReleaseSysCache(tuple);
        (owner, config)
    };
    let pinned = config.iter().filter_map(|setting| setting.strip_prefix("search_path=")).any(|path| {
        path.split(',')
            .map(|schema| schema.trim().trim_matches('"'))
            .all(|schema| matches!(schema, "" | "pg_catalog" | "pg_temp"))
    });
    Some((owner, pinned))
}

fn describe_function(function: pg_sys::Oid) -> String {
    // SAFETY: format_procedure and GetUserNameFromId return palloc'd strings.
    unsafe {
        let name = CStr::from_ptr(pg_sys::format_procedure(function)).to_string_lossy().into_owned();
        match function_facts(function) {
            Some((owner, _)) => {
                let role = pg_sys::GetUserNameFromId(owner, true);
                let role = if role.is_null() { "?".into() } else { CStr::from_ptr(role).to_string_lossy().into_owned() };
                format!("function {name} (owned by role \"{role}\")")
            }
            None => format!("function {name}"),
        }
    }
}

/// # Safety
/// `rel` must be an open relation.
unsafe fn qualified_name(rel: pg_sys::Relation) -> String {
    let nsp = pg_sys::get_namespace_name((*(*rel).rd_rel).relnamespace);
    let nsp = if nsp.is_null() { String::new() } else { CStr::from_ptr(nsp).to_string_lossy().into_owned() };
    let name = CStr::from_ptr((*(*rel).rd_rel).relname.data.as_ptr()).to_string_lossy().into_owned();
    format!("{}.{}", quote(&nsp), quote(&name))
}

fn quote(s: &str) -> String {
    super::trigger::quote_ident(s)
}

// ---- before a cascade ---------------------------------------------------------------------------

const BEFORE_DELETE_STATEMENT: super::trigger::Usage = super::trigger::Usage {
    timing: super::trigger::Timing::Before,
    level: super::trigger::Level::Statement,
    events: &[super::trigger::Event::Delete],
};

super::trigger::native_trigger!(pga_guard_cascades, pg_finfo_pga_guard_cascades, "guard_cascades", guard_cascades);

/// BEFORE DELETE FOR EACH STATEMENT on the tables whose deletes cascade (tenants, profiles,
/// sessions): a cascade runs the child tables' BEFORE triggers as the table owner, outside any
/// owner-context check, so the check runs here, before the first row goes.
fn guard_cascades(call: &super::trigger::TriggerCall) -> pg_sys::Datum {
    call.require(&BEFORE_DELETE_STATEMENT, None);
    require_trusted_triggers();
    super::trigger::statement_done()
}
