//! Kept SPI plans, prepared once per backend (DESIGN.md section 2, "Plans").
//!
//! A [`Stmt`] is a `static` naming its SQL (with `@extschema@`) and argument types. The first
//! use in a backend prepares and keeps the plan; later uses run it directly. Plans live for the
//! backend's lifetime; PostgreSQL's plan cache revalidates them after DDL on the tables they read.

use std::cell::RefCell;
use std::collections::HashMap;

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::PgOid;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiTupleTable};

use super::schema;

pub struct Stmt {
    pub sql: &'static str,
    pub args: &'static [PgOid],
}

impl Stmt {
    pub const fn new(sql: &'static str, args: &'static [PgOid]) -> Self {
        Stmt { sql, args }
    }
}

thread_local! {
    // Keyed by the address of the `static Stmt`; values are leaked because kept plans live as
    // long as the backend, and handing out `&'static` lets a plan run while another trigger,
    // fired from inside it, looks up its own plan.
    static PLANS: RefCell<HashMap<usize, &'static OwnedPreparedStatement>> = RefCell::new(HashMap::new());
}

/// Forget every kept plan (the extension was re-created: they name its old tables). The plans
/// themselves stay allocated; they are few, and this happens once per re-creation.
pub fn forget_all() {
    PLANS.with(|p| p.borrow_mut().clear());
}

fn kept(client: &SpiClient<'_>, stmt: &'static Stmt) -> &'static OwnedPreparedStatement {
    // Plans are parsed, and re-parsed by the plan cache, under the current search_path: only
    // the owner context's fixed `pg_catalog, pg_temp` makes them immune to the caller's.
    assert!(super::owner::in_owner_context(), "pg_assistant: internal statement run outside the owner context");
    let key = stmt as *const Stmt as usize;
    if let Some(plan) = PLANS.with(|p| p.borrow().get(&key).copied()) {
        return plan;
    }
    let sql = schema::qualify(stmt.sql);
    let prepared = client
        .prepare_mut(sql.as_str(), stmt.args)
        .unwrap_or_else(|e| panic!("pg_assistant: cannot prepare internal statement: {e}"));
    let plan: &'static OwnedPreparedStatement = Box::leak(Box::new(prepared.keep()));
    PLANS.with(|p| p.borrow_mut().insert(key, plan));
    plan
}

/// Run a kept statement inside an open SPI connection.
pub fn run<'conn>(
    client: &mut SpiClient<'conn>,
    stmt: &'static Stmt,
    args: &[DatumWithOid<'_>],
) -> SpiTupleTable<'conn> {
    let plan = kept(client, stmt);
    // Errors raised by the statement itself (constraint violations, our own triggers) arrive
    // as PostgreSQL ERRORs and unwind through here untouched; an SpiError is an internal fault.
    client
        .update(plan, None, args)
        .unwrap_or_else(|e| panic!("pg_assistant: internal statement failed: {e}"))
}

/// Open an SPI connection, run one kept statement and hand its result to `read`.
pub fn with<R>(
    stmt: &'static Stmt,
    args: &[DatumWithOid<'_>],
    read: impl FnOnce(SpiTupleTable<'_>) -> R,
) -> R {
    Spi::connect_mut(|client| {
        let table = run(client, stmt, args);
        read(table)
    })
}

/// Run a kept statement that returns no rows of interest; returns the number of rows processed.
pub fn exec(stmt: &'static Stmt, args: &[DatumWithOid<'_>]) -> u64 {
    with(stmt, args, |table| table.len() as u64)
}
