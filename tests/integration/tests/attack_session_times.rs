//! Attack class 7: forging a session's duration, and escaping retention through its start time.
//!
//! `duration_seconds` is measured from `started_at`. A user who could move `started_at` after
//! the fact (to `-infinity` or to 2000) would forge a huge duration; one who could insert a
//! session starting at `infinity` would keep it out of reach of `delete_expired_sessions`
//! forever.
//!
//! What must happen instead: for callers without BYPASSRLS `started_at` is not writable after
//! insert (`42501`, naming "started_at"), open or completed, and at insert it must lie within
//! 5 minutes of now() (`P0001` `started_at must be within 5 minutes of the current time`).
//! Infinite `started_at` / `completed_at` violate CHECK `sessions_times_finite` (`23514`) for
//! everyone. `completed_at` and `duration_seconds` are stamped once, on the transition to
//! completed, and are not the user's to change (`42501`); a later change of `started_at` (by a
//! superuser) does not recompute them.

use pg_assistant_integration::postgres::{Client, Error};
use pg_assistant_integration::{as_user, assert_server_alive, attempt, ensure_login_role, message, refused, sqlstate, TestDb};
use uuid::Uuid;

const ROLE: &str = "pga_atk_time_app";
const SKEW_MESSAGE: &str = "started_at must be within 5 minutes of the current time";

fn fixture(test: &str) -> (TestDb, Uuid) {
    ensure_login_role(ROLE);
    let db = TestDb::new(test);
    let mut su = db.superuser();
    su.batch_execute(&format!(
        "GRANT USAGE ON SCHEMA public TO {ROLE};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE};
         INSERT INTO scenarios (id, title) VALUES ('market', 'Marketplace');"
    ))
    .unwrap();
    let user = Uuid::new_v4();
    su.execute("SELECT create_profile($1, 'timer@example.com')", &[&user]).unwrap();
    (db, user)
}


/// A session of `user`, inserted by the user themselves with the default start time.
fn own_session(c: &mut Client, user: Uuid) -> Uuid {
    let mut tx = as_user(c, user);
    let id: Uuid = tx
        .query_one("INSERT INTO sessions (user_id, scenario_id) VALUES ($1, 'market') RETURNING id", &[&user])
        .unwrap()
        .get(0);
    tx.commit().unwrap();
    id
}

fn complete(c: &mut Client, user: Uuid, session: Uuid) {
    attempt(c, user, "UPDATE sessions SET is_completed = true WHERE id = $1", &[&session]).unwrap();
}

/// (started_at, completed_at, duration_seconds) as text, read as superuser.
fn times(db: &TestDb, session: Uuid) -> (String, Option<String>, Option<i32>) {
    let row = db
        .superuser()
        .query_one("SELECT started_at::text, completed_at::text, duration_seconds FROM sessions WHERE id = $1", &[&session])
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

fn assert_times_finite_violation(err: &Error, what: &str) {
    assert_eq!(sqlstate(err), "23514", "{what}: {err:?}");
    assert_eq!(err.as_db_error().and_then(|e| e.constraint()), Some("sessions_times_finite"), "{what}: {err:?}");
    assert_server_alive();
}

/// started_at cannot be moved after insert, open or completed, by any value.
#[test]
fn started_at_is_not_writable_after_insert() {
    let (db, user) = fixture("atk_time_update_started");
    let mut c = db.connect_as(ROLE);
    let open = own_session(&mut c, user);
    let completed = own_session(&mut c, user);
    complete(&mut c, user, completed);
    let before = [times(&db, open), times(&db, completed)];
    for session in [open, completed] {
        for value in ["'-infinity'", "'infinity'", "'2000-01-01'", "now() - interval '1 minute'", "started_at - interval '1 second'"] {
            let sql = format!("UPDATE sessions SET started_at = {value} WHERE id = $1");
            let err = refused(&mut c, user, &sql, &[&session]);
            assert_eq!(sqlstate(&err), "42501", "{sql}: {err:?}");
            assert!(message(&err).contains("started_at"), "{sql}: {err:?}");
        }
    }
    // Completing and back-dating in one statement: refused as a whole, the session stays open.
    let sql = "UPDATE sessions SET is_completed = true, started_at = '2000-01-01' WHERE id = $1";
    let err = refused(&mut c, user, sql, &[&open]);
    assert_eq!(sqlstate(&err), "42501", "{sql}: {err:?}");
    assert!(message(&err).contains("started_at"), "{sql}: {err:?}");
    assert_eq!([times(&db, open), times(&db, completed)], before);
}

/// At insert, started_at must be within 5 minutes of now().
#[test]
fn started_at_at_insert_must_be_near_now() {
    let (db, user) = fixture("atk_time_insert_started");
    let mut c = db.connect_as(ROLE);
    for value in ["'infinity'", "'-infinity'", "now() + interval '1 hour'", "now() - interval '1 hour'", "'2000-01-01'"] {
        let sql = format!("INSERT INTO sessions (user_id, scenario_id, started_at) VALUES ($1, 'market', {value})");
        let err = refused(&mut c, user, &sql, &[&user]);
        assert_eq!(sqlstate(&err), "P0001", "{sql}: {err:?}");
        assert_eq!(message(&err), SKEW_MESSAGE, "{sql}");
    }
    let none: i64 = db.superuser().query_one("SELECT count(*) FROM sessions", &[]).unwrap().get(0);
    assert_eq!(none, 0);
    // Four minutes ago (client clock skew) and the default are accepted.
    attempt(&mut c, user, "INSERT INTO sessions (user_id, scenario_id, started_at) VALUES ($1, 'market', now() - interval '4 minutes')", &[&user])
        .unwrap();
    attempt(&mut c, user, "INSERT INTO sessions (user_id, scenario_id) VALUES ($1, 'market')", &[&user]).unwrap();
    let row = db
        .superuser()
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE started_at BETWEEN now() - interval '1 hour' AND now()) FROM sessions",
            &[],
        )
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (2, 2));
}

/// Infinite times violate sessions_times_finite for everyone, superuser included.
#[test]
fn infinite_times_violate_the_check_for_everyone() {
    let (db, user) = fixture("atk_time_finite_check");
    let mut su = db.superuser();
    for sql in [
        "INSERT INTO sessions (user_id, scenario_id, started_at) VALUES ($1, 'market', 'infinity')",
        "INSERT INTO sessions (user_id, scenario_id, started_at) VALUES ($1, 'market', '-infinity')",
        "INSERT INTO sessions (user_id, scenario_id, is_completed, completed_at) VALUES ($1, 'market', true, 'infinity')",
        "INSERT INTO sessions (user_id, scenario_id, completed_at) VALUES ($1, 'market', 'infinity')",
    ] {
        let err = su.execute(sql, &[&user]).err().unwrap_or_else(|| panic!("{sql} succeeded"));
        assert_times_finite_violation(&err, sql);
    }
    let open: Uuid = su
        .query_one("INSERT INTO sessions (user_id, scenario_id) VALUES ($1, 'market') RETURNING id", &[&user])
        .unwrap()
        .get(0);
    let completed: Uuid = su
        .query_one("INSERT INTO sessions (user_id, scenario_id) VALUES ($1, 'market') RETURNING id", &[&user])
        .unwrap()
        .get(0);
    su.execute("UPDATE sessions SET is_completed = true WHERE id = $1", &[&completed]).unwrap();
    let before = [times(&db, open), times(&db, completed)];
    for (sql, session) in [
        ("UPDATE sessions SET started_at = '-infinity' WHERE id = $1", open),
        ("UPDATE sessions SET started_at = '-infinity' WHERE id = $1", completed),
        ("UPDATE sessions SET is_completed = true, completed_at = 'infinity' WHERE id = $1", open),
        ("UPDATE sessions SET completed_at = 'infinity' WHERE id = $1", completed),
    ] {
        let err = su.execute(sql, &[&session]).err().unwrap_or_else(|| panic!("{sql} succeeded"));
        assert_times_finite_violation(&err, sql);
    }
    assert_eq!([times(&db, open), times(&db, completed)], before);
    // An ordinary user meets the rule first (P0001), and never gets an infinite row in.
    let mut c = db.connect_as(ROLE);
    let err = refused(&mut c, user, "INSERT INTO sessions (user_id, scenario_id, started_at) VALUES ($1, 'market', 'infinity')", &[&user]);
    assert_eq!(sqlstate(&err), "P0001", "{err:?}");
    let infinite: i64 = su
        .query_one("SELECT count(*) FROM sessions WHERE NOT isfinite(started_at) OR NOT isfinite(completed_at)", &[])
        .unwrap()
        .get(0);
    assert_eq!(infinite, 0);
}

/// completed_at and duration_seconds are stamped on completion and never recomputed; the user
/// cannot write them.
#[test]
fn completion_stamps_are_fixed_at_completion() {
    let (db, user) = fixture("atk_time_stamps");
    let mut c = db.connect_as(ROLE);
    let session = own_session(&mut c, user);
    complete(&mut c, user, session);
    let (_, completed_at, duration) = times(&db, session);
    assert!(completed_at.is_some());
    let duration = duration.expect("duration stamped on completion");
    assert!((0..60).contains(&duration), "{duration}");

    // A superuser moving started_at back a day does not recompute the duration.
    db.superuser()
        .execute("UPDATE sessions SET started_at = started_at - interval '1 day' WHERE id = $1", &[&session])
        .unwrap();
    let after = times(&db, session);
    assert_eq!((after.1.clone(), after.2), (completed_at.clone(), Some(duration)));

    for (sql, column) in [
        ("UPDATE sessions SET duration_seconds = 1000000 WHERE id = $1", "duration_seconds"),
        ("UPDATE sessions SET completed_at = completed_at + interval '30 days' WHERE id = $1", "completed_at"),
        ("UPDATE sessions SET completed_at = 'infinity' WHERE id = $1", "completed_at"),
        ("UPDATE sessions SET duration_seconds = NULL WHERE id = $1", "duration_seconds"),
    ] {
        let err = refused(&mut c, user, sql, &[&session]);
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err:?}");
        assert!(message(&err).contains(column), "{sql}: {err:?}");
    }
    assert_eq!(times(&db, session), after);
}

/// The original attack: complete a session, then back-date it for a huge duration; insert a
/// session starting at infinity to escape retention. Both fail, and retention reaches every
/// session of the user.
#[test]
fn forged_duration_and_retention_escape_fail() {
    let (db, user) = fixture("atk_time_original");
    let mut c = db.connect_as(ROLE);
    let session = own_session(&mut c, user);
    complete(&mut c, user, session);
    let before = times(&db, session);
    for sql in [
        "UPDATE sessions SET started_at = '-infinity' WHERE id = $1",
        "UPDATE sessions SET started_at = '2000-01-01' WHERE id = $1",
    ] {
        let err = refused(&mut c, user, sql, &[&session]);
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err:?}");
        assert!(message(&err).contains("started_at"), "{sql}: {err:?}");
        assert_eq!(times(&db, session), before, "{sql}");
    }
    let err = refused(
        &mut c,
        user,
        "INSERT INTO sessions (user_id, scenario_id, started_at) VALUES ($1, 'market', 'infinity')",
        &[&user],
    );
    assert_eq!(sqlstate(&err), "P0001", "{err:?}");
    assert_eq!(message(&err), SKEW_MESSAGE);
    // What the user can insert: four minutes back, and now.
    attempt(&mut c, user, "INSERT INTO sessions (user_id, scenario_id, started_at) VALUES ($1, 'market', now() - interval '4 minutes')", &[&user])
        .unwrap();
    own_session(&mut c, user);

    let mut su = db.superuser();
    let deleted: i32 = su.query_one("SELECT delete_expired_sessions('0 seconds')", &[]).unwrap().get(0);
    assert_eq!(deleted, 3);
    let left: i64 = su.query_one("SELECT count(*) FROM sessions WHERE user_id = $1", &[&user]).unwrap().get(0);
    assert_eq!(left, 0);
}
