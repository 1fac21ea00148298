//! Attack class 4: passing a statement off as a dump restore.
//!
//! A restore loads rows that already carry their derived state, so the rules do not re-count or
//! re-judge them (messages of completed sessions, sessions beyond the weekly limit). A careless
//! "is this a restore?" test (`row_security` is off and the command is a COPY) is easy to fake:
//! `COPY (INSERT ... FROM (SELECT set_config('row_security', 'off', true)) s RETURNING id) TO
//! STDOUT` is a COPY with `row_security` off by the time the rules run, and a COPY into a table
//! of one's own whose trigger writes the extension's tables is a COPY FROM too.
//!
//! What must happen instead: only a genuine `COPY <table> FROM` into that very table, with
//! `row_security` off, by a superuser or BYPASSRLS role, skips the rules. Every fake is judged as
//! an ordinary write: a message for a completed session fails `P0001` (`cannot add messages to
//! completed session ...`), a session beyond the weekly limit fails `P0001` (`weekly session
//! limit reached`), and an accepted message is counted. The genuine restore is accepted and
//! counts nothing.

use std::io::{BufRead, Read, Write};

use pg_assistant_integration::postgres::{Client, Error, GenericClient};
use pg_assistant_integration::{as_user, assert_server_alive, connect, ensure_ordinary_role, message, sqlstate, TestDb};
use uuid::Uuid;

struct Fixture {
    db: TestDb,
    user: Uuid,
    open_session: Uuid,
    done_session: Uuid,
}

/// The attacker's own profile with its weekly session limit used up (two sessions started this
/// week, limit 2): one open session and one completed session, each with one message.
fn fixture(test: &str, role: &str) -> Fixture {
    ensure_ordinary_role(role);
    let db = TestDb::new(test);
    let mut su = db.superuser();
    su.batch_execute(&format!(
        "GRANT USAGE ON SCHEMA public TO {role};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
         INSERT INTO scenarios (id, title) VALUES ('market', 'Marketplace');"
    ))
    .unwrap();
    let user = Uuid::new_v4();
    su.execute("SELECT create_profile($1, 'restore@example.com')", &[&user]).unwrap();
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let s: Uuid = su
            .query_one("INSERT INTO sessions (user_id, scenario_id) VALUES ($1, 'market') RETURNING id", &[&user])
            .unwrap()
            .get(0);
        su.execute("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'hi')", &[&s]).unwrap();
        sessions.push(s);
    }
    su.execute("UPDATE sessions SET is_completed = true WHERE id = $1", &[&sessions[1]]).unwrap();
    su.execute("UPDATE profiles SET weekly_session_limit = 2 WHERE id = $1", &[&user]).unwrap();
    let f = Fixture { db, user, open_session: sessions[0], done_session: sessions[1] };
    assert_eq!(state(&f), State { sessions: 2, started: 2, completed: 1, open_count: 1, done_count: 1, open_rows: 1, done_rows: 1 });
    f
}

#[derive(Debug, PartialEq, Clone, Copy)]
struct State {
    /// The user's sessions, `weekly_started_sessions`, `total_completed_sessions`.
    sessions: i64,
    started: i32,
    completed: i32,
    /// `message_count_main` of the open and the completed session, and their actual messages.
    open_count: i32,
    done_count: i32,
    open_rows: i64,
    done_rows: i64,
}

fn state(f: &Fixture) -> State {
    let row = f
        .db
        .superuser()
        .query_one(
            "SELECT (SELECT count(*) FROM sessions WHERE user_id = $1),
                    p.weekly_started_sessions, p.total_completed_sessions,
                    (SELECT message_count_main FROM sessions WHERE id = $2),
                    (SELECT message_count_main FROM sessions WHERE id = $3),
                    (SELECT count(*) FROM messages WHERE session_id = $2),
                    (SELECT count(*) FROM messages WHERE session_id = $3)
               FROM profiles p WHERE p.id = $1",
            &[&f.user, &f.open_session, &f.done_session],
        )
        .unwrap();
    State {
        sessions: row.get(0),
        started: row.get(1),
        completed: row.get(2),
        open_count: row.get(3),
        done_count: row.get(4),
        open_rows: row.get(5),
        done_rows: row.get(6),
    }
}

/// The server error inside an I/O error of the copy reader, if it is one.
fn server_error(e: std::io::Error) -> Option<Error> {
    let inner = e.into_inner()?.downcast::<Error>().ok()?;
    inner.as_db_error().is_some().then_some(*inner)
}

/// `COPY ... TO STDOUT`, read to the end; a server error, wherever it arrives, comes back as such.
///
/// PostgreSQL sends CopyDone before it finishes the statement (AFTER STATEMENT triggers run
/// then), so an error raised there follows the data; the reader reports it only when asked for
/// more after the end. The statement's success is confirmed by the transaction still working.
fn copy_out(client: &mut impl GenericClient, sql: &str) -> Result<String, Error> {
    let mut out = Vec::new();
    {
        let mut reader = client.copy_out(sql)?;
        if let Err(e) = reader.read_to_end(&mut out) {
            let text = e.to_string();
            return Err(server_error(e).unwrap_or_else(|| panic!("COPY TO failed without a server error: {text}")));
        }
        if let Err(e) = reader.fill_buf() {
            if let Some(err) = server_error(e) {
                return Err(err);
            }
            // Otherwise the reader met the CommandComplete that ends a successful COPY.
        }
    }
    client.query_one("SELECT 1", &[]).expect("the COPY failed with an error the client did not see");
    Ok(String::from_utf8(out).unwrap())
}

/// `COPY ... FROM STDIN` with `data`; returns the rows loaded.
fn copy_in(client: &mut impl GenericClient, sql: &str, data: &str) -> Result<u64, Error> {
    let mut writer = client.copy_in(sql)?;
    writer.write_all(data.as_bytes()).unwrap();
    writer.finish()
}

/// An INSERT dressed up as a restore: a COPY whose query turns row_security off before it writes.
fn disguised(insert: &str) -> String {
    format!(
        "COPY ({insert} FROM (SELECT pg_catalog.set_config('row_security', 'off', true)) s RETURNING id) TO STDOUT"
    )
}

fn disguised_message(session: Uuid) -> String {
    disguised(&format!(
        "INSERT INTO messages (session_id, role, chat_type, content) SELECT '{session}', 'user', 'main', 'x'"
    ))
}

fn disguised_session(user: Uuid) -> String {
    disguised(&format!("INSERT INTO sessions (user_id, scenario_id) SELECT '{user}', 'market'"))
}

fn assert_refused(result: Result<impl std::fmt::Debug, Error>, expected: &str, what: &str) {
    let err = result.expect_err(&format!("{what}: accepted"));
    assert_eq!(sqlstate(&err), "P0001", "{what}: {err}");
    assert_eq!(message(&err), expected, "{what}");
    assert_server_alive();
}

#[test]
fn copy_of_a_query_that_turns_row_security_off_is_not_a_restore() {
    const ROLE: &str = "pga_atk_fr_user";
    let f = fixture("atk_fr_copy_query", ROLE);
    let before = state(&f);
    let mut c = f.db.connect_as(ROLE);

    let mut tx = as_user(&mut c, f.user);
    assert_refused(
        copy_out(&mut tx, &disguised_message(f.done_session)),
        &format!("cannot add messages to completed session {}", f.done_session),
        "message into a completed session",
    );
    tx.rollback().unwrap();

    let mut tx = as_user(&mut c, f.user);
    assert_refused(copy_out(&mut tx, &disguised_session(f.user)), "weekly session limit reached", "session beyond the limit");
    tx.rollback().unwrap();
    assert_eq!(state(&f), before);

    // Into the open session it is an ordinary message: accepted and counted.
    let mut tx = as_user(&mut c, f.user);
    let out = copy_out(&mut tx, &disguised_message(f.open_session)).unwrap();
    tx.commit().unwrap();
    assert_eq!(out.lines().count(), 1);
    assert_eq!(state(&f), State { open_count: before.open_count + 1, open_rows: before.open_rows + 1, ..before });
}

/// A privileged role (BYPASSRLS) with row_security off: a COPY into its own table whose trigger
/// writes `messages`, and the disguised query, are ordinary writes all the same.
#[test]
fn privileged_copy_into_another_table_is_not_a_restore() {
    const ROLE: &str = "pga_atk_fr_owner";
    const SERVICE: &str = "pga_atk_fr_service";
    let f = fixture("atk_fr_helper_table", ROLE);
    connect("postgres", "postgres")
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {SERVICE} LOGIN NOSUPERUSER BYPASSRLS;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
             ALTER ROLE {SERVICE} NOSUPERUSER BYPASSRLS;"
        ))
        .unwrap();
    f.db.superuser()
        .batch_execute(&format!(
            "GRANT USAGE, CREATE ON SCHEMA public TO {SERVICE};
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {SERVICE};"
        ))
        .unwrap();
    let before = state(&f);
    let mut c = f.db.connect_as(SERVICE);
    c.batch_execute(
        "CREATE TABLE public.inbox (session_id uuid);
         CREATE FUNCTION public.inbox_forward() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN
             INSERT INTO public.messages (session_id, role, chat_type, content) VALUES (NEW.session_id, 'user', 'main', 'forwarded');
             RETURN NULL;
         END $f$;
         CREATE TRIGGER inbox_forward AFTER INSERT ON public.inbox FOR EACH ROW EXECUTE FUNCTION public.inbox_forward();
         SET row_security = off;",
    )
    .unwrap();

    let mut tx = c.transaction().unwrap();
    assert_refused(
        copy_in(&mut tx, "COPY public.inbox (session_id) FROM STDIN", &format!("{}\n", f.done_session)),
        &format!("cannot add messages to completed session {}", f.done_session),
        "COPY into a helper table forwarding to a completed session",
    );
    tx.rollback().unwrap();

    let mut tx = c.transaction().unwrap();
    assert_refused(
        copy_out(&mut tx, &disguised_message(f.done_session)),
        &format!("cannot add messages to completed session {}", f.done_session),
        "disguised message by a BYPASSRLS role",
    );
    tx.rollback().unwrap();

    let mut tx = c.transaction().unwrap();
    assert_refused(copy_out(&mut tx, &disguised_session(f.user)), "weekly session limit reached", "disguised session by a BYPASSRLS role");
    tx.rollback().unwrap();
    assert_eq!(state(&f), before);

    // Forwarded into the open session: an ordinary message, counted.
    let mut tx = c.transaction().unwrap();
    assert_eq!(copy_in(&mut tx, "COPY public.inbox (session_id) FROM STDIN", &format!("{}\n", f.open_session)).unwrap(), 1);
    tx.commit().unwrap();
    assert_eq!(state(&f), State { open_count: before.open_count + 1, open_rows: before.open_rows + 1, ..before });
}

/// What a restore does, and must keep doing: rows loaded as they were, nothing re-judged or re-counted.
#[test]
fn genuine_restore_copy_is_accepted_and_counts_nothing() {
    const ROLE: &str = "pga_atk_fr_restored";
    let f = fixture("atk_fr_genuine", ROLE);
    let before = state(&f);
    let mut su: Client = f.db.superuser();
    su.batch_execute("SET row_security = off").unwrap();

    let (m1, m2) = (Uuid::new_v4(), Uuid::new_v4());
    let rows = format!(
        "{m1}\t{s}\t{u}\tuser\tmain\trestored 1\t2020-01-01 00:00:00+00\n{m2}\t{s}\t{u}\tscenario\tmain\trestored 2\t2020-01-01 00:00:01+00\n",
        s = f.done_session,
        u = f.user
    );
    let loaded =
        copy_in(&mut su, "COPY messages (id, session_id, user_id, role, chat_type, content, sent_at) FROM STDIN", &rows).unwrap();
    assert_eq!(loaded, 2);
    // A session beyond the weekly limit, restored with its counters.
    let restored = Uuid::new_v4();
    let session = format!(
        "{restored}\t{u}\tmarket\t2020-01-01 00:00:00+00\tt\t2020-01-01 00:10:00+00\t600\t7\t0\n",
        u = f.user
    );
    let loaded = copy_in(
        &mut su,
        "COPY sessions (id, user_id, scenario_id, started_at, is_completed, completed_at, duration_seconds, message_count_main, message_count_helper) FROM STDIN",
        &session,
    )
    .unwrap();
    assert_eq!(loaded, 1);

    assert_eq!(
        state(&f),
        State { sessions: before.sessions + 1, done_rows: before.done_rows + 2, ..before },
        "a restore must not re-count"
    );
    let kept: i32 = su.query_one("SELECT message_count_main FROM sessions WHERE id = $1", &[&restored]).unwrap().get(0);
    assert_eq!(kept, 7);
}
