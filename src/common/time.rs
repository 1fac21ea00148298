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

/// The transaction timestamp, `now()`.
pub fn now() -> pg_sys::TimestampTz {
    // SAFETY: always valid inside a transaction.
    unsafe { pg_sys::GetCurrentTransactionStartTimestamp() }
}

/// Whole seconds from `from` to `to`, truncated toward zero.
pub fn whole_seconds(from: pg_sys::TimestampTz, to: pg_sys::TimestampTz) -> i64 {
    (to as i128 - from as i128).div_euclid(1_000_000).clamp(i32::MIN as i128, i32::MAX as i128) as i64
}
