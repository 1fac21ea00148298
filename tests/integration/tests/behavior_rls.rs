//! Row-level security of the behavior analytics by JWT role (`role` claim, read by
//! `current_app_role()`), through one real LOGIN role without superuser or BYPASSRLS that holds
//! every privilege Supabase's default privileges grant (PostgREST style: one role, the claims
//! set per transaction):
//! - `beacon_ingest` inserts events and reads nothing;
//! - `ai_analysis` and `admin` read events, insights and sessions and write none of them;
//! - `anon`, `authenticated` and no claims see nothing and insert nothing;
//! - nobody without BYPASSRLS writes `behavior_insights` or `behavior_sessions`;
//! - the summarised columns of an event never change (`P0001`, even for the superuser);
//! - an event for another customer's session is refused, `42501` for ordinary roles with
//!   nothing of the other customer in the error, `P0001` for privileged callers.

use pg_assistant_integration::postgres::{Client, Error};
use pg_assistant_integration::{
    assert_server_alive, behavior_drift, ensure_bypassrls_role, ensure_ordinary_role, message, sqlstate, with_claims, TestDb,
};
use serde_json::{json, Value};

const APP: &str = "pga_it_brls_app";
const SERVICE: &str = "pga_it_brls_svc";

/// A secret-looking customer id that must never show in another caller's error.
const VICTIM: &str = "victim-cust-7781";

/// Supabase-like database; the superuser seeds events of two customers (five sessions).
fn fixture(test: &str) -> TestDb {
    ensure_bypassrls_role(SERVICE);
    ensure_ordinary_role(APP);
    let db = TestDb::supabase_like(test, &[APP, SERVICE]);
    let mut su = db.superuser();
    su.batch_execute(&format!(
        "INSERT INTO behavior_events (customer_id, session_id, event_type, business_impact, tool_name, event_timestamp)
         SELECT 'cust-' || (g % 2), 'cust-' || (g % 2) || '-s' || (g % 5 / 2), 'view', 'high', 'search', now() - g * interval '1 minute'
           FROM generate_series(1, 40) g;
         INSERT INTO behavior_events (customer_id, session_id, event_type, tool_name)
              VALUES ('{VICTIM}', 'victim-session', 'purchase', 'checkout');"
    ))
    .unwrap();
    db
}

/// Everything in the three analytics tables, as text (read as superuser).
fn state(db: &TestDb) -> String {
    db.superuser()
        .query_one(
            "SELECT concat_ws(E'\\n',
                (SELECT string_agg(x::text, E'\\n' ORDER BY x.id) FROM behavior_events x),
                (SELECT string_agg(x::text, E'\\n' ORDER BY x.customer_id) FROM behavior_insights x),
                (SELECT string_agg(x::text, E'\\n' ORDER BY x.session_id) FROM behavior_sessions x))",
            &[],
        )
        .unwrap()
        .get(0)
}

fn counts(db: &TestDb) -> (i64, i64, i64) {
    let r = db
        .superuser()
        .query_one(
            "SELECT (SELECT count(*) FROM behavior_events), (SELECT count(*) FROM behavior_insights),
                    (SELECT count(*) FROM behavior_sessions)",
            &[],
        )
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

/// Runs `sql` in a transaction carrying `claims` (None: no JWT); commits on success.
fn run(c: &mut Client, claims: Option<&Value>, sql: &str) -> Result<u64, Error> {
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

fn count_as(c: &mut Client, claims: Option<&Value>, table: &str) -> i64 {
    let mut tx = match claims {
        Some(claims) => with_claims(c, claims.clone()),
        None => c.transaction().unwrap(),
    };
    let n = tx.query_one(&format!("SELECT count(*) FROM public.{table}"), &[]).unwrap().get(0);
    tx.commit().unwrap();
    n
}

fn expect_refused(result: Result<u64, Error>, what: &str) -> Error {
    let err = result.err().unwrap_or_else(|| panic!("{what} succeeded"));
    assert_eq!(sqlstate(&err), "42501", "{what}: {err:?}");
    err
}

const INSERT_EVENT: &str =
    "INSERT INTO public.behavior_events (customer_id, session_id, event_type, business_impact) VALUES ('new-cust', 'new-sess', 'click', 'high')";
const INSERT_EVENTS: &str = "INSERT INTO public.behavior_events (customer_id, session_id, event_type)
                             SELECT 'cust-0', 'cust-0-s0', 'click' FROM generate_series(1, 5)";

/// Every way to write the summaries; none may change a row for a caller without BYPASSRLS
/// (an error, or 0 rows).
const SUMMARY_WRITES: [&str; 8] = [
    "INSERT INTO public.behavior_insights (customer_id, total_events) VALUES ('forged', 1000)",
    "INSERT INTO public.behavior_sessions (session_id, customer_id, started_at, ended_at) VALUES ('forged', 'cust-0', now(), now())",
    "UPDATE public.behavior_insights SET total_events = 0, high_impact_events = 0, session_count = 0",
    "UPDATE public.behavior_sessions SET event_count = 0, customer_id = 'cust-1'",
    "DELETE FROM public.behavior_insights",
    "DELETE FROM public.behavior_sessions",
    "INSERT INTO public.behavior_insights (customer_id) VALUES ('cust-0') ON CONFLICT (customer_id) DO UPDATE SET total_events = 1",
    "INSERT INTO public.behavior_sessions (session_id, customer_id, started_at, ended_at) VALUES ('cust-0-s0', 'cust-0', now(), now())
         ON CONFLICT (session_id) DO UPDATE SET event_count = 1",
];

/// Writes that must fail outright (no privilege that bypasses row-level security).
const HARD_WRITES: [&str; 3] =
    ["TRUNCATE public.behavior_insights", "TRUNCATE public.behavior_sessions", "TRUNCATE public.behavior_events"];

fn assert_summaries_unwritable(db: &TestDb, c: &mut Client, claims: Option<&Value>) {
    let before = state(db);
    for sql in SUMMARY_WRITES {
        match run(c, claims, sql) {
            Ok(n) => assert_eq!(n, 0, "{claims:?}: {sql} changed {n} rows"),
            Err(e) => assert_eq!(sqlstate(&e), "42501", "{claims:?}: {sql}: {e:?}"),
        }
    }
    for sql in HARD_WRITES {
        expect_refused(run(c, claims, sql), &format!("{claims:?}: {sql}"));
    }
    assert_eq!(state(db), before, "{claims:?} changed the analytics");
}

/// The web beacon writes events, single and batched, and reads nothing back: not the events
/// (nor its own through RETURNING), not the insights, not the sessions.
#[test]
fn beacon_ingest_inserts_events_but_reads_nothing() {
    let db = fixture("brls_beacon");
    let (events, insights, sessions) = counts(&db);
    let mut c = db.connect_as(APP);
    // With and without a user in the token: the app role is what counts.
    for claims in [json!({ "role": "beacon_ingest" }), json!({ "role": "beacon_ingest", "sub": uuid::Uuid::new_v4().to_string() })] {
        assert_eq!(run(&mut c, Some(&claims), INSERT_EVENT).unwrap(), 1);
        assert_eq!(run(&mut c, Some(&claims), INSERT_EVENTS).unwrap(), 5);
        for table in ["behavior_events", "behavior_insights", "behavior_sessions"] {
            assert_eq!(count_as(&mut c, Some(&claims), table), 0, "beacon reads {table}");
        }
        // Reading back what it wrote is a read too.
        expect_refused(run(&mut c, Some(&claims), &format!("{INSERT_EVENT} RETURNING *")), "beacon INSERT ... RETURNING");
        // No update or delete of events.
        assert_eq!(run(&mut c, Some(&claims), "UPDATE public.behavior_events SET properties = '{\"x\": 1}'").unwrap(), 0);
        assert_eq!(run(&mut c, Some(&claims), "DELETE FROM public.behavior_events").unwrap(), 0);
        assert_summaries_unwritable(&db, &mut c, Some(&claims));
    }
    // Its events were counted like anyone's: 2 × (1 + 5) new events, one new customer and session.
    assert_eq!(counts(&db), (events + 12, insights + 1, sessions + 1));
    let mut su = db.superuser();
    let drift = behavior_drift(&mut su);
    assert!(drift.is_empty(), "{drift:?}");
    let row = su.query_one("SELECT total_events, high_impact_events FROM behavior_insights WHERE customer_id = 'new-cust'", &[]).unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (2, 2));
}

/// The analysis service and admins read everything and write nothing: no events, no summaries.
#[test]
fn analysts_and_admins_read_everything_and_write_nothing() {
    let db = fixture("brls_readers");
    let (events, insights, sessions) = counts(&db);
    let before = state(&db);
    let mut c = db.connect_as(APP);
    for role in ["ai_analysis", "admin"] {
        let claims = json!({ "role": role, "sub": uuid::Uuid::new_v4().to_string() });
        assert_eq!(count_as(&mut c, Some(&claims), "behavior_events"), events, "{role}");
        assert_eq!(count_as(&mut c, Some(&claims), "behavior_insights"), insights, "{role}");
        assert_eq!(count_as(&mut c, Some(&claims), "behavior_sessions"), sessions, "{role}");
        let mut tx = with_claims(&mut c, claims.clone());
        let victim: i64 = tx
            .query_one("SELECT total_events FROM public.behavior_insights WHERE customer_id = $1", &[&VICTIM])
            .unwrap()
            .get(0);
        assert_eq!(victim, 1, "{role}");
        tx.commit().unwrap();
        expect_refused(run(&mut c, Some(&claims), INSERT_EVENT), &format!("{role}: insert event"));
        expect_refused(run(&mut c, Some(&claims), INSERT_EVENTS), &format!("{role}: insert events"));
        assert_eq!(run(&mut c, Some(&claims), "UPDATE public.behavior_events SET properties = '{\"x\": 1}'").unwrap(), 0, "{role}");
        assert_eq!(run(&mut c, Some(&claims), "DELETE FROM public.behavior_events").unwrap(), 0, "{role}");
        assert_summaries_unwritable(&db, &mut c, Some(&claims));
    }
    assert_eq!(state(&db), before);
}

/// No token, `anon`, `authenticated`, and look-alikes of the privileged roles: nothing seen,
/// nothing inserted.
#[test]
fn anon_and_authenticated_see_nothing_and_insert_nothing() {
    let db = fixture("brls_users");
    let before = state(&db);
    let mut c = db.connect_as(APP);
    let user = uuid::Uuid::new_v4().to_string();
    let identities = [
        None,
        Some(json!({ "role": "anon" })),
        Some(json!({ "role": "authenticated", "sub": user })),
        Some(json!({ "sub": user })),
        Some(json!({ "role": "Admin" })),
        Some(json!({ "role": "beacon_ingest " })),
        Some(json!({ "role": ["admin"] })),
    ];
    for claims in &identities {
        for table in ["behavior_events", "behavior_insights", "behavior_sessions"] {
            assert_eq!(count_as(&mut c, claims.as_ref(), table), 0, "{claims:?} reads {table}");
        }
        expect_refused(run(&mut c, claims.as_ref(), INSERT_EVENT), &format!("{claims:?}: insert event"));
        expect_refused(run(&mut c, claims.as_ref(), INSERT_EVENTS), &format!("{claims:?}: insert events"));
        assert_eq!(run(&mut c, claims.as_ref(), "UPDATE public.behavior_events SET expires_at = now()").unwrap(), 0);
        assert_eq!(run(&mut c, claims.as_ref(), "DELETE FROM public.behavior_events").unwrap(), 0);
        assert_summaries_unwritable(&db, &mut c, claims.as_ref());
    }
    assert_eq!(state(&db), before);
    assert_server_alive();
}

/// Even a token claiming `service_role` (which may read and ingest events) writes no summary:
/// the counter columns are the rules' and BYPASSRLS callers' alone. A BYPASSRLS service may,
/// and the backfill puts the recount back.
#[test]
fn only_bypassrls_writes_the_summaries() {
    let db = fixture("brls_summaries");
    let (events, _, _) = counts(&db);
    let mut c = db.connect_as(APP);
    let claims = json!({ "role": "service_role" });
    assert_eq!(count_as(&mut c, Some(&claims), "behavior_events"), events);
    assert_eq!(run(&mut c, Some(&claims), INSERT_EVENTS).unwrap(), 5);
    assert_summaries_unwritable(&db, &mut c, Some(&claims));

    let mut svc = db.connect_as(SERVICE);
    assert_eq!(svc.execute("UPDATE behavior_insights SET total_events = 0 WHERE customer_id = 'cust-0'", &[]).unwrap(), 1);
    assert_eq!(svc.execute("UPDATE behavior_sessions SET event_count = 0 WHERE session_id = 'cust-0-s0'", &[]).unwrap(), 1);
    let mut su = db.superuser();
    assert_eq!(behavior_drift(&mut su).len(), 2);
    let fixed: i32 = svc.query_one("SELECT backfill_behavior_insights()", &[]).unwrap().get(0);
    assert_eq!(fixed, 2);
    assert!(behavior_drift(&mut su).is_empty());
}

/// What the summaries count cannot change afterwards, for anyone: `P0001` naming the column,
/// even for the superuser; properties, page_url, duration_ms and expires_at may change. An
/// ordinary role changes no event at all.
#[test]
fn summarised_event_columns_are_immutable() {
    let db = fixture("brls_immutable");
    let mut su = db.superuser();
    let id: uuid::Uuid = su.query_one("SELECT id FROM behavior_events WHERE customer_id = $1", &[&VICTIM]).unwrap().get(0);
    let before = state(&db);
    let changes = [
        ("customer_id", "'cust-0'"),
        ("session_id", "'cust-0-s0'"),
        ("session_id", "'brand-new-session'"),
        ("event_type", "'refund'"),
        ("business_impact", "'critical'"),
        ("tool_name", "'other-tool'"),
        ("tool_name", "NULL"),
        ("event_timestamp", "event_timestamp - interval '1 year'"),
        ("event_timestamp", "event_timestamp + interval '1 microsecond'"),
    ];
    let mut svc = db.connect_as(SERVICE);
    for (who, client) in [("superuser", &mut su), ("bypassrls service", &mut svc)] {
        for (column, value) in changes {
            let sql = format!("UPDATE behavior_events SET {column} = {value} WHERE id = '{id}'");
            let err = client.execute(&sql, &[]).err().unwrap_or_else(|| panic!("{who}: {sql} succeeded"));
            assert_eq!(sqlstate(&err), "P0001", "{who}: {sql}: {err:?}");
            assert_eq!(message(&err), format!("column \"{column}\" of a behavior event cannot change"), "{who}: {sql}");
        }
        // Several at once, in a batch over many rows.
        let err = client
            .execute("UPDATE behavior_events SET properties = '{\"a\": 1}', event_type = 'x' WHERE customer_id = 'cust-0'", &[])
            .unwrap_err();
        assert_eq!(sqlstate(&err), "P0001", "{who}");
    }
    assert_eq!(state(&db), before, "a refused update changed something");
    // The other columns may change.
    let n = su
        .execute(
            "UPDATE behavior_events SET properties = '{\"corrected\": true}', expires_at = now() + interval '1 day',
                                        page_url = '/fixed', duration_ms = 42
              WHERE id = $1",
            &[&id],
        )
        .unwrap();
    assert_eq!(n, 1);
    let n = svc.execute("UPDATE behavior_events SET expires_at = now() + interval '2 days' WHERE customer_id = 'cust-1'", &[]).unwrap();
    assert_eq!(n, 20);
    let row = su.query_one("SELECT properties, page_url, duration_ms FROM behavior_events WHERE id = $1", &[&id]).unwrap();
    assert_eq!(row.get::<_, Value>(0), json!({ "corrected": true }));
    assert_eq!((row.get::<_, String>(1), row.get::<_, i32>(2)), ("/fixed".to_owned(), 42));
    // Ordinary roles, whatever their claims, update no event.
    let mut c = db.connect_as(APP);
    for role in ["admin", "ai_analysis", "beacon_ingest", "service_role"] {
        let claims = json!({ "role": role });
        let sql = format!("UPDATE public.behavior_events SET customer_id = 'x', properties = '{{}}' WHERE id = '{id}'");
        match run(&mut c, Some(&claims), &sql) {
            Ok(n) => assert_eq!(n, 0, "{role}"),
            Err(e) => assert!(["P0001", "42501"].contains(&sqlstate(&e).as_str()), "{role}: {e:?}"),
        }
    }
    let drift = behavior_drift(&mut su);
    assert!(drift.is_empty(), "{drift:?}");
}

/// The error carries nothing of the other customer: the bare RLS error, no DETAIL or HINT.
fn assert_bare_rls_error(err: &Error, what: &str) {
    assert_eq!(sqlstate(err), "42501", "{what}: {err:?}");
    assert_eq!(message(err), "new row violates row-level security policy for table \"behavior_events\"", "{what}");
    let db = err.as_db_error().unwrap();
    assert_eq!((db.detail(), db.hint()), (None, None), "{what}");
    let everything = format!("{err:?} {err}");
    assert!(!everything.contains(VICTIM) && !everything.contains("7781"), "{what}: error shows the victim: {everything}");
}

/// An event for a session that already belongs to another customer: refused, single or in a
/// batch, for the beacon (`42501`, nothing of the owner in the error) and for privileged
/// callers (`P0001`); nothing of the statement lands.
#[test]
fn an_event_in_another_customers_session_is_refused() {
    let db = fixture("brls_foreign_session");
    let before = state(&db);
    let mut c = db.connect_as(APP);
    let attempts = [
        "INSERT INTO public.behavior_events (customer_id, session_id, event_type) VALUES ('intruder', 'victim-session', 'click')",
        "INSERT INTO public.behavior_events (customer_id, session_id, event_type)
              VALUES ('intruder', 'intruder-1', 'click'), ('intruder', 'victim-session', 'click'), ('intruder', 'zz-intruder', 'click')",
        "INSERT INTO public.behavior_events (customer_id, session_id, event_type, event_timestamp)
              SELECT 'intruder', s, 'view', now() - interval '1 year'
                FROM unnest(ARRAY['zz-last', 'victim-session', 'aa-first']) s, generate_series(1, 50)",
        // Another customer's session taken over from inside the same batch.
        "INSERT INTO public.behavior_events (customer_id, session_id, event_type)
              VALUES ('intruder', 'fresh-session', 'click'), ('zz-other', 'fresh-session', 'click')",
    ];
    for claims in [json!({ "role": "beacon_ingest" }), json!({ "role": "service_role" })] {
        for sql in attempts {
            let err = expect_refused(run(&mut c, Some(&claims), sql), sql);
            assert_bare_rls_error(&err, &format!("{claims}: {sql}"));
            assert_server_alive();
        }
    }
    assert_eq!(state(&db), before, "a refused statement left events or summaries");
    // The session's own customer may add to it.
    let sql = format!("INSERT INTO public.behavior_events (customer_id, session_id, event_type) VALUES ('{VICTIM}', 'victim-session', 'view')");
    assert_eq!(run(&mut c, Some(&json!({ "role": "beacon_ingest" })), &sql).unwrap(), 1);

    // Privileged callers get the rule's own error.
    let mut su = db.superuser();
    let mut svc = db.connect_as(SERVICE);
    for (who, client) in [("superuser", &mut su), ("bypassrls service", &mut svc)] {
        for sql in attempts {
            let err = client.execute(sql, &[]).err().unwrap_or_else(|| panic!("{who}: {sql} succeeded"));
            assert_eq!(sqlstate(&err), "P0001", "{who}: {sql}: {err:?}");
            assert!(message(&err).ends_with("belongs to another customer"), "{who}: {err:?}");
        }
    }
    let mut su = db.superuser();
    let row = su
        .query_one("SELECT customer_id, event_count FROM behavior_sessions WHERE session_id = 'victim-session'", &[])
        .unwrap();
    assert_eq!((row.get::<_, String>(0), row.get::<_, i32>(1)), (VICTIM.to_owned(), 2));
    let intruder: i64 = su.query_one("SELECT count(*) FROM behavior_events WHERE customer_id = 'intruder'", &[]).unwrap().get(0);
    assert_eq!(intruder, 0);
    let drift = behavior_drift(&mut su);
    assert!(drift.is_empty(), "{drift:?}");
}

/// Whatever Supabase's default privileges granted: no ordinary role holds TRIGGER, TRUNCATE or
/// REFERENCES on the behavior tables or EXECUTE on their rule functions, cannot attach a trigger
/// to them, and cannot run the summary rule on a table of its own to forge someone's insights.
#[test]
fn ordinary_roles_get_no_trigger_truncate_or_rule_functions() {
    let db = fixture("brls_privileges");
    let before = state(&db);
    let mut su = db.superuser();
    for table in ["behavior_events", "behavior_insights", "behavior_sessions", "behavior_patterns"] {
        for privilege in ["TRIGGER", "TRUNCATE", "REFERENCES"] {
            let held: bool =
                su.query_one("SELECT has_table_privilege($1, $2, $3)", &[&APP, &table, &privilege]).unwrap().get(0);
            assert!(!held, "{APP} holds {privilege} on {table}");
        }
    }
    for function in ["behavior_events_summarize()", "behavior_events_before_update()", "behavior_patterns_before_write()"] {
        let held: bool = su.query_one("SELECT has_function_privilege($1, $2, 'EXECUTE')", &[&APP, &function]).unwrap().get(0);
        assert!(!held, "{APP} holds EXECUTE on {function}");
    }
    let mut c = db.connect_as(APP);
    c.batch_execute(
        "CREATE FUNCTION pg_temp.brls_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
         CREATE FUNCTION public.brls_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;",
    )
    .unwrap();
    for table in ["behavior_events", "behavior_insights", "behavior_sessions", "behavior_patterns"] {
        for function in ["pg_temp.brls_noop()", "public.brls_noop()"] {
            let sql = format!("CREATE TRIGGER brls_x AFTER INSERT ON public.{table} FOR EACH STATEMENT EXECUTE FUNCTION {function}");
            let err = c.batch_execute(&sql).err().unwrap_or_else(|| panic!("{sql} succeeded"));
            assert_eq!(sqlstate(&err), "42501", "{sql}: {err:?}");
        }
    }
    // The summary rule on a table of the attacker's, fed with the victim's customer id.
    c.batch_execute("CREATE TABLE public.brls_mine (LIKE public.behavior_events INCLUDING DEFAULTS)").unwrap();
    let attach = "CREATE TRIGGER brls_forge AFTER INSERT ON public.brls_mine REFERENCING NEW TABLE AS new_rows
                  FOR EACH STATEMENT EXECUTE FUNCTION public.behavior_events_summarize()";
    if let Err(e) = c.batch_execute(attach) {
        assert_eq!(sqlstate(&e), "42501", "{e:?}");
    } else {
        let forged = c.batch_execute(&format!(
            "INSERT INTO public.brls_mine (customer_id, session_id, event_type) SELECT '{VICTIM}', 'victim-session', 'forged' FROM generate_series(1, 100)"
        ));
        assert!(forged.is_err(), "the summary rule ran on a foreign table");
    }
    assert_server_alive();
    assert_eq!(state(&db), before, "the victim's insights were forged");
}
