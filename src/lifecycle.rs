//! The extension's lifecycle (DESIGN.md section 4). Drop protection: `DROP EXTENSION
//! pg_assistant`, a `DROP SCHEMA` of its schema and a `DROP OWNED BY` its owner would destroy
//! the application's data with its tables; while any of them holds a row, they are refused
//! (`55006`) unless `pg_assistant.allow_drop_with_data` is on for the session. Empty tables never
//! stop a drop.
//!
//! An event trigger at `ddl_command_start` (before anything is dropped) reads the statement's
//! parse tree: it works without `shared_preload_libraries`, and a superuser who means it can
//! still say so.

use std::ffi::CStr;

use pgrx::prelude::*;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

use crate::common::error::PgaError;
use crate::common::schema;

pub static ALLOW_DROP_WITH_DATA: GucSetting<bool> = GucSetting::<bool>::new(false);

pub fn register_gucs() {
    GucRegistry::define_bool_guc(
        c"pg_assistant.allow_drop_with_data",
        c"Lets DROP EXTENSION pg_assistant (or of its schema) destroy tables that hold rows.",
        c"Off: such a drop is refused while any of the extension's tables holds a row.",
        &ALLOW_DROP_WITH_DATA,
        GucContext::Userset,
        GucFlags::default(),
    );
}

/// The names in a DROP statement's object list (`DROP EXTENSION a, b` / `DROP SCHEMA a, b`).
///
/// # Safety
/// `objects` is the list of a DropStmt for extensions or schemas: String nodes.
unsafe fn dropped_names(objects: *mut pg_sys::List) -> Vec<&'static CStr> {
    let n = if objects.is_null() { 0 } else { (*objects).length };
    (0..n)
        .filter_map(|i| {
            let node = pg_sys::list_nth(objects, i) as *mut pg_sys::Node;
            (!node.is_null() && (*node).type_ == pg_sys::NodeTag::T_String).then(|| CStr::from_ptr(string_value(node)))
        })
        .collect()
}

#[cfg(feature = "pg14")]
unsafe fn string_value(node: *mut pg_sys::Node) -> *const std::ffi::c_char {
    (*(node as *mut pg_sys::Value)).val.str_
}

#[cfg(not(feature = "pg14"))]
unsafe fn string_value(node: *mut pg_sys::Node) -> *const std::ffi::c_char {
    (*(node as *mut pg_sys::String)).sval
}

/// Whether the statement would drop the extension (and so its tables).
///
/// # Safety
/// `tag` and `parsetree` come from the same EventTriggerData.
unsafe fn drops_the_extension(tag: pg_sys::CommandTag::Type, parsetree: *mut pg_sys::Node) -> bool {
    if parsetree.is_null() {
        return false;
    }
    match tag {
        pg_sys::CommandTag::CMDTAG_DROP_EXTENSION | pg_sys::CommandTag::CMDTAG_DROP_SCHEMA
            if (*parsetree).type_ == pg_sys::NodeTag::T_DropStmt =>
        {
            let stmt = parsetree as *mut pg_sys::DropStmt;
            let names = dropped_names((*stmt).objects);
            if tag == pg_sys::CommandTag::CMDTAG_DROP_EXTENSION {
                names.iter().any(|n| n.to_bytes() == b"pg_assistant")
            } else {
                let ours = schema::namespace();
                names.iter().any(|n| pg_sys::get_namespace_oid(n.as_ptr(), true) == ours)
            }
        }
        pg_sys::CommandTag::CMDTAG_DROP_OWNED if (*parsetree).type_ == pg_sys::NodeTag::T_DropOwnedStmt => {
            let roles = (*(parsetree as *mut pg_sys::DropOwnedStmt)).roles;
            let n = if roles.is_null() { 0 } else { (*roles).length };
            let owner = schema::owner();
            (0..n).any(|i| pg_sys::get_rolespec_oid(pg_sys::list_nth(roles, i) as *const pg_sys::RoleSpec, true) == owner)
        }
        _ => false,
    }
}

/// The extension's tables that hold at least one row (read as the dropping role, a superuser
/// or the owner, whom row-level security does not limit).
fn tables_with_rows() -> Vec<String> {
    let schema = schema::quoted();
    schema::OWN_TABLES
        .iter()
        .map(|t| t.to_string_lossy())
        .filter(|t| {
            // One-off, at DROP time; every name is the extension's own, quoted and qualified.
            Spi::get_one::<bool>(&format!("SELECT EXISTS (SELECT FROM {schema}.{})", crate::common::trigger::quote_ident(t)))
                .ok()
                .flatten()
                .unwrap_or(false)
        })
        .map(|t| t.into_owned())
        .collect()
}

crate::common::trigger::native_event_trigger!(pga_guard_drop, pg_finfo_pga_guard_drop, "_guard_drop", guard_drop);

/// `ddl_command_start` of `DROP EXTENSION`, `DROP SCHEMA` and `DROP OWNED`.
fn guard_drop(tag: pg_sys::CommandTag::Type, parsetree: *mut pg_sys::Node) {
    // SAFETY: tag and parse tree come from the same EventTriggerData.
    if !unsafe { drops_the_extension(tag, parsetree) } || ALLOW_DROP_WITH_DATA.get() {
        return;
    }
    let full = tables_with_rows();
    if !full.is_empty() {
        PgaError::new(pgrx::PgSqlErrorCode::ERRCODE_OBJECT_IN_USE, "cannot drop extension pg_assistant while its tables hold data")
            .detail(format!("Tables with rows: {}.", full.join(", ")))
            .hint("Back the data up (pg_dump) and SET pg_assistant.allow_drop_with_data = on to drop it anyway, or delete the rows first.")
            .raise();
    }
}
