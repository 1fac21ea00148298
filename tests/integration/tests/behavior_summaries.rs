//! What the behavior summaries hold, event by event: out-of-order arrival (first and last are
//! min and max of `event_timestamp`, `last_session_id` the session of the latest event), the
//! single-row and batch paths agreeing, `days_since_last_activity` never negative. Events come
//! from a real beacon LOGIN role (JWT role `beacon_ingest`) on fresh connections.

use pg_assistant_integration::postgres::Client;
use pg_assistant_integration::{behavior_drift, ensure_ordinary_role, with_claims, TestDb};
use serde_json::json;

const BEACON: &str = "pga_it_bsum_beacon";

/// Inserts events as the beacon, each tuple `(customer, session, hours after base, type,
/// impact, tool)`; one statement for all of them when `batch`, else one per event.
fn ingest(c: &mut Client, base: &str, events: &[(&str, &str, f64, &str, &str, Option<&str>)], batch: bool) {
    let groups: Vec<&[_]> = if batch { vec![events] } else { events.chunks(1).collect() };
    for group in groups {
        let mut tx = with_claims(c, json!({ "role": "beacon_ingest" }));
        let col = |f: &dyn Fn(&(&str, &str, f64, &str, &str, Option<&str>)) -> Option<String>| {
            group.iter().map(f).collect::<Vec<Option<String>>>()
        };
        let hours: Vec<f64> = group.iter().map(|e| e.2).collect();
        let n = tx
            .execute(
                "INSERT INTO public.behavior_events (customer_id, session_id, event_type, business_impact, tool_name, event_timestamp)
                 SELECT c, s, t, i, tl, $7::text::timestamptz + make_interval(secs => h * 3600)
                   FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[]) AS u(c, s, t, i, tl, h)",
                &[
                    &col(&|e| Some(e.0.to_owned())),
                    &col(&|e| Some(e.1.to_owned())),
                    &col(&|e| Some(e.3.to_owned())),
                    &col(&|e| Some(e.4.to_owned())),
                    &col(&|e| e.5.map(str::to_owned)),
                    &hours,
                    &base,
                ],
            )
            .unwrap();
        assert_eq!(n as usize, group.len());
        tx.commit().unwrap();
    }
}

/// A base time on a whole hour two days back, as text, so every expected value is exact.
fn base(c: &mut Client) -> String {
    c.query_one("SELECT (date_trunc('hour', now()) - interval '2 days')::text", &[]).unwrap().get(0)
}

/// `(first, last)` as hours after `base`, `last_session_id`, session_count, total, by type.
fn insights(c: &mut Client, base: &str, customer: &str) -> (f64, f64, String, i32, i64, serde_json::Value) {
    let r = c
        .query_one(
            "SELECT extract(epoch FROM first_event_at - $2::text::timestamptz)::float8 / 3600,
                    extract(epoch FROM last_session_timestamp - $2::text::timestamptz)::float8 / 3600,
                    last_session_id, session_count, total_events, events_by_type
               FROM behavior_insights WHERE customer_id = $1",
            &[&customer, &base],
        )
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))
}

/// `(started, ended)` as hours after `base`, event_count, high_impact_count, tools, duration.
fn session(c: &mut Client, base: &str, id: &str) -> (f64, f64, i32, i32, Vec<String>, i32) {
    let r = c
        .query_one(
            "SELECT extract(epoch FROM started_at - $2::text::timestamptz)::float8 / 3600,
                    extract(epoch FROM ended_at - $2::text::timestamptz)::float8 / 3600,
                    event_count, high_impact_count, tools_used, duration_seconds
               FROM behavior_sessions WHERE session_id = $1",
            &[&id, &base],
        )
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))
}

fn assert_exact(su: &mut Client) {
    let drift = behavior_drift(su);
    assert!(drift.is_empty(), "summaries differ from a recount:\n{}", drift.join("\n"));
    let changed: i32 = su.query_one("SELECT backfill_behavior_insights()", &[]).unwrap().get(0);
    assert_eq!(changed, 0, "backfill_behavior_insights() rewrote {changed} summary rows");
}

/// Events arrive late and out of order, one at a time and in batches: first/last follow the
/// event times, not the order of arrival, and last_session_id is the latest event's session.
#[test]
fn out_of_order_events_keep_min_max_and_the_latest_session() {
    ensure_ordinary_role(BEACON);
    let db = TestDb::supabase_like("bsum_out_of_order", &[BEACON]);
    let mut c = db.connect_as(BEACON);
    let mut su = db.superuser();
    let base = base(&mut su);

    // The newest first, then older ones: last stays with "late".
    ingest(
        &mut c,
        &base,
        &[
            ("ooo", "late", 10.0, "click", "low", Some("zeta")),
            ("ooo", "early", 1.0, "view", "high", Some("alpha")),
            ("ooo", "mid", 5.0, "view", "low", None),
        ],
        false,
    );
    let (first, last, last_session, sessions, total, _) = insights(&mut su, &base, "ooo");
    assert_eq!((first, last, last_session.as_str(), sessions, total), (1.0, 10.0, "late", 3, 3));

    // An even older event of "mid" and a still later one of "early": last moves to "early".
    ingest(&mut c, &base, &[("ooo", "mid", -3.0, "view", "critical", Some("beta"))], false);
    ingest(&mut c, &base, &[("ooo", "early", 12.5, "click", "low", Some("alpha"))], false);
    let (first, last, last_session, sessions, total, _) = insights(&mut su, &base, "ooo");
    assert_eq!((first, last, last_session.as_str(), sessions, total), (-3.0, 12.5, "early", 3, 5));
    assert_eq!(session(&mut su, &base, "early"), (1.0, 12.5, 2, 1, vec!["alpha".to_owned()], 41_400));
    assert_eq!(session(&mut su, &base, "mid"), (-3.0, 5.0, 2, 1, vec!["beta".to_owned()], 28_800));

    // A batch, newest row first and in no key order: a new session with the latest event, an
    // older event of "late", a new oldest event of a new session.
    ingest(
        &mut c,
        &base,
        &[
            ("ooo", "newest", 20.0, "purchase", "high", Some("cart")),
            ("ooo", "late", 0.5, "click", "medium", Some("alpha")),
            ("ooo", "ancient", -30.0, "view", "low", None),
            ("ooo", "newest", 19.0, "purchase", "low", Some("cart")),
        ],
        true,
    );
    let (first, last, last_session, sessions, total, by_type) = insights(&mut su, &base, "ooo");
    assert_eq!((first, last, last_session.as_str(), sessions, total), (-30.0, 20.0, "newest", 5, 9));
    assert_eq!(by_type, json!({ "click": 3, "view": 4, "purchase": 2 }));
    assert_eq!(session(&mut su, &base, "late"), (0.5, 10.0, 2, 0, vec!["alpha".to_owned(), "zeta".to_owned()], 34_200));
    assert_eq!(session(&mut su, &base, "newest"), (19.0, 20.0, 2, 1, vec!["cart".to_owned()], 3_600));

    // A late batch entirely older than what is known changes first, never last.
    ingest(
        &mut c,
        &base,
        &[("ooo", "mid", -40.0, "view", "low", None), ("ooo", "early", 2.0, "view", "low", None)],
        true,
    );
    let (first, last, last_session, sessions, total, _) = insights(&mut su, &base, "ooo");
    assert_eq!((first, last, last_session.as_str(), sessions, total), (-40.0, 20.0, "newest", 5, 11));
    assert_exact(&mut su);
}

/// The same events as single rows for one customer and as one batch for another: the two
/// customers' summaries are identical, and both equal the rebuild.
#[test]
fn single_rows_and_one_batch_give_the_same_summaries() {
    ensure_ordinary_role(BEACON);
    let db = TestDb::supabase_like("bsum_paths", &[BEACON]);
    let mut c = db.connect_as(BEACON);
    let mut su = db.superuser();
    let base = base(&mut su);
    let shape: Vec<(&str, f64, &str, &str, Option<&str>)> = vec![
        ("s3", 4.0, "click", "high", Some("terminal")),
        ("s1", -2.0, "view", "low", None),
        ("s2", 7.25, "error", "critical", Some("editor")),
        ("s1", 9.0, "click", "medium", Some("editor")),
        ("s3", 1.0, "view", "low", Some("browser")),
        ("s2", 7.25, "click", "low", Some("editor")),
        ("s1", 3.5, "purchase", "high", Some("browser")),
        ("s3", 4.0, "view", "low", Some("terminal")),
    ];
    let named = |customer: &'static str| -> Vec<(&str, String, f64, &str, &str, Option<&str>)> {
        shape.iter().map(|&(s, h, t, i, tl)| (customer, format!("{customer}-{s}"), h, t, i, tl)).collect()
    };
    let singles = named("one-by-one");
    let batch = named("all-at-once");
    fn view<'a>(
        v: &'a [(&'static str, String, f64, &'static str, &'static str, Option<&'static str>)],
    ) -> Vec<(&'a str, &'a str, f64, &'a str, &'a str, Option<&'a str>)> {
        v.iter().map(|e| (e.0, e.1.as_str(), e.2, e.3, e.4, e.5)).collect()
    }
    ingest(&mut c, &base, &view(&singles), false);
    ingest(&mut c, &base, &view(&batch), true);
    let compare = |su: &mut Client, sql: &str| -> Vec<String> {
        ["one-by-one", "all-at-once"]
            .iter()
            .map(|customer| su.query_one(sql, &[customer]).unwrap().get::<_, String>(0).replace(customer, "C"))
            .collect()
    };
    let ins = compare(
        &mut su,
        "SELECT row(total_events, events_by_type, high_impact_events, session_count, first_event_at,
                   last_session_timestamp, last_session_id, days_since_last_activity)::text
           FROM behavior_insights WHERE customer_id = $1",
    );
    assert_eq!(ins[0], ins[1]);
    let sessions = compare(
        &mut su,
        "SELECT string_agg(row(session_id, started_at, ended_at, event_count, high_impact_count, tools_used,
                               duration_seconds)::text, ' ' ORDER BY session_id)
           FROM behavior_sessions WHERE customer_id = $1",
    );
    assert_eq!(sessions[0], sessions[1]);
    let (first, last, last_session, count, total, by_type) = insights(&mut su, &base, "all-at-once");
    assert_eq!((first, last, last_session.as_str(), count, total), (-2.0, 9.0, "all-at-once-s1", 3, 8));
    assert_eq!(by_type, json!({ "click": 3, "view": 3, "error": 1, "purchase": 1 }));
    assert_eq!(
        session(&mut su, &base, "all-at-once-s3"),
        (1.0, 4.0, 3, 1, vec!["browser".to_owned(), "terminal".to_owned()], 10_800)
    );
    assert_exact(&mut su);
}

/// `days_since_last_activity` is whole days since the latest event, and 0 (not negative) for
/// an event stamped in the future.
#[test]
fn days_since_last_activity_is_whole_days_and_never_negative() {
    ensure_ordinary_role(BEACON);
    let db = TestDb::supabase_like("bsum_recency", &[BEACON]);
    let mut c = db.connect_as(BEACON);
    let mut tx = with_claims(&mut c, json!({ "role": "beacon_ingest" }));
    tx.batch_execute(
        "INSERT INTO public.behavior_events (customer_id, session_id, event_type, event_timestamp) VALUES
            ('ten-days', 'r1', 'view', now() - interval '10 days 12 hours'),
            ('ten-days', 'r1', 'view', now() - interval '11 days'),
            ('future', 'r2', 'view', now() + interval '2 days');
         INSERT INTO public.behavior_events (customer_id, session_id, event_type, event_timestamp)
              VALUES ('just-now', 'r3', 'view', now() - interval '23 hours');",
    )
    .unwrap();
    tx.commit().unwrap();
    let mut su = db.superuser();
    let days: Vec<(String, i32)> = su
        .query("SELECT customer_id, days_since_last_activity FROM behavior_insights ORDER BY customer_id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(days, vec![("future".to_owned(), 0), ("just-now".to_owned(), 0), ("ten-days".to_owned(), 10)]);
    assert_exact(&mut su);
}

/// The recount the other tests rely on notices every kind of wrong summary (so that an empty
/// drift means something).
#[test]
fn the_recount_notices_every_wrong_summary() {
    ensure_ordinary_role(BEACON);
    let db = TestDb::supabase_like("bsum_recount", &[BEACON]);
    let mut c = db.connect_as(BEACON);
    let mut su = db.superuser();
    let base = base(&mut su);
    ingest(
        &mut c,
        &base,
        &[
            ("rc", "rc-1", 1.0, "view", "high", Some("a")),
            ("rc", "rc-1", 2.0, "click", "low", Some("b")),
            ("rc", "rc-2", 3.0, "view", "low", None),
        ],
        true,
    );
    assert!(behavior_drift(&mut su).is_empty());
    for tamper in [
        "UPDATE behavior_insights SET total_events = total_events + 1",
        "UPDATE behavior_insights SET events_by_type = events_by_type || '{\"view\": 1}'",
        "UPDATE behavior_insights SET high_impact_events = 0",
        "UPDATE behavior_insights SET session_count = 1",
        "UPDATE behavior_insights SET first_event_at = first_event_at - interval '1 microsecond'",
        "UPDATE behavior_insights SET last_session_timestamp = last_session_timestamp + interval '1 second'",
        "UPDATE behavior_insights SET last_session_id = 'rc-1'",
        "UPDATE behavior_insights SET days_since_last_activity = 5",
        "UPDATE behavior_sessions SET customer_id = 'other' WHERE session_id = 'rc-1'",
        "UPDATE behavior_sessions SET started_at = started_at - interval '1 second' WHERE session_id = 'rc-1'",
        "UPDATE behavior_sessions SET ended_at = ended_at + interval '1 second', duration_seconds = duration_seconds + 1 WHERE session_id = 'rc-1'",
        "UPDATE behavior_sessions SET event_count = 3 WHERE session_id = 'rc-1'",
        "UPDATE behavior_sessions SET high_impact_count = 0 WHERE session_id = 'rc-1'",
        "UPDATE behavior_sessions SET tools_used = '{b,a}' WHERE session_id = 'rc-1'",
        "UPDATE behavior_sessions SET tools_used = '{a,a,b}' WHERE session_id = 'rc-1'",
        "UPDATE behavior_sessions SET duration_seconds = 0 WHERE session_id = 'rc-1'",
        "DELETE FROM behavior_sessions WHERE session_id = 'rc-2'",
        "DELETE FROM behavior_insights",
        "INSERT INTO behavior_sessions (session_id, customer_id, started_at, ended_at) VALUES ('ghost', 'rc', now(), now())",
    ] {
        su.batch_execute(tamper).unwrap();
        let drift = behavior_drift(&mut su);
        assert!(!drift.is_empty(), "the recount missed: {tamper}");
        let repaired: i32 = su.query_one("SELECT backfill_behavior_insights()", &[]).unwrap().get(0);
        if tamper.starts_with("INSERT") {
            // A summary without events is left alone by the backfill: remove it by hand.
            su.batch_execute("DELETE FROM behavior_sessions WHERE session_id = 'ghost'").unwrap();
        } else {
            assert!(repaired >= 1, "backfill_behavior_insights() did not repair: {tamper}");
        }
        let drift = behavior_drift(&mut su);
        assert!(drift.is_empty(), "after {tamper} and the backfill:\n{}", drift.join("\n"));
    }
}

/// A beacon retries events it is unsure were stored (same ids, `ON CONFLICT DO NOTHING`), alone
/// and from two connections at once, single rows and batches: each event is counted once.
#[test]
fn retried_events_count_once() {
    use std::sync::{Arc, Barrier};
    ensure_ordinary_role(BEACON);
    let db = TestDb::supabase_like("bsum_retries", &[BEACON]);
    let single = "INSERT INTO public.behavior_events (id, customer_id, session_id, event_type, business_impact, tool_name)
                  VALUES ($1, 'retry', 'retry-s1', 'click', 'high', 'x') ON CONFLICT DO NOTHING";
    let batch = "INSERT INTO public.behavior_events (id, customer_id, session_id, event_type, tool_name)
                 SELECT id, 'retry', 'retry-s' || (n % 3), 'view', 't' || n
                   FROM unnest($1::uuid[]) WITH ORDINALITY AS u(id, n)
                 ON CONFLICT DO NOTHING";
    // (Not `ON CONFLICT (id)`: naming the conflict target needs SELECT rights, which the
    // beacon does not have, so PostgreSQL refuses that form under row-level security.)
    let mut rounds = Vec::new();
    for round in 0..20 {
        let one = uuid::Uuid::new_v4();
        let many: Vec<uuid::Uuid> = (0..(2 + round % 5)).map(|_| uuid::Uuid::new_v4()).collect();
        rounds.push((one, many));
    }
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let mut c = db.connect_as(BEACON);
            let rounds = rounds.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut inserted = 0;
                for (one, many) in &rounds {
                    barrier.wait();
                    // Each client sends everything twice (a retry after a timeout), half of the
                    // batches with part of the rows already sent singly.
                    for _ in 0..2 {
                        let mut tx = with_claims(&mut c, json!({ "role": "beacon_ingest" }));
                        inserted += tx.execute(single, &[one]).unwrap();
                        inserted += tx.execute(batch, &[many]).unwrap();
                        tx.commit().unwrap();
                    }
                    let mut tx = with_claims(&mut c, json!({ "role": "beacon_ingest" }));
                    let mut mixed = many.clone();
                    mixed.push(*one);
                    inserted += tx.execute(batch, &[&mixed]).unwrap();
                    tx.commit().unwrap();
                }
                inserted
            })
        })
        .collect();
    let inserted: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let distinct: u64 = rounds.iter().map(|(_, many)| 1 + many.len() as u64).sum();
    assert_eq!(inserted, distinct, "each event is inserted exactly once");
    let mut su = db.superuser();
    let row = su
        .query_one("SELECT total_events, high_impact_events, session_count FROM behavior_insights WHERE customer_id = 'retry'", &[])
        .unwrap();
    assert_eq!((row.get::<_, i64>(0) as u64, row.get::<_, i64>(1), row.get::<_, i32>(2)), (distinct, 20, 3));
    assert_exact(&mut su);
}

/// Every way a client can insert events is summarised exactly: multi-row VALUES, INSERT ...
/// SELECT (20,000 rows at once), two inserts into the table from one statement (writable
/// CTEs), MERGE (PostgreSQL 15+), COPY, ON CONFLICT DO NOTHING with part of the rows already
/// there, and event types that look like JSON paths or numbers.
#[test]
fn every_insert_form_is_summarised() {
    ensure_ordinary_role(BEACON);
    let db = TestDb::supabase_like("bsum_forms", &[BEACON]);
    let mut su = db.superuser();
    su.batch_execute(
        "INSERT INTO behavior_events (customer_id, session_id, event_type, tool_name)
              VALUES ('forms', 'f-1', 'a', 't1'), ('forms', 'f-2', 'b', NULL), ('forms', 'f-1', 'a', 't0');
         INSERT INTO behavior_events (customer_id, session_id, event_type, business_impact, tool_name, event_timestamp)
         SELECT 'big-' || (g % 50), 'big-' || (g % 50) || '-' || (g % 7), 'e' || (g % 13),
                (ARRAY['low','medium','high','critical'])[1 + g % 4], 'tool-' || (g % 11),
                now() - (g % 1000) * interval '1 minute'
           FROM generate_series(1, 20000) g;
         WITH a AS (INSERT INTO behavior_events (customer_id, session_id, event_type) VALUES ('cte', 'c-1', 'x'), ('cte', 'c-1', 'y') RETURNING 1),
              b AS (INSERT INTO behavior_events (customer_id, session_id, event_type) VALUES ('cte', 'c-1', 'z'), ('cte', 'c-2', 'x') RETURNING 1)
         SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b);
         WITH a AS (INSERT INTO behavior_events (customer_id, session_id, event_type) VALUES ('cte1', 'c1-1', 'x') RETURNING 1),
              b AS (INSERT INTO behavior_events (customer_id, session_id, event_type) VALUES ('cte1', 'c1-1', 'y') RETURNING 1)
         SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b);
         INSERT INTO behavior_events (customer_id, session_id, event_type)
              VALUES ('odd', 'o-1', '0'), ('odd', 'o-1', '-1'), ('odd', 'o-1', '\"'), ('odd', 'o-1', 'a.b'), ('odd', 'o-1', '{}');
         INSERT INTO behavior_events (customer_id, session_id, event_type) VALUES ('odd', 'o-1', '0');
         INSERT INTO behavior_events (customer_id, session_id, event_type) VALUES ('odd', 'o-1', '{a,b}');
         INSERT INTO behavior_events (customer_id, session_id, event_type) VALUES ('odd', 'o-1', '{}');
         INSERT INTO behavior_events (customer_id, session_id, event_type) VALUES ('odd', 'o-1', 'ünï ☃');",
    )
    .unwrap();
    let by_type: serde_json::Value =
        su.query_one("SELECT events_by_type FROM behavior_insights WHERE customer_id = 'odd'", &[]).unwrap().get(0);
    assert_eq!(by_type, json!({ "0": 2, "-1": 1, "\"": 1, "a.b": 1, "{}": 2, "{a,b}": 1, "ünï ☃": 1 }));
    let version: i32 = su.query_one("SELECT current_setting('server_version_num')::int", &[]).unwrap().get(0);
    if version >= 150_000 {
        su.batch_execute(
            "MERGE INTO behavior_events e USING (VALUES ('merge', 'm-1', 'a'), ('merge', 'm-1', 'b'), ('merge', 'm-2', 'a')) v(c, s, t)
                ON false WHEN NOT MATCHED THEN INSERT (customer_id, session_id, event_type) VALUES (v.c, v.s, v.t);
             MERGE INTO behavior_events e USING (VALUES ('merge', 'm-3', 'c')) v(c, s, t)
                ON false WHEN NOT MATCHED THEN INSERT (customer_id, session_id, event_type) VALUES (v.c, v.s, v.t);",
        )
        .unwrap();
        let total: i64 = su.query_one("SELECT total_events FROM behavior_insights WHERE customer_id = 'merge'", &[]).unwrap().get(0);
        assert_eq!(total, 4);
    }
    // COPY by a service.
    let mut tx = su.transaction().unwrap();
    let mut w = tx.copy_in("COPY behavior_events (customer_id, session_id, event_type, tool_name) FROM STDIN").unwrap();
    std::io::Write::write_all(&mut w, b"copy\tcp-1\tview\ta\ncopy\tcp-1\tview\t\\N\ncopy\tcp-2\tbuy\tb\n").unwrap();
    assert_eq!(w.finish().unwrap(), 3);
    tx.commit().unwrap();
    let one: i64 = su.query_one("SELECT count(*) FROM behavior_insights WHERE customer_id = 'copy' AND total_events = 3 AND session_count = 2", &[]).unwrap().get(0);
    assert_eq!(one, 1);
    // ON CONFLICT DO NOTHING with some rows already stored: only the new ones count.
    let ids: Vec<uuid::Uuid> = su
        .query("SELECT id FROM behavior_events WHERE customer_id = 'forms' ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut all = ids.clone();
    all.push(uuid::Uuid::new_v4());
    all.push(uuid::Uuid::new_v4());
    let n = su
        .execute(
            "INSERT INTO behavior_events (id, customer_id, session_id, event_type)
             SELECT id, 'forms', 'f-3', 'retry' FROM unnest($1::uuid[]) id ON CONFLICT (id) DO NOTHING",
            &[&all],
        )
        .unwrap();
    assert_eq!(n, 2);
    let n = su
        .execute(
            "INSERT INTO behavior_events (id, customer_id, session_id, event_type) VALUES ($1, 'forms', 'f-3', 'retry') ON CONFLICT DO NOTHING",
            &[&ids[0]],
        )
        .unwrap();
    assert_eq!(n, 0);
    let row = su.query_one("SELECT total_events, session_count FROM behavior_insights WHERE customer_id = 'forms'", &[]).unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i32>(1)), (5, 3));
    assert_exact(&mut su);
}
