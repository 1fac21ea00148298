//! The plumbing every native trigger goes through, in the shape of
//! `contrib/spi/moddatetime.c`: check the calling context, name the table, resolve columns,
//! read and modify the tuple.
//!
//! Trigger entry points are declared with [`native_trigger!`], which wraps the body in pgrx's
//! panic guard and hands it a checked [`TriggerCall`]; misuse never reaches `XX000`.

use std::ffi::CStr;

use pgrx::pg_sys;

use super::columns::{self, Column};
use super::error::{PgaError, TRIGGER_PROTOCOL};

/// Declare a trigger function callable from SQL as
/// `CREATE FUNCTION name() RETURNS trigger LANGUAGE c AS 'MODULE_PATHNAME', 'symbol'`.
///
/// `native_trigger!(symbol, pg_finfo_symbol, "sql_name", body)` where
/// `body: fn(&TriggerCall) -> pg_sys::Datum`.
macro_rules! native_trigger {
    ($symbol:ident, $finfo:ident, $sql_name:literal, $body:path) => {
        #[unsafe(no_mangle)]
        #[doc(hidden)]
        pub extern "C" fn $finfo() -> &'static ::pgrx::pg_sys::Pg_finfo_record {
            const V1: ::pgrx::pg_sys::Pg_finfo_record =
                ::pgrx::pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }

        #[unsafe(no_mangle)]
        #[doc(hidden)]
        pub unsafe extern "C-unwind" fn $symbol(
            fcinfo: ::pgrx::pg_sys::FunctionCallInfo,
        ) -> ::pgrx::pg_sys::Datum {
            ::pgrx::pg_sys::submodules::panic::pgrx_extern_c_guard(move || {
                let call = $crate::common::trigger::TriggerCall::from_fcinfo(fcinfo, $sql_name);
                $body(&call)
            })
        }
    };
}
pub(crate) use native_trigger;

/// Declare an event trigger function callable from SQL as
/// `CREATE FUNCTION name() RETURNS event_trigger LANGUAGE c AS 'MODULE_PATHNAME', 'symbol'`.
///
/// `native_event_trigger!(symbol, pg_finfo_symbol, "sql_name", body)` where
/// `body: fn(pg_sys::CommandTag::Type, *mut pg_sys::Node)` gets the command's tag and parse tree.
macro_rules! native_event_trigger {
    ($symbol:ident, $finfo:ident, $sql_name:literal, $body:path) => {
        #[unsafe(no_mangle)]
        #[doc(hidden)]
        pub extern "C" fn $finfo() -> &'static ::pgrx::pg_sys::Pg_finfo_record {
            const V1: ::pgrx::pg_sys::Pg_finfo_record =
                ::pgrx::pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }

        #[unsafe(no_mangle)]
        #[doc(hidden)]
        pub unsafe extern "C-unwind" fn $symbol(
            fcinfo: ::pgrx::pg_sys::FunctionCallInfo,
        ) -> ::pgrx::pg_sys::Datum {
            ::pgrx::pg_sys::submodules::panic::pgrx_extern_c_guard(move || {
                let (tag, parsetree) = $crate::common::trigger::event_trigger_data(fcinfo, $sql_name);
                $body(tag, parsetree);
                ::pgrx::pg_sys::Datum::from(0usize)
            })
        }
    };
}
pub(crate) use native_event_trigger;

/// The command tag and parse tree an event trigger was called for (`39P01` when it was not).
///
/// # Safety
/// `fcinfo` must be the call info PostgreSQL passed to a C-language function.
pub unsafe fn event_trigger_data(
    fcinfo: pg_sys::FunctionCallInfo,
    function: &str,
) -> (pg_sys::CommandTag::Type, *mut pg_sys::Node) {
    let context = (*fcinfo).context;
    if context.is_null() || (*context).type_ != pg_sys::NodeTag::T_EventTriggerData {
        PgaError::new(TRIGGER_PROTOCOL, format!("function {function}() was not called by the event trigger manager")).raise();
    }
    let data = context as *mut pg_sys::EventTriggerData;
    ((*data).tag, (*data).parsetree)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Timing {
    Before,
    After,
    InsteadOf,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Level {
    Row,
    Statement,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Event {
    Insert,
    Update,
    Delete,
    Truncate,
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Event::Insert => "INSERT",
            Event::Update => "UPDATE",
            Event::Delete => "DELETE",
            Event::Truncate => "TRUNCATE",
        }
    }
}

impl Timing {
    fn name(self) -> &'static str {
        match self {
            Timing::Before => "BEFORE",
            Timing::After => "AFTER",
            Timing::InsteadOf => "INSTEAD OF",
        }
    }
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Row => "FOR EACH ROW",
            Level::Statement => "FOR EACH STATEMENT",
        }
    }
}

/// How a trigger function must be attached; checked once per call, cheaply.
pub struct Usage {
    pub timing: Timing,
    pub level: Level,
    pub events: &'static [Event],
}

pub struct TriggerCall {
    function: &'static str,
    data: *mut pg_sys::TriggerData,
}

impl TriggerCall {
    /// # Safety
    /// `fcinfo` must be the call info PostgreSQL passed to a C-language function.
    pub unsafe fn from_fcinfo(fcinfo: pg_sys::FunctionCallInfo, function: &'static str) -> Self {
        let context = (*fcinfo).context;
        if context.is_null() || (*context).type_ != pg_sys::NodeTag::T_TriggerData {
            PgaError::new(TRIGGER_PROTOCOL, format!("function {function}() was not called by trigger manager"))
                .hint(format!("Attach it with CREATE TRIGGER ... EXECUTE FUNCTION {function}()."))
                .raise();
        }
        TriggerCall { function, data: context.cast() }
    }

    fn data(&self) -> &pg_sys::TriggerData {
        // SAFETY: checked to be TriggerData in from_fcinfo; valid for the call.
        unsafe { &*self.data }
    }

    fn flags(&self) -> u32 {
        self.data().tg_event
    }

    pub fn timing(&self) -> Timing {
        match self.flags() & pg_sys::TRIGGER_EVENT_TIMINGMASK {
            pg_sys::TRIGGER_EVENT_BEFORE => Timing::Before,
            pg_sys::TRIGGER_EVENT_INSTEAD => Timing::InsteadOf,
            _ => Timing::After,
        }
    }

    pub fn level(&self) -> Level {
        if self.flags() & pg_sys::TRIGGER_EVENT_ROW != 0 {
            Level::Row
        } else {
            Level::Statement
        }
    }

    pub fn event(&self) -> Event {
        match self.flags() & pg_sys::TRIGGER_EVENT_OPMASK {
            pg_sys::TRIGGER_EVENT_INSERT => Event::Insert,
            pg_sys::TRIGGER_EVENT_UPDATE => Event::Update,
            pg_sys::TRIGGER_EVENT_DELETE => Event::Delete,
            _ => Event::Truncate,
        }
    }

    /// Raise a clear error naming the trigger and table unless the trigger is attached as `usage` says.
    pub fn require(&self, usage: &Usage, column: Option<&str>) {
        let (timing, level, event) = (self.timing(), self.level(), self.event());
        if timing == usage.timing && level == usage.level && usage.events.contains(&event) {
            return;
        }
        let events: Vec<&str> = usage.events.iter().map(|e| e.name()).collect();
        let wanted = format!("{} {} {}", usage.timing.name(), events.join(" OR "), usage.level.name());
        let args = column.map(|c| format!("'{c}'")).unwrap_or_default();
        PgaError::new(
            TRIGGER_PROTOCOL,
            format!(
                "trigger \"{}\" on table \"{}\": {}() must be fired {}",
                self.trigger_name(),
                self.table_name(),
                self.function,
                wanted
            ),
        )
        .detail(format!("It was fired {} {} {}.", timing.name(), event.name(), level.name()))
        .hint(format!(
            "CREATE TRIGGER {} {} ON {} {} EXECUTE FUNCTION {}({args});",
            self.trigger_name(),
            wanted.replace(&format!(" {}", usage.level.name()), ""),
            self.qualified_table_name(),
            usage.level.name(),
            self.function
        ))
        .raise()
    }

    /// Reject (`39P01`) a trigger attached to any table but the extension's own `table`: the
    /// rules' statements are planned for that table and its transition tables.
    pub fn require_own_table(&self, table: &'static std::ffi::CStr) {
        if !super::schema::is_own_table(self.relid(), table) {
            let table = table.to_string_lossy();
            PgaError::new(
                TRIGGER_PROTOCOL,
                format!("{}() may only be used by pg_assistant's own table \"{table}\"", self.function),
            )
            .detail(format!("Trigger \"{}\" is on {}.", self.trigger_name(), self.qualified_table_name()))
            .raise();
        }
    }

    fn relation(&self) -> &pg_sys::RelationData {
        // SAFETY: tg_relation is valid for the duration of the trigger call.
        unsafe { &*self.data().tg_relation }
    }

    pub fn relid(&self) -> pg_sys::Oid {
        self.relation().rd_id
    }

    pub fn tupdesc(&self) -> pg_sys::TupleDesc {
        self.relation().rd_att
    }

    pub fn table_name(&self) -> String {
        // SAFETY: rd_rel is valid while the relation is open.
        unsafe { CStr::from_ptr((*self.relation().rd_rel).relname.data.as_ptr()).to_string_lossy().into_owned() }
    }

    pub fn qualified_table_name(&self) -> String {
        // SAFETY: as above; get_namespace_name returns a palloc'd copy or NULL.
        unsafe {
            let nsp = pg_sys::get_namespace_name((*self.relation().rd_rel).relnamespace);
            let schema = if nsp.is_null() { String::new() } else { CStr::from_ptr(nsp).to_string_lossy().into_owned() };
            format!("{}.{}", quote_ident(&schema), quote_ident(&self.table_name()))
        }
    }

    fn trigger(&self) -> &pg_sys::Trigger {
        // SAFETY: tg_trigger is valid for the duration of the call.
        unsafe { &*self.data().tg_trigger }
    }

    pub fn trigger_name(&self) -> String {
        // SAFETY: tgname is a NUL-terminated string owned by the relcache entry.
        unsafe { CStr::from_ptr(self.trigger().tgname).to_string_lossy().into_owned() }
    }

    /// Trigger argument `i` (0-based) as given in CREATE TRIGGER, if present.
    pub fn arg(&self, i: usize) -> Option<&CStr> {
        let t = self.trigger();
        if i >= t.tgnargs as usize {
            return None;
        }
        // SAFETY: tgargs has tgnargs NUL-terminated entries.
        unsafe { Some(CStr::from_ptr(*t.tgargs.add(i))) }
    }

    /// Resolve a column of the trigger's table, cached per relation; a clear `42703` if missing.
    pub fn column(&self, name: &str) -> Column {
        // SAFETY: tupdesc belongs to the trigger's relation.
        match unsafe { columns::find(self.relid(), self.tupdesc(), name) } {
            Some(col) => col,
            None => PgaError::new(
                pgrx::PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                format!(
                    "trigger \"{}\" on table \"{}\": column \"{name}\" does not exist",
                    self.trigger_name(),
                    self.table_name()
                ),
            )
            .detail(format!("{}() was asked to use column \"{name}\" of {}.", self.function, self.qualified_table_name()))
            .hint("Pass the column name as the trigger argument.")
            .raise(),
        }
    }

    /// The row being inserted, or the new version of an updated row.
    pub fn new_tuple(&self) -> pg_sys::HeapTuple {
        match self.event() {
            Event::Update => self.data().tg_newtuple,
            _ => self.data().tg_trigtuple,
        }
    }

    /// The row being deleted, or the old version of an updated row.
    pub fn old_tuple(&self) -> pg_sys::HeapTuple {
        self.data().tg_trigtuple
    }

    /// Read column `col` of `tuple` (a tuple of this trigger's relation).
    pub fn get(&self, tuple: pg_sys::HeapTuple, col: Column) -> Option<pg_sys::Datum> {
        let mut isnull = false;
        // SAFETY: tuple belongs to this relation and col.attnum is within its descriptor.
        let datum = unsafe { pg_sys::heap_getattr(tuple, col.attnum as i32, self.tupdesc(), &mut isnull) };
        (!isnull).then_some(datum)
    }

    /// A copy of `tuple` with the given columns replaced (`None` = NULL), as a trigger return value.
    pub fn modified<const N: usize>(
        &self,
        tuple: pg_sys::HeapTuple,
        values: [(Column, Option<pg_sys::Datum>); N],
    ) -> pg_sys::Datum {
        let mut cols = [0i32; N];
        let mut datums = [pg_sys::Datum::from(0usize); N];
        let mut nulls = [false; N];
        for (i, (col, value)) in values.iter().enumerate() {
            cols[i] = col.attnum as i32;
            datums[i] = value.unwrap_or(pg_sys::Datum::from(0usize));
            nulls[i] = value.is_none();
        }
        // SAFETY: arrays have N entries and the attnums belong to this relation.
        unsafe {
            let t = pg_sys::heap_modify_tuple_by_cols(
                tuple,
                self.tupdesc(),
                N as i32,
                cols.as_mut_ptr(),
                datums.as_mut_ptr(),
                nulls.as_mut_ptr(),
            );
            pg_sys::Datum::from(t)
        }
    }

    /// `(id)=(...)` when the table has an `id` column, else `(ctid)=(...)`: names a row in a DETAIL.
    pub fn describe_row(&self, tuple: pg_sys::HeapTuple) -> String {
        // SAFETY: tupdesc belongs to this relation; output functions accept any non-null datum of their type.
        unsafe {
            if let Some(col) = columns::find(self.relid(), self.tupdesc(), "id") {
                if let Some(datum) = self.get(tuple, col) {
                    return format!("(id)=({})", output(col.type_oid, datum));
                }
            }
            let tid = (*tuple).t_self;
            let block = ((tid.ip_blkid.bi_hi as u32) << 16) | tid.ip_blkid.bi_lo as u32;
            format!("(ctid)=({block},{})", tid.ip_posid)
        }
    }

    /// Whether column `col` differs between the old and new row of an UPDATE.
    pub fn changed(&self, col: Column) -> bool {
        let (old, new) = (self.get(self.old_tuple(), col), self.get(self.new_tuple(), col));
        match (old, new) {
            (None, None) => false,
            // SAFETY: both datums are non-null values of the column's type.
            (Some(a), Some(b)) => !unsafe { datums_equal(a, b, col) },
            _ => true,
        }
    }

    /// Reject (`42501`) a change to any of `columns` unless the current role may write them
    /// (BYPASSRLS, superuser, or the extension's own statements).
    pub fn guard_protected_columns(&self, columns: &[&str]) {
        if super::owner::may_write_protected_columns() {
            return;
        }
        for &name in columns {
            let col = self.column(name);
            let touched = match self.event() {
                Event::Update => self.changed(col),
                _ => false,
            };
            if touched {
                PgaError::new(
                    super::error::INSUFFICIENT_PRIVILEGE,
                    format!("permission denied to change column \"{name}\" of table \"{}\"", self.table_name()),
                )
                .detail(format!("Failing row {} of {}.", self.describe_row(self.old_tuple()), self.qualified_table_name()))
                .hint("Counter and limit columns are maintained by pg_assistant; only roles with BYPASSRLS may change them.")
                .raise();
            }
        }
    }

    /// Return `tuple` unchanged (row-level BEFORE/AFTER triggers).
    pub fn keep(&self, tuple: pg_sys::HeapTuple) -> pg_sys::Datum {
        pg_sys::Datum::from(tuple)
    }

    /// Make the transition tables (REFERENCING NEW/OLD TABLE) visible to SPI statements run in
    /// the currently open SPI connection.
    pub fn register_transition_tables(&self) {
        // SAFETY: called inside an open SPI connection with this call's trigger data.
        unsafe {
            pg_sys::SPI_register_trigger_data(self.data);
        }
    }
}

/// Which transition table of a statement-level trigger (`REFERENCING OLD/NEW TABLE`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Transition {
    Old,
    New,
}

/// The one row of a one-row transition table, read natively (no SPI, no statement).
pub struct TransitionRow {
    slot: *mut pg_sys::TupleTableSlot,
}

impl TransitionRow {
    pub fn get(&self, col: Column) -> Option<pg_sys::Datum> {
        let mut isnull = false;
        // SAFETY: the slot holds a tuple of the trigger's relation; attnum is within it.
        let datum = unsafe { pg_sys::slot_getattr(self.slot, col.attnum as i32, &mut isnull) };
        (!isnull).then_some(datum)
    }
}

impl Drop for TransitionRow {
    fn drop(&mut self) {
        // SAFETY: made by MakeSingleTupleTableSlot in only_transition_row.
        unsafe { pg_sys::ExecDropSingleTupleTableSlot(self.slot) }
    }
}

impl TriggerCall {
    fn transition_table(&self, which: Transition) -> *mut pg_sys::Tuplestorestate {
        match which {
            Transition::Old => self.data().tg_oldtable,
            Transition::New => self.data().tg_newtable,
        }
    }

    /// The row of transition table `which` when it holds exactly one: the one-row statement,
    /// which rules serve with a kept statement by primary key instead of a set-based one.
    pub fn only_transition_row(&self, which: Transition) -> Option<TransitionRow> {
        let store = self.transition_table(which);
        if store.is_null() {
            return None;
        }
        // SAFETY: the tuplestore belongs to this trigger event and holds tuples of the trigger's
        // relation; it is rewound before and after, so other readers find it as it was.
        unsafe {
            if pg_sys::tuplestore_tuple_count(store) != 1 {
                return None;
            }
            let slot = pg_sys::MakeSingleTupleTableSlot(self.tupdesc(), &pg_sys::TTSOpsMinimalTuple);
            let row = TransitionRow { slot };
            pg_sys::tuplestore_rescan(store);
            let found = pg_sys::tuplestore_gettupleslot(store, true, false, slot);
            pg_sys::tuplestore_rescan(store);
            found.then_some(row)
        }
    }

    /// Rows in transition table `which` (0 when the trigger has none).
    pub fn transition_len(&self, which: Transition) -> i64 {
        let store = self.transition_table(which);
        // SAFETY: as above.
        if store.is_null() { 0 } else { unsafe { pg_sys::tuplestore_tuple_count(store) } }
    }
}

/// The return value of a statement-level trigger.
pub fn statement_done() -> pg_sys::Datum {
    pg_sys::Datum::from(0usize)
}

/// Binary equality, as PostgreSQL's `datumIsEqual` (which has no binding here).
///
/// # Safety
/// `a` and `b` must be non-null values of `col`'s type.
unsafe fn datums_equal(a: pg_sys::Datum, b: pg_sys::Datum, col: Column) -> bool {
    if col.by_value {
        a == b
    } else if col.len > 0 {
        let (pa, pb) = (a.cast_mut_ptr::<u8>(), b.cast_mut_ptr::<u8>());
        std::slice::from_raw_parts(pa, col.len as usize) == std::slice::from_raw_parts(pb, col.len as usize)
    } else {
        output(col.type_oid, a) == output(col.type_oid, b)
    }
}

/// The text form of a datum of type `type_oid`.
///
/// # Safety
/// `datum` must be a valid, non-null value of `type_oid`.
pub unsafe fn output(type_oid: pg_sys::Oid, datum: pg_sys::Datum) -> String {
    let mut func = pg_sys::InvalidOid;
    let mut varlena = false;
    pg_sys::getTypeOutputInfo(type_oid, &mut func, &mut varlena);
    let text = pg_sys::OidOutputFunctionCall(func, datum);
    CStr::from_ptr(text).to_string_lossy().into_owned()
}

pub fn quote_ident(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        s.to_owned()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}
