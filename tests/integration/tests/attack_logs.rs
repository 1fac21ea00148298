//! Attack class 8: stopping all logging, and the retention jobs with it.
//!
//! `logs.id` is an identity column. A user who could choose ids (`OVERRIDING SYSTEM VALUE`)
//! could occupy the values the sequence hands out next, so that every later log insert (the
//! jobs' own log rows included) fails on the primary key; one who could date rows `infinity`
//! would keep them out of reach of `delete_old_logs` forever, and one who could `setval` the
//! sequence could do the same with a single call.
//!
//! What must happen instead: for callers without BYPASSRLS, `id` and `created_at` are assigned
//! by the rule whatever the statement says (a fresh value from `logs_id_seq`, and now());
//! `session_id` must be one of the caller's sessions (`42501`); `user_id` must be the caller
//! (RLS, `42501`); the sequence is not theirs to use (`42501`). After the attack the jobs run,
//! log inserts keep working and retention reaches the attacker's rows.

use pg_assistant_integration::postgres::types::ToSql;
use pg_assistant_integration::{as_user, assert_server_alive, attempt, ensure_login_role, message, refused, sqlstate, TestDb};
use uuid::Uuid;

const ROLE: &str = "pga_atk_log_app";
const SUPA: &str = "pga_atk_log_supa";

struct Fixture {
    db: TestDb,
    alice: Uuid,
    bob: Uuid,
    alice_session: Uuid,
    bob_session: Uuid,
}

fn grant_app(db: &TestDb, role: &str) {
    db.superuser()
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA public TO {role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};"
        ))
        .unwrap();
}

/// Alice (the attacker) and Bob, each with a session and a log row about it:
/// (alice, bob, alice's session, bob's session).
fn seed(db: &TestDb) -> (Uuid, Uuid, Uuid, Uuid) {
    let mut su = db.superuser();
    su.batch_execute("INSERT INTO scenarios (id, title) VALUES ('market', 'Marketplace')").unwrap();
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    su.execute("SELECT create_profile($1, 'alice@example.com')", &[&alice]).unwrap();
    su.execute("SELECT create_profile($1, 'bob@example.com')", &[&bob]).unwrap();
    let mut sessions = Vec::new();
    for user in [alice, bob] {
        let s: Uuid = su
            .query_one("INSERT INTO sessions (user_id, scenario_id) VALUES ($1, 'market') RETURNING id", &[&user])
            .unwrap()
            .get(0);
        su.execute("INSERT INTO logs (session_id, user_id, level, event) VALUES ($1, $2, 'info', 'start')", &[&s, &user])
            .unwrap();
        sessions.push(s);
    }
    (alice, bob, sessions[0], sessions[1])
}

fn fixture(test: &str) -> Fixture {
    ensure_login_role(ROLE);
    let db = TestDb::new(test);
    grant_app(&db, ROLE);
    let (alice, bob, alice_session, bob_session) = seed(&db);
    Fixture { db, alice, bob, alice_session, bob_session }
}


/// The sequence's last value, read as superuser.
fn last_value(db: &TestDb) -> i64 {
    db.superuser().query_one("SELECT last_value FROM logs_id_seq", &[]).unwrap().get(0)
}

fn count(db: &TestDb, sql: &str, params: &[&(dyn ToSql + Sync)]) -> i64 {
    db.superuser().query_one(sql, params).unwrap().get(0)
}

/// The original attack: 10,000 rows with chosen ids just above the sequence's next values and
/// `created_at = 'infinity'`. The rows land with fresh ids and now(); the jobs then run, later
/// log inserts succeed and retention deletes the attacker's rows.
#[test]
fn chosen_ids_and_infinite_dates_are_ignored_and_retention_still_works() {
    let f = fixture("atk_log_original");
    let mut c = f.db.connect_as(ROLE);
    let before = last_value(&f.db);
    let base = before + 1; // row g asks for id before + 1 + g
    let mut tx = as_user(&mut c, f.alice);
    let n = tx
        .execute(
            "INSERT INTO logs (id, user_id, level, event, message, created_at) OVERRIDING SYSTEM VALUE
             SELECT $1::bigint + g, $2, 'info', 'x', g::text, 'infinity' FROM generate_series(1, 10000) g",
            &[&base, &f.alice],
        )
        .unwrap();
    assert_eq!(n, 10_000);
    // Within the attacker's own transaction: every row is dated now().
    let now_dated: i64 = tx
        .query_one("SELECT count(*) FROM logs WHERE event = 'x' AND created_at = now()", &[])
        .unwrap()
        .get(0);
    assert_eq!(now_dated, 10_000);
    tx.commit().unwrap();

    let after = last_value(&f.db);
    let row = f
        .db
        .superuser()
        .query_one(
            "SELECT count(*), count(DISTINCT id), min(id), max(id),
                    count(*) FILTER (WHERE id = $1::bigint + message::bigint),
                    count(*) FILTER (WHERE NOT isfinite(created_at) OR created_at > now())
               FROM logs WHERE event = 'x'",
            &[&base],
        )
        .unwrap();
    let (rows, distinct, min, max, chosen, undated): (i64, i64, i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5));
    assert_eq!((rows, distinct), (10_000, 10_000));
    assert_eq!(chosen, 0, "some rows kept the id the attacker chose");
    assert_eq!(undated, 0, "some rows kept created_at = infinity");
    assert!(min > before && max <= after, "ids {min}..{max} are not fresh values of logs_id_seq ({before}..{after}]");

    // The same attack written with what the attacker can see (their own max(id)).
    let mut tx = as_user(&mut c, f.alice);
    tx.execute(
        "INSERT INTO logs (id, user_id, level, event, message, created_at) OVERRIDING SYSTEM VALUE
         SELECT (SELECT coalesce(max(id), 0) FROM logs) + g, $1, 'info', 'y', g::text, 'infinity'
           FROM generate_series(1, 100) g",
        &[&f.alice],
    )
    .unwrap();
    tx.commit().unwrap();
    assert_eq!(count(&f.db, "SELECT count(*) FROM logs WHERE event = 'y' AND NOT isfinite(created_at)", &[]), 0);
    assert_eq!(count(&f.db, "SELECT count(*) FROM logs WHERE event = 'y' AND id <= $1", &[&after]), 0);

    // The jobs run and each logs itself.
    let mut su = f.db.superuser();
    let deleted: i32 = su.query_one("SELECT delete_old_logs('0 seconds')", &[]).unwrap().get(0);
    assert_eq!(deleted, 10_000 + 100 + 2);
    assert_eq!(count(&f.db, "SELECT count(*) FROM logs WHERE user_id = $1", &[&f.alice]), 0);
    su.query_one("SELECT delete_expired_sessions('0 seconds')", &[]).unwrap();
    assert_eq!(count(&f.db, "SELECT count(*) FROM logs WHERE event = 'job'", &[]), 2);

    // Ordinary log inserts keep working, one after another (each takes the next id).
    for i in 0..5 {
        attempt(&mut c, f.alice, "INSERT INTO logs (user_id, level, event, message) VALUES ($1, 'info', 'later', $2)", &[&f.alice, &i.to_string()])
            .unwrap();
        attempt(&mut c, f.bob, "INSERT INTO logs (user_id, level, event) VALUES ($1, 'info', 'later')", &[&f.bob]).unwrap();
    }
    su.execute("INSERT INTO logs (level, event) VALUES ('info', 'later')", &[]).unwrap();
    assert_eq!(count(&f.db, "SELECT count(*) FROM logs WHERE event = 'later'", &[]), 11);

    // Retention reaches the attacker's rows.
    let deleted: i32 = su.query_one("SELECT delete_old_logs('0 seconds')", &[]).unwrap().get(0);
    assert!(deleted >= 11, "{deleted}");
    assert_eq!(count(&f.db, "SELECT count(*) FROM logs WHERE user_id = $1", &[&f.alice]), 0);
    assert_server_alive();
}

/// The sequence is not usable by ordinary roles, whether granted table privileges the way an
/// app does or everything through Supabase's default privileges.
#[test]
fn the_log_sequence_is_not_the_users() {
    ensure_login_role(ROLE);
    let db = TestDb::supabase_like("atk_log_sequence", &[SUPA]);
    grant_app(&db, ROLE);
    let (alice, ..) = seed(&db);
    let before = last_value(&db);
    for role in [ROLE, SUPA] {
        let mut c = db.connect_as(role);
        for sql in [
            "SELECT setval('logs_id_seq', 1000000)",
            "SELECT setval('public.logs_id_seq', 1, false)",
            "SELECT nextval('logs_id_seq')",
            "ALTER SEQUENCE logs_id_seq RESTART WITH 1",
        ] {
            let err = refused(&mut c, alice, sql, &[]);
            assert_eq!(sqlstate(&err), "42501", "{role}: {sql}: {err:?}");
        }
        for privilege in ["USAGE", "UPDATE", "SELECT"] {
            let held: bool = db
                .superuser()
                .query_one("SELECT has_sequence_privilege($1, 'logs_id_seq', $2)", &[&role, &privilege])
                .unwrap()
                .get(0);
            assert!(!held, "{role} holds {privilege} on logs_id_seq");
        }
    }
    assert_eq!(last_value(&db), before);
    // Their log inserts still work without any sequence privilege.
    let mut c = db.connect_as(SUPA);
    attempt(&mut c, alice, "INSERT INTO logs (user_id, level, event) VALUES ($1, 'info', 'ok')", &[&alice]).unwrap();
    let id = count(&db, "SELECT id FROM logs WHERE event = 'ok'", &[]);
    assert!(id > before && id <= last_value(&db), "id {id} is not a fresh value of logs_id_seq (after {before})");
}

/// A log about someone else's session, or in someone else's name: refused.
#[test]
fn logs_only_about_ones_own_sessions_and_in_ones_own_name() {
    let f = fixture("atk_log_foreign_session");
    let mut c = f.db.connect_as(ROLE);
    for (sql, user_id) in [
        ("INSERT INTO logs (session_id, user_id, level, event) VALUES ($1, $2, 'info', 'probe')", f.alice),
        ("INSERT INTO logs (session_id, user_id, level, event) VALUES ($1, $2, 'info', 'probe')", f.bob),
    ] {
        let err = refused(&mut c, f.alice, sql, &[&f.bob_session, &user_id]);
        assert_eq!(sqlstate(&err), "42501", "{sql} [{user_id}]: {err:?}");
        assert_eq!(message(&err), "new row violates row-level security policy for table \"logs\"");
    }
    // In Bob's name without a session.
    let err = refused(&mut c, f.alice, "INSERT INTO logs (user_id, level, event) VALUES ($1, 'info', 'probe')", &[&f.bob]);
    assert_eq!(sqlstate(&err), "42501", "{err:?}");
    assert_eq!(count(&f.db, "SELECT count(*) FROM logs WHERE event = 'probe'", &[]), 0);
    // About her own session, in her own name: fine.
    attempt(
        &mut c,
        f.alice,
        "INSERT INTO logs (session_id, user_id, level, event) VALUES ($1, $2, 'info', 'mine')",
        &[&f.alice_session, &f.alice],
    )
    .unwrap();
    assert_eq!(count(&f.db, "SELECT count(*) FROM logs WHERE event = 'mine' AND session_id = $1", &[&f.alice_session]), 1);
}
