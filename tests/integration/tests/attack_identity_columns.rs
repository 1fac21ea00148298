//! Moving rows between users: identity columns, and claims switched mid-statement or
//! mid-transaction.
//!
//! Row-level security checks an UPDATE twice: the old row against `USING` when it is read, the
//! new row against `WITH CHECK` when it is written. A caller with a direct connection sets their
//! own `request.jwt.claims`, and can do so *between* the two checks, inside the statement:
//! `UPDATE sessions SET user_id = <bob> WHERE set_config('request.jwt.claims', '{"sub":"<bob>"}',
//! true) IS NOT NULL` passes `USING` as Alice and `WITH CHECK` as Bob, and hands Alice's session
//! (with its counts) to Bob, or renames Alice's profile to a fresh id. A completed session's
//! scenario could be rewritten after the fact. And a rule that remembered the caller across
//! statements of a transaction would judge a later statement by an earlier caller's claims:
//! refusing Bob his own session after Alice's, or letting Bob log against Alice's session.
//!
//! What must happen instead:
//! * ordinary callers cannot change `sessions.id`, `sessions.user_id` or `profiles.id` at all
//!   (`42501`, the message naming the column), however the claims move; Bob's counters and
//!   sessions stay as they were;
//! * a completed session's `scenario_id` is final for its ordinary owner (`42501`); an open
//!   one's is theirs to change;
//! * a service (superuser, BYPASSRLS) may rename a profile id; the sessions follow by cascade and
//!   every counter stays right (`verify_counts()` empty, completions unchanged);
//! * the caller is the JWT subject of the statement being run, never one cached from an earlier
//!   statement: Alice then Bob in one transaction each get their own rows, and with the claims
//!   switched to Bob a log row about Alice's session is refused (`42501`).

use pg_assistant_integration::postgres::types::ToSql;
use pg_assistant_integration::postgres::{Client, Error, Transaction};
use pg_assistant_integration::{
    as_user, assert_server_alive, connect, ensure_ordinary_role, message, sqlstate, TestDb,
};
use uuid::Uuid;

const ROLE: &str = "pga_atk_idc_app";
const SERVICE: &str = "pga_atk_idc_service";

struct Stage {
    db: TestDb,
    alice: Uuid,
    bob: Uuid,
    /// Alice's open and completed sessions.
    open: Uuid,
    done: Uuid,
}

/// Alice (one open, one completed session, a message in each) and Bob (one open session), set
/// up by the superuser; the application role gets ordinary table privileges.
fn stage(test: &str) -> Stage {
    ensure_ordinary_role(ROLE);
    let db = TestDb::new(test);
    let mut su = db.superuser();
    su.batch_execute(&format!(
        "GRANT USAGE ON SCHEMA public TO {ROLE};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE};
         INSERT INTO scenarios (id, title) VALUES ('market', 'Marketplace'), ('salary', 'Salary talk');"
    ))
    .unwrap();
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    su.execute("SELECT create_profile($1, 'alice@example.com')", &[&alice]).unwrap();
    su.execute("SELECT create_profile($1, 'bob@example.com')", &[&bob]).unwrap();
    let session = |su: &mut Client, user: Uuid| -> Uuid {
        let s: Uuid = su
            .query_one("INSERT INTO sessions (user_id, scenario_id) VALUES ($1, 'market') RETURNING id", &[&user])
            .unwrap()
            .get(0);
        su.execute("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'hi')", &[&s])
            .unwrap();
        s
    };
    let (open, done) = (session(&mut su, alice), session(&mut su, alice));
    session(&mut su, bob);
    su.execute("UPDATE sessions SET is_completed = true WHERE id = $1", &[&done]).unwrap();
    Stage { db, alice, bob, open, done }
}

/// (sessions, weekly_started_sessions, total_completed_sessions, weekly_completed_sessions) of a user.
fn counts(s: &Stage, user: Uuid) -> (i64, i32, i32, i32) {
    let row = s
        .db
        .superuser()
        .query_one(
            "SELECT (SELECT count(*) FROM sessions WHERE user_id = p.id), p.weekly_started_sessions,
                    p.total_completed_sessions, p.weekly_completed_sessions
               FROM profiles p WHERE p.id = $1",
            &[&user],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

fn owner_of(s: &Stage, session: Uuid) -> Option<Uuid> {
    s.db.superuser().query_opt("SELECT user_id FROM sessions WHERE id = $1", &[&session]).unwrap().map(|r| r.get(0))
}

fn profile_ids(s: &Stage) -> Vec<Uuid> {
    s.db.superuser().query("SELECT id FROM profiles ORDER BY id", &[]).unwrap().iter().map(|r| r.get(0)).collect()
}

fn drift(s: &Stage) -> Vec<String> {
    s.db.superuser()
        .query("SELECT format('%s %s %s: %s <> %s', table_name, row_id, column_name, stored, actual) FROM verify_counts()", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// `sql` as `user` in its own transaction, which must fail; rolled back.
fn refused(c: &mut Client, user: Uuid, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Error {
    let mut tx = as_user(c, user);
    let result = tx.execute(sql, params);
    tx.rollback().ok();
    let err = result.err().unwrap_or_else(|| panic!("attack succeeded: {sql}"));
    assert_server_alive();
    err
}

fn assert_column_refused(err: &Error, column: &str, sql: &str) {
    assert_eq!(sqlstate(err), "42501", "{sql}: {err:?}");
    assert!(message(err).contains(&format!("column \"{column}\"")), "{sql}: the refusal should name {column}: {err:?}");
}

/// The red team's switch, as they wrote it: `set_config(..., true)`. Whether it runs before or
/// after the row-level security filter is the planner's choice (it has no column, so it may go
/// first, and then no row passes); here the policy's index condition reads the row first.
fn switch_claims(user: Uuid) -> String {
    format!("set_config('request.jwt.claims', '{{\"sub\":\"{user}\"}}', true)")
}

/// The same switch made to depend on the row (`is_local` computed from `column`), which forces
/// it after the row-level security filter whatever the plan: the row is read as the caller,
/// then the claims change, then the new row is checked.
fn switch_claims_per_row(user: Uuid, column: &str) -> String {
    format!("set_config('request.jwt.claims', '{{\"sub\":\"{user}\"}}', {column} IS NOT NULL)")
}

#[test]
fn ordinary_callers_cannot_move_sessions_or_rename_profiles() {
    let s = stage("atk_idc_plain");
    let (alice_before, bob_before) = (counts(&s, s.alice), counts(&s, s.bob));
    let mut c = s.db.connect_as(ROLE);
    let fresh = Uuid::new_v4();
    for (column, sql, new, old) in [
        ("user_id", "UPDATE sessions SET user_id = $1 WHERE id = $2", s.bob, s.open),
        ("user_id", "UPDATE sessions SET user_id = $1 WHERE id = $2", s.bob, s.done),
        ("id", "UPDATE sessions SET id = $1 WHERE id = $2", fresh, s.open),
        ("id", "UPDATE profiles SET id = $1 WHERE id = $2", fresh, s.alice),
    ] {
        let err = refused(&mut c, s.alice, sql, &[&new, &old]);
        assert_column_refused(&err, column, sql);
    }
    assert_eq!(owner_of(&s, s.open), Some(s.alice));
    assert_eq!(owner_of(&s, s.done), Some(s.alice));
    assert_eq!(owner_of(&s, fresh), None);
    assert!(!profile_ids(&s).contains(&fresh));
    assert_eq!((counts(&s, s.alice), counts(&s, s.bob)), (alice_before, bob_before));
}

/// The red team's trick: the claims switch to the target inside the statement's WHERE clause,
/// after row-level security read the row as the caller and before it checks the new row.
#[test]
fn claims_switched_mid_statement_move_nothing() {
    let s = stage("atk_idc_switch");
    let (alice_before, bob_before) = (counts(&s, s.alice), counts(&s, s.bob));
    assert_eq!(bob_before.0, 1);
    let mut c = s.db.connect_as(ROLE);

    let fresh = Uuid::new_v4();
    let (bob, alice) = (s.bob, s.alice);
    let attacks = [
        // As the red team wrote them.
        ("user_id", format!("UPDATE sessions SET user_id = '{bob}' WHERE {} IS NOT NULL", switch_claims(bob))),
        ("id", format!("UPDATE profiles SET id = '{fresh}' WHERE {} IS NOT NULL", switch_claims(fresh))),
        // Row-dependent, one session at a time (open, completed), and the ids.
        (
            "user_id",
            format!("UPDATE sessions SET user_id = '{bob}' WHERE id = '{}' AND {} IS NOT NULL", s.open, switch_claims_per_row(bob, "user_id")),
        ),
        (
            "user_id",
            format!("UPDATE sessions SET user_id = '{bob}' WHERE id = '{}' AND {} IS NOT NULL", s.done, switch_claims_per_row(bob, "user_id")),
        ),
        (
            "id",
            format!("UPDATE sessions SET id = '{fresh}' WHERE id = '{}' AND {} IS NOT NULL", s.open, switch_claims_per_row(bob, "id")),
        ),
        (
            "id",
            format!("UPDATE profiles SET id = '{fresh}' WHERE id = '{alice}' AND {} IS NOT NULL", switch_claims_per_row(fresh, "id")),
        ),
    ];
    for (column, sql) in &attacks {
        let err = refused(&mut c, alice, sql, &[]);
        assert_column_refused(&err, column, sql);
    }

    assert_eq!(owner_of(&s, s.open), Some(s.alice));
    assert_eq!(owner_of(&s, s.done), Some(s.alice));
    assert_eq!(counts(&s, s.bob), bob_before, "Bob's sessions or counters changed");
    assert_eq!(counts(&s, s.alice), alice_before, "Alice's sessions or counters changed");
    assert!(!profile_ids(&s).contains(&fresh));
    assert!(drift(&s).is_empty(), "{:?}", drift(&s));
}

#[test]
fn a_completed_sessions_scenario_is_final_for_its_owner() {
    let s = stage("atk_idc_scenario");
    let mut c = s.db.connect_as(ROLE);
    let sql = "UPDATE sessions SET scenario_id = 'salary' WHERE id = $1";
    let err = refused(&mut c, s.alice, sql, &[&s.done]);
    assert_column_refused(&err, "scenario_id", sql);
    let mut tx = as_user(&mut c, s.alice);
    assert_eq!(tx.execute(sql, &[&s.open]).unwrap(), 1, "an open session's scenario is the owner's to change");
    tx.commit().unwrap();
    let scenario = |id: Uuid| -> String {
        s.db.superuser().query_one("SELECT scenario_id FROM sessions WHERE id = $1", &[&id]).unwrap().get(0)
    };
    assert_eq!((scenario(s.open), scenario(s.done)), ("salary".to_owned(), "market".to_owned()));
}

/// A service renames a profile id (a superuser, then a BYPASSRLS login role): the sessions
/// follow by `ON UPDATE CASCADE` and the counters stay right.
#[test]
fn a_service_renaming_a_profile_keeps_the_counts_right() {
    let s = stage("atk_idc_rename");
    connect("postgres", "postgres")
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {SERVICE} LOGIN NOSUPERUSER BYPASSRLS;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;"
        ))
        .unwrap();
    let bypass: bool = connect("postgres", "postgres")
        .query_one("SELECT rolbypassrls AND NOT rolsuper FROM pg_roles WHERE rolname = $1", &[&SERVICE])
        .unwrap()
        .get(0);
    if !bypass {
        connect("postgres", "postgres").batch_execute(&format!("ALTER ROLE {SERVICE} NOSUPERUSER BYPASSRLS")).unwrap();
    }
    s.db.superuser()
        .batch_execute(&format!("GRANT USAGE ON SCHEMA public TO {SERVICE}; GRANT SELECT, UPDATE ON public.profiles TO {SERVICE};"))
        .unwrap();
    let before = counts(&s, s.alice);
    assert_eq!((before.0, before.2), (2, 1));
    let (renamed, again) = (Uuid::new_v4(), Uuid::new_v4());

    let n = s.db.superuser().execute("UPDATE profiles SET id = $1 WHERE id = $2", &[&renamed, &s.alice]).unwrap();
    assert_eq!(n, 1);
    assert_eq!((owner_of(&s, s.open), owner_of(&s, s.done)), (Some(renamed), Some(renamed)));
    assert_eq!(counts(&s, renamed), before, "the superuser's rename changed the counters");
    assert!(drift(&s).is_empty(), "after the superuser's rename: {:?}", drift(&s));

    let n = s.db.connect_as(SERVICE).execute("UPDATE profiles SET id = $1 WHERE id = $2", &[&again, &renamed]).unwrap();
    assert_eq!(n, 1);
    assert_eq!((owner_of(&s, s.open), owner_of(&s, s.done)), (Some(again), Some(again)));
    assert_eq!(counts(&s, again), before, "the service's rename changed the counters");
    assert!(drift(&s).is_empty(), "after the service's rename: {:?}", drift(&s));
    assert_eq!(counts(&s, s.bob).0, 1);
}

fn switch_to(tx: &mut Transaction<'_>, user: Uuid) {
    tx.execute("SELECT pg_catalog.set_config('request.jwt.claims', $1, true)", &[&serde_json::json!({
        "sub": user.to_string(),
        "role": "authenticated"
    })
    .to_string()])
    .unwrap();
}

fn log_about(tx: &mut Transaction<'_>, session: Uuid, user: Uuid) -> Result<u64, Error> {
    tx.execute("INSERT INTO logs (session_id, user_id, level, event) VALUES ($1, $2, 'info', 'probe')", &[&session, &user])
}

/// The caller is read per statement: Alice then Bob in one transaction (as a pooled
/// connection serving both would), each with their own session, message and log row.
#[test]
fn claims_switched_between_statements_are_honoured() {
    let s = stage("atk_idc_per_statement");
    let (alice_before, bob_before) = (counts(&s, s.alice), counts(&s, s.bob));
    let mut c = s.db.connect_as(ROLE);
    let mut tx = c.transaction().unwrap();
    let mut new_sessions = Vec::new();
    for user in [s.alice, s.bob, s.alice] {
        switch_to(&mut tx, user);
        let session: Uuid = tx
            .query_one("INSERT INTO sessions (user_id, scenario_id) VALUES ($1, 'market') RETURNING id", &[&user])
            .unwrap_or_else(|e| panic!("{user}'s own session: {} {e}", sqlstate(&e)))
            .get(0);
        tx.execute("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'hi')", &[&session])
            .unwrap_or_else(|e| panic!("{user}'s own message: {} {e}", sqlstate(&e)));
        log_about(&mut tx, session, user).unwrap_or_else(|e| panic!("{user}'s own log row: {} {e}", sqlstate(&e)));
        new_sessions.push((session, user));
    }
    tx.commit().unwrap();
    for (session, user) in new_sessions {
        assert_eq!(owner_of(&s, session), Some(user));
    }
    assert_eq!(counts(&s, s.alice).1, alice_before.1 + 2);
    assert_eq!(counts(&s, s.bob).1, bob_before.1 + 1);
    let logs: Vec<(Uuid, Uuid)> = s
        .db
        .superuser()
        .query("SELECT l.user_id, s.user_id FROM logs l JOIN sessions s ON s.id = l.session_id WHERE l.event = 'probe'", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(logs.len(), 3);
    assert!(logs.iter().all(|(by, of)| by == of), "{logs:?}");
}

/// With the claims switched to Bob after Alice's statements, Bob's log row about Alice's
/// session is refused: the rule judges it by Bob, not by the caller of an earlier statement.
#[test]
fn a_caller_from_an_earlier_statement_is_not_reused() {
    let s = stage("atk_idc_stale_caller");
    let mut c = s.db.connect_as(ROLE);
    let mut tx = c.transaction().unwrap();
    switch_to(&mut tx, s.alice);
    tx.execute("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'hi')", &[&s.open])
        .unwrap();
    // Alice's log row last: her statement is the one right before the switch.
    log_about(&mut tx, s.open, s.alice).unwrap();
    switch_to(&mut tx, s.bob);
    // user_id = Bob satisfies the policy: only the rule's caller check stands in the way.
    let err = log_about(&mut tx, s.open, s.bob).expect_err("Bob logged against Alice's session");
    assert_eq!(sqlstate(&err), "42501", "{err:?}");
    assert_eq!(message(&err), "new row violates row-level security policy for table \"logs\"");
    tx.rollback().unwrap();
    assert_server_alive();
    let logs: i64 = s.db.superuser().query_one("SELECT count(*) FROM logs", &[]).unwrap().get(0);
    assert_eq!(logs, 0);
}
