//! web (DESIGN.md 3.5, source 002): site analytics and experiments. Tables, views and policies
//! are declared in `sql/web.sql`; the two row rules are here.

use pgrx::pg_sys;

use crate::common::error::PgaError;
use crate::common::time;
use crate::common::trigger::{native_trigger, Event, Level, Timing, TriggerCall, Usage};

const BEFORE_WRITE: Usage = Usage { timing: Timing::Before, level: Level::Row, events: &[Event::Insert, Event::Update] };

native_trigger!(pga_user_sessions_duration, pg_finfo_pga_user_sessions_duration, "user_sessions_duration", user_sessions_duration);

/// `duration_seconds` is set when `exit_page` is first set (at insert too, which 002's trigger
/// missed): whole seconds from `created_at` to now, never negative.
fn user_sessions_duration(call: &TriggerCall) -> pg_sys::Datum {
    call.require(&BEFORE_WRITE, None);
    call.require_own_table(c"user_sessions");
    let new = call.new_tuple();
    if crate::common::restore::loading_dump(call.relid()) {
        return call.keep(new); // restored sessions carry their duration
    }
    let exit = call.column("exit_page");
    let first_exit = call.get(new, exit).is_some()
        && match call.event() {
            Event::Update => call.get(call.old_tuple(), exit).is_none(),
            _ => true,
        };
    if !first_exit {
        return call.keep(new);
    }
    let Some(created) = call.get(new, call.column("created_at")) else { return call.keep(new) };
    let seconds = time::whole_seconds(created.value() as i64, time::now()).clamp(0, i32::MAX as i64) as i32;
    call.modified(new, [(call.column("duration_seconds"), Some(pg_sys::Datum::from(seconds)))])
}

native_trigger!(
    pga_optimization_history_status,
    pg_finfo_pga_optimization_history_status,
    "optimization_history_status",
    optimization_history_status
);

/// The first change of status to `implemented` stamps `implemented_at` and `deployed_at`, the
/// first change to `testing` stamps `tested_at` (a stamp, once set, stays); a change to
/// `rolled_back` needs a non-empty `rollback_reason` (`P0001` `rollback_reason is required`).
/// An INSERT counts as a change from nothing.
fn optimization_history_status(call: &TriggerCall) -> pg_sys::Datum {
    call.require(&BEFORE_WRITE, None);
    call.require_own_table(c"optimization_history");
    let new = call.new_tuple();
    if crate::common::restore::loading_dump(call.relid()) {
        return call.keep(new); // restored proposals carry their stamps
    }
    let status_col = call.column("status");
    let text = |tuple: pg_sys::HeapTuple, col| {
        // SAFETY: a non-null text datum of this relation.
        call.get(tuple, col).map(|d| unsafe { crate::common::trigger::output(pg_sys::TEXTOID, d) })
    };
    let status = text(new, status_col);
    let changed = match call.event() {
        Event::Update => text(call.old_tuple(), status_col) != status,
        _ => true,
    };
    if !changed {
        return call.keep(new);
    }
    let now = Some(pg_sys::Datum::from(time::now()));
    let unset = |name: &str| call.get(new, call.column(name)).is_none();
    match status.as_deref() {
        Some("implemented") if unset("implemented_at") => {
            let deployed = call.get(new, call.column("deployed_at")).or(now);
            call.modified(new, [(call.column("implemented_at"), now), (call.column("deployed_at"), deployed)])
        }
        Some("testing") if unset("tested_at") => call.modified(new, [(call.column("tested_at"), now)]),
        Some("rolled_back") => {
            let reason = text(new, call.column("rollback_reason"));
            if reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
                PgaError::rule("rollback_reason is required")
                    .detail(format!("Failing row {} of {}.", call.describe_row(new), call.qualified_table_name()))
                    .hint("Say why the change is rolled back: SET status = 'rolled_back', rollback_reason = '...'.")
                    .raise();
            }
            call.keep(new)
        }
        _ => call.keep(new),
    }
}
