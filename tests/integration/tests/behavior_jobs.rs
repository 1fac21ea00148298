//! The behavior jobs: `backfill_behavior_insights()`, `refresh_activity_recency()` and
//! `cleanup_expired_behavior_events([batch_size])` act on every customer's rows, so each checks
//! its caller natively: an ordinary role gets `42501` (`permission denied for function <name>`)
//! even with EXECUTE granted (Supabase's default privileges, and an explicit GRANT) and
//! whatever its JWT claims; the superuser and a BYPASSRLS LOGIN role run them. The cleanup
//! deletes only expired events, at most `batch_size` per call, logs each run
//! (`logs.event = 'job'`) and leaves the cumulative insights alone.

use pg_assistant_integration::postgres::{Client, Error};
use pg_assistant_integration::{
    assert_server_alive, behavior_drift, ensure_bypassrls_role, ensure_ordinary_role, message, sqlstate, with_claims, TestDb,
};
use serde_json::{json, Value};

const ANON: &str = "pga_it_bjobs_anon";
const AUTH: &str = "pga_it_bjobs_auth";
const SERVICE: &str = "pga_it_bjobs_svc";

/// Three customers: 25 expired events (expires_at in the past), 10 live ones, over 6 sessions.
/// Insights and sessions are written by the rules; the insights' recency is stale (the events
/// are days old but the row says 0) so that a refresh would change something.
fn fixture(test: &str) -> TestDb {
    ensure_bypassrls_role(SERVICE);
    ensure_ordinary_role(ANON);
    ensure_ordinary_role(AUTH);
    let db = TestDb::supabase_like(test, &[ANON, AUTH, SERVICE]);
    let mut su = db.superuser();
    su.batch_execute(&format!(
        "GRANT EXECUTE ON FUNCTION backfill_behavior_insights(), refresh_activity_recency(),
               cleanup_expired_behavior_events(int) TO {ANON}, {AUTH};
         INSERT INTO behavior_events (customer_id, session_id, event_type, business_impact, event_timestamp, expires_at)
         SELECT 'cust-' || (g % 3), 'cust-' || (g % 3) || '-s' || (g % 2), 'view', 'high',
                now() - interval '5 days' - g * interval '1 minute', now() - g * interval '1 second'
           FROM generate_series(1, 25) g;
         INSERT INTO behavior_events (customer_id, session_id, event_type, event_timestamp, expires_at)
         SELECT 'cust-' || (g % 3), 'cust-' || (g % 3) || '-s' || (g % 2), 'click',
                now() - interval '4 days' - g * interval '1 minute', now() + interval '1 hour'
           FROM generate_series(1, 10) g;
         UPDATE behavior_insights SET days_since_last_activity = 0;"
    ))
    .unwrap();
    db
}

/// Every row of the analytics tables and the logs, as text (read as superuser).
fn state(db: &TestDb) -> String {
    db.superuser()
        .query_one(
            "SELECT concat_ws(E'\\n',
                (SELECT string_agg(x::text, E'\\n' ORDER BY x.id) FROM behavior_events x),
                (SELECT string_agg(x::text, E'\\n' ORDER BY x.customer_id) FROM behavior_insights x),
                (SELECT string_agg(x::text, E'\\n' ORDER BY x.session_id) FROM behavior_sessions x),
                (SELECT string_agg(x::text, E'\\n' ORDER BY x.id) FROM logs x))",
            &[],
        )
        .unwrap()
        .get(0)
}

fn summaries(db: &TestDb) -> String {
    db.superuser()
        .query_one(
            "SELECT concat_ws(E'\\n',
                (SELECT string_agg(x::text, E'\\n' ORDER BY x.customer_id) FROM behavior_insights x),
                (SELECT string_agg(x::text, E'\\n' ORDER BY x.session_id) FROM behavior_sessions x))",
            &[],
        )
        .unwrap()
        .get(0)
}

fn attempt(c: &mut Client, claims: Option<&Value>, sql: &str) -> Result<u64, Error> {
    let mut tx = match claims {
        Some(claims) => with_claims(c, claims.clone()),
        None => c.transaction().unwrap(),
    };
    match tx.execute(sql, &[]) {
        Ok(n) => {
            tx.commit()?;
            Ok(n)
        }
        Err(e) => {
            tx.rollback().ok();
            Err(e)
        }
    }
}

const JOBS: [(&str, &str); 8] = [
    ("SELECT backfill_behavior_insights()", "backfill_behavior_insights"),
    ("SELECT public.backfill_behavior_insights()", "backfill_behavior_insights"),
    ("SELECT refresh_activity_recency()", "refresh_activity_recency"),
    ("SELECT cleanup_expired_behavior_events()", "cleanup_expired_behavior_events"),
    ("SELECT cleanup_expired_behavior_events(NULL)", "cleanup_expired_behavior_events"),
    ("SELECT cleanup_expired_behavior_events(1)", "cleanup_expired_behavior_events"),
    ("SELECT cleanup_expired_behavior_events(batch_size => 1000000)", "cleanup_expired_behavior_events"),
    // Even an invalid batch size: the caller is checked first.
    ("SELECT cleanup_expired_behavior_events(0)", "cleanup_expired_behavior_events"),
];

/// EXECUTE is granted (so PostgreSQL's own check passes): what refuses is the native check.
#[test]
fn ordinary_roles_hold_execute_on_the_jobs() {
    let db = fixture("bjobs_grants");
    let mut su = db.superuser();
    for role in [ANON, AUTH] {
        for f in ["backfill_behavior_insights()", "refresh_activity_recency()", "cleanup_expired_behavior_events(integer)"] {
            let granted: bool = su.query_one("SELECT has_function_privilege($1, $2, 'EXECUTE')", &[&role, &f]).unwrap().get(0);
            assert!(granted, "{role} should hold EXECUTE on {f}");
        }
        let attrs = su.query_one("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = $1", &[&role]).unwrap();
        assert!(!attrs.get::<_, bool>(0), "{role} must be an ordinary role");
    }
}

/// Every job, every ordinary identity (no JWT, anon, a user, forged service_role and admin
/// claims), and through a SECURITY DEFINER wrapper of the attacker's: `42501`, nothing changed,
/// nothing logged.
#[test]
fn ordinary_roles_cannot_run_the_jobs() {
    let db = fixture("bjobs_refused");
    let before = state(&db);
    let user = uuid::Uuid::new_v4().to_string();
    let identities: [(&str, Option<Value>); 6] = [
        (ANON, None),
        (ANON, Some(json!({ "role": "anon" }))),
        (AUTH, Some(json!({ "role": "authenticated", "sub": user }))),
        (AUTH, Some(json!({ "role": "service_role" }))),
        (AUTH, Some(json!({ "role": "admin" }))),
        (ANON, Some(json!({ "role": "ai_analysis" }))),
    ];
    for (role, claims) in &identities {
        let mut c = db.connect_as(role);
        for (sql, function) in JOBS {
            let what = format!("{role} {claims:?}: {sql}");
            let err = attempt(&mut c, claims.as_ref(), sql).err().unwrap_or_else(|| panic!("{what} succeeded"));
            assert_eq!(sqlstate(&err), "42501", "{what}: {err:?}");
            assert_eq!(message(&err), format!("permission denied for function {function}"), "{what}");
        }
    }
    let mut c = db.connect_as(AUTH);
    c.batch_execute(
        "CREATE FUNCTION public.bjobs_wrapper() RETURNS int LANGUAGE sql SECURITY DEFINER
             AS $$ SELECT public.cleanup_expired_behavior_events(NULL::int) + public.backfill_behavior_insights() $$",
    )
    .unwrap();
    let err = attempt(&mut c, Some(&json!({ "role": "service_role" })), "SELECT public.bjobs_wrapper()").unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err:?}");
    assert_server_alive();
    assert_eq!(state(&db), before, "a refused job changed something");
}

/// The superuser and a BYPASSRLS service: the backfill repairs what was tampered with and then
/// has nothing to do; the recency refresh fixes stale rows and then has nothing to do.
#[test]
fn privileged_callers_run_backfill_and_recency() {
    let db = fixture("bjobs_backfill");
    let mut su = db.superuser();
    let mut svc = db.connect_as(SERVICE);
    for (who, c) in [("superuser", &mut su), ("bypassrls service", &mut svc)] {
        // Recency: every insight is stale (0 days while the latest event is 4 days old).
        let refreshed: i32 = c.query_one("SELECT refresh_activity_recency()", &[]).unwrap().get(0);
        assert_eq!(refreshed, 3, "{who}");
        let days: Vec<i32> = c
            .query("SELECT days_since_last_activity FROM behavior_insights ORDER BY customer_id", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(days, vec![4, 4, 4], "{who}");
        let again: i32 = c.query_one("SELECT refresh_activity_recency()", &[]).unwrap().get(0);
        assert_eq!(again, 0, "{who}: a second refresh rewrote rows");
        // Healthy summaries: the backfill writes nothing.
        let n: i32 = c.query_one("SELECT backfill_behavior_insights()", &[]).unwrap().get(0);
        assert_eq!(n, 0, "{who}");
        // Tampered: a wrong total, a wrong session, a missing session, a missing insight.
        c.batch_execute(
            "UPDATE behavior_insights SET total_events = 1, events_by_type = '{}' WHERE customer_id = 'cust-0';
             UPDATE behavior_sessions SET tools_used = '{forged}', started_at = started_at - interval '1 day' WHERE session_id = 'cust-1-s1';
             DELETE FROM behavior_sessions WHERE session_id = 'cust-2-s0';
             DELETE FROM behavior_insights WHERE customer_id = 'cust-2';",
        )
        .unwrap();
        let n: i32 = c.query_one("SELECT backfill_behavior_insights()", &[]).unwrap().get(0);
        assert_eq!(n, 4, "{who}");
        let drift = behavior_drift(c);
        assert!(drift.is_empty(), "{who}: {drift:?}");
        let n: i32 = c.query_one("SELECT backfill_behavior_insights()", &[]).unwrap().get(0);
        assert_eq!(n, 0, "{who}: the backfill is not idempotent");
        c.batch_execute("UPDATE behavior_insights SET days_since_last_activity = 0").unwrap();
    }
}

fn expired(db: &TestDb) -> (i64, i64) {
    let r = db
        .superuser()
        .query_one("SELECT count(*) FILTER (WHERE expires_at <= now()), count(*) FILTER (WHERE expires_at > now()) FROM behavior_events", &[])
        .unwrap();
    (r.get(0), r.get(1))
}

/// `(rows_deleted, job)` of every cleanup log row, oldest first.
fn cleanup_logs(db: &TestDb) -> Vec<(i64, String)> {
    db.superuser()
        .query(
            "SELECT (metadata->>'rows_deleted')::bigint, metadata->>'job' FROM logs
              WHERE event = 'job' AND metadata->>'job' = 'cleanup_expired_behavior_events' ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// In batches: 10 + 10 + 5 + 0 of the 25 expired events, one log row per call, the 10 live
/// events untouched, the insights and session summaries exactly as before (cumulative).
#[test]
fn cleanup_in_batches_deletes_only_expired_events() {
    let db = fixture("bjobs_cleanup_batches");
    assert_eq!(expired(&db), (25, 10));
    let before = summaries(&db);
    let live_before: Vec<String> = db
        .superuser()
        .query("SELECT x::text FROM behavior_events x WHERE expires_at > now() ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut svc = db.connect_as(SERVICE);
    let mut deleted = Vec::new();
    for _ in 0..4 {
        deleted.push(svc.query_one("SELECT cleanup_expired_behavior_events(10)", &[]).unwrap().get::<_, i32>(0));
    }
    assert_eq!(deleted, vec![10, 10, 5, 0]);
    assert_eq!(expired(&db), (0, 10));
    let live_after: Vec<String> = db
        .superuser()
        .query("SELECT x::text FROM behavior_events x ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(live_after, live_before);
    assert_eq!(summaries(&db), before, "the cleanup changed the summaries");
    let logs = cleanup_logs(&db);
    assert_eq!(logs.iter().map(|l| l.0).collect::<Vec<_>>(), vec![10, 10, 5, 0]);
    let mut su = db.superuser();
    let row = su
        .query_one(
            "SELECT count(*), bool_and(level = 'info' AND metadata ? 'started_at' AND metadata ? 'finished_at')
               FROM logs WHERE event = 'job'",
            &[],
        )
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, bool>(1)), (4, true));
    // Batch size 1 takes exactly one.
    su.batch_execute(
        "INSERT INTO behavior_events (customer_id, session_id, event_type, expires_at)
         SELECT 'cust-0', 'cust-0-s0', 'view', now() - interval '1 day' FROM generate_series(1, 3)",
    )
    .unwrap();
    let one: i32 = su.query_one("SELECT cleanup_expired_behavior_events(1)", &[]).unwrap().get(0);
    assert_eq!(one, 1);
    assert_eq!(expired(&db), (2, 10));
}

/// Without a batch size everything expired goes at once; invalid sizes are `22023` and delete
/// nothing.
#[test]
fn cleanup_at_once_and_invalid_batch_sizes() {
    let db = fixture("bjobs_cleanup_all");
    let mut su = db.superuser();
    for size in [0, -1, i32::MIN] {
        let err = su.query_one("SELECT cleanup_expired_behavior_events($1)", &[&size]).unwrap_err();
        assert_eq!(sqlstate(&err), "22023", "batch_size {size}: {err:?}");
        assert_server_alive();
    }
    assert_eq!(expired(&db), (25, 10));
    assert!(cleanup_logs(&db).is_empty(), "a refused call logged a run");
    let before = summaries(&db);
    let n: i32 = su.query_one("SELECT cleanup_expired_behavior_events()", &[]).unwrap().get(0);
    assert_eq!(n, 25);
    assert_eq!(expired(&db), (0, 10));
    assert_eq!(summaries(&db), before);
    assert_eq!(cleanup_logs(&db), vec![(25, "cleanup_expired_behavior_events".to_owned())]);
    let n: i32 = su.query_one("SELECT cleanup_expired_behavior_events(NULL)", &[]).unwrap().get(0);
    assert_eq!(n, 0);
    // New events still count on top of the cumulative insights.
    let total_before: i64 = su.query_one("SELECT total_events FROM behavior_insights WHERE customer_id = 'cust-1'", &[]).unwrap().get(0);
    su.batch_execute("INSERT INTO behavior_events (customer_id, session_id, event_type) VALUES ('cust-1', 'cust-1-s0', 'view')").unwrap();
    let total_after: i64 = su.query_one("SELECT total_events FROM behavior_insights WHERE customer_id = 'cust-1'", &[]).unwrap().get(0);
    assert_eq!(total_after, total_before + 1);
}

/// A superuser (a cron job, say) whose session puts a schema an ordinary role controls ahead of
/// pg_catalog: the jobs and the summary rule never resolve a name through it. The look-alikes
/// would delete every event (an always-true `<=` on timestamptz), merge every session (an
/// always-true `=` on text) or move time (`now()`), and record who ran them.
#[test]
fn jobs_ignore_a_hostile_search_path() {
    let db = fixture("bjobs_search_path");
    let mut su = db.superuser();
    su.batch_execute(&format!("GRANT CREATE ON DATABASE {} TO {AUTH}", db.name)).unwrap();
    let mut attacker = db.connect_as(AUTH);
    attacker
        .batch_execute(
            "CREATE SCHEMA evil;
             CREATE TABLE evil.calls (what text, role text);
             GRANT USAGE ON SCHEMA evil TO PUBLIC;
             GRANT INSERT, SELECT ON evil.calls TO PUBLIC;
             CREATE FUNCTION evil.note(what text) RETURNS bool LANGUAGE plpgsql AS $f$
               BEGIN INSERT INTO evil.calls VALUES (what, current_user); RETURN true; END $f$;
             CREATE FUNCTION evil.ts_le(a timestamptz, b timestamptz) RETURNS bool LANGUAGE sql AS $f$ SELECT evil.note('<=') $f$;
             CREATE OPERATOR evil.<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = evil.ts_le);
             CREATE FUNCTION evil.text_eq(a text, b text) RETURNS bool LANGUAGE sql AS $f$ SELECT evil.note('text =') $f$;
             CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.text_eq);
             CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql
                 AS $f$ SELECT CASE WHEN evil.note('now') THEN 'infinity'::timestamptz END $f$;
             CREATE FUNCTION evil.floor(float8) RETURNS float8 LANGUAGE sql AS $f$ SELECT CASE WHEN evil.note('floor') THEN 0 END $f$;",
        )
        .unwrap();
    let before_live: i64 = su.query_one("SELECT count(*) FROM behavior_events WHERE expires_at > now()", &[]).unwrap().get(0);
    // A fresh superuser connection whose first use of the extension is under the hostile path.
    let mut job = db.superuser();
    job.batch_execute("SET search_path = evil, pg_catalog, public").unwrap();
    let armed: bool = job.query_one("SELECT 'a'::text = 'b'::text", &[]).unwrap().get(0);
    assert!(armed, "the look-alike `=` should resolve in this session");
    job.batch_execute("TRUNCATE evil.calls").unwrap();
    let refreshed: i32 = job.query_one("SELECT public.refresh_activity_recency()", &[]).unwrap().get(0);
    assert_eq!(refreshed, 3);
    let backfilled: i32 = job.query_one("SELECT public.backfill_behavior_insights()", &[]).unwrap().get(0);
    assert_eq!(backfilled, 0);
    let deleted: i32 = job.query_one("SELECT public.cleanup_expired_behavior_events(10)", &[]).unwrap().get(0);
    assert_eq!(deleted, 10);
    let deleted: i32 = job.query_one("SELECT public.cleanup_expired_behavior_events(NULL::int)", &[]).unwrap().get(0);
    assert_eq!(deleted, 15);
    job.batch_execute(
        "INSERT INTO public.behavior_events (customer_id, session_id, event_type) VALUES ('late', 'late-1', 'view');
         INSERT INTO public.behavior_events (customer_id, session_id, event_type)
         SELECT 'late', 'late-' || (g % 2), 'view' FROM generate_series(1, 10) g;",
    )
    .unwrap();
    let err = job
        .execute("INSERT INTO public.behavior_events (customer_id, session_id, event_type) VALUES ('other', 'late-1', 'view')", &[])
        .unwrap_err();
    assert_eq!(sqlstate(&err), "P0001", "{err:?}");
    let calls: Vec<(String, String)> =
        su.query("SELECT what, role FROM evil.calls", &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(calls.is_empty(), "look-alikes ran inside the extension: {calls:?}");
    let live: i64 = su.query_one("SELECT count(*) FROM behavior_events WHERE customer_id <> 'late'", &[]).unwrap().get(0);
    assert_eq!(live, before_live);
    let days: Vec<i32> = su
        .query("SELECT days_since_last_activity FROM behavior_insights WHERE customer_id LIKE 'cust-%' ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(days, vec![4, 4, 4]);
    let row = su.query_one("SELECT total_events, session_count FROM behavior_insights WHERE customer_id = 'late'", &[]).unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i32>(1)), (11, 2));
}

/// Two job runners draining the expired events at once, in batches, while a beacon keeps
/// ingesting: every expired event is deleted exactly once, live and new events stay, the
/// summaries only grow by the new events.
#[test]
fn concurrent_cleanups_drain_each_expired_event_once() {
    let db = fixture("bjobs_cleanup_race");
    let mut su = db.superuser();
    su.batch_execute(
        "INSERT INTO behavior_events (customer_id, session_id, event_type, expires_at)
         SELECT 'cust-' || (g % 3), 'cust-' || (g % 3) || '-s' || (g % 2), 'view', now() - g * interval '1 second'
           FROM generate_series(1, 475) g",
    )
    .unwrap();
    assert_eq!(expired(&db), (500, 10));
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(3));
    let runners: Vec<_> = [db.superuser(), db.connect_as(SERVICE)]
        .into_iter()
        .map(|mut c| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut total = 0;
                let mut idle = 0;
                while idle < 3 {
                    let n: i32 = c.query_one("SELECT cleanup_expired_behavior_events(7)", &[]).unwrap().get(0);
                    assert!((0..=7).contains(&n), "a batch of 7 deleted {n}");
                    total += n;
                    idle = if n == 0 { idle + 1 } else { 0 };
                }
                total
            })
        })
        .collect();
    let mut beacon = db.connect_as(AUTH);
    barrier.wait();
    let mut ingested = 0;
    for i in 0..30 {
        let mut tx = with_claims(&mut beacon, json!({ "role": "beacon_ingest" }));
        ingested += tx
            .execute(
                "INSERT INTO public.behavior_events (customer_id, session_id, event_type) SELECT 'cust-1', 'cust-1-s0', 'new' FROM generate_series(1, $1)",
                &[&(1 + i % 3)],
            )
            .unwrap();
        tx.commit().unwrap();
    }
    let deleted: i32 = runners.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(deleted, 500);
    assert_eq!(expired(&db), (0, 10 + ingested as i64));
    let logged: i64 = su
        .query_one(
            "SELECT sum((metadata->>'rows_deleted')::bigint)::bigint FROM logs WHERE event = 'job' AND metadata->>'job' = 'cleanup_expired_behavior_events'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(logged, 500);
    let row = su.query_one("SELECT total_events, events_by_type->>'new' FROM behavior_insights WHERE customer_id = 'cust-1'", &[]).unwrap();
    // cust-1: 9 + 4 from the fixture, 159 of the 475 added here, and the new ones.
    assert_eq!(row.get::<_, i64>(0), 9 + 4 + 159 + ingested as i64);
    assert_eq!(row.get::<_, Option<String>>(1), Some(ingested.to_string()));
}
