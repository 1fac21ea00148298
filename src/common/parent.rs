//! The counters of one parent row, written natively: the one-row paths of the per-statement
//! counter triggers (a session's message counts, a profile's session counters, a
//! conversation's message count).
//!
//! An UPDATE statement, even a kept plan by primary key, pays for SPI, the owner switch, the
//! executor's start-up (which parses every CHECK constraint of the table again) and the parent
//! table's own triggers: as much as the one-row INSERT it serves. Here the row is found through
//! its primary key, locked in its latest version as UPDATE locks it (waiting for a concurrent
//! writer, then following its update), the caller computes the new counters from that locked
//! version, and `heap_update` writes them, with new index entries when the update is not HOT.
//!
//! What that leaves out, and why the result is the same:
//! * the CHECK constraints: the callers keep their counters non-negative by construction, and no
//!   other column changes; a table with a CHECK constraint that is not the extension's own
//!   ([`OWN_CHECKS`]) takes the SQL path;
//! * the parent table's triggers: this path is taken only while every UPDATE trigger on the
//!   table is one of the extension's that have nothing to do when the extension writes counters
//!   (completion stamps, reopen and protected-column guards, completion counts) or
//!   `set_updated_at()`, whose stamp is applied here. A table with any other UPDATE trigger, a
//!   deferrable constraint, rules, stored generated columns, no replica identity, or not stored
//!   as a plain heap table, takes the SQL path ([`Outcome::Declined`]), and so does every write
//!   while `session_replication_role` is not `origin`;
//! * privileges and row-level security: the write is the extension's own, as in the owner
//!   context, and refused as the owner context refuses while any of the extension's tables
//!   carries a trigger it does not trust (common::trusted).

use std::cell::RefCell;
use std::ffi::CStr;

use pgrx::pg_sys;

use super::error::PgaError;
use super::{columns, schema, trusted};

pub enum Outcome<R> {
    /// The row was locked and `edit` ran (and its changes, if any, are written).
    Written(R),
    /// There is no such row.
    Missing,
    /// Not for this table now: use the SQL statement.
    Declined,
}

/// The CHECK constraints of the parent tables, all of them the extension's own (a unit test
/// compares this list with the catalog). The counters written here keep them true.
pub const OWN_CHECKS: &[&str] = &[
    "sessions_completed_has_completed_at",
    "sessions_times_finite",
    "sessions_completed_after_started",
    "sessions_duration_non_negative",
    "sessions_message_counts_non_negative",
    "profiles_total_completed_sessions_check",
    "profiles_weekly_completed_sessions_check",
    "profiles_weekly_started_sessions_check",
    "profiles_weekly_session_limit_check",
    "conversations_message_count_check",
];

/// The extension's UPDATE triggers of the parent tables that have nothing to do when the
/// extension writes counters; `set_updated_at` is handled apart.
const NO_OP_FOR_COUNTERS: &[&[u8]] = &[
    b"sessions_before_write",
    b"sessions_count_completions",
    b"profiles_guard_protected_columns",
    b"conversations_before_write",
];

/// Columns of a parent table this path writes; a wider table (columns added by someone) takes
/// the SQL path. The row's values live on the stack: no allocation per statement.
const MAX_COLUMNS: usize = 64;

/// The locked latest version of the row, and the changes `edit` makes to it.
pub struct Locked {
    relid: pg_sys::Oid,
    tupdesc: pg_sys::TupleDesc,
    values: [pg_sys::Datum; MAX_COLUMNS],
    nulls: [bool; MAX_COLUMNS],
    replace: [bool; MAX_COLUMNS],
}

impl Locked {
    fn attnum(&self, name: &str) -> Option<usize> {
        // SAFETY: tupdesc is the open relation's.
        unsafe { columns::find(self.relid, self.tupdesc, name) }.map(|c| c.attnum as usize - 1)
    }

    /// Column `name` of the locked row (`None` for NULL or no such column).
    pub fn get(&self, name: &str) -> Option<pg_sys::Datum> {
        let i = self.attnum(name)?;
        (!self.nulls[i]).then_some(self.values[i])
    }

    pub fn get_i32(&self, name: &str) -> Option<i32> {
        self.get(name).map(|d| d.value() as i32)
    }

    /// Set int4 column `name` to `value + delta`, never below zero (`22003` past the int4 range,
    /// as the UPDATE statement raises).
    pub fn add_i32(&mut self, name: &str, value: i32, delta: i32) -> i32 {
        let sum = value.checked_add(delta).unwrap_or_else(|| {
            PgaError::new(pgrx::PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE, "integer out of range")
                .detail(format!("Counter \"{name}\" cannot pass {value} + {delta}."))
                .raise()
        });
        let sum = sum.max(0);
        self.set(name, sum.into());
        sum
    }

    /// Write `value` (a by-value datum of the column's type) into column `name`.
    pub fn set(&mut self, name: &str, value: pg_sys::Datum) {
        let i = self.attnum(name).unwrap_or_else(|| missing_column(name));
        self.values[i] = value;
        self.nulls[i] = false;
        self.replace[i] = true;
    }
}

fn missing_column(name: &str) -> ! {
    PgaError::new(pgrx::PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN, format!("column \"{name}\" of a pg_assistant table is missing"))
        .hint("The extension's tables were altered; reinstall the extension or restore its columns.")
        .raise()
}

/// Lock the row of the extension's table `table` whose single-column primary key `index` holds
/// `key` (compared with `eq_proc`), let `edit` read it and set new values, and write them.
pub fn update_by_key<R>(
    table: &CStr,
    index: &CStr,
    eq_proc: u32,
    key: pg_sys::Datum,
    edit: impl FnOnce(&mut Locked) -> R,
) -> Outcome<R> {
    update_by_key_at(table, index, eq_proc, key, None, edit)
}

/// [`update_by_key`] for a row the same statement has already found ([`super::lookup::Row::seen`]
/// of a uuid key): when the version at `seen` is still in the table's storage, the one the
/// latest snapshot sees, and holds `key`, the index is not searched again; otherwise it is, as
/// without the hint.
pub fn update_by_key_at<R>(
    table: &CStr,
    index: &CStr,
    eq_proc: u32,
    key: pg_sys::Datum,
    seen: Option<super::lookup::Seen>,
    edit: impl FnOnce(&mut Locked) -> R,
) -> Outcome<R> {
    // No code runs here with anyone's privileges, but the extension's writes keep the owner
    // context's tripwire: while any of its tables carries a trigger it does not trust, they are
    // refused, and the statement that fired them is rolled back with whatever those did.
    trusted::require_trusted_triggers();
    let (Some(relid), Some(indexid)) = (schema::relation(table), schema::relation(index)) else {
        return Outcome::Declined;
    };
    let lock = pg_sys::RowExclusiveLock as pg_sys::LOCKMODE;
    // SAFETY: the relation and index are opened and closed here, their locks kept to transaction
    // end as an UPDATE keeps them; the snapshot is registered and released around the scan; the
    // slot (which pins the locked row's buffer) is dropped after heap_update. An error unwinds
    // through transaction abort, which releases all of it.
    // SAFETY: a plain read of a backend global.
    if unsafe { pg_sys::SessionReplicationRole } != pg_sys::SESSION_REPLICATION_ROLE_ORIGIN as i32 {
        return Outcome::Declined;
    }
    unsafe {
        let rel = pg_sys::table_open(relid, lock);
        let natts = (*(*rel).rd_att).natts as usize;
        let Some(stamps) = verdict(rel, indexid).filter(|_| natts <= MAX_COLUMNS) else {
            pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
            return Outcome::Declined;
        };
        let idx = pg_sys::index_open(indexid, lock);
        // Our own earlier writes in this statement are seen, as SPI would see them.
        pg_sys::CommandCounterIncrement();
        let cid = pg_sys::GetCurrentCommandId(true);
        // The latest committed version, whatever the isolation level: a counter is added to,
        // never overwritten, so it must start from the newest value.
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot());
        let slot = pg_sys::table_slot_create(rel, std::ptr::null_mut());
        let found = seen.is_some_and(|seen| {
            eq_proc == pg_sys::F_UUID_EQ
                && seen.storage == super::lookup::storage(rel)
                && still_at(rel, idx, seen.tid, key, snapshot, slot)
        }) || find(rel, idx, eq_proc, key, snapshot, slot);
        let close = |slot| {
            pg_sys::ExecDropSingleTupleTableSlot(slot);
            pg_sys::UnregisterSnapshot(snapshot);
            pg_sys::index_close(idx, pg_sys::NoLock as pg_sys::LOCKMODE);
            pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        };
        if !found {
            close(slot);
            return Outcome::Missing;
        }
        let mut tid = (*slot).tts_tid;
        let mut tmfd = pg_sys::TM_FailureData::default();
        let tuple_lock = (*(*rel).rd_tableam).tuple_lock.expect("heap table access method");
        // pgrx guards the functions it binds, not a call through the access method's function
        // pointer: an error in the lock wait (lock_timeout, a deadlock, a cancel) must come back
        // through the FFI boundary as a Rust panic, never as a longjmp over these frames.
        let locked = pg_sys::ffi::pg_guard_ffi_boundary(|| {
            tuple_lock(
                rel,
                &mut tid,
                snapshot,
                slot,
                cid,
                pg_sys::LockTupleMode::LockTupleNoKeyExclusive,
                pg_sys::LockWaitPolicy::LockWaitBlock,
                pg_sys::TUPLE_LOCK_FLAG_FIND_LAST_VERSION as u8,
                &mut tmfd,
            )
        });
        match locked {
            pg_sys::TM_Result::TM_Ok => {}
            pg_sys::TM_Result::TM_Deleted => {
                close(slot);
                return Outcome::Missing;
            }
            other => concurrent_change(table, other),
        }
        let tupdesc = (*rel).rd_att;
        let mut should_free = false;
        let old = pg_sys::ExecFetchSlotHeapTuple(slot, false, &mut should_free);
        let mut row = Locked {
            relid,
            tupdesc,
            values: [pg_sys::Datum::from(0usize); MAX_COLUMNS],
            nulls: [true; MAX_COLUMNS],
            replace: [false; MAX_COLUMNS],
        };
        pg_sys::heap_deform_tuple(old, tupdesc, row.values.as_mut_ptr(), row.nulls.as_mut_ptr());
        let result = edit(&mut row);
        if row.replace[..natts].iter().any(|&r| r) {
            for &(attnum, type_oid) in stamps.iter() {
                let i = attnum as usize - 1;
                row.values[i] = transaction_time(type_oid);
                row.nulls[i] = false;
                row.replace[i] = true;
            }
            let new = pg_sys::heap_modify_tuple(old, tupdesc, row.values.as_mut_ptr(), row.nulls.as_mut_ptr(), row.replace.as_mut_ptr());
            (*new).t_tableOid = relid;
            let (written, new_index_entries) = update(rel, &mut tid, new, cid, &mut tmfd);
            if written != pg_sys::TM_Result::TM_Ok {
                concurrent_change(table, written);
            }
            if let Some(only_summarizing) = new_index_entries {
                insert_index_entries(rel, new, only_summarizing);
            }
        }
        if should_free {
            pg_sys::heap_freetuple(old);
        }
        close(slot);
        Outcome::Written(result)
    }
}

/// Position `slot` on the row whose key is `key`, as `snapshot` sees it.
unsafe fn find(
    rel: pg_sys::Relation,
    idx: pg_sys::Relation,
    eq_proc: u32,
    key: pg_sys::Datum,
    snapshot: pg_sys::Snapshot,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    let mut skey = pg_sys::ScanKeyData::default();
    pg_sys::ScanKeyInit(&mut skey, 1, pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber, pg_sys::RegProcedure::from(eq_proc), key);
    let scan = super::lookup::begin_scan(rel, idx, snapshot);
    pg_sys::index_rescan(scan, &mut skey, 1, std::ptr::null_mut(), 0);
    let found = pg_sys::index_getnext_slot(scan, pg_sys::ScanDirection::ForwardScanDirection, slot);
    pg_sys::index_endscan(scan);
    found
}

/// Position `slot` on the version at `tid` if `snapshot` sees it and its key column (the index's
/// only one, a uuid) holds `key`: then it is the version [`find`] would have found.
unsafe fn still_at(
    rel: pg_sys::Relation,
    idx: pg_sys::Relation,
    mut tid: pg_sys::ItemPointerData,
    key: pg_sys::Datum,
    snapshot: pg_sys::Snapshot,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    let fetch = (*(*rel).rd_tableam).tuple_fetch_row_version.expect("heap table access method");
    // Guarded as the lock in update_by_key_at.
    if !pg_sys::ffi::pg_guard_ffi_boundary(|| fetch(rel, &mut tid, snapshot, slot)) {
        return false;
    }
    let attnum = *(*(*idx).rd_index).indkey.values.as_ptr();
    let mut isnull = false;
    let held = pg_sys::slot_getattr(slot, attnum as i32, &mut isnull);
    let same = !isnull
        && std::slice::from_raw_parts(held.cast_mut_ptr::<u8>(), 16) == std::slice::from_raw_parts(key.cast_mut_ptr::<u8>(), 16);
    if !same {
        pg_sys::ExecClearTuple(slot);
    }
    same
}

/// The row is locked, so nothing else can have changed it; if it did, the statement fails as a
/// serialization failure (retryable), never as an internal error.
fn concurrent_change(table: &CStr, result: pg_sys::TM_Result::Type) -> ! {
    PgaError::new(
        pgrx::PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
        format!("could not update the counters of a row of \"{}\" (concurrent change {result})", table.to_string_lossy()),
    )
    .hint("Retry the transaction.")
    .raise()
}

/// The transaction's start time, as `set_updated_at()` writes it into a column of `type_oid`.
unsafe fn transaction_time(type_oid: pg_sys::Oid) -> pg_sys::Datum {
    let now = pg_sys::GetCurrentTransactionStartTimestamp();
    if type_oid == pg_sys::TIMESTAMPOID {
        pgrx::direct_function_call_as_datum(pg_sys::timestamptz_timestamp, &[Some(pg_sys::Datum::from(now))])
            .unwrap_or(pg_sys::Datum::from(now))
    } else {
        pg_sys::Datum::from(now)
    }
}

/// `heap_update`; and whether the new version needs index entries (`Some(only summarizing)`).
#[cfg(any(feature = "pg14", feature = "pg15"))]
unsafe fn update(
    rel: pg_sys::Relation,
    tid: &mut pg_sys::ItemPointerData,
    new: pg_sys::HeapTuple,
    cid: pg_sys::CommandId,
    tmfd: &mut pg_sys::TM_FailureData,
) -> (pg_sys::TM_Result::Type, Option<bool>) {
    let mut lockmode = pg_sys::LockTupleMode::LockTupleNoKeyExclusive;
    let result = pg_sys::heap_update(rel, tid, new, cid, std::ptr::null_mut(), true, tmfd, &mut lockmode);
    let heap_only = (*(*new).t_data).t_infomask2 as u32 & pg_sys::HEAP_ONLY_TUPLE != 0;
    (result, (!heap_only).then_some(false))
}

#[cfg(not(any(feature = "pg14", feature = "pg15")))]
unsafe fn update(
    rel: pg_sys::Relation,
    tid: &mut pg_sys::ItemPointerData,
    new: pg_sys::HeapTuple,
    cid: pg_sys::CommandId,
    tmfd: &mut pg_sys::TM_FailureData,
) -> (pg_sys::TM_Result::Type, Option<bool>) {
    let mut lockmode = pg_sys::LockTupleMode::LockTupleNoKeyExclusive;
    let mut indexes = pg_sys::TU_UpdateIndexes::TU_None;
    let result = pg_sys::heap_update(rel, tid, new, cid, std::ptr::null_mut(), true, tmfd, &mut lockmode, &mut indexes);
    let entries = match indexes {
        pg_sys::TU_UpdateIndexes::TU_None => None,
        pg_sys::TU_UpdateIndexes::TU_Summarizing => Some(true),
        _ => Some(false),
    };
    (result, entries)
}

/// Index entries for a new row version that went to another page (not HOT), as the executor
/// makes them after an UPDATE.
unsafe fn insert_index_entries(rel: pg_sys::Relation, new: pg_sys::HeapTuple, only_summarizing: bool) {
    let estate = pg_sys::CreateExecutorState();
    let info = pg_sys::palloc0(std::mem::size_of::<pg_sys::ResultRelInfo>()) as *mut pg_sys::ResultRelInfo;
    (*info).type_ = pg_sys::NodeTag::T_ResultRelInfo;
    pg_sys::InitResultRelInfo(info, rel, 0, std::ptr::null_mut(), 0);
    pg_sys::ExecOpenIndices(info, false);
    let slot = pg_sys::MakeSingleTupleTableSlot((*rel).rd_att, &pg_sys::TTSOpsHeapTuple);
    pg_sys::ExecStoreHeapTuple(new, slot, false);
    (*slot).tts_tableOid = (*new).t_tableOid;
    insert_index_tuples(info, slot, estate, only_summarizing);
    pg_sys::ExecDropSingleTupleTableSlot(slot);
    pg_sys::ExecCloseIndices(info);
    pg_sys::FreeExecutorState(estate);
}

#[cfg(any(feature = "pg14", feature = "pg15"))]
unsafe fn insert_index_tuples(
    info: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    estate: *mut pg_sys::EState,
    _only_summarizing: bool,
) {
    pg_sys::ExecInsertIndexTuples(info, slot, estate, false, false, std::ptr::null_mut(), std::ptr::null_mut());
}

#[cfg(not(any(feature = "pg14", feature = "pg15")))]
unsafe fn insert_index_tuples(
    info: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    estate: *mut pg_sys::EState,
    only_summarizing: bool,
) {
    pg_sys::ExecInsertIndexTuples(info, slot, estate, false, false, std::ptr::null_mut(), std::ptr::null_mut(), only_summarizing);
}

// ---- whether a table may be written this way ---------------------------------------------------

/// `Some(stamps)`: the table may be written here, and `stamps` are the columns (and their
/// types) that enabled `set_updated_at()` triggers would set. Kept per table until an
/// invalidation may have changed its triggers, constraints or indexes (common::trusted).
type Verdict = Option<std::rc::Rc<Vec<(i16, pg_sys::Oid)>>>;

thread_local! {
    static VERDICTS: RefCell<Vec<(pg_sys::Oid, pg_sys::Oid, u64, Verdict)>> = const { RefCell::new(Vec::new()) };
}

unsafe fn verdict(rel: pg_sys::Relation, indexid: pg_sys::Oid) -> Verdict {
    let relid = (*rel).rd_id;
    let generation = trusted::generation();
    let cached = VERDICTS.with(|v| {
        v.borrow().iter().find(|e| e.0 == relid && e.1 == indexid && e.2 == generation).map(|e| e.3.clone())
    });
    if let Some(v) = cached {
        return v;
    }
    let v = judge(rel, indexid).map(std::rc::Rc::new);
    VERDICTS.with(|all| {
        let mut all = all.borrow_mut();
        all.retain(|e| e.0 != relid);
        all.push((relid, indexid, generation, v.clone()));
    });
    v
}

/// What the verdict needs of one trigger, copied out of the relcache before any catalog lookup
/// (a lookup may accept invalidations that rebuild the trigger descriptor).
struct TriggerFacts {
    function: pg_sys::Oid,
    internal: bool,
    deferrable: bool,
    on_update: bool,
    before_row: bool,
    enabled: bool,
    some_columns: bool,
    args: Vec<String>,
}

unsafe fn judge(rel: pg_sys::Relation, indexid: pg_sys::Oid) -> Option<Vec<(i16, pg_sys::Oid)>> {
    let form = &*(*rel).rd_rel;
    if form.relkind as u8 != pg_sys::RELKIND_RELATION
        || form.relam != pg_sys::HEAP_TABLE_AM_OID
        || form.relreplident as u8 == pg_sys::REPLICA_IDENTITY_NOTHING
        || !(*rel).rd_rules.is_null()
    {
        return None;
    }
    let constr = (*(*rel).rd_att).constr;
    if !constr.is_null() {
        if (*constr).has_generated_stored {
            return None;
        }
        let checks = std::slice::from_raw_parts((*constr).check, (*constr).num_check as usize);
        if checks.iter().any(|c| !OWN_CHECKS.iter().any(|own| CStr::from_ptr(c.ccname).to_bytes() == own.as_bytes())) {
            return None;
        }
    }
    let trigdesc = (*rel).trigdesc;
    let triggers: Vec<TriggerFacts> = if trigdesc.is_null() {
        Vec::new()
    } else {
        std::slice::from_raw_parts((*trigdesc).triggers, (*trigdesc).numtriggers as usize)
            .iter()
            .map(|t| {
                let kind = t.tgtype as u32;
                TriggerFacts {
                    function: t.tgfoid,
                    internal: t.tgisinternal,
                    deferrable: t.tgdeferrable,
                    on_update: kind & pg_sys::TRIGGER_TYPE_UPDATE != 0,
                    before_row: kind & pg_sys::TRIGGER_TYPE_ROW != 0 && kind & pg_sys::TRIGGER_TYPE_BEFORE != 0,
                    // In `origin` mode a trigger fires unless disabled or replica-only.
                    enabled: t.tgenabled as u8 != pg_sys::TRIGGER_DISABLED && t.tgenabled as u8 != pg_sys::TRIGGER_FIRES_ON_REPLICA,
                    some_columns: t.tgnattr > 0,
                    args: (0..t.tgnargs as usize)
                        .map(|i| CStr::from_ptr(*t.tgargs.add(i)).to_string_lossy().into_owned())
                        .collect(),
                }
            })
            .collect()
    };
    let relid = (*rel).rd_id;
    let tupdesc = (*rel).rd_att;
    // The key: the table's primary key, one column `id`, immediate.
    if primary_key_index(rel) != indexid || !indexes_immediate(rel) {
        return None;
    }
    let mut stamps = Vec::new();
    for t in &triggers {
        if t.internal {
            if t.deferrable {
                return None; // a deferred foreign-key check would miss the new version
            }
            continue;
        }
        if !t.on_update || !t.enabled {
            continue;
        }
        if pg_sys::getExtensionOfObject(pg_sys::ProcedureRelationId, t.function) != schema::extension_oid() {
            return None;
        }
        let name = pg_sys::get_func_name(t.function);
        let name = if name.is_null() { &b""[..] } else { CStr::from_ptr(name).to_bytes() };
        if name == b"set_updated_at" && t.before_row && !t.some_columns && t.args.len() <= 1 {
            let column = t.args.first().map(String::as_str).unwrap_or("updated_at");
            let col = columns::find(relid, tupdesc, column)?;
            if col.type_oid != pg_sys::TIMESTAMPTZOID && col.type_oid != pg_sys::TIMESTAMPOID {
                return None; // the trigger's own error, through the SQL path
            }
            stamps.push((col.attnum, col.type_oid));
        } else if !NO_OP_FOR_COUNTERS.contains(&name) {
            return None;
        }
    }
    Some(stamps)
}

#[cfg(not(feature = "pg18"))]
unsafe fn primary_key_index(rel: pg_sys::Relation) -> pg_sys::Oid {
    pg_sys::RelationGetPrimaryKeyIndex(rel)
}

#[cfg(feature = "pg18")]
unsafe fn primary_key_index(rel: pg_sys::Relation) -> pg_sys::Oid {
    pg_sys::RelationGetPrimaryKeyIndex(rel, false)
}

/// Whether every index of the table checks uniqueness immediately (a deferred check would be
/// queued by the executor, not here).
unsafe fn indexes_immediate(rel: pg_sys::Relation) -> bool {
    let list = pg_sys::RelationGetIndexList(rel);
    let oids: Vec<pg_sys::Oid> = pgrx::PgList::<pg_sys::Oid>::from_pg(list).iter_oid().collect();
    oids.into_iter().all(|index| {
        let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::INDEXRELID as i32, pg_sys::Datum::from(index));
        if tuple.is_null() {
            return false;
        }
        let form = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_index>(tuple);
        let immediate = (*form).indimmediate && (*form).indisvalid;
        pg_sys::ReleaseSysCache(tuple);
        immediate
    })
}
