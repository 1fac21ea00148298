//! Generic triggers, usable on any table: `set_updated_at()` and `forbid_update()`.

use pgrx::pg_sys;

use crate::common::error::PgaError;
use crate::common::trigger::{native_trigger, Event, Level, Timing, TriggerCall, Usage};

const BEFORE_UPDATE_ROW: Usage =
    Usage { timing: Timing::Before, level: Level::Row, events: &[Event::Update] };

native_trigger!(pga_set_updated_at, pg_finfo_pga_set_updated_at, "set_updated_at", set_updated_at);

/// BEFORE UPDATE FOR EACH ROW: set the column named by the trigger argument (default
/// `updated_at`, `timestamptz` or `timestamp`) to the transaction timestamp.
fn set_updated_at(call: &TriggerCall) -> pg_sys::Datum {
    let name = match call.arg(0) {
        Some(arg) => arg.to_str().unwrap_or("updated_at"),
        None => "updated_at",
    };
    call.require(&BEFORE_UPDATE_ROW, Some(name));
    let col = call.column(name);
    // SAFETY: transaction timestamp is always available inside a transaction.
    let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    let value = match col.type_oid {
        pg_sys::TIMESTAMPTZOID => pg_sys::Datum::from(now),
        pg_sys::TIMESTAMPOID => local_timestamp(now),
        other => PgaError::new(
            pgrx::PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!(
                "trigger \"{}\" on table \"{}\": column \"{name}\" must be of type timestamptz or timestamp",
                call.trigger_name(),
                call.table_name()
            ),
        )
        .detail(format!("Column \"{name}\" of {} has type {}.", call.qualified_table_name(), type_name(other)))
        .raise(),
    };
    call.modified(call.new_tuple(), [(col, Some(value))])
}

/// `timestamp without time zone` in the session's time zone, as `now()::timestamp` gives.
fn local_timestamp(now: pg_sys::TimestampTz) -> pg_sys::Datum {
    // SAFETY: timestamptz_timestamp is a strict builtin taking one timestamptz.
    unsafe {
        pgrx::direct_function_call_as_datum(
            pg_sys::timestamptz_timestamp,
            &[Some(pg_sys::Datum::from(now))],
        )
        .unwrap_or(pg_sys::Datum::from(now))
    }
}

fn type_name(oid: pg_sys::Oid) -> String {
    // SAFETY: format_type_be returns a palloc'd string for any type oid.
    unsafe { std::ffi::CStr::from_ptr(pg_sys::format_type_be(oid)).to_string_lossy().into_owned() }
}

native_trigger!(pga_forbid_update, pg_finfo_pga_forbid_update, "forbid_update", forbid_update);

/// BEFORE UPDATE FOR EACH ROW: reject every update. An optional trigger argument replaces
/// the message.
fn forbid_update(call: &TriggerCall) -> pg_sys::Datum {
    call.require(&BEFORE_UPDATE_ROW, None);
    let message = match call.arg(0) {
        Some(m) => m.to_string_lossy().into_owned(),
        None => format!("rows of table \"{}\" are immutable", call.table_name()),
    };
    PgaError::rule(message)
        .detail(format!(
            "Failing row {} of {}; trigger \"{}\" forbids UPDATE.",
            call.describe_row(call.old_tuple()),
            call.qualified_table_name(),
            call.trigger_name()
        ))
        .hint("Insert a new row instead, or delete and re-insert.")
        .raise()
}
