//! Week arithmetic on PostgreSQL timestamps (microseconds since 2000-01-01 00:00 UTC).
//! Weeks start Monday 00:00 UTC (DESIGN.md section 2).

use pgrx::pg_sys;

const USECS_PER_DAY: i64 = 86_400_000_000;
const USECS_PER_WEEK: i64 = 7 * USECS_PER_DAY;
/// 2000-01-01 was a Saturday; the first Monday is two days later.
const FIRST_MONDAY: i64 = 2 * USECS_PER_DAY;

/// The first Monday 00:00 UTC strictly after `ts`. Infinite timestamps are returned as they are.
pub fn next_week_start(ts: pg_sys::TimestampTz) -> pg_sys::TimestampTz {
    if ts == i64::MAX || ts == i64::MIN {
        return ts;
    }
    let since = ts as i128 - FIRST_MONDAY as i128;
    let weeks = since.div_euclid(USECS_PER_WEEK as i128) + 1;
    let next = FIRST_MONDAY as i128 + weeks * USECS_PER_WEEK as i128;
    next.clamp(i64::MIN as i128 + 1, i64::MAX as i128 - 1) as i64
}

/// The Monday 00:00 UTC that starts the week containing `ts`.
pub fn week_start(ts: pg_sys::TimestampTz) -> pg_sys::TimestampTz {
    if ts == i64::MAX || ts == i64::MIN {
        return ts;
    }
    next_week_start(ts).saturating_sub(USECS_PER_WEEK)
}

/// "Now" for the extension's rules: the transaction timestamp, `now()`.
///
/// Superusers may pin it with `SET pg_assistant.clock_override = '<timestamptz>'` so tests can
/// stand on a week boundary; unset (the default, and the only value other roles can have) it
/// is exactly `now()`.
pub fn now() -> pg_sys::TimestampTz {
    if let Some(pinned) = CLOCK_OVERRIDE.get() {
        if !pinned.as_bytes().is_empty() {
            return parse_timestamptz(&pinned);
        }
    }
    // SAFETY: always valid inside a transaction.
    unsafe { pg_sys::GetCurrentTransactionStartTimestamp() }
}

pub static CLOCK_OVERRIDE: pgrx::GucSetting<Option<std::ffi::CString>> = pgrx::GucSetting::<Option<std::ffi::CString>>::new(None);

pub fn register_gucs() {
    pgrx::GucRegistry::define_string_guc(
        c"pg_assistant.clock_override",
        c"Pins the time pg_assistant's rules take as now (tests only).",
        c"Empty: the transaction timestamp, as now() gives. Superusers only.",
        &CLOCK_OVERRIDE,
        pgrx::GucContext::Suset,
        pgrx::GucFlags::default(),
    );
}

fn parse_timestamptz(text: &std::ffi::CStr) -> pg_sys::TimestampTz {
    // SAFETY: timestamptz_in takes (cstring, oid, int4); it raises a clear 22007 on bad input.
    unsafe {
        let datum = pgrx::direct_function_call_as_datum(
            pg_sys::timestamptz_in,
            &[
                Some(pg_sys::Datum::from(text.as_ptr())),
                Some(pg_sys::Datum::from(pg_sys::InvalidOid)),
                Some(pg_sys::Datum::from(-1i32)),
            ],
        );
        datum.map(|d| d.value() as i64).unwrap_or_else(|| pg_sys::GetCurrentTransactionStartTimestamp())
    }
}

/// A timestamp as an SPI argument of type timestamptz.
pub fn arg(value: pg_sys::TimestampTz) -> pgrx::datum::DatumWithOid<'static> {
    // SAFETY: a TimestampTz is a by-value int8 datum of type timestamptz.
    unsafe { pgrx::datum::DatumWithOid::new(pg_sys::Datum::from(value), pg_sys::TIMESTAMPTZOID) }
}

/// Whole seconds from `from` to `to`, truncated toward zero.
pub fn whole_seconds(from: pg_sys::TimestampTz, to: pg_sys::TimestampTz) -> i64 {
    (to as i128 - from as i128).div_euclid(1_000_000).clamp(i32::MIN as i128, i32::MAX as i128) as i64
}
