//! Attack class 9: exceeding the weekly session limit.
//!
//! `weekly_session_limit` caps the sessions a user STARTS per week (Monday 00:00 UTC weeks),
//! open or completed. A user could try to get past it by inserting many sessions in one
//! statement, by deleting sessions to get their slots back, by resetting the counter, or by
//! racing several clients so that each sees the count below the limit; and could rewrite a
//! completed session's history by deleting its messages.
//!
//! What must happen instead: `profiles.weekly_started_sessions` counts every session started
//! this week, is never decremented, is protected (`42501`), and is checked per statement under
//! the profile's row lock after the increment, so exceeding the limit fails with `P0001`
//! `weekly session limit reached` however the inserts are batched or raced (BYPASSRLS callers
//! are held to it too). A completed session's messages are final for ordinary users
//! (`P0001` `cannot delete messages of completed session <id>`); the whole session may go.

use std::sync::{Arc, Barrier};
use std::thread;

use pg_assistant_integration::postgres::{Client, Error};
use pg_assistant_integration::{as_user, assert_server_alive, attempt, connect, ensure_login_role, message, refused, sqlstate, TestDb};
use uuid::Uuid;

const ROLE: &str = "pga_atk_wl_app";
const SERVICE: &str = "pga_atk_wl_svc";
const LIMIT_MESSAGE: &str = "weekly session limit reached";
const INSERT_ONE: &str = "INSERT INTO sessions (user_id, scenario_id) VALUES ($1, 's')";

/// A user whose weekly limit is `limit` (set by superuser), with nothing started yet.
fn fixture(test: &str, limit: i32) -> (TestDb, Uuid) {
    ensure_login_role(ROLE);
    let db = TestDb::new(test);
    let mut su = db.superuser();
    su.batch_execute(&format!(
        "GRANT USAGE ON SCHEMA public TO {ROLE};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE};
         INSERT INTO scenarios (id, title) VALUES ('s', 'Scenario');"
    ))
    .unwrap();
    let user = Uuid::new_v4();
    su.execute("SELECT create_profile($1, 'limited@example.com')", &[&user]).unwrap();
    su.execute("UPDATE profiles SET weekly_session_limit = $2 WHERE id = $1", &[&user, &limit]).unwrap();
    (db, user)
}


fn assert_limit_error(err: &Error, what: &str) {
    assert_eq!(sqlstate(err), "P0001", "{what}: {err:?}");
    assert_eq!(message(err), LIMIT_MESSAGE, "{what}: {err:?}");
}

/// (weekly_started_sessions, sessions of the user), read as superuser.
fn started_and_count(db: &TestDb, user: Uuid) -> (i32, i64) {
    let row = db
        .superuser()
        .query_one(
            "SELECT weekly_started_sessions, (SELECT count(*) FROM sessions WHERE user_id = $1) FROM profiles WHERE id = $1",
            &[&user],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

fn new_session(c: &mut Client, user: Uuid) -> Uuid {
    let mut tx = as_user(c, user);
    let id: Uuid = tx
        .query_one("INSERT INTO sessions (user_id, scenario_id) VALUES ($1, 's') RETURNING id", &[&user])
        .unwrap()
        .get(0);
    tx.commit().unwrap();
    id
}

/// Limit 1: one open session, then a second is refused.
#[test]
fn a_second_session_past_the_limit_is_refused() {
    let (db, user) = fixture("atk_wl_second", 1);
    let mut c = db.connect_as(ROLE);
    new_session(&mut c, user);
    let err = refused(&mut c, user, INSERT_ONE, &[&user]);
    assert_limit_error(&err, INSERT_ONE);
    assert_eq!(started_and_count(&db, user), (1, 1));
}

/// Limit 2 at 0: five sessions in one statement are refused as a whole.
#[test]
fn a_batch_past_the_limit_inserts_nothing() {
    let (db, user) = fixture("atk_wl_batch", 2);
    let mut c = db.connect_as(ROLE);
    let sql = "INSERT INTO sessions (user_id, scenario_id) SELECT $1, 's' FROM generate_series(1, 5)";
    let err = refused(&mut c, user, sql, &[&user]);
    assert_limit_error(&err, sql);
    assert_eq!(started_and_count(&db, user), (0, 0));
    // Within the limit, a batch is fine; one more is not.
    let sql = "INSERT INTO sessions (user_id, scenario_id) SELECT $1, 's' FROM generate_series(1, 2)";
    assert_eq!(attempt(&mut c, user, sql, &[&user]).unwrap(), 2);
    let err = refused(&mut c, user, INSERT_ONE, &[&user]);
    assert_limit_error(&err, INSERT_ONE);
    assert_eq!(started_and_count(&db, user), (2, 2));
}

/// Limit 1: start, complete and delete a session; the slot is not handed back.
#[test]
fn deleting_a_session_does_not_hand_its_slot_back() {
    let (db, user) = fixture("atk_wl_delete", 1);
    let mut c = db.connect_as(ROLE);
    let s = new_session(&mut c, user);
    attempt(&mut c, user, "UPDATE sessions SET is_completed = true WHERE id = $1", &[&s]).unwrap();
    assert_eq!(attempt(&mut c, user, "DELETE FROM sessions WHERE id = $1", &[&s]).unwrap(), 1);
    assert_eq!(started_and_count(&db, user), (1, 0));
    let err = refused(&mut c, user, INSERT_ONE, &[&user]);
    assert_limit_error(&err, INSERT_ONE);
    assert_eq!(started_and_count(&db, user), (1, 0));
}

/// The counter and the limit are not the user's to change.
#[test]
fn the_counter_and_the_limit_are_protected() {
    let (db, user) = fixture("atk_wl_protected", 1);
    let mut c = db.connect_as(ROLE);
    new_session(&mut c, user);
    for (sql, column) in [
        ("UPDATE profiles SET weekly_started_sessions = 0", "weekly_started_sessions"),
        ("UPDATE profiles SET weekly_started_sessions = weekly_started_sessions - 1", "weekly_started_sessions"),
        ("UPDATE profiles SET weekly_session_limit = NULL", "weekly_session_limit"),
        ("UPDATE profiles SET weekly_session_limit = 1000", "weekly_session_limit"),
        ("UPDATE profiles SET week_reset_date = now() - interval '1 day'", "week_reset_date"),
    ] {
        let err = refused(&mut c, user, sql, &[]);
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err:?}");
        assert!(message(&err).contains(column), "{sql}: {err:?}");
    }
    assert_eq!(started_and_count(&db, user), (1, 1));
    let err = refused(&mut c, user, INSERT_ONE, &[&user]);
    assert_limit_error(&err, INSERT_ONE);
}

/// A BYPASSRLS service inserting for the user is held to the limit too.
#[test]
fn bypassrls_callers_are_held_to_the_limit() {
    let (db, user) = fixture("atk_wl_service", 1);
    let mut admin = connect("postgres", "postgres");
    admin
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {SERVICE} LOGIN NOSUPERUSER BYPASSRLS;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
             ALTER ROLE {SERVICE} LOGIN NOSUPERUSER BYPASSRLS;"
        ))
        .unwrap();
    db.superuser()
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA public TO {SERVICE};
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {SERVICE};"
        ))
        .unwrap();
    let mut svc = db.connect_as(SERVICE);
    svc.execute(INSERT_ONE, &[&user]).unwrap();
    let err = svc.execute(INSERT_ONE, &[&user]).unwrap_err();
    assert_limit_error(&err, "as BYPASSRLS");
    assert_server_alive();
    let err = db.superuser().execute(INSERT_ONE, &[&user]).unwrap_err();
    assert_limit_error(&err, "as superuser");
    assert_server_alive();
    assert_eq!(started_and_count(&db, user), (1, 1));
}

/// `clients` connections as the attacker, released together by a barrier, each inserting one
/// session (holding its transaction open `hold` seconds after the insert when given).
/// Returns the outcome of each: Ok, or the error's (sqlstate, message).
fn race(db: &TestDb, user: Uuid, clients: usize, hold: Option<f64>) -> Vec<Result<(), (String, String)>> {
    let barrier = Arc::new(Barrier::new(clients));
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let mut c = db.connect_as(ROLE);
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut tx = as_user(&mut c, user);
                barrier.wait();
                match tx.execute(INSERT_ONE, &[&user]) {
                    Ok(_) => {
                        if let Some(seconds) = hold {
                            tx.execute("SELECT pg_sleep($1)", &[&seconds]).unwrap();
                        }
                        tx.commit().unwrap();
                        Ok(())
                    }
                    Err(e) => {
                        let out = (sqlstate(&e), message(&e));
                        tx.rollback().ok();
                        Err(out)
                    }
                }
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn assert_three_of_eight(db: &TestDb, user: Uuid, outcomes: &[Result<(), (String, String)>]) {
    let ok = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(ok, 3, "{outcomes:?}");
    for o in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert_eq!((o.0.as_str(), o.1.as_str()), ("P0001", LIMIT_MESSAGE), "{outcomes:?}");
    }
    assert_eq!(started_and_count(db, user), (3, 3));
    assert_server_alive();
}

/// 8 clients insert at the same moment with limit 3: exactly 3 get in.
#[test]
fn eight_racing_clients_get_exactly_the_limit() {
    let (db, user) = fixture("atk_wl_race", 3);
    let outcomes = race(&db, user, 8, None);
    assert_three_of_eight(&db, user, &outcomes);
}

/// The same race with overlapping transactions: BEGIN; INSERT; pg_sleep(0.2); COMMIT.
#[test]
fn eight_overlapping_transactions_get_exactly_the_limit() {
    let (db, user) = fixture("atk_wl_race_overlap", 3);
    let outcomes = race(&db, user, 8, Some(0.2));
    assert_three_of_eight(&db, user, &outcomes);
}

/// A completed session's messages are final for the user; an open session's are not, and the
/// whole completed session may be deleted.
#[test]
fn a_completed_sessions_messages_are_final() {
    let (db, user) = fixture("atk_wl_messages", 10);
    let mut c = db.connect_as(ROLE);
    let insert = "INSERT INTO messages (session_id, role, chat_type, content) SELECT $1, 'user', 'main', 'm' || g FROM generate_series(1, 3) g";
    let done = new_session(&mut c, user);
    attempt(&mut c, user, insert, &[&done]).unwrap();
    attempt(&mut c, user, "UPDATE sessions SET is_completed = true WHERE id = $1", &[&done]).unwrap();
    let open = new_session(&mut c, user);
    attempt(&mut c, user, insert, &[&open]).unwrap();

    let counts = |db: &TestDb, s: Uuid| -> (i32, i64) {
        let row = db
            .superuser()
            .query_one(
                "SELECT message_count_main, (SELECT count(*) FROM messages WHERE session_id = $1) FROM sessions WHERE id = $1",
                &[&s],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };

    for sql in [
        "DELETE FROM messages WHERE session_id = $1",
        "DELETE FROM messages WHERE session_id = $1 AND content = 'm1'",
    ] {
        let err = refused(&mut c, user, sql, &[&done]);
        assert_eq!(sqlstate(&err), "P0001", "{sql}: {err:?}");
        assert_eq!(message(&err), format!("cannot delete messages of completed session {done}"), "{sql}");
    }
    // Deleting from both at once is refused as a whole.
    let err = refused(&mut c, user, "DELETE FROM messages WHERE session_id IN ($1, $2)", &[&open, &done]);
    assert_eq!(sqlstate(&err), "P0001", "{err:?}");
    assert_eq!(counts(&db, done), (3, 3));
    assert_eq!(counts(&db, open), (3, 3));

    // An open session's messages may go, and the count follows exactly.
    assert_eq!(attempt(&mut c, user, "DELETE FROM messages WHERE session_id = $1 AND content = 'm1'", &[&open]).unwrap(), 1);
    assert_eq!(counts(&db, open), (2, 2));

    // The whole completed session may go, its messages with it.
    assert_eq!(attempt(&mut c, user, "DELETE FROM sessions WHERE id = $1", &[&done]).unwrap(), 1);
    let left: i64 = db.superuser().query_one("SELECT count(*) FROM messages WHERE session_id = $1", &[&done]).unwrap().get(0);
    assert_eq!(left, 0);
    let drift: i64 = db.superuser().query_one("SELECT count(*) FROM verify_counts()", &[]).unwrap().get(0);
    assert_eq!(drift, 0);
}
