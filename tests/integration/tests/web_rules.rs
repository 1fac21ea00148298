//! web (DESIGN.md 3.5): the rules on user_sessions and optimization_history, and 002's
//! conversion_impact view, driven the way the beacon worker, the AI worker and an admin drive
//! them: one LOGIN role without superuser or BYPASSRLS, the JWT role per transaction.

use pg_assistant_integration::postgres::{Client, Transaction};
use pg_assistant_integration::{assert_server_alive, message, sqlstate, with_claims, TestDb};
use serde_json::json;

const ROLE: &str = "pga_it_web_rules_app";

fn beacon(c: &mut Client) -> Transaction<'_> {
    with_claims(c, json!({ "role": "beacon_ingest" }))
}

fn admin(c: &mut Client) -> Transaction<'_> {
    with_claims(c, json!({ "role": "admin" }))
}

/// (duration_seconds, whole seconds from created_at to now) of session `id`, read in `tx`.
fn duration(tx: &mut Transaction<'_>, id: &str) -> (Option<i32>, i64) {
    let r = tx
        .query_one(
            "SELECT duration_seconds, floor(extract(epoch FROM now() - created_at))::bigint FROM user_sessions WHERE session_id = $1",
            &[&id],
        )
        .unwrap();
    (r.get(0), r.get(1))
}

#[test]
fn session_duration_is_set_when_the_exit_is_first_known() {
    let db = TestDb::supabase_like("web_rules_duration", &[ROLE]);
    let mut c = db.connect_as(ROLE);

    // The beacon reports sessions: one that ended 90 s after it began (exit at insert), one
    // still open, one whose clock is ahead of the server's, one that claims its own duration.
    let mut tx = beacon(&mut c);
    tx.batch_execute(
        "INSERT INTO user_sessions (session_id, landing_page, exit_page, exit_reason, created_at)
              VALUES ('closed', '/', '/bye', 'close', now() - interval '90 seconds');
         INSERT INTO user_sessions (session_id, landing_page, created_at) VALUES ('open', '/', now() - interval '150.7 seconds');
         INSERT INTO user_sessions (session_id, landing_page, exit_page, created_at) VALUES ('future', '/', '/x', now() + interval '1 hour');
         INSERT INTO user_sessions (session_id, landing_page, exit_page, duration_seconds, created_at)
              VALUES ('claimed', '/', '/x', 99999, now() - interval '10 seconds');",
    )
    .unwrap();
    tx.commit().unwrap();
    let mut tx = admin(&mut c);
    // Computed against the inserting transaction's now(): exact whole seconds.
    let (closed, _) = duration(&mut tx, "closed");
    assert_eq!(closed, Some(90), "exit_page at insert sets duration_seconds");
    let (open, _) = duration(&mut tx, "open");
    assert_eq!(open, None, "no exit, no duration");
    let (future, _) = duration(&mut tx, "future");
    assert_eq!(future, Some(0), "never negative");
    let (claimed, _) = duration(&mut tx, "claimed");
    assert_eq!(claimed, Some(10), "the duration is computed, not taken from the payload");
    tx.commit().unwrap();

    // Other changes of the open session leave the duration alone ...
    let mut tx = admin(&mut c);
    tx.execute("UPDATE user_sessions SET page_count = 4 WHERE session_id = 'open'", &[]).unwrap();
    assert_eq!(duration(&mut tx, "open").0, None);
    tx.commit().unwrap();
    // ... the first exit sets it: whole seconds (truncated) from created_at to the transaction's now().
    let mut tx = admin(&mut c);
    tx.execute("UPDATE user_sessions SET exit_page = '/checkout', exit_reason = 'navigation' WHERE session_id = 'open'", &[]).unwrap();
    let (set, expected) = duration(&mut tx, "open");
    assert_eq!(set, Some(expected as i32));
    assert!(expected >= 150, "{expected}");
    let updated_now: bool = tx.query_one("SELECT updated_at = now() FROM user_sessions WHERE session_id = 'open'", &[]).unwrap().get(0);
    assert!(updated_now, "set_updated_at on user_sessions");
    tx.commit().unwrap();
    // A later exit change keeps the first duration (the session is made an hour older first, so
    // a recomputation could not give the same number).
    db.superuser().execute("UPDATE user_sessions SET created_at = created_at - interval '1 hour' WHERE session_id = 'open'", &[]).unwrap();
    let mut tx = admin(&mut c);
    tx.execute("UPDATE user_sessions SET exit_page = '/elsewhere' WHERE session_id = 'open'", &[]).unwrap();
    let (kept, now) = duration(&mut tx, "open");
    assert_eq!(kept, set, "duration_seconds changed when exit_page changed again");
    assert!(now >= expected + 3600, "{now} {expected}");
    tx.execute("UPDATE user_sessions SET exit_page = '/bye' WHERE session_id = 'closed'", &[]).unwrap();
    assert_eq!(duration(&mut tx, "closed").0, Some(90));
    tx.commit().unwrap();

    // The rows and their durations satisfy 002's check for everyone.
    let mut su = db.superuser();
    let negative: i64 = su.query_one("SELECT count(*) FROM user_sessions WHERE duration_seconds < 0", &[]).unwrap().get(0);
    assert_eq!(negative, 0);
    assert_server_alive();
}

/// (implemented_at, tested_at, deployed_at) of proposal `id` as text, and whether each equals
/// the current transaction's now().
fn stamps(tx: &mut Transaction<'_>, id: &str) -> [(Option<String>, bool); 3] {
    let r = tx
        .query_one(
            "SELECT implemented_at::text, implemented_at = now(), tested_at::text, tested_at = now(),
                    deployed_at::text, deployed_at = now()
               FROM optimization_history WHERE proposal_id = $1",
            &[&id],
        )
        .unwrap();
    let eq = |i: usize| r.get::<_, Option<bool>>(i).unwrap_or(false);
    [(r.get(0), eq(1)), (r.get(2), eq(3)), (r.get(4), eq(5))]
}

fn set_status(c: &mut Client, id: &str, status: &str) -> [(Option<String>, bool); 3] {
    let mut tx = admin(c);
    assert_eq!(tx.execute("UPDATE optimization_history SET status = $2 WHERE proposal_id = $1", &[&id, &status]).unwrap(), 1);
    let s = stamps(&mut tx, id);
    tx.commit().unwrap();
    s
}

#[test]
fn optimization_status_stamps_once_and_rollback_needs_a_reason() {
    let db = TestDb::supabase_like("web_rules_optimization", &[ROLE]);
    let mut c = db.connect_as(ROLE);
    let mut tx = admin(&mut c);
    tx.batch_execute(
        "INSERT INTO optimization_history (proposal_id, status, friction_point, change_description, proposed_changes)
         VALUES ('p1', 'proposed', 'rage clicks', 'bigger button', '{}')",
    )
    .unwrap();
    let s = stamps(&mut tx, "p1");
    assert!(s.iter().all(|(v, _)| v.is_none()), "a proposal has no stamps: {s:?}");
    tx.commit().unwrap();

    // First to testing: tested_at, at the transaction's time.
    let s = set_status(&mut c, "p1", "testing");
    assert!(s[0].0.is_none() && s[2].0.is_none(), "{s:?}");
    assert!(s[1].1, "tested_at = now(): {s:?}");
    let tested = s[1].0.clone();
    // First to implemented: implemented_at and deployed_at.
    let s = set_status(&mut c, "p1", "implemented");
    assert!(s[0].1 && s[2].1, "implemented_at and deployed_at = now(): {s:?}");
    assert_eq!(s[1].0, tested, "tested_at kept");
    let implemented = (s[0].0.clone(), s[2].0.clone());
    // Back and forth: nothing is stamped again.
    for status in ["testing", "approved", "implemented", "archived", "testing", "implemented"] {
        let s = set_status(&mut c, "p1", status);
        assert_eq!(s[1].0, tested, "tested_at overwritten by {status}");
        assert_eq!((s[0].0.clone(), s[2].0.clone()), implemented, "implemented_at/deployed_at overwritten by {status}");
    }

    // Straight to implemented / testing at insert.
    let mut tx = admin(&mut c);
    tx.batch_execute(
        "INSERT INTO optimization_history (proposal_id, status, friction_point, change_description, proposed_changes)
         VALUES ('p2', 'implemented', 'f', 'd', '{}'), ('p3', 'testing', 'f', 'd', '{}')",
    )
    .unwrap();
    let s = stamps(&mut tx, "p2");
    assert!(s[0].1 && s[2].1 && s[1].0.is_none(), "{s:?}");
    let s = stamps(&mut tx, "p3");
    assert!(s[1].1 && s[0].0.is_none() && s[2].0.is_none(), "{s:?}");
    tx.commit().unwrap();

    // Rolled back needs a reason: missing, NULL, empty or blank is P0001.
    for (what, sql) in [
        ("no reason", "UPDATE optimization_history SET status = 'rolled_back' WHERE proposal_id = 'p1'"),
        ("NULL reason", "UPDATE optimization_history SET status = 'rolled_back', rollback_reason = NULL WHERE proposal_id = 'p1'"),
        ("empty reason", "UPDATE optimization_history SET status = 'rolled_back', rollback_reason = '' WHERE proposal_id = 'p1'"),
        ("blank reason", "UPDATE optimization_history SET status = 'rolled_back', rollback_reason = E'  \\t ' WHERE proposal_id = 'p1'"),
        (
            "at insert",
            "INSERT INTO optimization_history (proposal_id, status, friction_point, change_description, proposed_changes)
             VALUES ('p4', 'rolled_back', 'f', 'd', '{}')",
        ),
    ] {
        let mut tx = admin(&mut c);
        let err = tx.execute(sql, &[]).err().unwrap_or_else(|| panic!("{what}: accepted"));
        assert_eq!(sqlstate(&err), "P0001", "{what}: {err:?}");
        assert_eq!(message(&err), "rollback_reason is required", "{what}");
        tx.rollback().unwrap();
        assert_server_alive();
    }
    let mut tx = admin(&mut c);
    tx.execute(
        "UPDATE optimization_history SET status = 'rolled_back', rollback_reason = 'conversion dropped 4%' WHERE proposal_id = 'p1'",
        &[],
    )
    .unwrap();
    let s = stamps(&mut tx, "p1");
    assert_eq!(s[1].0, tested);
    assert_eq!((s[0].0.clone(), s[2].0.clone()), implemented);
    tx.commit().unwrap();
    let status: String = db.superuser().query_one("SELECT status FROM optimization_history WHERE proposal_id = 'p1'", &[]).unwrap().get(0);
    assert_eq!(status, "rolled_back");
    // The superuser is held to it too.
    let err = db.superuser().execute("UPDATE optimization_history SET status = 'rolled_back' WHERE proposal_id = 'p2'", &[]).unwrap_err();
    assert_eq!(sqlstate(&err), "P0001");
}

/// conversion_impact joins an optimization to the funnel steps of its component.
#[test]
fn conversion_impact_joins_on_component_id() {
    let db = TestDb::supabase_like("web_rules_impact", &[ROLE]);
    let mut c = db.connect_as(ROLE);
    let mut tx = beacon(&mut c);
    tx.batch_execute(
        "INSERT INTO user_sessions (session_id, landing_page) SELECT 's' || g, '/' FROM generate_series(1, 6) g;
         INSERT INTO conversion_funnels (funnel_name, step_name, step_order, session_id, component_id, duration_seconds) VALUES
             ('lead_capture', 'form', 1, 's1', 'cta-button', 10),
             ('lead_capture', 'form', 1, 's2', 'cta-button', 20),
             ('checkout', 'pay', 1, 's2', 'cta-button', 30),
             ('checkout', 'pay', 1, 's3', 'cta-button', 40),
             ('lead_capture', 'form', 1, 's4', 'signup-form', 5),
             ('lead_capture', 'form', 1, 's5', NULL, 99);",
    )
    .unwrap();
    tx.commit().unwrap();
    let mut tx = admin(&mut c);
    tx.batch_execute(
        "INSERT INTO optimization_history (proposal_id, status, friction_point, component_id, change_description, proposed_changes, expected_impact)
         VALUES ('impl', 'implemented', 'rage clicks', 'cta-button', 'd', '{}', 0.30),
                ('test', 'testing', 'abandon', 'signup-form', 'd', '{}', 0.10),
                ('prop', 'proposed', 'x', 'cta-button', 'd', '{}', 0.50),
                ('lonely', 'implemented', 'x', 'footer', 'd', '{}', NULL),
                ('nocomp', 'implemented', 'x', NULL, 'd', '{}', NULL);",
    )
    .unwrap();
    tx.commit().unwrap();

    let mut tx = with_claims(&mut c, json!({ "role": "ai_analysis" }));
    let rows = tx
        .query(
            "SELECT proposal_id, component_id, status, total_conversions, avg_funnel_time::float8, affected_funnels::text, expected_impact::text
               FROM conversion_impact ORDER BY proposal_id",
            &[],
        )
        .unwrap();
    let got: Vec<(String, Option<String>, String, i64, Option<f64>, String, Option<String>)> =
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6))).collect();
    assert_eq!(
        got,
        vec![
            (
                "impl".into(),
                Some("cta-button".into()),
                "implemented".into(),
                3,
                Some(25.0),
                "{checkout,lead_capture}".into(),
                Some("0.30".into())
            ),
            ("lonely".into(), Some("footer".into()), "implemented".into(), 0, None, "{NULL}".into(), None),
            ("nocomp".into(), None, "implemented".into(), 0, None, "{NULL}".into(), None),
            ("test".into(), Some("signup-form".into()), "testing".into(), 1, Some(5.0), "{lead_capture}".into(), Some("0.10".into())),
        ]
    );
    tx.commit().unwrap();
}
