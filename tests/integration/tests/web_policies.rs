//! web (DESIGN.md 3.5, source 002): row-level security by JWT role, through one real LOGIN role
//! without superuser or BYPASSRLS that holds every table privilege Supabase's default privileges
//! grant. `beacon_ingest` only inserts (sessions, events, funnel steps, variant assignments),
//! `ai_analysis` only reads (all six tables), `admin` and `service_role` do everything, anyone
//! else nothing; 002's views show rows only to those who may read the tables.

use pg_assistant_integration::postgres::{Client, Error};
use pg_assistant_integration::{assert_server_alive, ensure_bypassrls_role, sqlstate, with_claims, TestDb};
use serde_json::{json, Value};
use uuid::Uuid;

const ROLE: &str = "pga_it_web_pol_app";
const SERVICE: &str = "pga_it_web_pol_svc";
const TABLES: [&str; 6] =
    ["user_sessions", "interaction_events", "conversion_funnels", "optimization_history", "a_b_tests", "variant_assignments"];
const VIEWS: [&str; 3] = ["friction_points", "conversion_impact", "session_analytics"];

/// Seeds every table (as the superuser): two sessions, twelve rage clicks on one button (a
/// friction point), funnel steps, an implemented optimization with its funnel, an A/B test and
/// an assignment.
fn fixture(test: &str) -> TestDb {
    let db = TestDb::supabase_like(test, &[ROLE]);
    db.superuser()
        .batch_execute(
            "INSERT INTO user_sessions (session_id, landing_page, exit_page, device_type, created_at)
                  VALUES ('seed-1', '/', '/thanks', 'desktop', now() - interval '5 minutes'), ('seed-2', '/pricing', NULL, 'mobile', now());
             INSERT INTO interaction_events (session_id, event_type, element_path, element_type, page_url, component_id, event_data)
                  SELECT CASE WHEN g % 2 = 0 THEN 'seed-1' ELSE 'seed-2' END, 'rage_click', '#buy', 'button', '/pricing', 'cta', '{}'
                    FROM generate_series(1, 12) g;
             INSERT INTO interaction_events (session_id, event_type, page_url, component_id, event_data)
                  VALUES ('seed-1', 'scroll_depth', '/', 'hero', '{\"percentage\": 80}'), ('seed-1', 'click', '/', 'hero', '{}');
             INSERT INTO conversion_funnels (funnel_name, step_name, step_order, session_id, component_id, duration_seconds)
                  VALUES ('lead_capture', 'form', 1, 'seed-1', 'cta', 12), ('lead_capture', 'form', 1, 'seed-2', 'cta', 30);
             INSERT INTO optimization_history (proposal_id, status, friction_point, component_id, change_description, proposed_changes)
                  VALUES ('opt-1', 'implemented', 'rage clicks on #buy', 'cta', 'bigger button', '{\"size\": \"xl\"}');
             INSERT INTO a_b_tests (test_id, test_name, component_id, variant_a, variant_b, status)
                  VALUES ('hero-test', 'Hero copy', 'hero', '{\"copy\": \"A\"}', '{\"copy\": \"B\"}', 'active');
             INSERT INTO variant_assignments (test_id, session_id, variant) VALUES ('hero-test', 'seed-1', 'A');",
        )
        .unwrap();
    db
}

fn counts(c: &mut Client) -> Vec<i64> {
    TABLES.iter().map(|t| c.query_one(&format!("SELECT count(*) FROM {t}"), &[]).unwrap().get(0)).collect()
}

/// One insert per table, with unique keys from `tag` (a beacon's payloads; optimization_history
/// and a_b_tests are the admin's).
fn inserts(tag: &str) -> [String; 6] {
    [
        format!("INSERT INTO user_sessions (session_id, landing_page) VALUES ('{tag}', '/landing')"),
        format!("INSERT INTO interaction_events (session_id, event_type, page_url) VALUES ('seed-2', 'click', '/{tag}')"),
        format!("INSERT INTO conversion_funnels (funnel_name, step_name, step_order, session_id) VALUES ('{tag}', 'start', 1, 'seed-2')"),
        format!(
            "INSERT INTO optimization_history (proposal_id, status, friction_point, change_description, proposed_changes)
             VALUES ('{tag}', 'proposed', 'x', 'y', '{{}}')"
        ),
        format!("INSERT INTO a_b_tests (test_id, test_name, component_id, variant_a, variant_b, status) VALUES ('{tag}', 't', 'c', '{{}}', '{{}}', 'paused')"),
        format!("INSERT INTO variant_assignments (test_id, session_id, variant) VALUES ('hero-test', 'seed-2-{tag}', 'B')"),
    ]
}

/// Runs `sql` in its own transaction with `claims`: the row count (committed) or the error.
fn run(c: &mut Client, claims: &Value, sql: &str) -> Result<u64, Error> {
    let mut tx = with_claims(c, claims.clone());
    match tx.execute(sql, &[]) {
        Ok(n) => {
            tx.commit().unwrap();
            Ok(n)
        }
        Err(e) => {
            tx.rollback().ok();
            Err(e)
        }
    }
}

fn updates() -> [&'static str; 6] {
    [
        "UPDATE user_sessions SET exit_page = '/gone', page_count = 99",
        "UPDATE interaction_events SET event_type = 'click', element_text = 'tampered'",
        "UPDATE conversion_funnels SET dropoff_reason = 'tampered'",
        "UPDATE optimization_history SET status = 'approved', change_description = 'tampered'",
        "UPDATE a_b_tests SET winner_variant = 'B'",
        "UPDATE variant_assignments SET variant = 'B'",
    ]
}

#[test]
fn beacon_ingest_inserts_but_neither_reads_nor_changes() {
    let db = fixture("web_pol_beacon");
    let mut su = db.superuser();
    let before = counts(&mut su);
    let mut c = db.connect_as(ROLE);
    let beacon = json!({ "role": "beacon_ingest" });

    // Its own session first (the assignment below needs it), then the rest.
    let ins = inserts("b-1");
    su.execute("INSERT INTO user_sessions (session_id, landing_page) VALUES ('seed-2-b-1', '/')", &[]).unwrap();
    for (i, sql) in ins.iter().enumerate() {
        let allowed = !matches!(TABLES[i], "optimization_history" | "a_b_tests");
        match run(&mut c, &beacon, sql) {
            Ok(n) => assert!(allowed && n == 1, "{sql}: beacon_ingest may not write {}", TABLES[i]),
            Err(e) => {
                assert!(!allowed, "{sql}: {e:?}");
                assert_eq!(sqlstate(&e), "42501", "{sql}: {e:?}");
            }
        }
    }
    // It reads nothing, not even what it just wrote.
    for table in TABLES {
        let mut tx = with_claims(&mut c, beacon.clone());
        let n: i64 = tx.query_one(&format!("SELECT count(*) FROM {table}"), &[]).unwrap().get(0);
        assert_eq!(n, 0, "beacon_ingest reads {table}");
        tx.rollback().unwrap();
    }
    // RETURNING would read: refused.
    let err = run(&mut c, &beacon, "INSERT INTO user_sessions (session_id, landing_page) VALUES ('b-ret', '/') RETURNING id").unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err:?}");
    // It changes and deletes nothing.
    for sql in updates() {
        assert_eq!(run(&mut c, &beacon, sql).unwrap(), 0, "{sql}");
    }
    for table in TABLES {
        assert_eq!(run(&mut c, &beacon, &format!("DELETE FROM {table}")).unwrap(), 0, "DELETE {table}");
    }
    // An upsert onto an existing session would update it: refused.
    let err = run(
        &mut c,
        &beacon,
        "INSERT INTO user_sessions (session_id, landing_page) VALUES ('seed-1', '/') ON CONFLICT (session_id) DO UPDATE SET exit_page = '/x'",
    )
    .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err:?}");

    let after = counts(&mut su);
    let added: Vec<i64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    // user_sessions: its own plus the one the superuser added for the assignment.
    assert_eq!(added, vec![2, 1, 1, 0, 0, 1]);
    let untouched: i64 = su
        .query_one(
            "SELECT count(*) FROM user_sessions WHERE exit_page IS DISTINCT FROM '/gone' AND page_count = 1
              AND session_id IN ('seed-1', 'seed-2')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(untouched, 2);
}

#[test]
fn ai_analysis_reads_everything_and_writes_nothing() {
    let db = fixture("web_pol_analysis");
    let mut su = db.superuser();
    let before = counts(&mut su);
    assert!(before.iter().all(|&n| n > 0), "every table seeded: {before:?}");
    let mut c = db.connect_as(ROLE);
    let analysis = json!({ "role": "ai_analysis" });
    let mut tx = with_claims(&mut c, analysis.clone());
    let seen: Vec<i64> = TABLES.iter().map(|t| tx.query_one(&format!("SELECT count(*) FROM {t}"), &[]).unwrap().get(0)).collect();
    assert_eq!(seen, before, "ai_analysis reads every row of every table");
    tx.commit().unwrap();
    for sql in inserts("ai-1") {
        let err = run(&mut c, &analysis, &sql).err().unwrap_or_else(|| panic!("ai_analysis wrote: {sql}"));
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err:?}");
    }
    for sql in updates() {
        assert_eq!(run(&mut c, &analysis, sql).unwrap(), 0, "{sql}");
    }
    for table in TABLES {
        assert_eq!(run(&mut c, &analysis, &format!("DELETE FROM {table}")).unwrap(), 0, "DELETE {table}");
    }
    // SELECT ... FOR UPDATE needs UPDATE rights through the policies too: it locks nothing.
    let mut tx = with_claims(&mut c, analysis.clone());
    let locked = tx.query("SELECT id FROM optimization_history FOR UPDATE", &[]).map(|r| r.len()).unwrap_or(0);
    assert_eq!(locked, 0, "ai_analysis locked rows it may not update");
    tx.rollback().unwrap();
    assert_eq!(counts(&mut su), before);
    let tampered: i64 = su
        .query_one(
            "SELECT (SELECT count(*) FROM optimization_history WHERE status <> 'implemented')
                  + (SELECT count(*) FROM a_b_tests WHERE winner_variant IS NOT NULL)
                  + (SELECT count(*) FROM interaction_events WHERE element_text = 'tampered')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tampered, 0);
}

#[test]
fn admin_and_services_do_everything() {
    let db = fixture("web_pol_admin");
    let mut su = db.superuser();
    let before = counts(&mut su);
    let mut c = db.connect_as(ROLE);
    for (k, role) in ["admin", "service_role"].iter().enumerate() {
        let who = json!({ "sub": Uuid::new_v4().to_string(), "role": role });
        let tag = format!("{role}-{k}");
        let mut tx = with_claims(&mut c, who.clone());
        let seen: Vec<i64> = TABLES.iter().map(|t| tx.query_one(&format!("SELECT count(*) FROM {t}"), &[]).unwrap().get(0)).collect();
        assert_eq!(seen, counts(&mut su), "{role} reads everything");
        tx.execute(&format!("INSERT INTO user_sessions (session_id, landing_page) VALUES ('seed-2-{tag}', '/')"), &[]).unwrap();
        for sql in inserts(&tag) {
            assert_eq!(tx.execute(&sql, &[]).unwrap(), 1, "{role}: {sql}");
        }
        let id: Uuid = tx.query_one(&format!("SELECT id FROM user_sessions WHERE session_id = '{tag}'"), &[]).unwrap().get(0);
        assert_eq!(tx.execute("UPDATE user_sessions SET page_count = 3 WHERE id = $1", &[&id]).unwrap(), 1);
        assert_eq!(
            tx.execute(&format!("UPDATE optimization_history SET status = 'approved' WHERE proposal_id = '{tag}'"), &[]).unwrap(),
            1
        );
        assert_eq!(
            tx.execute(&format!("UPDATE a_b_tests SET status = 'completed', winner_variant = 'A' WHERE test_id = '{tag}'"), &[]).unwrap(),
            1
        );
        assert_eq!(tx.execute(&format!("DELETE FROM conversion_funnels WHERE funnel_name = '{tag}'"), &[]).unwrap(), 1);
        assert_eq!(tx.execute(&format!("DELETE FROM interaction_events WHERE page_url = '/{tag}'"), &[]).unwrap(), 1);
        assert_eq!(tx.execute(&format!("DELETE FROM variant_assignments WHERE session_id = 'seed-2-{tag}'"), &[]).unwrap(), 1);
        tx.commit().unwrap();
    }
    let after = counts(&mut su);
    let added: Vec<i64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(added, vec![4, 0, 0, 2, 2, 0]);
}

#[test]
fn anyone_else_gets_nothing() {
    let db = fixture("web_pol_others");
    let mut su = db.superuser();
    let before = counts(&mut su);
    let mut c = db.connect_as(ROLE);
    for who in [
        json!({}),
        json!({ "role": "anon" }),
        json!({ "sub": Uuid::new_v4().to_string(), "role": "authenticated" }),
        json!({ "role": "Admin" }),
        json!({ "role": "admin " }),
        json!({ "role": "beacon_ingest,ai_analysis" }),
        json!({ "role": ["admin"] }),
    ] {
        let mut tx = with_claims(&mut c, who.clone());
        for table in TABLES {
            let n: i64 = tx.query_one(&format!("SELECT count(*) FROM {table}"), &[]).unwrap().get(0);
            assert_eq!(n, 0, "{who} reads {table}");
        }
        for view in VIEWS {
            let n: i64 = tx.query_one(&format!("SELECT count(*) FROM {view}"), &[]).unwrap().get(0);
            assert_eq!(n, 0, "{who} reads {view}");
        }
        tx.rollback().unwrap();
        for sql in inserts("x") {
            let err = run(&mut c, &who, &sql).err().unwrap_or_else(|| panic!("{who}: {sql}"));
            assert_eq!(sqlstate(&err), "42501", "{who}: {sql}: {err:?}");
        }
        for sql in updates() {
            assert_eq!(run(&mut c, &who, sql).unwrap(), 0, "{who}: {sql}");
        }
        for table in TABLES {
            assert_eq!(run(&mut c, &who, &format!("DELETE FROM {table}")).unwrap(), 0, "{who}: DELETE {table}");
        }
    }
    // Without claims at all (no request.jwt.claims setting in the session).
    let mut fresh = db.connect_as(ROLE);
    for table in TABLES.iter().chain(VIEWS.iter()) {
        let n: i64 = fresh.query_one(&format!("SELECT count(*) FROM {table}"), &[]).unwrap().get(0);
        assert_eq!(n, 0, "no claims: {table}");
    }
    assert_eq!(counts(&mut su), before);
    assert_server_alive();
}

/// friction_points, conversion_impact and session_analytics read the tables as the views' owner:
/// they must show rows only to admin, ai_analysis, service callers and BYPASSRLS roles.
#[test]
fn views_show_rows_only_to_analysts() {
    let db = fixture("web_pol_views");
    ensure_bypassrls_role(SERVICE);
    let mut su = db.superuser();
    su.batch_execute(&format!(
        "GRANT USAGE ON SCHEMA public TO {SERVICE}; GRANT SELECT ON friction_points, conversion_impact, session_analytics TO {SERVICE};"
    ))
    .unwrap();
    let snapshot = |c: &mut Client, view: &str| -> Vec<String> {
        c.query(&format!("SELECT v::text FROM {view} v ORDER BY 1"), &[]).unwrap().iter().map(|r| r.get(0)).collect()
    };
    let expected: Vec<Vec<String>> = VIEWS.iter().map(|v| snapshot(&mut su, v)).collect();
    for (view, rows) in VIEWS.iter().zip(&expected) {
        assert!(!rows.is_empty(), "{view} has rows for the superuser");
    }
    assert_eq!(expected[0].len(), 1, "one friction point (12 rage clicks on #buy)");

    let mut c = db.connect_as(ROLE);
    for role in ["admin", "ai_analysis", "service_role"] {
        let mut tx = with_claims(&mut c, json!({ "role": role }));
        for (view, rows) in VIEWS.iter().zip(&expected) {
            let got: Vec<String> =
                tx.query(&format!("SELECT v::text FROM {view} v ORDER BY 1"), &[]).unwrap().iter().map(|r| r.get(0)).collect();
            assert_eq!(&got, rows, "{view} as {role}");
        }
        tx.rollback().unwrap();
    }
    for role in ["beacon_ingest", "anon", "authenticated"] {
        let mut tx = with_claims(&mut c, json!({ "sub": Uuid::new_v4().to_string(), "role": role }));
        for view in VIEWS {
            let n: i64 = tx.query_one(&format!("SELECT count(*) FROM {view}"), &[]).unwrap().get(0);
            assert_eq!(n, 0, "{view} shows rows to {role}");
            // Not through a filter that would be evaluated before the view's check either.
            let n: i64 = tx.query_one(&format!("SELECT count(*) FROM {view} v WHERE v::text IS NOT NULL OR true"), &[]).unwrap().get(0);
            assert_eq!(n, 0, "{view} shows rows to {role} through a WHERE clause");
        }
        tx.rollback().unwrap();
    }
    let mut svc = db.connect_as(SERVICE);
    for (view, rows) in VIEWS.iter().zip(&expected) {
        assert_eq!(&snapshot(&mut svc, view), rows, "{view} for a BYPASSRLS role without claims");
    }
}

/// Beacon payloads come from browsers: one malformed number in `event_data` must not take
/// `refresh_analytics_views()` or 002's views down for everyone. The extension may refuse the
/// event at insert, or the views may skip the bad value, but every later refresh and read works.
#[test]
fn malformed_beacon_payloads_do_not_break_analytics() {
    let db = fixture("web_pol_payloads");
    let mut c = db.connect_as(ROLE);
    let beacon = json!({ "role": "beacon_ingest" });
    let mut accepted = Vec::new();
    for (event_type, data) in [
        ("hesitation", r#"{"hesitation_ms": "n/a"}"#),
        ("hesitation", r#"{"hesitation_ms": {"value": 1200}}"#),
        ("scroll_depth", r#"{"percentage": "full"}"#),
        ("scroll_depth", r#"{"percentage": ""}"#),
    ] {
        let sql = format!(
            "INSERT INTO interaction_events (session_id, event_type, page_url, component_id, event_data)
             VALUES ('seed-1', '{event_type}', '/', 'hero', '{data}')"
        );
        match run(&mut c, &beacon, &sql) {
            Ok(_) => accepted.push(data),
            Err(e) => assert!(
                ["22023", "22P02", "23514", "P0001"].contains(&sqlstate(&e).as_str()),
                "a malformed payload should be refused as bad input, got {e:?}"
            ),
        }
    }
    assert_server_alive();
    let mut su = db.superuser();
    let refresh = su.execute("SELECT refresh_analytics_views()", &[]);
    assert!(refresh.is_ok(), "refresh_analytics_views() fails after the beacon stored {accepted:?}: {:?}", refresh.err());
    for view in VIEWS {
        let mut tx = with_claims(&mut c, json!({ "role": "ai_analysis" }));
        let read = tx.query(&format!("SELECT * FROM {view}"), &[]);
        assert!(read.is_ok(), "{view} fails for ai_analysis after the beacon stored {accepted:?}: {:?}", read.err());
        tx.rollback().unwrap();
    }
}
