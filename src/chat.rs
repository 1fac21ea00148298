//! chat (DESIGN.md 3.2, source 003): sessions, messages and logs, every rule native.
//! Tables, triggers and policies are declared in `sql/chat.sql`.
//!
//! Row-level triggers do what must happen per row (completion stamps, the completed-session
//! guard, `user_id`); counters are written once per parent row per statement from the
//! transition tables, as the owner so row-level security cannot hide a parent row.

use std::cell::RefCell;
use std::collections::HashMap;

use pgrx::datum::{DatumWithOid, Interval, TimestampWithTimeZone};
use pgrx::pg_sys::{self, PgBuiltInOids, PgOid};
use pgrx::prelude::*;

use crate::common::error::{require_arg, PgaError, INVALID_PARAMETER};
use crate::common::owner::{
    as_owner, as_owner_by_key, as_owner_native, may_write_protected_columns, require_privileged_caller, row_security_violation,
};
use crate::common::parent::{self, Outcome};
use crate::common::plans::{self, Stmt};
use crate::common::restore::loading_dump;
use crate::common::time::{self, arg as ts};
use crate::identity::current_user_uuid;
use crate::common::trigger::{
    native_trigger, statement_done, Event, Level, Timing, Transition, TransitionRow, TriggerCall, Usage,
};

const UUID: PgOid = PgOid::BuiltIn(PgBuiltInOids::UUIDOID);
const TIMESTAMPTZ: PgOid = PgOid::BuiltIn(PgBuiltInOids::TIMESTAMPTZOID);
const INT4: PgOid = PgOid::BuiltIn(PgBuiltInOids::INT4OID);
const INT8: PgOid = PgOid::BuiltIn(PgBuiltInOids::INT8OID);
const TEXT: PgOid = PgOid::BuiltIn(PgBuiltInOids::TEXTOID);
const INTERVAL: PgOid = PgOid::BuiltIn(PgBuiltInOids::INTERVALOID);

fn uuid_text(datum: Option<pg_sys::Datum>) -> String {
    match datum {
        // SAFETY: a non-null datum of a uuid column.
        Some(d) => unsafe { crate::common::trigger::output(pg_sys::UUIDOID, d) },
        None => "NULL".into(),
    }
}

fn uuid_bytes(datum: pg_sys::Datum) -> [u8; 16] {
    // SAFETY: uuid is a pass-by-reference 16-byte value.
    unsafe { *(datum.cast_mut_ptr::<[u8; 16]>()) }
}

// ---- sessions: completion, no reopening, weekly limit, protected columns ----------------------

const SESSIONS_BEFORE_WRITE: Usage =
    Usage { timing: Timing::Before, level: Level::Row, events: &[Event::Insert, Event::Update] };

/// Written by the rules, or by callers with BYPASSRLS.
const SESSION_PROTECTED: [&str; 4] = ["completed_at", "duration_seconds", "message_count_main", "message_count_helper"];
/// On UPDATE `started_at` is protected too (the duration is measured from it), and so are the
/// session's identity and owner: row-level security checks the old and the new row at two
/// moments, between which a caller can change their own claims, so `user_id` must not move.
const SESSION_PROTECTED_ON_UPDATE: [&str; 7] =
    ["completed_at", "duration_seconds", "message_count_main", "message_count_helper", "started_at", "id", "user_id"];
/// A completed session is final for ordinary callers.
const SESSION_FINAL: [&str; 1] = ["scenario_id"];
/// How far an ordinary caller's `started_at` may be from now (client clock skew).
const STARTED_AT_SKEW_SECONDS: i64 = 300;

native_trigger!(pga_sessions_before_write, pg_finfo_pga_sessions_before_write, "sessions_before_write", sessions_before_write);

fn sessions_before_write(call: &TriggerCall) -> pg_sys::Datum {
    call.require(&SESSIONS_BEFORE_WRITE, None);
    call.require_own_table(c"sessions");
    let is_completed_col = call.column("is_completed");
    let new = call.new_tuple();
    let now_completed = call.get(new, is_completed_col).is_some_and(|d| d.value() != 0);

    let becomes_completed = match call.event() {
        Event::Update => {
            let was_completed = call.get(call.old_tuple(), is_completed_col).is_some_and(|d| d.value() != 0);
            if was_completed && !now_completed {
                let id = uuid_text(call.get(call.old_tuple(), call.column("id")));
                PgaError::rule(format!("session {id} is completed and cannot be reopened"))
                    .detail(format!("Failing row (id)=({id}) of {}.", call.qualified_table_name()))
                    .hint("Start a new session instead.")
                    .raise();
            }
            call.guard_protected_columns(&SESSION_PROTECTED_ON_UPDATE);
            if was_completed {
                call.guard_protected_columns(&SESSION_FINAL);
            }
            now_completed && !was_completed
        }
        _ => {
            if !may_write_protected_columns() {
                // Someone else's session is refused before anything of theirs is read.
                let user = call.get(new, call.column("user_id")).map(uuid_bytes);
                if user.is_none() || user != caller() {
                    row_security_violation("sessions");
                }
                reject_supplied_counters(call);
                check_started_at(call);
            }
            now_completed
        }
    };
    // The weekly limit is enforced per statement (sessions_count_completions), under the
    // profile's row lock.

    if !becomes_completed {
        return call.keep(new);
    }
    let completed_at_col = call.column("completed_at");
    let started_at = call.get(new, call.column("started_at"));
    let completed_at = call.get(new, completed_at_col).map(|d| d.value() as i64).unwrap_or_else(time::now);
    let duration = started_at.map(|s| time::whole_seconds(s.value() as i64, completed_at) as i32);
    call.modified(
        new,
        [
            (completed_at_col, Some(pg_sys::Datum::from(completed_at))),
            (call.column("duration_seconds"), duration.map(pg_sys::Datum::from)),
        ],
    )
}

/// An ordinary user's new session starts with zero counters and no completion stamps.
fn reject_supplied_counters(call: &TriggerCall) {
    let new = call.new_tuple();
    for name in SESSION_PROTECTED {
        let value = call.get(new, call.column(name));
        let supplied = match name {
            "message_count_main" | "message_count_helper" => value.is_some_and(|d| d.value() as i32 != 0),
            _ => value.is_some(),
        };
        if supplied {
            PgaError::new(
                crate::common::error::INSUFFICIENT_PRIVILEGE,
                format!("permission denied to set column \"{name}\" of table \"sessions\""),
            )
            .detail(format!("Failing row {} of {}.", call.describe_row(new), call.qualified_table_name()))
            .hint("Counters and completion stamps are maintained by pg_assistant; leave them at their defaults.")
            .raise();
        }
    }
}

/// An ordinary user's session starts now: `started_at` within a few minutes of the current time.
fn check_started_at(call: &TriggerCall) {
    let Some(started) = call.get(call.new_tuple(), call.column("started_at")) else { return };
    let started = started.value() as i64;
    let now = time::now();
    let skew = (started as i128 - now as i128).abs();
    if skew > STARTED_AT_SKEW_SECONDS as i128 * 1_000_000 {
        PgaError::rule(format!("started_at must be within {} minutes of the current time", STARTED_AT_SKEW_SECONDS / 60))
            .detail(format!("started_at was {}; the current time is {}.", timestamp_text(started), timestamp_text(now)))
            .hint("Leave started_at out: it defaults to now().")
            .raise();
    }
}

fn timestamp_text(ts: pg_sys::TimestampTz) -> String {
    // SAFETY: the output function of timestamptz accepts any value, infinities included.
    unsafe { crate::common::trigger::output(pg_sys::TIMESTAMPTZOID, pg_sys::Datum::from(ts)) }
}

// ---- sessions: profile completion counters, once per profile per statement -------------------

/// `$1` now, `$2` start of the current week, `$3` start of the next week. `c` holds, per session
/// row, `started` (1 for each inserted row) and `sign` (+1 for each completed new row, -1 for
/// each completed old row); what nets to zero touches nothing. A profile whose week has ended
/// starts the new one: both weekly counters restart from this statement's rows.
macro_rules! profile_counts_sql {
    ($rows:literal) => {
        concat!(
            "WITH c(user_id, started, sign, completed_at) AS (", $rows, "),
             d AS (SELECT user_id, sum(started) AS started, sum(sign) AS total,
                          coalesce(sum(sign) FILTER (WHERE completed_at >= $2), 0) AS weekly
                     FROM c GROUP BY user_id
                   HAVING sum(started) <> 0 OR sum(sign) <> 0
                       OR coalesce(sum(sign) FILTER (WHERE completed_at >= $2), 0) <> 0)
             UPDATE @extschema@.profiles p
                SET weekly_started_sessions = CASE WHEN p.week_reset_date <= $1
                                                   THEN d.started
                                                   ELSE p.weekly_started_sessions + d.started END,
                    total_completed_sessions = greatest(p.total_completed_sessions + d.total, 0),
                    weekly_completed_sessions = CASE WHEN p.week_reset_date <= $1
                                                     THEN greatest(d.weekly, 0)
                                                     ELSE greatest(p.weekly_completed_sessions + d.weekly, 0) END,
                    week_reset_date = CASE WHEN p.week_reset_date <= $1 THEN $3 ELSE p.week_reset_date END
               FROM d
              WHERE p.id = d.user_id
          RETURNING p.id, p.weekly_started_sessions, p.weekly_session_limit, d.started, p.week_reset_date"
        )
    };
}

static SESSIONS_INSERTED: Stmt = Stmt::new(
    profile_counts_sql!("SELECT user_id, 1, CASE WHEN is_completed THEN 1 ELSE 0 END, completed_at FROM new_rows"),
    &[TIMESTAMPTZ, TIMESTAMPTZ, TIMESTAMPTZ],
);
/// A session moved by a profile's id changing (`ON UPDATE CASCADE`) stays counted where it was:
/// its old profile id no longer exists, and the renamed profile already holds its count.
static SESSIONS_UPDATED: Stmt = Stmt::new(
    profile_counts_sql!(
        "SELECT n.user_id, 0, 1, n.completed_at
           FROM new_rows n LEFT JOIN old_rows o ON o.id = n.id
          WHERE n.is_completed
            AND (o.id IS NULL OR o.user_id = n.user_id
                 OR EXISTS (SELECT FROM @extschema@.profiles p WHERE p.id = o.user_id))
         UNION ALL
         SELECT user_id, 0, -1, completed_at FROM old_rows WHERE is_completed"
    ),
    &[TIMESTAMPTZ, TIMESTAMPTZ, TIMESTAMPTZ],
);
/// A statement's profiles, locked in id order before their counters are written: two
/// statements over the same profiles then wait for each other instead of deadlocking.
static LOCK_PROFILES_INSERTED: Stmt = Stmt::new(
    "SELECT 1 FROM @extschema@.profiles WHERE id IN (SELECT user_id FROM new_rows) ORDER BY id FOR NO KEY UPDATE",
    &[],
);
static LOCK_PROFILES_UPDATED: Stmt = Stmt::new(
    "SELECT 1 FROM @extschema@.profiles
      WHERE id IN (SELECT user_id FROM new_rows UNION SELECT user_id FROM old_rows) ORDER BY id FOR NO KEY UPDATE",
    &[],
);
static LOCK_PROFILES_DELETED: Stmt = Stmt::new(
    "SELECT 1 FROM @extschema@.profiles WHERE id IN (SELECT user_id FROM old_rows) ORDER BY id FOR NO KEY UPDATE",
    &[],
);
static SESSIONS_DELETED: Stmt = Stmt::new(
    profile_counts_sql!("SELECT user_id, 0, -1, completed_at FROM old_rows WHERE is_completed"),
    &[TIMESTAMPTZ, TIMESTAMPTZ, TIMESTAMPTZ],
);

const AFTER_STATEMENT_ANY: Usage = Usage {
    timing: Timing::After,
    level: Level::Statement,
    events: &[Event::Insert, Event::Update, Event::Delete],
};

native_trigger!(
    pga_sessions_count_completions,
    pg_finfo_pga_sessions_count_completions,
    "sessions_count_completions",
    sessions_count_completions
);

/// A profile past its weekly limit after this statement's inserts.
struct OverLimit {
    profile: pgrx::Uuid,
    started_before: i64,
    limit: i32,
    resets: pg_sys::TimestampTz,
}

/// Keeps the profile counters: sessions started this week (never decremented, so deleting a
/// session does not hand its slot back), completions in total and this week. The started
/// count is checked against `weekly_session_limit` after the increment, under the profile's
/// row lock, so concurrent inserts are counted one after the other and cannot pass together.
fn sessions_count_completions(call: &TriggerCall) -> pg_sys::Datum {
    call.require(&AFTER_STATEMENT_ANY, None);
    call.require_own_table(c"sessions");
    if loading_dump(call.relid()) {
        return statement_done(); // restored profiles carry their counters
    }
    let (lock, stmt) = match call.event() {
        Event::Insert => (&LOCK_PROFILES_INSERTED, &SESSIONS_INSERTED),
        Event::Update => (&LOCK_PROFILES_UPDATED, &SESSIONS_UPDATED),
        _ => (&LOCK_PROFILES_DELETED, &SESSIONS_DELETED),
    };
    let check_limit = call.event() == Event::Insert;
    let now = time::now();
    let over_limit = |rows: pgrx::spi::SpiTupleTable<'_>| {
        if !check_limit {
            return None;
        }
        rows.filter_map(|row| {
            let limit: i32 = row.get(3).ok().flatten()?;
            let started: i32 = row.get(2).ok().flatten().unwrap_or(0);
            let added: i64 = row.get(4).ok().flatten().unwrap_or(0);
            (started as i64 > limit as i64).then(|| OverLimit {
                profile: row.get(1).ok().flatten().unwrap_or(pgrx::Uuid::from_bytes([0; 16])),
                started_before: started as i64 - added,
                limit,
                resets: row
                    .get::<TimestampWithTimeZone>(5)
                    .ok()
                    .flatten()
                    .unwrap_or(TimestampWithTimeZone::positive_infinity())
                    .into_inner(),
            })
        })
        .next()
    };
    let over = match one_session_change(call, now) {
        // A one-row statement: nothing to count (a message count or updated_at changed), or
        // one profile to bump by primary key.
        Some(None) => return statement_done(),
        Some(Some(change)) => match add_to_profile(&change, now, check_limit) {
            Outcome::Written(over) => over,
            Outcome::Missing => None,
            Outcome::Declined => as_owner_by_key(|| {
                // SAFETY: `change.user` is a non-null uuid datum of the transition row, alive while `row` is.
                let user = unsafe { DatumWithOid::new(change.user, UUID.value()) };
                plans::with(
                    &PROFILE_COUNTS_ONE,
                    &[
                        user,
                        ts(now),
                        ts(time::next_week_start(now)),
                        change.started.into(),
                        change.total.into(),
                        change.weekly.into(),
                    ],
                    over_limit,
                )
            }),
        },
        None => as_owner(|| {
            Spi::connect_mut(|client| {
                call.register_transition_tables();
                plans::run(client, lock, &[]);
                let rows = plans::run(client, stmt, &[ts(now), ts(time::week_start(now)), ts(time::next_week_start(now))]);
                over_limit(rows)
            })
        }),
    };
    if let Some(o) = over {
        PgaError::rule("weekly session limit reached")
            .detail(format!(
                "Profile {} has started {} of {} sessions allowed this week.",
                o.profile, o.started_before, o.limit
            ))
            .hint(format!("The weekly counter resets on {}.", timestamp_text(o.resets)))
            .raise();
    }
    statement_done()
}

/// What a one-row session statement changes on its profile: sessions started (0 or 1),
/// completions in total and this week (-1, 0 or +1), for the profile `user`.
struct SessionChange {
    user: pg_sys::Datum,
    started: i32,
    total: i32,
    weekly: i32,
    // Keeps the transition rows (and so `user`) alive.
    _rows: [Option<TransitionRow>; 2],
}

/// `None`: not a one-row statement (or one that moved a session to another profile), for the
/// set-based statement. `Some(None)`: a one-row statement that changes no counter.
fn one_session_change(call: &TriggerCall, now: pg_sys::TimestampTz) -> Option<Option<SessionChange>> {
    let week_start = time::week_start(now);
    let (user_col, completed_col, completed_at_col) =
        (call.column("user_id"), call.column("is_completed"), call.column("completed_at"));
    // (+1 if completed, +1 if completed this week) of one row.
    let counts = |row: &TransitionRow| {
        let completed = row.get(completed_col).is_some_and(|d| d.value() != 0);
        let this_week = completed && row.get(completed_at_col).is_some_and(|d| d.value() as i64 >= week_start);
        (completed as i32, this_week as i32)
    };
    let (old, new) = match call.event() {
        Event::Insert => (None, Some(call.only_transition_row(Transition::New)?)),
        Event::Update => {
            let old = call.only_transition_row(Transition::Old)?;
            let new = call.only_transition_row(Transition::New)?;
            match (old.get(user_col), new.get(user_col)) {
                (Some(a), Some(b)) if uuid_bytes(a) == uuid_bytes(b) => {}
                _ => return None,
            }
            (Some(old), Some(new))
        }
        _ => (Some(call.only_transition_row(Transition::Old)?), None),
    };
    let (old_total, old_weekly) = old.as_ref().map(counts).unwrap_or((0, 0));
    let (new_total, new_weekly) = new.as_ref().map(counts).unwrap_or((0, 0));
    let started = (call.event() == Event::Insert) as i32;
    let (total, weekly) = (new_total - old_total, new_weekly - old_weekly);
    if started == 0 && total == 0 && weekly == 0 {
        return Some(None);
    }
    let user = new.as_ref().or(old.as_ref())?.get(user_col)?;
    Some(Some(SessionChange { user, started, total, weekly, _rows: [old, new] }))
}

/// [`profile_counts_sql`] for one profile by primary key: `$1` profile, `$2` now, `$3` start of
/// the next week, `$4` sessions started, `$5` completions, `$6` completions this week.
static PROFILE_COUNTS_ONE: Stmt = Stmt::new(
    "UPDATE @extschema@.profiles p
        SET weekly_started_sessions = CASE WHEN p.week_reset_date <= $2 THEN $4 ELSE p.weekly_started_sessions + $4 END,
            total_completed_sessions = greatest(p.total_completed_sessions + $5, 0),
            weekly_completed_sessions = CASE WHEN p.week_reset_date <= $2
                                             THEN greatest($6, 0)
                                             ELSE greatest(p.weekly_completed_sessions + $6, 0) END,
            week_reset_date = CASE WHEN p.week_reset_date <= $2 THEN $3 ELSE p.week_reset_date END
      WHERE p.id = $1
  RETURNING p.id, p.weekly_started_sessions, p.weekly_session_limit, $4::pg_catalog.int8, p.week_reset_date",
    &[UUID, TIMESTAMPTZ, TIMESTAMPTZ, INT4, INT4, INT4],
);

/// [`PROFILE_COUNTS_ONE`], natively (common::parent); with `check_limit`, the profile past its
/// weekly limit after the increment, if it is.
fn add_to_profile(change: &SessionChange, now: pg_sys::TimestampTz, check_limit: bool) -> Outcome<Option<OverLimit>> {
    parent::update_by_key(c"profiles", c"profiles_pkey", pg_sys::F_UUID_EQ, change.user, |p| {
        let resets = p.get("week_reset_date").map_or(i64::MIN, |d| d.value() as i64);
        let stale = resets <= now;
        let (started, total, weekly) =
            (p.get_i32("weekly_started_sessions").unwrap_or(0), p.get_i32("total_completed_sessions").unwrap_or(0),
             p.get_i32("weekly_completed_sessions").unwrap_or(0));
        let started = p.add_i32("weekly_started_sessions", if stale { 0 } else { started }, change.started);
        p.add_i32("total_completed_sessions", total, change.total);
        p.add_i32("weekly_completed_sessions", if stale { 0 } else { weekly }, change.weekly);
        let resets = if stale { time::next_week_start(now) } else { resets };
        p.set("week_reset_date", resets.into());
        let limit = p.get_i32("weekly_session_limit").filter(|_| check_limit)?;
        (started > limit).then(|| OverLimit {
            profile: pgrx::Uuid::from_bytes(uuid_bytes(change.user)),
            started_before: (started - change.started) as i64,
            limit,
            resets,
        })
    })
}

/// The caller's JWT subject (`current_user_id()`), as bytes.
fn caller() -> Option<[u8; 16]> {
    current_user_uuid().map(|u| *u.as_bytes())
}

// ---- messages: user_id from the session, completed-session guard -----------------------------

#[derive(Clone, Copy)]
struct SessionFacts {
    user_id: [u8; 16],
    is_completed: bool,
    /// Where the version read is: the counter trigger of the same statement starts there.
    seen: crate::common::lookup::Seen,
}

thread_local! {
    // Sessions looked up by the current INSERT statement: a 100,000-row batch into 100
    // sessions reads each session once. Cleared when the statement's counter trigger runs
    // and at every (sub)transaction end.
    static SESSION_FACTS: RefCell<HashMap<[u8; 16], Option<SessionFacts>>> = RefCell::new(HashMap::new());
}

pub fn forget_statement_state() {
    SESSION_FACTS.with(|c| c.borrow_mut().clear());
}

/// The session's owner and state, read natively through its primary key (the caller may not
/// be able to see it; nothing of it is shown to them).
fn lookup_session(session: pg_sys::Datum) -> Option<SessionFacts> {
    crate::common::lookup::by_unique_key(c"sessions", c"sessions_pkey", pg_sys::F_UUID_EQ, session, |row| {
        Some(SessionFacts {
            user_id: uuid_bytes(row.get("user_id")?),
            is_completed: row.get("is_completed").is_some_and(|d| d.value() != 0),
            seen: row.seen(),
        })
    })
    .flatten()
}

/// Where this statement read `session`, if it did.
fn session_seen(session: pg_sys::Datum) -> Option<crate::common::lookup::Seen> {
    let key = uuid_bytes(session);
    SESSION_FACTS.with(|c| c.borrow().get(&key).copied().flatten().map(|f| f.seen))
}

/// [`lookup_session`], once per session per INSERT statement.
fn session_facts(session: pg_sys::Datum) -> Option<SessionFacts> {
    let key = uuid_bytes(session);
    if let Some(hit) = SESSION_FACTS.with(|c| c.borrow().get(&key).copied()) {
        return hit;
    }
    let facts = lookup_session(session);
    SESSION_FACTS.with(|c| c.borrow_mut().insert(key, facts));
    facts
}

const BEFORE_INSERT_ROW: Usage = Usage { timing: Timing::Before, level: Level::Row, events: &[Event::Insert] };

native_trigger!(pga_messages_before_insert, pg_finfo_pga_messages_before_insert, "messages_before_insert", messages_before_insert);

fn messages_before_insert(call: &TriggerCall) -> pg_sys::Datum {
    call.require(&BEFORE_INSERT_ROW, None);
    call.require_own_table(c"messages");
    let new = call.new_tuple();
    let session_col = call.column("session_id");
    // NOT NULL on session_id reports a missing value.
    let Some(session) = call.get(new, session_col) else { return call.keep(new) };
    let Some(facts) = session_facts(session) else {
        PgaError::new(
            pgrx::PgSqlErrorCode::ERRCODE_FOREIGN_KEY_VIOLATION,
            "insert or update on table \"messages\" violates foreign key constraint \"messages_session_id_fkey\"",
        )
        .detail(format!("Key (session_id)=({}) is not present in table \"sessions\".", uuid_text(Some(session))))
        .raise()
    };
    // Someone else's session: refused before its state or owner can show in an error.
    if !may_write_protected_columns() && caller() != Some(facts.user_id) {
        row_security_violation("messages");
    }
    if facts.is_completed && !loading_dump(call.relid()) {
        completed_session_error(&uuid_text(Some(session)));
    }
    let user_col = call.column("user_id");
    match call.get(new, user_col) {
        None => call.modified(new, [(user_col, Some(pg_sys::Datum::from(facts.user_id.as_ptr())))]),
        Some(given) if uuid_bytes(given) == facts.user_id => call.keep(new),
        Some(given) => PgaError::rule("message user_id does not match its session")
            .detail(format!(
                "Message user_id {} differs from user_id {} of session {}.",
                uuid_text(Some(given)),
                pgrx::Uuid::from_bytes(facts.user_id),
                uuid_text(Some(session))
            ))
            .hint("Leave user_id out: it is filled from the session.")
            .raise(),
    }
}

fn completed_session_error(session: &str) -> ! {
    PgaError::rule(format!("cannot add messages to completed session {session}"))
        .detail(format!("Session {session} is completed; its messages are final."))
        .hint("Start a new session to continue the conversation.")
        .raise()
}

// ---- messages: per-session counts, once per session per statement -----------------------------

/// Per-session counts of the `main` and `helper` messages in `$rows` (a transition table),
/// applied to the sessions as `$set`, once per session.
macro_rules! message_counts_sql {
    ($rows:literal, $set:literal, $tail:literal) => {
        concat!(
            "WITH d AS (SELECT session_id,
                               count(*) FILTER (WHERE chat_type = 'main') AS main,
                               count(*) FILTER (WHERE chat_type = 'helper') AS helper
                          FROM ", $rows, " GROUP BY session_id)
             UPDATE @extschema@.sessions s SET ", $set, "
               FROM d
              WHERE s.id = d.session_id ", $tail
        )
    };
}

/// Bumps the counts and returns each touched session's `is_completed`: the row lock taken here
/// serialises with a concurrent completion, so a session completed after the row-level check
/// still rejects the statement.
static MESSAGES_INSERTED: Stmt = Stmt::new(
    message_counts_sql!(
        "new_rows",
        "message_count_main = s.message_count_main + d.main, message_count_helper = s.message_count_helper + d.helper",
        "RETURNING s.id, s.is_completed"
    ),
    &[],
);
/// Lowers the counts and returns each touched session's `is_completed`, under its row lock.
static MESSAGES_DELETED: Stmt = Stmt::new(
    message_counts_sql!(
        "old_rows",
        "message_count_main = greatest(s.message_count_main - d.main, 0),
         message_count_helper = greatest(s.message_count_helper - d.helper, 0)",
        "RETURNING s.id, s.is_completed"
    ),
    &[],
);

/// A statement's sessions, locked in id order before their counts are written (no deadlock
/// between statements over the same sessions in different orders).
static LOCK_SESSIONS_INSERTED: Stmt = Stmt::new(
    "SELECT 1 FROM @extschema@.sessions WHERE id IN (SELECT session_id FROM new_rows) ORDER BY id FOR NO KEY UPDATE",
    &[],
);
static LOCK_SESSIONS_DELETED: Stmt = Stmt::new(
    "SELECT 1 FROM @extschema@.sessions WHERE id IN (SELECT session_id FROM old_rows) ORDER BY id FOR NO KEY UPDATE",
    &[],
);

/// [`message_counts_sql`] for one session by primary key: `$2` and `$3` are added to the main
/// and helper counts (negative for deletes).
static MESSAGE_COUNTS_ONE: Stmt = Stmt::new(
    "UPDATE @extschema@.sessions s
        SET message_count_main = greatest(s.message_count_main + $2, 0),
            message_count_helper = greatest(s.message_count_helper + $3, 0)
      WHERE s.id = $1
  RETURNING s.id, s.is_completed",
    &[UUID, INT4, INT4],
);

thread_local! {
    // (type oid, oid of its label 'main'), looked up once per backend.
    static MAIN_LABEL: std::cell::Cell<(pg_sys::Oid, pg_sys::Oid)> =
        const { std::cell::Cell::new((pg_sys::InvalidOid, pg_sys::InvalidOid)) };
}

/// Whether a `chat_type` value is `'main'` (enum values are the OIDs of their labels).
fn is_main_chat(value: pg_sys::Datum, type_oid: pg_sys::Oid) -> bool {
    let (cached_type, main) = MAIN_LABEL.get();
    let main = if cached_type == type_oid {
        main
    } else {
        // SAFETY: a syscache lookup of pg_enum by (type, label), released at once.
        let main = unsafe {
            let tuple = pg_sys::SearchSysCache2(
                pg_sys::SysCacheIdentifier::ENUMTYPOIDNAME as i32,
                pg_sys::Datum::from(type_oid),
                pg_sys::Datum::from(c"main".as_ptr()),
            );
            if tuple.is_null() {
                pg_sys::InvalidOid
            } else {
                let oid = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_enum>(tuple)).oid;
                pg_sys::ReleaseSysCache(tuple);
                oid
            }
        };
        MAIN_LABEL.set((type_oid, main));
        main
    };
    pg_sys::Oid::from(value.value() as u32) == main
}

const AFTER_STATEMENT_INSERT_DELETE: Usage =
    Usage { timing: Timing::After, level: Level::Statement, events: &[Event::Insert, Event::Delete] };

native_trigger!(pga_messages_count, pg_finfo_pga_messages_count, "messages_count", messages_count);

fn messages_count(call: &TriggerCall) -> pg_sys::Datum {
    call.require(&AFTER_STATEMENT_INSERT_DELETE, None);
    call.require_own_table(c"messages");
    if loading_dump(call.relid()) {
        forget_statement_state();
        return statement_done(); // restored sessions carry their counts
    }
    let inserted = call.event() == Event::Insert;
    // A completed session's messages are final for ordinary users: no additions (everyone)
    // and no deletions (callers without BYPASSRLS; deleting the whole session stays allowed).
    let guard = inserted || !may_write_protected_columns();
    let completed_session = |rows: pgrx::spi::SpiTupleTable<'_>| {
        if !guard {
            return None;
        }
        rows.filter_map(|row| {
            let done: bool = row.get(2).ok().flatten().unwrap_or(false);
            if done {
                row.get::<pgrx::Uuid>(1).ok().flatten()
            } else {
                None
            }
        })
        .next()
    };
    let only = call.only_transition_row(if inserted { Transition::New } else { Transition::Old });
    let completed = match only.as_ref().and_then(|row| Some((row.get(call.column("session_id"))?, row))) {
        // One row: one session, by primary key.
        Some((session, row)) => {
            let chat_type = call.column("chat_type");
            let main = row.get(chat_type).is_some_and(|d| is_main_chat(d, chat_type.type_oid));
            let sign = if inserted { 1 } else { -1 };
            let (main, helper) = if main { (sign, 0) } else { (0, sign) };
            // The statement's own facts end here: the SQL fallback below must not see them.
            let seen = if inserted { session_seen(session) } else { None };
            forget_statement_state();
            let counted = parent::update_by_key_at(c"sessions", c"sessions_pkey", pg_sys::F_UUID_EQ, session, seen, |s| {
                let column = if main != 0 { "message_count_main" } else { "message_count_helper" };
                s.add_i32(column, s.get_i32(column).unwrap_or(0), main + helper);
                s.get("is_completed").is_some_and(|d| d.value() != 0)
            });
            match counted {
                Outcome::Written(done) => (guard && done).then(|| pgrx::Uuid::from_bytes(uuid_bytes(session))),
                Outcome::Missing => None,
                Outcome::Declined => {
                    // SAFETY: a non-null uuid datum of the transition row, alive while `only` is.
                    let session = unsafe { DatumWithOid::new(session, UUID.value()) };
                    as_owner_by_key(|| plans::with(&MESSAGE_COUNTS_ONE, &[session, main.into(), helper.into()], completed_session))
                }
            }
        }
        None if call.transition_len(if inserted { Transition::New } else { Transition::Old }) == 0 => {
            forget_statement_state();
            None
        }
        None => as_owner(|| {
            forget_statement_state();
            Spi::connect_mut(|client| {
                call.register_transition_tables();
                plans::run(client, if inserted { &LOCK_SESSIONS_INSERTED } else { &LOCK_SESSIONS_DELETED }, &[]);
                let stmt = if inserted { &MESSAGES_INSERTED } else { &MESSAGES_DELETED };
                let rows = plans::run(client, stmt, &[]);
                completed_session(rows)
            })
        }),
    };
    match completed {
        Some(session) if inserted => completed_session_error(&session.to_string()),
        Some(session) => PgaError::rule(format!("cannot delete messages of completed session {session}"))
            .detail(format!("Session {session} is completed; its messages are final."))
            .hint("Delete the whole session instead.")
            .raise(),
        None => statement_done(),
    }
}

// ---- logs: ordinary callers write only their own rows, never the id or the time -------------

native_trigger!(pga_logs_before_insert, pg_finfo_pga_logs_before_insert, "logs_before_insert", logs_before_insert);

/// For callers without BYPASSRLS: `session_id` must be one of the caller's sessions (`42501`
/// otherwise, before anything of the session shows), and `id` and `created_at` are assigned
/// here whatever the statement said (`OVERRIDING SYSTEM VALUE` cannot reserve future ids, and
/// a log cannot be dated out of reach of the retention job).
fn logs_before_insert(call: &TriggerCall) -> pg_sys::Datum {
    call.require(&BEFORE_INSERT_ROW, None);
    call.require_own_table(c"logs");
    let new = call.new_tuple();
    if may_write_protected_columns() {
        return call.keep(new);
    }
    if let Some(session) = call.get(new, call.column("session_id")) {
        // A missing session is the foreign key's to report (23503).
        if lookup_session(session).is_some_and(|facts| caller() != Some(facts.user_id)) {
            row_security_violation("logs");
        }
    }
    let Some(sequence) = crate::common::schema::relation(c"logs_id_seq") else { return call.keep(new) };
    let id = as_owner_native(|| {
        // SAFETY: nextval_oid takes one regclass argument; the owner may use the sequence.
        unsafe {
            pgrx::direct_function_call_as_datum(pg_sys::nextval_oid, &[Some(pg_sys::Datum::from(sequence))])
        }
    });
    call.modified(
        new,
        [(call.column("id"), id), (call.column("created_at"), Some(pg_sys::Datum::from(time::now())))],
    )
}

// ---- jobs --------------------------------------------------------------------------------------

static RESET_DUE: Stmt = Stmt::new(
    "UPDATE @extschema@.profiles SET weekly_completed_sessions = 0, weekly_started_sessions = 0, week_reset_date = $2
      WHERE week_reset_date <= $1",
    &[TIMESTAMPTZ, TIMESTAMPTZ],
);
static RESET_DUE_BATCH: Stmt = Stmt::new(
    "UPDATE @extschema@.profiles SET weekly_completed_sessions = 0, weekly_started_sessions = 0, week_reset_date = $2
      WHERE id IN (SELECT id FROM @extschema@.profiles WHERE week_reset_date <= $1
                    ORDER BY week_reset_date, id LIMIT $3 FOR UPDATE)",
    &[TIMESTAMPTZ, TIMESTAMPTZ, INT4],
);

/// Zeroes the weekly counter and moves `week_reset_date` to the next Monday for every profile
/// whose reset date has passed; returns the rows changed. A second run in the same week finds
/// nothing (by index) and rewrites nothing. With `batch_size`, at most that many rows per call.
#[pg_extern(volatile, parallel_unsafe)]
fn reset_weekly_limits(batch_size: default!(Option<i32>, "NULL")) -> i32 {
    require_privileged_caller("reset_weekly_limits");
    if batch_size.is_some_and(|b| b < 1) {
        PgaError::invalid("batch_size must be at least 1")
            .detail(format!("batch_size was {}.", batch_size.unwrap_or_default()))
            .hint("Pass NULL to reset every due profile at once.")
            .raise();
    }
    let now = time::now();
    let next = time::next_week_start(now);
    let changed = as_owner(|| match batch_size {
        None => plans::exec(&RESET_DUE, &[ts(now), ts(next)]),
        Some(b) => plans::exec(&RESET_DUE_BATCH, &[ts(now), ts(next), b.into()]),
    });
    changed as i32
}

static JOB_LOG: Stmt = Stmt::new(
    "INSERT INTO @extschema@.logs (level, event, message, metadata)
     VALUES ('info', 'job', $1,
             pg_catalog.jsonb_build_object('job', $1, 'started_at', $2, 'finished_at', pg_catalog.clock_timestamp(),
                                           'rows_deleted', $3,
                                           'older_than_seconds', pg_catalog.date_part('epoch', $4)))",
    &[TEXT, TIMESTAMPTZ, INT8, INTERVAL],
);

fn validated_age(older_than: Option<Interval>) -> Interval {
    let age = require_arg(older_than, "older_than");
    // Months and days have no fixed length; approximate as PostgreSQL's own interval comparison does.
    let micros = age.months() as i128 * 30 * 86_400_000_000 + age.days() as i128 * 86_400_000_000 + age.micros() as i128;
    if micros < 0 {
        PgaError::new(INVALID_PARAMETER, "older_than must not be negative")
            .detail(format!("older_than was {age}."))
            .raise();
    }
    age
}

fn run_retention_job(job: &str, delete: &'static Stmt, older_than: Interval) -> i32 {
    // SAFETY: clock reads.
    let started = unsafe { pg_sys::GetCurrentTimestamp() };
    let now = time::now();
    let deleted = as_owner(|| {
        let n = plans::exec(delete, &[ts(now), older_than.into()]);
        log_job(job, started, n, Some(older_than));
        n
    });
    deleted as i32
}

/// Writes the one `logs` row of a job run (`event = 'job'`); inside [`as_owner`].
pub(crate) fn log_job(job: &str, started: pg_sys::TimestampTz, rows_deleted: u64, older_than: Option<Interval>) {
    let older_than = older_than.map(DatumWithOid::from).unwrap_or_else(|| DatumWithOid::null_oid(INTERVAL.value()));
    plans::exec(&JOB_LOG, &[job.into(), ts(started), (rows_deleted as i64).into(), older_than]);
}

static DELETE_EXPIRED_SESSIONS: Stmt =
    Stmt::new("DELETE FROM @extschema@.sessions WHERE started_at < $1 - $2", &[TIMESTAMPTZ, INTERVAL]);
static DELETE_OLD_LOGS: Stmt =
    Stmt::new("DELETE FROM @extschema@.logs WHERE created_at < $1 - $2", &[TIMESTAMPTZ, INTERVAL]);

/// Deletes sessions started more than `older_than` ago (with their messages); completion
/// counters follow, as for any delete. Writes one `logs` row (`event = 'job'`).
#[pg_extern(volatile, parallel_unsafe)]
fn delete_expired_sessions(older_than: default!(Option<Interval>, "'90 days'")) -> i32 {
    require_privileged_caller("delete_expired_sessions");
    run_retention_job("delete_expired_sessions", &DELETE_EXPIRED_SESSIONS, validated_age(older_than))
}

/// Deletes logs older than `older_than`, then writes one `logs` row (`event = 'job'`).
#[pg_extern(volatile, parallel_unsafe)]
fn delete_old_logs(older_than: default!(Option<Interval>, "'30 days'")) -> i32 {
    require_privileged_caller("delete_old_logs");
    run_retention_job("delete_old_logs", &DELETE_OLD_LOGS, validated_age(older_than))
}

// ---- counter verification and repair -----------------------------------------------------------

/// Every stored counter next to its recount. `$1` now, `$2` start of the current week; a weekly
/// counter whose reset date has passed counts as zero.
const RECOUNT: &str = "
    WITH c AS (SELECT user_id, count(*) AS total, count(*) FILTER (WHERE completed_at >= $2) AS weekly
                 FROM @extschema@.sessions WHERE is_completed GROUP BY user_id),
         m AS (SELECT session_id, count(*) FILTER (WHERE chat_type = 'main') AS main,
                      count(*) FILTER (WHERE chat_type = 'helper') AS helper
                 FROM @extschema@.messages GROUP BY session_id),
         counters(table_name, row_id, column_name, stored, actual) AS (
             SELECT 'profiles', p.id, 'total_completed_sessions', p.total_completed_sessions::bigint, coalesce(c.total, 0)
               FROM @extschema@.profiles p LEFT JOIN c ON c.user_id = p.id
             UNION ALL
             SELECT 'profiles', p.id, 'weekly_completed_sessions',
                    CASE WHEN p.week_reset_date <= $1 THEN 0 ELSE p.weekly_completed_sessions END::bigint,
                    coalesce(c.weekly, 0)
               FROM @extschema@.profiles p LEFT JOIN c ON c.user_id = p.id
             UNION ALL
             SELECT 'sessions', s.id, 'message_count_main', s.message_count_main::bigint, coalesce(m.main, 0)
               FROM @extschema@.sessions s LEFT JOIN m ON m.session_id = s.id
             UNION ALL
             SELECT 'sessions', s.id, 'message_count_helper', s.message_count_helper::bigint, coalesce(m.helper, 0)
               FROM @extschema@.sessions s LEFT JOIN m ON m.session_id = s.id
             UNION ALL
             SELECT 'conversations', c.id, 'message_count', c.message_count::bigint,
                    (SELECT count(*) FROM @extschema@.conversation_messages cm WHERE cm.conversation_id = c.id)
               FROM @extschema@.conversations c)
    SELECT table_name::text, row_id, column_name::text, stored, actual FROM counters WHERE stored <> actual";

static VERIFY: Stmt = Stmt::new(RECOUNT, &[TIMESTAMPTZ, TIMESTAMPTZ]);

static REPAIR_PROFILES: Stmt = Stmt::new(
    "WITH c AS (SELECT user_id, count(*) AS total, count(*) FILTER (WHERE completed_at >= $2) AS weekly
                  FROM @extschema@.sessions WHERE is_completed GROUP BY user_id),
          fix AS (SELECT p.id, coalesce(c.total, 0) AS total, coalesce(c.weekly, 0) AS weekly
                    FROM @extschema@.profiles p LEFT JOIN c ON c.user_id = p.id
                   WHERE p.total_completed_sessions <> coalesce(c.total, 0)
                      OR CASE WHEN p.week_reset_date <= $1 THEN 0 ELSE p.weekly_completed_sessions END <> coalesce(c.weekly, 0))
     UPDATE @extschema@.profiles p
        SET total_completed_sessions = fix.total,
            weekly_completed_sessions = fix.weekly,
            weekly_started_sessions = CASE WHEN p.week_reset_date <= $1 THEN 0 ELSE p.weekly_started_sessions END,
            week_reset_date = CASE WHEN p.week_reset_date <= $1 THEN $3 ELSE p.week_reset_date END
       FROM fix
      WHERE p.id = fix.id",
    &[TIMESTAMPTZ, TIMESTAMPTZ, TIMESTAMPTZ],
);
static REPAIR_SESSIONS: Stmt = Stmt::new(
    "WITH m AS (SELECT session_id, count(*) FILTER (WHERE chat_type = 'main') AS main,
                       count(*) FILTER (WHERE chat_type = 'helper') AS helper
                  FROM @extschema@.messages GROUP BY session_id),
          fix AS (SELECT s.id, coalesce(m.main, 0) AS main, coalesce(m.helper, 0) AS helper
                    FROM @extschema@.sessions s LEFT JOIN m ON m.session_id = s.id
                   WHERE s.message_count_main <> coalesce(m.main, 0) OR s.message_count_helper <> coalesce(m.helper, 0))
     UPDATE @extschema@.sessions s
        SET message_count_main = fix.main, message_count_helper = fix.helper
       FROM fix
      WHERE s.id = fix.id",
    &[],
);

static REPAIR_CONVERSATIONS: Stmt = Stmt::new(
    "WITH m AS (SELECT conversation_id, count(*) AS n, max(created_at) AS last
                  FROM @extschema@.conversation_messages GROUP BY conversation_id),
          fix AS (SELECT c.id, coalesce(m.n, 0) AS n, m.last
                    FROM @extschema@.conversations c LEFT JOIN m ON m.conversation_id = c.id
                   WHERE c.message_count <> coalesce(m.n, 0))
     UPDATE @extschema@.conversations c
        SET message_count = fix.n, last_message_at = fix.last
       FROM fix
      WHERE c.id = fix.id",
    &[],
);

/// The counters that differ from a recount (empty when healthy).
#[pg_extern(volatile, parallel_unsafe)]
fn verify_counts() -> TableIterator<
    'static,
    (
        name!(table_name, String),
        name!(row_id, pgrx::Uuid),
        name!(column_name, String),
        name!(stored, i64),
        name!(actual, i64),
    ),
> {
    require_privileged_caller("verify_counts");
    let now = time::now();
    let mut rows = as_owner(|| {
        plans::with(&VERIFY, &[ts(now), ts(time::week_start(now))], |table| {
            table
                .filter_map(|r| {
                    Some((
                        r.get::<String>(1).ok().flatten()?,
                        r.get::<pgrx::Uuid>(2).ok().flatten()?,
                        r.get::<String>(3).ok().flatten()?,
                        r.get::<i64>(4).ok().flatten()?,
                        r.get::<i64>(5).ok().flatten()?,
                    ))
                })
                .collect::<Vec<_>>()
        })
    });
    rows.sort_by(|a, b| (&a.0, a.1.as_bytes(), &a.2).cmp(&(&b.0, b.1.as_bytes(), &b.2)));
    TableIterator::new(rows)
}

/// Sets every drifted counter to its recount; returns the rows fixed.
#[pg_extern(volatile, parallel_unsafe)]
fn repair_counts() -> i32 {
    require_privileged_caller("repair_counts");
    let now = time::now();
    let fixed = as_owner(|| {
        plans::exec(&REPAIR_PROFILES, &[ts(now), ts(time::week_start(now)), ts(time::next_week_start(now))])
            + plans::exec(&REPAIR_SESSIONS, &[])
            + plans::exec(&REPAIR_CONVERSATIONS, &[])
    });
    fixed as i32
}
