//! The extension's own schema and owner, resolved from the catalog once per backend (and again
//! after invalidations that may mean it was dropped and re-created).
//!
//! The lookup is native: `pg_extension` is read by the extension's OID through its index, the
//! schema name comes from the namespace OID. No SQL is parsed, so nothing the caller controls
//! (`search_path`, look-alike operators, functions, casts or tables in any schema or `pg_temp`)
//! takes part in it; a caller cannot poison what every owner-context statement is qualified with.
//!
//! Native code qualifies every statement with the schema so that no function depends on the
//! caller's `search_path` (DESIGN.md section 1). SQL templates write `@extschema@` exactly as
//! the install scripts do; [`qualify`] substitutes the quoted schema name.

use std::cell::RefCell;
use std::ffi::CStr;

use pgrx::pg_sys;

use super::error::PgaError;

/// The extension's own tables (every module adds its own here). The unit tests check that
/// this list is exactly the set of tables the extension owns as members in the catalog.
pub const OWN_TABLES: &[&CStr] = &[
    c"tenants",
    c"profiles",
    c"scenarios",
    c"sessions",
    c"messages",
    c"logs",
    c"behavior_events",
    c"behavior_insights",
    c"behavior_sessions",
    c"behavior_patterns",
    c"conversations",
    c"conversation_messages",
    c"feedback",
    c"usage_metrics",
    c"user_sessions",
    c"interaction_events",
    c"conversion_funnels",
    c"optimization_history",
    c"a_b_tests",
    c"variant_assignments",
];

struct Extension {
    oid: pg_sys::Oid,
    schema: String,
    namespace: pg_sys::Oid,
    owner: pg_sys::Oid,
}

thread_local! {
    // With the invalidation generation it was read at (common::trusted): dropping the
    // extension drops its tables, whose invalidations make the next use read it again, so a
    // backend that sees it re-created (in another schema, say) follows.
    static EXTENSION: RefCell<Option<(Extension, u64)>> = const { RefCell::new(None) };
}

fn with_extension<R>(f: impl FnOnce(&Extension) -> R) -> R {
    let generation = super::trusted::generation();
    EXTENSION.with(|cell| {
        if let Some((e, seen)) = &*cell.borrow() {
            if *seen == generation {
                return f(e);
            }
        }
        let fresh = lookup();
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_some_and(|(old, _)| old.oid != fresh.oid) {
            // Kept plans name the old schema's tables.
            super::plans::forget_all();
        }
        let (e, _) = cell.insert((fresh, generation));
        f(e)
    })
}

/// The quoted name of the schema `pg_assistant` is installed in.
pub fn quoted() -> String {
    with_extension(|e| e.schema.clone())
}

/// The role that owns the extension (the one that ran CREATE EXTENSION).
pub fn owner() -> pg_sys::Oid {
    with_extension(|e| e.owner)
}

/// The OID of the extension itself (`pg_extension.oid`).
pub fn extension_oid() -> pg_sys::Oid {
    with_extension(|e| e.oid)
}

/// The OID of the extension's schema.
pub fn namespace() -> pg_sys::Oid {
    with_extension(|e| e.namespace)
}

/// Whether `relid` is the extension's own table `name` (a syscache lookup, no SPI).
pub fn is_own_table(relid: pg_sys::Oid, name: &CStr) -> bool {
    relation(name) == Some(relid)
}

thread_local! {
    // Relations found by name, with the invalidation generation they were found at: a table or
    // index dropped and created again (a new OID) sends an invalidation that moves it on.
    static RELATIONS: RefCell<Vec<(Box<[u8]>, pg_sys::Oid, u64)>> = const { RefCell::new(Vec::new()) };
}

/// The OID of relation `name` in the extension's schema (a syscache lookup, no SPI; kept per
/// backend until an invalidation may concern the extension's tables).
pub fn relation(name: &CStr) -> Option<pg_sys::Oid> {
    let generation = super::trusted::generation();
    let key = name.to_bytes();
    let cached = RELATIONS.with(|r| r.borrow().iter().find(|e| e.2 == generation && &*e.0 == key).map(|e| e.1));
    if cached.is_some() {
        return cached;
    }
    // SAFETY: get_relname_relid is a plain catalog cache lookup.
    let oid = unsafe { pg_sys::get_relname_relid(name.as_ptr(), namespace()) };
    if oid == pg_sys::InvalidOid {
        return None;
    }
    // The lookups above may have accepted invalidations: keep what was found only if none
    // arrived meanwhile.
    if super::trusted::generation() == generation {
        RELATIONS.with(|r| {
            let mut r = r.borrow_mut();
            r.retain(|e| e.2 == generation && &*e.0 != key);
            r.push((key.into(), oid, generation));
        });
    }
    Some(oid)
}

fn not_installed() -> ! {
    PgaError::new(
        pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "extension \"pg_assistant\" is not installed in this database",
    )
    .raise()
}

fn lookup() -> Extension {
    // SAFETY: catalog access by OID through the system index, inside a transaction; the
    // scan and relation are closed before returning, the tuple is read while the scan is open.
    unsafe {
        let oid = pg_sys::get_extension_oid(c"pg_assistant".as_ptr(), true);
        if oid == pg_sys::InvalidOid {
            not_installed();
        }
        let rel = pg_sys::table_open(pg_sys::ExtensionRelationId, pg_sys::AccessShareLock as i32);
        let mut key = pg_sys::ScanKeyData::default();
        pg_sys::ScanKeyInit(
            &mut key,
            pg_sys::Anum_pg_extension_oid as pg_sys::AttrNumber,
            pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
            pg_sys::RegProcedure::from(pg_sys::F_OIDEQ),
            pg_sys::Datum::from(oid),
        );
        let scan = pg_sys::systable_beginscan(
            rel,
            pg_sys::Oid::from(pg_sys::ExtensionOidIndexId),
            true,
            std::ptr::null_mut(),
            1,
            &mut key,
        );
        let tuple = pg_sys::systable_getnext(scan);
        let found = (!tuple.is_null()).then(|| {
            let form = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_extension>(tuple);
            ((*form).extnamespace, (*form).extowner)
        });
        pg_sys::systable_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as i32);
        let Some((namespace, owner)) = found else { not_installed() };
        let name = pg_sys::get_namespace_name(namespace);
        if name.is_null() {
            not_installed();
        }
        let schema = CStr::from_ptr(pg_sys::quote_identifier(name)).to_string_lossy().into_owned();
        Extension { oid, schema, namespace, owner }
    }
}

/// Replace every `@extschema@` in `sql` with the extension's quoted schema.
pub fn qualify(sql: &str) -> String {
    sql.replace("@extschema@", &quoted())
}
