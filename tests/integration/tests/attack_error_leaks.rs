//! Attack class 5: reading other users' state through rule errors.
//!
//! Row-level security hides Bob's rows from Alice, but a rule that looks at Bob's rows before
//! refusing her write could tell her about them in its error: that Bob has reached his weekly
//! limit (with his count, limit and reset date in the DETAIL), whether one of his sessions is
//! completed, whose session an id is, or (through the unique index) whether an address has an
//! account.
//!
//! What must happen instead: a write of a row that belongs to someone else is refused with
//! PostgreSQL's own RLS error, `42501` / `new row violates row-level security policy for table
//! "<table>"`, with no DETAIL and no HINT, before anything of theirs is read, so every such
//! case looks the same. Changing one's e-mail is refused (`42501`, protected column) before the
//! unique index is consulted, whether the address exists or not. On the caller's own rows the
//! ordinary rule errors keep their detail.

use pg_assistant_integration::postgres::Error;
use pg_assistant_integration::{attempt, detail_and_hint, ensure_login_role, message, refused, sqlstate, TestDb};
use uuid::Uuid;

const ROLE: &str = "pga_atk_leak_app";

struct Fixture {
    db: TestDb,
    alice: Uuid,
    bob: Uuid,
    alice_open: Uuid,
    alice_completed: Uuid,
    bob_open: Uuid,
    bob_completed: Uuid,
    /// Bob's week_reset_date as `YYYY-MM-DD`.
    bob_reset_day: String,
}

/// Bob: weekly_session_limit = 1 with one session started this week (limit reached), one open
/// and one completed session (the completed one started last week). Alice: one open and one
/// completed session of her own. All set up as superuser.
fn fixture(test: &str) -> Fixture {
    ensure_login_role(ROLE);
    let db = TestDb::new(test);
    let mut su = db.superuser();
    su.batch_execute(&format!(
        "GRANT USAGE ON SCHEMA public TO {ROLE};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE};
         INSERT INTO scenarios (id, title) VALUES ('market', 'Marketplace');"
    ))
    .unwrap();
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    su.execute("SELECT create_profile($1, 'alice@example.com')", &[&alice]).unwrap();
    su.execute("SELECT create_profile($1, 'bob@example.com')", &[&bob]).unwrap();
    let mut ids = Vec::new();
    for user in [alice, bob] {
        let completed: Uuid = su
            .query_one(
                "INSERT INTO sessions (user_id, scenario_id, started_at)
                 VALUES ($1, 'market', now() - interval '10 days') RETURNING id",
                &[&user],
            )
            .unwrap()
            .get(0);
        su.execute("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'done')", &[&completed])
            .unwrap();
        su.execute("UPDATE sessions SET is_completed = true WHERE id = $1", &[&completed]).unwrap();
        let open: Uuid = su
            .query_one("INSERT INTO sessions (user_id, scenario_id) VALUES ($1, 'market') RETURNING id", &[&user])
            .unwrap()
            .get(0);
        su.execute("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'hi')", &[&open])
            .unwrap();
        ids.push((open, completed));
    }
    // Bob has started one session this week and may start one: his limit is reached.
    su.execute("UPDATE profiles SET weekly_session_limit = 1, weekly_started_sessions = 1 WHERE id = $1", &[&bob])
        .unwrap();
    let bob_reset_day: String = su
        .query_one("SELECT to_char(week_reset_date AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM profiles WHERE id = $1", &[&bob])
        .unwrap()
        .get(0);
    Fixture {
        db,
        alice,
        bob,
        alice_open: ids[0].0,
        alice_completed: ids[0].1,
        bob_open: ids[1].0,
        bob_completed: ids[1].1,
        bob_reset_day,
    }
}


/// PostgreSQL's own RLS error for `table`, and nothing else.
fn assert_rls_error(err: &Error, table: &str, what: &str) {
    assert_eq!(sqlstate(err), "42501", "{what}: {err:?}");
    assert_eq!(message(err), format!("new row violates row-level security policy for table \"{table}\""), "{what}: {err:?}");
    assert_eq!(detail_and_hint(err), "", "{what}: {err:?}");
}

/// Nothing of Bob's shows anywhere in the error (every field, as the client library sees it).
fn assert_says_nothing_of_bob(err: &Error, f: &Fixture, what: &str) {
    let everything = format!("{err:?} {err}");
    for secret in [f.bob.to_string(), f.bob_open.to_string(), f.bob_completed.to_string(), f.bob_reset_day.clone()] {
        assert!(!everything.contains(&secret), "{what}: error shows {secret}: {everything}");
    }
    for word in ["limit", "weekly", "started", "completed", "reset"] {
        assert!(!everything.to_lowercase().contains(word), "{what}: error mentions {word:?}: {everything}");
    }
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.detail(), None, "{what}");
    assert_eq!(db.hint(), None, "{what}");
    assert!(!message(err).chars().any(|c| c.is_ascii_digit()), "{what}: digits in {}", message(err));
}

/// A session for Bob while his limit is reached: the RLS error, not his limit and counts.
#[test]
fn a_session_for_someone_else_reveals_nothing_of_their_limit() {
    let f = fixture("atk_leak_session");
    let mut c = f.db.connect_as(ROLE);
    let sql = "INSERT INTO sessions (user_id, scenario_id) VALUES ($1, 'market')";
    let err = refused(&mut c, f.alice, sql, &[&f.bob]);
    assert_rls_error(&err, "sessions", sql);
    assert_says_nothing_of_bob(&err, &f, sql);
    // The same for a batch, and with a chosen start time: the RLS error comes first.
    let sql = "INSERT INTO sessions (user_id, scenario_id, started_at) SELECT $1, 'market', now() FROM generate_series(1, 3)";
    let err = refused(&mut c, f.alice, sql, &[&f.bob]);
    assert_rls_error(&err, "sessions", sql);
    assert_says_nothing_of_bob(&err, &f, sql);
    let sql = "INSERT INTO sessions (user_id, scenario_id, started_at) VALUES ($1, 'market', 'infinity')";
    let err = refused(&mut c, f.alice, sql, &[&f.bob]);
    assert_rls_error(&err, "sessions", sql);
    assert_says_nothing_of_bob(&err, &f, sql);
    // Bob's counter did not move.
    let started: i32 = f
        .db
        .superuser()
        .query_one("SELECT weekly_started_sessions FROM profiles WHERE id = $1", &[&f.bob])
        .unwrap()
        .get(0);
    assert_eq!(started, 1);
}

/// Messages into Bob's open or completed session, with or without a user_id: one and the same
/// error, so neither "completed or not" nor "whose session" can be told apart.
#[test]
fn messages_into_someone_elses_session_all_fail_alike() {
    let f = fixture("atk_leak_messages");
    let mut c = f.db.connect_as(ROLE);
    let without = "INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'probe')";
    let with = "INSERT INTO messages (session_id, user_id, role, chat_type, content) VALUES ($1, $2, 'user', 'main', 'probe')";
    let mut seen = Vec::new();
    for session in [f.bob_open, f.bob_completed] {
        let err = refused(&mut c, f.alice, without, &[&session]);
        assert_rls_error(&err, "messages", &format!("{without} [{session}]"));
        assert_says_nothing_of_bob(&err, &f, without);
        seen.push((sqlstate(&err), message(&err), detail_and_hint(&err)));
        for user_id in [f.alice, f.bob] {
            let err = refused(&mut c, f.alice, with, &[&session, &user_id]);
            let what = format!("{with} [{session}, {user_id}]");
            assert_rls_error(&err, "messages", &what);
            assert_says_nothing_of_bob(&err, &f, &what);
            seen.push((sqlstate(&err), message(&err), detail_and_hint(&err)));
        }
    }
    assert_eq!(seen.len(), 6);
    assert!(seen.iter().all(|e| *e == seen[0]), "errors differ: {seen:?}");
    // Nothing landed and Bob's counts did not move.
    let mut su = f.db.superuser();
    let row = su
        .query_one(
            "SELECT (SELECT count(*) FROM messages WHERE content = 'probe'),
                    (SELECT sum(message_count_main)::bigint FROM sessions WHERE user_id = $1)",
            &[&f.bob],
        )
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (0, 2));
}

/// A log about Bob's session in Alice's name.
#[test]
fn logs_about_someone_elses_session_fail_with_the_rls_error() {
    let f = fixture("atk_leak_logs");
    let mut c = f.db.connect_as(ROLE);
    let sql = "INSERT INTO logs (session_id, user_id, level, event) VALUES ($1, $2, 'info', 'probe')";
    let mut seen = Vec::new();
    for session in [f.bob_open, f.bob_completed] {
        let err = refused(&mut c, f.alice, sql, &[&session, &f.alice]);
        assert_rls_error(&err, "logs", &format!("{sql} [{session}]"));
        assert_says_nothing_of_bob(&err, &f, sql);
        seen.push(message(&err));
    }
    assert_eq!(seen[0], seen[1]);
    let n: i64 = f.db.superuser().query_one("SELECT count(*) FROM logs WHERE event = 'probe'", &[]).unwrap().get(0);
    assert_eq!(n, 0);
}

/// Changing one's e-mail to Bob's address: refused as a protected column, the same way as for
/// an address nobody holds (no 23505 from the unique index to tell them apart).
#[test]
fn email_change_is_no_oracle_for_existing_addresses() {
    let f = fixture("atk_leak_email");
    let mut c = f.db.connect_as(ROLE);
    let sql = "UPDATE profiles SET email = $1 WHERE id = $2";
    let mut seen = Vec::new();
    for address in ["bob@example.com", "BOB@Example.com", "nobody-here@example.com"] {
        let err = refused(&mut c, f.alice, sql, &[&address, &f.alice]);
        assert_eq!(sqlstate(&err), "42501", "{address}: {err:?}");
        assert!(message(&err).contains("\"email\""), "{address}: {err:?}");
        let everything = format!("{err:?}");
        assert!(!everything.contains(&f.bob.to_string()), "{address}: {everything}");
        seen.push((sqlstate(&err), message(&err), detail_and_hint(&err)));
    }
    assert!(seen.iter().all(|e| *e == seen[0]), "errors differ between existing and unknown addresses: {seen:?}");
    let email: String = f
        .db
        .superuser()
        .query_one("SELECT email::text FROM profiles WHERE id = $1", &[&f.alice])
        .unwrap()
        .get(0);
    assert_eq!(email, "alice@example.com");
}

/// On her own rows Alice still gets the rule errors with their detail.
#[test]
fn own_rows_keep_their_detailed_rule_errors() {
    let f = fixture("atk_leak_own");
    let mut c = f.db.connect_as(ROLE);
    // A message into her own completed session.
    let sql = "INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'late')";
    let err = refused(&mut c, f.alice, sql, &[&f.alice_completed]);
    assert_eq!(sqlstate(&err), "P0001", "{err:?}");
    assert_eq!(message(&err), format!("cannot add messages to completed session {}", f.alice_completed));
    assert!(!detail_and_hint(&err).is_empty(), "{err:?}");
    // Her own open session still takes messages.
    attempt(&mut c, f.alice, sql, &[&f.alice_open]).unwrap();
    // Her own weekly limit, with her counts in the detail.
    f.db
        .superuser()
        .execute("UPDATE profiles SET weekly_session_limit = 1, weekly_started_sessions = 1 WHERE id = $1", &[&f.alice])
        .unwrap();
    let sql = "INSERT INTO sessions (user_id, scenario_id) VALUES ($1, 'market')";
    let err = refused(&mut c, f.alice, sql, &[&f.alice]);
    assert_eq!(sqlstate(&err), "P0001", "{err:?}");
    assert_eq!(message(&err), "weekly session limit reached");
    let detail = detail_and_hint(&err);
    assert!(detail.contains(&f.alice.to_string()), "{detail}");
}
