//! One row of one of the extension's tables by a unique key, read natively: a btree probe
//! through the index, no SPI, no planner, no executor.
//!
//! The row triggers' parent lookups (a message's session, say) run once per row of a statement
//! and are the hot path of one-row statements. Reading through the index directly costs a few
//! microseconds where a kept SPI statement costs tens, and it involves no SQL at all: no
//! `search_path`, no operator or function resolution, nothing of the caller's; privileges and
//! row-level security are not consulted (the row is read for the rule, as the owner would, and
//! never shown to the caller). The snapshot is taken as SPI takes it for a statement run from a
//! trigger: the transaction snapshot, after a command-counter increment, so rows written
//! earlier in the same statement (a data-modifying CTE) are seen too.

use std::ffi::CStr;

use pgrx::pg_sys;

use super::{columns, schema};

/// The row found, while it is valid.
pub struct Row {
    slot: *mut pg_sys::TupleTableSlot,
    relid: pg_sys::Oid,
    tupdesc: pg_sys::TupleDesc,
    storage: pg_sys::Oid,
}

/// Where a version of a row was found: its TID in the table's storage of that moment (a
/// rewrite, CLUSTER say, gives the table new storage and its rows new TIDs).
#[derive(Clone, Copy)]
pub struct Seen {
    pub tid: pg_sys::ItemPointerData,
    pub storage: pg_sys::Oid,
}

impl Row {
    /// Where this version of the row is, for [`super::parent::update_by_key_at`] later in the
    /// same statement.
    pub fn seen(&self) -> Seen {
        // SAFETY: the slot holds the row found.
        Seen { tid: unsafe { (*self.slot).tts_tid }, storage: self.storage }
    }

    /// Column `name` (`None` for NULL or a missing column).
    pub fn get(&self, name: &str) -> Option<pg_sys::Datum> {
        // SAFETY: tupdesc is the relation's; the slot holds one of its rows.
        unsafe {
            let col = columns::find(self.relid, self.tupdesc, name)?;
            let mut isnull = false;
            let datum = pg_sys::slot_getattr(self.slot, col.attnum as i32, &mut isnull);
            (!isnull).then_some(datum)
        }
    }
}

/// Find the row of the extension's table `table` whose single-column unique index `index`
/// holds `key` (compared with the btree equality function `eq_proc`, e.g. `F_UUID_EQ`), and
/// hand it to `read`, which copies out what it needs. `None` when there is no such row.
pub fn by_unique_key<R>(
    table: &CStr,
    index: &CStr,
    eq_proc: u32,
    key: pg_sys::Datum,
    read: impl FnOnce(&Row) -> R,
) -> Option<R> {
    let relid = schema::relation(table)?;
    let indexid = schema::relation(index)?;
    let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
    // SAFETY: relations opened and closed here (their locks kept to transaction end, as any
    // statement would); the snapshot is pushed and popped around the scan; the slot is dropped
    // after `read`, which may only copy values out. An error unwinds through transaction abort,
    // which releases all of it.
    unsafe {
        let rel = pg_sys::table_open(relid, lock);
        let idx = pg_sys::index_open(indexid, lock);
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        pg_sys::CommandCounterIncrement();
        pg_sys::UpdateActiveSnapshotCommandId();
        let mut skey = pg_sys::ScanKeyData::default();
        pg_sys::ScanKeyInit(
            &mut skey,
            1,
            pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
            pg_sys::RegProcedure::from(eq_proc),
            key,
        );
        let scan = begin_scan(rel, idx, pg_sys::GetActiveSnapshot());
        pg_sys::index_rescan(scan, &mut skey, 1, std::ptr::null_mut(), 0);
        let slot = pg_sys::table_slot_create(rel, std::ptr::null_mut());
        let found = pg_sys::index_getnext_slot(scan, pg_sys::ScanDirection::ForwardScanDirection, slot);
        let result = found.then(|| read(&Row { slot, relid, tupdesc: (*rel).rd_att, storage: storage(rel) }));
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        pg_sys::index_endscan(scan);
        pg_sys::PopActiveSnapshot();
        pg_sys::index_close(idx, pg_sys::NoLock as pg_sys::LOCKMODE);
        pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        result
    }
}

/// The relation's storage file number.
#[cfg(any(feature = "pg14", feature = "pg15"))]
pub(super) unsafe fn storage(rel: pg_sys::Relation) -> pg_sys::Oid {
    (*rel).rd_node.relNode
}

#[cfg(not(any(feature = "pg14", feature = "pg15")))]
pub(super) unsafe fn storage(rel: pg_sys::Relation) -> pg_sys::Oid {
    (*rel).rd_locator.relNumber
}

#[cfg(not(feature = "pg18"))]
pub(super) unsafe fn begin_scan(rel: pg_sys::Relation, idx: pg_sys::Relation, snapshot: pg_sys::Snapshot) -> pg_sys::IndexScanDesc {
    pg_sys::index_beginscan(rel, idx, snapshot, 1, 0)
}

#[cfg(feature = "pg18")]
pub(super) unsafe fn begin_scan(rel: pg_sys::Relation, idx: pg_sys::Relation, snapshot: pg_sys::Snapshot) -> pg_sys::IndexScanDesc {
    pg_sys::index_beginscan(rel, idx, snapshot, std::ptr::null_mut(), 1, 0)
}
