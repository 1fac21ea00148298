//! behavior_events -> behavior_insights (per customer) and behavior_sessions (per session),
//! kept exact once per summary row per statement from the transition table.
//!
//! Both summaries are upserts (`INSERT ... ON CONFLICT DO UPDATE`), so concurrent inserters for
//! the same customer or session serialise on its row and each adds its own events; rows are
//! upserted in key order so two batches cannot deadlock on each other. Events may arrive out of
//! order: first and last are the min and max of `event_timestamp`, and `last_session_id` is the
//! session of the latest event (ties by the greater session id), not of the latest insert.
//! A session belongs to the customer of its first event; an event of another customer in it is
//! refused (`42501` for ordinary callers, who learn nothing of the other customer).

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::{self, PgBuiltInOids, PgOid};
use pgrx::prelude::*;

use crate::common::error::PgaError;
use crate::common::owner::{as_owner, as_owner_by_key, may_write_protected_columns, require_privileged_caller, row_security_violation};
use crate::common::plans::{self, Stmt};
use crate::common::restore::loading_dump;
use crate::common::time::{self, arg as ts};
use crate::common::trigger::{native_trigger, statement_done, Event, Level, Timing, Transition, TriggerCall, Usage};

const TEXT: PgOid = PgOid::BuiltIn(PgBuiltInOids::TEXTOID);
const INT4: PgOid = PgOid::BuiltIn(PgBuiltInOids::INT4OID);
const TIMESTAMPTZ: PgOid = PgOid::BuiltIn(PgBuiltInOids::TIMESTAMPTZOID);

/// Whole days from `$ts` to `$1` (now), never negative.
macro_rules! days_since {
    ($ts:literal) => {
        concat!("least(greatest(0, floor(date_part('epoch', $1 - ", $ts, ") / 86400)), 2147483647)::int")
    };
}
/// Whole seconds from `$from` to `$to`, never negative.
macro_rules! seconds_between {
    ($from:literal, $to:literal) => {
        concat!("least(greatest(0, floor(date_part('epoch', ", $to, " - ", $from, "))), 2147483647)::int")
    };
}

/// The session upsert's conflict branch: the stored summary widened by the new events.
macro_rules! merge_session {
    () => {
        concat!(
            "started_at = least(b.started_at, excluded.started_at),
             ended_at = greatest(b.ended_at, excluded.ended_at),
             event_count = b.event_count + excluded.event_count,
             high_impact_count = b.high_impact_count + excluded.high_impact_count,
             tools_used = CASE WHEN excluded.tools_used <@ b.tools_used THEN b.tools_used
                               ELSE ARRAY(SELECT DISTINCT t FROM unnest(b.tools_used || excluded.tools_used) t ORDER BY t) END,
             duration_seconds = ",
            seconds_between!("least(b.started_at, excluded.started_at)", "greatest(b.ended_at, excluded.ended_at)"),
            "
           WHERE b.customer_id = excluded.customer_id
       RETURNING b.session_id, b.customer_id, b.xmax = '0'::xid AS created"
        )
    };
}

/// The insights upsert's conflict branch; `$events_by_type` merges the stored and new counts.
macro_rules! merge_insights {
    ($events_by_type:literal) => {
        concat!(
            "total_events = i.total_events + excluded.total_events,
             events_by_type = ", $events_by_type, ",
             high_impact_events = i.high_impact_events + excluded.high_impact_events,
             session_count = i.session_count + excluded.session_count,
             first_event_at = least(i.first_event_at, excluded.first_event_at),
             last_session_id = CASE WHEN i.last_session_timestamp IS NULL
                                      OR excluded.last_session_timestamp > i.last_session_timestamp
                                      OR (excluded.last_session_timestamp = i.last_session_timestamp
                                          AND excluded.last_session_id > i.last_session_id)
                                    THEN excluded.last_session_id ELSE i.last_session_id END,
             last_session_timestamp = greatest(i.last_session_timestamp, excluded.last_session_timestamp),
             days_since_last_activity = ",
            days_since!("greatest(i.last_session_timestamp, excluded.last_session_timestamp)")
        )
    };
}

/// A whole statement's events: `$1` now. Returns the sessions refused (of another customer).
/// Three hash aggregates read the transition table (per session and tool, per customer and
/// event type, and the latest events' sessions); everything else is built from their far fewer
/// rows. No sort of the statement's rows.
static SUMMARIZE_BATCH: Stmt = Stmt::new(
    concat!(
        "WITH st AS (SELECT session_id, tool_name, min(customer_id) AS customer_id, max(customer_id) AS last_customer,
                            min(event_timestamp) AS started_at, max(event_timestamp) AS ended_at, count(*) AS n,
                            count(*) FILTER (WHERE business_impact IN ('high', 'critical')) AS hi
                       FROM new_rows GROUP BY session_id, tool_name),
              s AS (SELECT session_id, min(customer_id) AS customer_id, max(last_customer) AS last_customer,
                           min(started_at) AS started_at, max(ended_at) AS ended_at, sum(n)::int AS n, sum(hi)::int AS hi,
                           coalesce(array_agg(tool_name ORDER BY tool_name) FILTER (WHERE tool_name IS NOT NULL), '{}') AS tools
                      FROM st GROUP BY session_id),
              up AS (INSERT INTO @extschema@.behavior_sessions AS b
                            (session_id, customer_id, started_at, ended_at, event_count, high_impact_count,
                             tools_used, duration_seconds, created_at, updated_at)
                     SELECT s.session_id, s.customer_id, s.started_at, s.ended_at, s.n, s.hi, s.tools, ",
        seconds_between!("s.started_at", "s.ended_at"),
        ", $1, $1
                       FROM s WHERE s.customer_id = s.last_customer ORDER BY s.session_id
                     ON CONFLICT (session_id) DO UPDATE SET ",
        merge_session!(),
        "),
              x AS (SELECT customer_id, event_type, count(*) AS n,
                           count(*) FILTER (WHERE business_impact IN ('high', 'critical')) AS hi,
                           min(event_timestamp) AS first_at, max(event_timestamp) AS last_at
                      FROM new_rows GROUP BY customer_id, event_type),
              c AS (SELECT customer_id, sum(n)::bigint AS n, sum(hi)::bigint AS hi, min(first_at) AS first_at,
                           max(last_at) AS last_at, jsonb_object_agg(event_type, n) AS by_type
                      FROM x GROUP BY customer_id),
              l AS (SELECT e.customer_id, max(e.session_id) AS session_id
                      FROM new_rows e JOIN c ON c.customer_id = e.customer_id AND e.event_timestamp = c.last_at
                     GROUP BY e.customer_id),
              ns AS (SELECT customer_id, count(*) FILTER (WHERE created)::int AS created FROM up GROUP BY customer_id),
              ins AS (INSERT INTO @extschema@.behavior_insights AS i
                             (customer_id, total_events, events_by_type, high_impact_events, session_count,
                              first_event_at, last_session_timestamp, last_session_id, days_since_last_activity,
                              created_at, updated_at)
                      SELECT c.customer_id, c.n, c.by_type, c.hi, coalesce(ns.created, 0), c.first_at, c.last_at,
                             l.session_id, ",
        days_since!("c.last_at"),
        ", $1, $1
                        FROM c JOIN l USING (customer_id) LEFT JOIN ns USING (customer_id)
                       ORDER BY c.customer_id
                      ON CONFLICT (customer_id) DO UPDATE SET ",
        merge_insights!(
            "(SELECT jsonb_object_agg(k, v) FROM (
                 SELECT k, sum(v) AS v FROM (
                     SELECT key AS k, value::bigint AS v FROM jsonb_each_text(i.events_by_type)
                     UNION ALL
                     SELECT key, value::bigint FROM jsonb_each_text(excluded.events_by_type)) u
                  GROUP BY k) g)"
        ),
        "
                   RETURNING 1)
         SELECT s.session_id FROM s
          WHERE s.session_id NOT IN (SELECT session_id FROM up)
          ORDER BY s.session_id LIMIT 1"
    ),
    &[TIMESTAMPTZ],
);

/// One event: `$1` now, `$2` customer, `$3` session, `$4` event type, `$5` 1 when high impact,
/// `$6` tool (or NULL), `$7` event time. Returns a row unless the session is another customer's.
static SUMMARIZE_ONE: Stmt = Stmt::new(
    concat!(
        "WITH up AS (INSERT INTO @extschema@.behavior_sessions AS b
                            (session_id, customer_id, started_at, ended_at, event_count, high_impact_count,
                             tools_used, duration_seconds, created_at, updated_at)
                     VALUES ($3, $2, $7, $7, 1, $5, CASE WHEN $6::text IS NULL THEN '{}'::text[] ELSE ARRAY[$6::text] END,
                             0, $1, $1)
                     ON CONFLICT (session_id) DO UPDATE SET ",
        merge_session!(),
        ")
         INSERT INTO @extschema@.behavior_insights AS i
                (customer_id, total_events, events_by_type, high_impact_events, session_count, first_event_at,
                 last_session_timestamp, last_session_id, days_since_last_activity, created_at, updated_at)
         SELECT $2, 1, jsonb_build_object($4::text, 1), $5, CASE WHEN up.created THEN 1 ELSE 0 END, $7, $7, $3, ",
        days_since!("$7"),
        ", $1, $1
           FROM up
         ON CONFLICT (customer_id) DO UPDATE SET ",
        merge_insights!(
            "jsonb_set(i.events_by_type, ARRAY[$4::text],
                       to_jsonb(coalesce((i.events_by_type ->> $4::text)::bigint, 0) + 1))"
        ),
        "
      RETURNING 1"
    ),
    &[TIMESTAMPTZ, TEXT, TEXT, TEXT, INT4, TEXT, TIMESTAMPTZ],
);

const AFTER_INSERT_STATEMENT: Usage = Usage { timing: Timing::After, level: Level::Statement, events: &[Event::Insert] };

native_trigger!(
    pga_behavior_events_summarize,
    pg_finfo_pga_behavior_events_summarize,
    "behavior_events_summarize",
    behavior_events_summarize
);

fn behavior_events_summarize(call: &TriggerCall) -> pg_sys::Datum {
    call.require(&AFTER_INSERT_STATEMENT, None);
    call.require_own_table(c"behavior_events");
    if loading_dump(call.relid()) {
        return statement_done(); // restored summaries carry their counts
    }
    let now = time::now();
    let refused = match call.only_transition_row(Transition::New) {
        Some(row) => {
            let get = |name: &str| row.get(call.column(name));
            let (customer, session, event_type, event_time) =
                match (get("customer_id"), get("session_id"), get("event_type"), get("event_timestamp")) {
                    (Some(c), Some(s), Some(t), Some(ts)) => (c, s, t, ts),
                    _ => return statement_done(), // NOT NULL columns: not reached
                };
            let high = get("business_impact").is_some_and(|d| is_high_impact(d)) as i32;
            // SAFETY: non-null datums of the transition row, alive while `row` is.
            let (customer, session, event_type, tool) = unsafe {
                (
                    DatumWithOid::new(customer, TEXT.value()),
                    DatumWithOid::new(session, TEXT.value()),
                    DatumWithOid::new(event_type, TEXT.value()),
                    match get("tool_name") {
                        Some(d) => DatumWithOid::new(d, TEXT.value()),
                        None => DatumWithOid::null_oid(TEXT.value()),
                    },
                )
            };
            let event_time = ts(event_time.value() as i64);
            let written = as_owner_by_key(|| {
                plans::with(&SUMMARIZE_ONE, &[ts(now), customer, session, event_type, high.into(), tool, event_time], |t| {
                    t.len()
                })
            });
            (written == 0).then(|| text_of(row.get(call.column("session_id"))))
        }
        None if call.transition_len(Transition::New) == 0 => None,
        None => as_owner(|| {
            // Hash aggregates of a large statement in memory rather than in batches on disk.
            crate::common::owner::set_local(c"work_mem", c"64MB");
            Spi::connect_mut(|client| {
                call.register_transition_tables();
                let mut rows = plans::run(client, &SUMMARIZE_BATCH, &[ts(now)]);
                rows.next().map(|r| r.get::<String>(1).ok().flatten().unwrap_or_default())
            })
        }),
    };
    if let Some(session) = refused {
        if !may_write_protected_columns() {
            row_security_violation("behavior_events");
        }
        PgaError::rule(format!("session \"{session}\" belongs to another customer"))
            .detail(format!("Session \"{session}\" already summarises events of another customer, from this statement or an earlier one."))
            .hint("A session summarises one customer's events: use a new session_id for the other customer.")
            .raise();
    }
    statement_done()
}

fn is_high_impact(datum: pg_sys::Datum) -> bool {
    // SAFETY: a non-null text datum; detoasted (a copy only when compressed or external).
    let text = unsafe { pgrx::text_to_rust_str_unchecked(pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr())) };
    text == "high" || text == "critical"
}

fn text_of(datum: Option<pg_sys::Datum>) -> String {
    // SAFETY: a non-null text datum.
    datum.map(|d| unsafe { crate::common::trigger::output(pg_sys::TEXTOID, d) }).unwrap_or_default()
}

// ---- events are append-only where the summaries are concerned ---------------------------------

/// What the summaries are made of: changing it afterwards would make them wrong.
const SUMMARISED: [&str; 6] = ["customer_id", "session_id", "event_type", "business_impact", "tool_name", "event_timestamp"];

const BEFORE_UPDATE_ROW: Usage = Usage { timing: Timing::Before, level: Level::Row, events: &[Event::Update] };

native_trigger!(
    pga_behavior_events_before_update,
    pg_finfo_pga_behavior_events_before_update,
    "behavior_events_before_update",
    behavior_events_before_update
);

fn behavior_events_before_update(call: &TriggerCall) -> pg_sys::Datum {
    call.require(&BEFORE_UPDATE_ROW, None);
    call.require_own_table(c"behavior_events");
    for name in SUMMARISED {
        if call.changed(call.column(name)) {
            PgaError::rule(format!("column \"{name}\" of a behavior event cannot change"))
                .detail(format!(
                    "Failing row {} of {}: the insights already count it as it was.",
                    call.describe_row(call.old_tuple()),
                    call.qualified_table_name()
                ))
                .hint("Insert a corrected event instead; properties, page_url, duration_ms and expires_at may change.")
                .raise();
        }
    }
    call.keep(call.new_tuple())
}

// ---- jobs --------------------------------------------------------------------------------------

static BACKFILL_SESSIONS: Stmt = Stmt::new(
    concat!(
        "INSERT INTO @extschema@.behavior_sessions AS b
                (session_id, customer_id, started_at, ended_at, event_count, high_impact_count, tools_used,
                 duration_seconds, created_at, updated_at)
         SELECT session_id, customer_id, started_at, ended_at, n, hi, tools, ",
        seconds_between!("started_at", "ended_at"),
        ", $1, $1
           FROM (SELECT session_id, min(customer_id) AS customer_id,
                        min(event_timestamp) AS started_at, max(event_timestamp) AS ended_at, count(*)::int AS n,
                        (count(*) FILTER (WHERE business_impact IN ('high', 'critical')))::int AS hi,
                        coalesce(array_agg(DISTINCT tool_name ORDER BY tool_name) FILTER (WHERE tool_name IS NOT NULL),
                                 '{}') AS tools
                   FROM @extschema@.behavior_events GROUP BY session_id) s
          ORDER BY session_id
         ON CONFLICT (session_id) DO UPDATE
            SET customer_id = excluded.customer_id, started_at = excluded.started_at, ended_at = excluded.ended_at,
                event_count = excluded.event_count, high_impact_count = excluded.high_impact_count,
                tools_used = excluded.tools_used, duration_seconds = excluded.duration_seconds
          WHERE (b.customer_id, b.started_at, b.ended_at, b.event_count, b.high_impact_count, b.tools_used, b.duration_seconds)
                IS DISTINCT FROM
                (excluded.customer_id, excluded.started_at, excluded.ended_at, excluded.event_count,
                 excluded.high_impact_count, excluded.tools_used, excluded.duration_seconds)"
    ),
    &[TIMESTAMPTZ],
);

static BACKFILL_INSIGHTS: Stmt = Stmt::new(
    concat!(
        "WITH c AS (SELECT customer_id, count(*) AS n,
                           count(*) FILTER (WHERE business_impact IN ('high', 'critical')) AS hi,
                           count(DISTINCT session_id)::int AS sessions,
                           min(event_timestamp) AS first_at, max(event_timestamp) AS last_at
                      FROM @extschema@.behavior_events GROUP BY customer_id),
              t AS (SELECT customer_id, jsonb_object_agg(event_type, n) AS by_type
                      FROM (SELECT customer_id, event_type, count(*) AS n FROM @extschema@.behavior_events
                             GROUP BY customer_id, event_type) x
                     GROUP BY customer_id),
              l AS (SELECT DISTINCT ON (customer_id) customer_id, session_id
                      FROM @extschema@.behavior_events ORDER BY customer_id, event_timestamp DESC, session_id DESC)
         INSERT INTO @extschema@.behavior_insights AS i
                (customer_id, total_events, events_by_type, high_impact_events, session_count, first_event_at,
                 last_session_timestamp, last_session_id, days_since_last_activity, created_at, updated_at)
         SELECT c.customer_id, c.n, t.by_type, c.hi, c.sessions, c.first_at, c.last_at, l.session_id, ",
        days_since!("c.last_at"),
        ", $1, $1
           FROM c JOIN t USING (customer_id) JOIN l USING (customer_id)
          ORDER BY c.customer_id
         ON CONFLICT (customer_id) DO UPDATE
            SET total_events = excluded.total_events, events_by_type = excluded.events_by_type,
                high_impact_events = excluded.high_impact_events, session_count = excluded.session_count,
                first_event_at = excluded.first_event_at, last_session_timestamp = excluded.last_session_timestamp,
                last_session_id = excluded.last_session_id, days_since_last_activity = excluded.days_since_last_activity
          WHERE (i.total_events, i.events_by_type, i.high_impact_events, i.session_count, i.first_event_at,
                 i.last_session_timestamp, i.last_session_id, i.days_since_last_activity)
                IS DISTINCT FROM
                (excluded.total_events, excluded.events_by_type, excluded.high_impact_events, excluded.session_count,
                 excluded.first_event_at, excluded.last_session_timestamp, excluded.last_session_id,
                 excluded.days_since_last_activity)"
    ),
    &[TIMESTAMPTZ],
);

/// Rebuilds every session summary and every customer's insights from the events there are
/// (rows whose events are all gone stay as they were); returns the summary rows written. Rows
/// that already hold their recount are not rewritten, so a second run returns 0.
#[pg_extern(volatile, parallel_unsafe)]
fn backfill_behavior_insights() -> i32 {
    require_privileged_caller("backfill_behavior_insights");
    let now = time::now();
    let written = as_owner(|| plans::exec(&BACKFILL_SESSIONS, &[ts(now)]) + plans::exec(&BACKFILL_INSIGHTS, &[ts(now)]));
    written as i32
}

static REFRESH_RECENCY: Stmt = Stmt::new(
    concat!(
        "UPDATE @extschema@.behavior_insights i SET days_since_last_activity = ",
        days_since!("i.last_session_timestamp"),
        " WHERE i.last_session_timestamp IS NOT NULL
            AND i.days_since_last_activity IS DISTINCT FROM ",
        days_since!("i.last_session_timestamp")
    ),
    &[TIMESTAMPTZ],
);

/// Recomputes `days_since_last_activity` (whole days since the customer's latest event, never
/// negative) where it changed; returns the rows changed. A daily job.
#[pg_extern(volatile, parallel_unsafe)]
fn refresh_activity_recency() -> i32 {
    require_privileged_caller("refresh_activity_recency");
    let now = time::now();
    as_owner(|| plans::exec(&REFRESH_RECENCY, &[ts(now)])) as i32
}

static CLEANUP_ALL: Stmt = Stmt::new("DELETE FROM @extschema@.behavior_events WHERE expires_at <= $1", &[TIMESTAMPTZ]);
static CLEANUP_BATCH: Stmt = Stmt::new(
    "DELETE FROM @extschema@.behavior_events
      WHERE id IN (SELECT id FROM @extschema@.behavior_events WHERE expires_at <= $1
                    ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
    &[TIMESTAMPTZ, INT4],
);

/// Deletes events past `expires_at` (the insights stay cumulative); returns the rows deleted
/// and writes one `logs` row (`event = 'job'`). With `batch_size`, at most that many per call,
/// oldest first, skipping rows another transaction holds: a job calls it every few minutes (or
/// in a loop that commits between calls) and never holds millions of row locks at once.
#[pg_extern(volatile, parallel_unsafe)]
fn cleanup_expired_behavior_events(batch_size: default!(Option<i32>, "NULL")) -> i32 {
    require_privileged_caller("cleanup_expired_behavior_events");
    if let Some(b) = batch_size.filter(|&b| b < 1) {
        PgaError::invalid("batch_size must be at least 1")
            .detail(format!("batch_size was {b}."))
            .hint("Pass NULL to delete every expired event at once.")
            .raise();
    }
    // SAFETY: a clock read.
    let started = unsafe { pg_sys::GetCurrentTimestamp() };
    let now = time::now();
    let deleted = as_owner(|| {
        let n = match batch_size {
            None => plans::exec(&CLEANUP_ALL, &[ts(now)]),
            Some(b) => plans::exec(&CLEANUP_BATCH, &[ts(now), b.into()]),
        };
        crate::chat::log_job("cleanup_expired_behavior_events", started, n, None);
        n
    });
    deleted as i32
}
