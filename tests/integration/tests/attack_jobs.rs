//! Attack class 3: running the jobs as `anon`.
//!
//! On Supabase, `ALTER DEFAULT PRIVILEGES ... GRANT ALL ON FUNCTIONS` gives `anon` and
//! `authenticated` EXECUTE on every function the extension creates, the retention and
//! maintenance jobs included. An unauthenticated client could then call
//! `delete_expired_sessions('0 seconds')` and wipe every user's history, zero everyone's weekly
//! counters, read everyone's counters through `verify_counts()` or rewrite them with
//! `repair_counts()`.
//!
//! What must happen instead: each job checks its caller natively (superuser or BYPASSRLS) and
//! refuses everyone else with `42501` / `permission denied for function <name>`, whatever EXECUTE
//! grants and whatever JWT claims (even a forged `service_role`) the caller has; nothing is
//! deleted, reset or logged. A LOGIN role with BYPASSRLS (a service) runs all five.

use pg_assistant_integration::postgres::types::ToSql;
use pg_assistant_integration::postgres::{Client, Error};
use pg_assistant_integration::{assert_server_alive, connect, message, sqlstate, with_claims, TestDb};
use serde_json::{json, Value};
use uuid::Uuid;

const ANON: &str = "pga_atk_jobs_anon";
const AUTH: &str = "pga_atk_jobs_auth";
const SERVICE: &str = "pga_atk_jobs_svc";

/// The five jobs, by signature (for has_function_privilege) and by name (for the message).
const JOBS: [(&str, &str); 5] = [
    ("reset_weekly_limits(integer)", "reset_weekly_limits"),
    ("delete_expired_sessions(interval)", "delete_expired_sessions"),
    ("delete_old_logs(interval)", "delete_old_logs"),
    ("verify_counts()", "verify_counts"),
    ("repair_counts()", "repair_counts"),
];

struct Fixture {
    db: TestDb,
    /// The authenticated attacker's own user id (a real profile).
    attacker: Uuid,
    /// Every seeded session, other users' included.
    sessions: Vec<Uuid>,
    /// Every seeded user.
    users: Vec<Uuid>,
}

/// A Supabase-like database: `anon` and `authenticated` look-alikes hold EXECUTE on everything
/// through default privileges. Three users, each with a session started a year ago (completed)
/// and one started now (open), messages, a log a year old, weekly counters whose week has
/// ended (so a reset would zero them) and a drifted total (so a repair would rewrite it).
fn fixture(test: &str) -> Fixture {
    let db = TestDb::supabase_like(test, &[ANON, AUTH]);
    let mut su = db.superuser();
    su.batch_execute("INSERT INTO scenarios (id, title) VALUES ('market', 'Marketplace')").unwrap();
    let users: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    let mut sessions = Vec::new();
    for (i, user) in users.iter().enumerate() {
        su.execute("SELECT create_profile($1, $2)", &[user, &format!("jobs{i}@example.com")]).unwrap();
        let old: Uuid = su
            .query_one(
                "INSERT INTO sessions (user_id, scenario_id, started_at)
                 VALUES ($1, 'market', now() - interval '1 year') RETURNING id",
                &[user],
            )
            .unwrap()
            .get(0);
        su.execute("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'old')", &[&old])
            .unwrap();
        su.execute("UPDATE sessions SET is_completed = true WHERE id = $1", &[&old]).unwrap();
        let recent: Uuid = su
            .query_one("INSERT INTO sessions (user_id, scenario_id) VALUES ($1, 'market') RETURNING id", &[user])
            .unwrap()
            .get(0);
        su.execute("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'new')", &[&recent])
            .unwrap();
        su.execute(
            "INSERT INTO logs (session_id, user_id, level, event, created_at)
             VALUES ($1, $2, 'info', 'seed', now() - interval '1 year')",
            &[&old, user],
        )
        .unwrap();
        sessions.push(old);
        sessions.push(recent);
    }
    // Counters whose week is over (a reset zeroes them) and a drifted total (a repair fixes it).
    su.execute(
        "UPDATE profiles SET weekly_completed_sessions = 4, weekly_started_sessions = 6,
                             total_completed_sessions = total_completed_sessions + 5,
                             week_reset_date = '2020-01-06 00:00:00+00'",
        &[],
    )
    .unwrap();
    Fixture { db, attacker: users[2], sessions, users }
}

/// Everything a job could change, as text (read as superuser).
fn state(db: &TestDb) -> String {
    let mut su = db.superuser();
    su.query_one(
        "SELECT concat_ws(E'\\n',
            (SELECT string_agg(concat_ws(' ', id, user_id, started_at, is_completed, completed_at, duration_seconds,
                                         message_count_main, message_count_helper), E'\\n' ORDER BY id) FROM sessions),
            (SELECT string_agg(concat_ws(' ', id, email, total_completed_sessions, weekly_completed_sessions,
                                         weekly_started_sessions, weekly_session_limit, week_reset_date), E'\\n' ORDER BY id)
               FROM profiles),
            (SELECT string_agg(concat_ws(' ', id, session_id, user_id, event, created_at), E'\\n' ORDER BY id) FROM logs),
            (SELECT string_agg(concat_ws(' ', id, session_id), E'\\n' ORDER BY id) FROM messages))",
        &[],
    )
    .unwrap()
    .get(0)
}

/// Runs `sql` in its own transaction carrying `claims` (none: no JWT at all); commits on success.
fn attempt(c: &mut Client, claims: Option<Value>, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, Error> {
    let mut tx = match claims {
        Some(claims) => with_claims(c, claims),
        None => c.transaction().unwrap(),
    };
    match tx.execute(sql, params) {
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

/// The attacker identities: a role and the claims its requests carry.
fn attackers(attacker: Uuid) -> Vec<(&'static str, Option<Value>)> {
    vec![
        // Unauthenticated: no JWT, and the anon key's claims.
        (ANON, None),
        (ANON, Some(json!({ "role": "anon" }))),
        // A signed-in user.
        (AUTH, Some(json!({ "sub": attacker.to_string(), "role": "authenticated" }))),
        // Forged service claims: the app role is only a claim, not a privilege.
        (ANON, Some(json!({ "role": "service_role" }))),
        (AUTH, Some(json!({ "sub": attacker.to_string(), "role": "service_role" }))),
    ]
}

fn expect_permission_denied(err: &Error, function: &str, what: &str) {
    assert_eq!(sqlstate(err), "42501", "{what}: {err:?}");
    assert_eq!(message(err), format!("permission denied for function {function}"), "{what}: {err:?}");
    assert_server_alive();
}

fn job_logs(db: &TestDb) -> i64 {
    db.superuser().query_one("SELECT count(*) FROM logs WHERE event = 'job'", &[]).unwrap().get(0)
}

/// The grants are there: EXECUTE is not what stops the attack.
#[test]
fn default_privileges_grant_execute_on_every_job() {
    let f = fixture("atk_jobs_grants");
    let mut su = f.db.superuser();
    for role in [ANON, AUTH] {
        for (signature, _) in JOBS {
            let granted: bool = su
                .query_one("SELECT has_function_privilege($1, $2, 'EXECUTE')", &[&role, &signature])
                .unwrap()
                .get(0);
            assert!(granted, "{role} should hold EXECUTE on {signature} through default privileges");
        }
        let attrs = su
            .query_one("SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = $1", &[&role])
            .unwrap();
        assert_eq!((attrs.get::<_, bool>(0), attrs.get::<_, bool>(1), attrs.get::<_, bool>(2)), (false, false, true));
    }
}

/// The original attack: `SELECT delete_expired_sessions('0 seconds')` without signing in.
#[test]
fn anon_cannot_delete_everyones_sessions() {
    let f = fixture("atk_jobs_delete_sessions");
    let before = state(&f.db);
    for (role, claims) in attackers(f.attacker) {
        let mut c = f.db.connect_as(role);
        for sql in [
            "SELECT delete_expired_sessions('0 seconds')",
            "SELECT delete_expired_sessions()",
            "SELECT * FROM public.delete_expired_sessions(older_than => '0 seconds'::interval)",
        ] {
            let what = format!("{role} {claims:?}: {sql}");
            let err = attempt(&mut c, claims.clone(), sql, &[]).err().unwrap_or_else(|| panic!("{what} succeeded"));
            expect_permission_denied(&err, "delete_expired_sessions", &what);
        }
    }
    // Wrapped in a SECURITY DEFINER function of the attacker's own: still the attacker.
    let mut c = f.db.connect_as(AUTH);
    c.batch_execute(
        "CREATE FUNCTION public.atk_wipe() RETURNS int LANGUAGE sql SECURITY DEFINER
             AS $$ SELECT public.delete_expired_sessions('0 seconds') $$",
    )
    .unwrap();
    let err = attempt(&mut c, Some(json!({ "role": "anon" })), "SELECT public.atk_wipe()", &[]).unwrap_err();
    expect_permission_denied(&err, "delete_expired_sessions", "through a SECURITY DEFINER wrapper");

    // Every seeded session (other users' too, started a year ago) is still there, with its
    // messages, and no job log row was written.
    let mut su = f.db.superuser();
    for s in &f.sessions {
        let n: i64 = su.query_one("SELECT count(*) FROM sessions WHERE id = $1", &[s]).unwrap().get(0);
        assert_eq!(n, 1, "session {s} was deleted");
    }
    let messages: i64 = su.query_one("SELECT count(*) FROM messages", &[]).unwrap().get(0);
    assert_eq!(messages, 6);
    assert_eq!(job_logs(&f.db), 0);
    assert_eq!(state(&f.db), before);
}

/// The four other jobs: no reset, no log deletion, no reading or rewriting of counters.
#[test]
fn ordinary_callers_cannot_run_the_other_jobs() {
    let f = fixture("atk_jobs_others");
    let before = state(&f.db);
    for (role, claims) in attackers(f.attacker) {
        let mut c = f.db.connect_as(role);
        for (sql, function) in [
            ("SELECT reset_weekly_limits()", "reset_weekly_limits"),
            ("SELECT reset_weekly_limits(1)", "reset_weekly_limits"),
            ("SELECT delete_old_logs('0 seconds')", "delete_old_logs"),
            ("SELECT delete_old_logs()", "delete_old_logs"),
            ("SELECT * FROM verify_counts()", "verify_counts"),
            ("SELECT repair_counts()", "repair_counts"),
        ] {
            let what = format!("{role} {claims:?}: {sql}");
            let err = attempt(&mut c, claims.clone(), sql, &[]).err().unwrap_or_else(|| panic!("{what} succeeded"));
            expect_permission_denied(&err, function, &what);
        }
    }
    let mut su = f.db.superuser();
    // Nobody's counter was zeroed, nobody's reset date moved, the drift is still there.
    for user in &f.users {
        let row = su
            .query_one(
                "SELECT weekly_completed_sessions, weekly_started_sessions, total_completed_sessions,
                        week_reset_date = '2020-01-06 00:00:00+00'
                   FROM profiles WHERE id = $1",
                &[user],
            )
            .unwrap();
        assert_eq!(
            (row.get::<_, i32>(0), row.get::<_, i32>(1), row.get::<_, i32>(2), row.get::<_, bool>(3)),
            (4, 6, 6, true),
            "profile {user} was changed"
        );
    }
    let seeded_logs: i64 = su.query_one("SELECT count(*) FROM logs WHERE event = 'seed'", &[]).unwrap().get(0);
    assert_eq!(seeded_logs, 3);
    assert_eq!(job_logs(&f.db), 0);
    assert_eq!(state(&f.db), before);
}

/// A LOGIN role with BYPASSRLS but not superuser (a service) runs all five jobs.
#[test]
fn bypassrls_login_role_runs_every_job() {
    let f = fixture("atk_jobs_service");
    let mut admin = connect("postgres", "postgres");
    admin
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {SERVICE} LOGIN NOSUPERUSER BYPASSRLS;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
             ALTER ROLE {SERVICE} LOGIN NOSUPERUSER BYPASSRLS;"
        ))
        .unwrap();
    let mut su = f.db.superuser();
    su.batch_execute(&format!(
        "GRANT USAGE ON SCHEMA public TO {SERVICE};
         GRANT EXECUTE ON FUNCTION reset_weekly_limits(int), delete_expired_sessions(interval),
               delete_old_logs(interval), verify_counts(), repair_counts() TO {SERVICE};"
    ))
    .unwrap();
    let attrs = su.query_one("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1", &[&SERVICE]).unwrap();
    assert_eq!((attrs.get::<_, bool>(0), attrs.get::<_, bool>(1)), (false, true));

    let mut c = f.db.connect_as(SERVICE);
    // Every profile's week has ended: all three are reset.
    let reset: i32 = c.query_one("SELECT reset_weekly_limits()", &[]).unwrap().get(0);
    assert_eq!(reset, 3);
    let zeroed: i64 = su
        .query_one(
            "SELECT count(*) FROM profiles WHERE weekly_completed_sessions = 0 AND weekly_started_sessions = 0
                AND week_reset_date > now()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(zeroed, 3);
    // The drifted totals show, and are repaired.
    let drift: Vec<(String, Uuid, String)> = c
        .query("SELECT table_name, row_id, column_name FROM verify_counts()", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    for user in &f.users {
        assert!(
            drift.contains(&("profiles".to_owned(), *user, "total_completed_sessions".to_owned())),
            "{user} missing from {drift:?}"
        );
    }
    let fixed: i32 = c.query_one("SELECT repair_counts()", &[]).unwrap().get(0);
    assert!(fixed >= 3, "repair_counts fixed {fixed}");
    let left: i64 = c.query_one("SELECT count(*) FROM verify_counts()", &[]).unwrap().get(0);
    assert_eq!(left, 0);
    // Retention: the year-old logs go, then every session started before now.
    let logs_deleted: i32 = c.query_one("SELECT delete_old_logs('0 seconds')", &[]).unwrap().get(0);
    assert_eq!(logs_deleted, 3);
    let sessions_deleted: i32 = c.query_one("SELECT delete_expired_sessions('0 seconds')", &[]).unwrap().get(0);
    assert_eq!(sessions_deleted, 6);
    let left: i64 = su.query_one("SELECT count(*) FROM sessions", &[]).unwrap().get(0);
    assert_eq!(left, 0);
    assert_eq!(job_logs(&f.db), 2);
}
