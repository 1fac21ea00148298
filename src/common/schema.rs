//! The extension's own schema, resolved once per backend.
//!
//! Native code qualifies every statement with it so that no function depends on the caller's
//! `search_path` (DESIGN.md section 1). SQL templates write `@extschema@` exactly as the
//! install scripts do; [`qualify`] substitutes the quoted schema name.

use std::cell::OnceCell;

use pgrx::prelude::*;

use super::error::PgaError;

#[derive(Clone)]
struct Extension {
    schema: String,
    namespace: pg_sys::Oid,
    owner: pg_sys::Oid,
}

thread_local! {
    static EXTENSION: OnceCell<Extension> = const { OnceCell::new() };
}

fn extension() -> Extension {
    EXTENSION.with(|cell| cell.get_or_init(lookup).clone())
}

/// The quoted name of the schema `pg_assistant` is installed in.
pub fn quoted() -> String {
    extension().schema
}

/// The role that owns the extension (the one that ran CREATE EXTENSION).
pub fn owner() -> pg_sys::Oid {
    extension().owner
}

/// Whether `relid` is the extension's own table `name` (a syscache lookup, no SPI).
pub fn is_own_table(relid: pg_sys::Oid, name: &std::ffi::CStr) -> bool {
    // SAFETY: get_relname_relid is a plain catalog cache lookup.
    unsafe { pg_sys::get_relname_relid(name.as_ptr(), extension().namespace) == relid }
}

fn lookup() -> Extension {
    let found = Spi::get_three::<String, pg_sys::Oid, pg_sys::Oid>(
        "SELECT pg_catalog.quote_ident(n.nspname)::text, n.oid, e.extowner
           FROM pg_catalog.pg_extension e
           JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
          WHERE e.extname = 'pg_assistant'",
    );
    match found {
        Ok((Some(schema), Some(namespace), Some(owner))) => Extension { schema, namespace, owner },
        _ => PgaError::new(
            pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "extension \"pg_assistant\" is not installed in this database",
        )
        .raise(),
    }
}

/// Replace every `@extschema@` in `sql` with the extension's quoted schema.
pub fn qualify(sql: &str) -> String {
    sql.replace("@extschema@", &quoted())
}
