//! The one-row paths of the counter triggers write the parent row natively (common::parent):
//! found through its primary key, locked in its latest version, replaced with heap_update.
//! These tests check what an UPDATE statement would have guaranteed: index entries for every
//! version that left its page (checked with amcheck), exact counts, `updated_at` stamped as
//! set_updated_at() stamps it, a parent table with a trigger of someone else's still going
//! through that trigger, and counters written from two REPEATABLE READ transactions both kept.

use pg_assistant_integration::postgres::Client;
use pg_assistant_integration::TestDb;
use uuid::Uuid;

fn profile(c: &mut Client, email: &str) -> Uuid {
    let user = Uuid::new_v4();
    c.execute("SELECT create_profile($1, $2)", &[&user, &email]).unwrap();
    user
}

fn session(c: &mut Client, user: Uuid) -> Uuid {
    c.query_one("INSERT INTO sessions (user_id, scenario_id) VALUES ($1, 'market') RETURNING id", &[&user]).unwrap().get(0)
}

/// A conversation of `user`, in tenant a0000000-...-000000000001 (which must exist).
fn conversation(c: &mut Client, user: Uuid) -> Uuid {
    c.execute("UPDATE profiles SET tenant_id = 'a0000000-0000-4000-8000-000000000001' WHERE id = $1", &[&user]).unwrap();
    c.query_one(
        "INSERT INTO conversations (tenant_id, user_id) VALUES ('a0000000-0000-4000-8000-000000000001', $1) RETURNING id",
        &[&user],
    )
    .unwrap()
    .get(0)
}

fn one(c: &mut impl pg_assistant_integration::postgres::GenericClient, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

/// Every index of `table` holds exactly its heap's rows (amcheck, heapallindexed).
fn indexes_complete(c: &mut Client, table: &str) {
    c.batch_execute("CREATE EXTENSION IF NOT EXISTS amcheck").unwrap();
    let n: i64 = c
        .query_one(
            &format!(
                "SELECT count(bt_index_check(i.indexrelid, true)) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                  JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND i.indrelid = 'public.{table}'::regclass"
            ),
            &[],
        )
        .unwrap()
        .get(0);
    assert!(n >= 1, "{table}: no btree index checked");
}

/// Hundreds of one-row statements on one parent in one transaction: its page fills with
/// versions, the updates stop being HOT, and every index still finds the row.
#[test]
fn a_burst_on_one_parent_leaves_its_page_with_index_entries_and_exact_counts() {
    let db = TestDb::new("one_row_burst");
    let mut c = db.superuser();
    c.batch_execute("INSERT INTO scenarios (id, title) VALUES ('market', 'Market')").unwrap();
    let user = profile(&mut c, "burst@example.com");
    let s = session(&mut c, user);
    let mut tx = c.transaction().unwrap();
    let insert = tx.prepare("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', $2::text::chat_type, 'm')").unwrap();
    for i in 0..400 {
        tx.execute(&insert, &[&s, &(if i % 4 == 0 { "helper" } else { "main" })]).unwrap();
    }
    let delete = tx.prepare("DELETE FROM messages WHERE id = (SELECT id FROM messages WHERE session_id = $1 ORDER BY id LIMIT 1)").unwrap();
    for _ in 0..50 {
        tx.execute(&delete, &[&s]).unwrap();
    }
    // sessions started one statement at a time: the profile row, 300 times
    let start = tx.prepare("INSERT INTO sessions (user_id, scenario_id) VALUES ($1, 'market')").unwrap();
    for _ in 0..300 {
        tx.execute(&start, &[&user]).unwrap();
    }
    let cold: i64 = one(
        &mut tx,
        "SELECT sum(n_tup_upd - n_tup_hot_upd)::bigint FROM pg_stat_xact_user_tables WHERE relname IN ('sessions', 'profiles')",
    );
    assert!(cold > 0, "the burst should have made updates that are not HOT");
    tx.commit().unwrap();

    let row = c.query_one("SELECT message_count_main + message_count_helper FROM sessions WHERE id = $1", &[&s]).unwrap();
    assert_eq!(row.get::<_, i32>(0), 350);
    let started: i32 =
        c.query_one("SELECT weekly_started_sessions FROM profiles WHERE id = $1", &[&user]).unwrap().get(0);
    assert_eq!(started, 301);
    assert_eq!(one(&mut c, "SELECT count(*) FROM verify_counts()"), 0);
    indexes_complete(&mut c, "sessions");
    indexes_complete(&mut c, "profiles");
    // the row is found through its primary key, as every statement finds it
    c.batch_execute("SET enable_seqscan = off; SET enable_bitmapscan = off").unwrap();
    let found: i64 = c.query_one("SELECT count(*) FROM sessions WHERE id = $1", &[&s]).unwrap().get(0);
    assert_eq!(found, 1);
}

/// The same for conversations (one message at a time, one conversation).
#[test]
fn a_burst_of_conversation_messages_keeps_the_conversation_exact() {
    let db = TestDb::new("one_row_conversation_burst");
    let mut c = db.superuser();
    c.batch_execute("INSERT INTO tenants (id, name, slug) VALUES ('a0000000-0000-4000-8000-000000000001', 'Acme', 'acme')").unwrap();
    let user = profile(&mut c, "conv@example.com");
    let conv = conversation(&mut c, user);
    let mut tx = c.transaction().unwrap();
    let insert = tx
        .prepare("INSERT INTO conversation_messages (conversation_id, role, content, created_at) VALUES ($1, 'user', 'm', now() - $2 * interval '1 second')")
        .unwrap();
    // out of order: the newest is the 10th, not the last
    for i in 0..400i32 {
        tx.execute(&insert, &[&conv, &f64::from((i - 10).abs())]).unwrap();
    }
    tx.commit().unwrap();
    let row = c
        .query_one(
            "SELECT message_count, last_message_at = (SELECT max(created_at) FROM conversation_messages WHERE conversation_id = $1)
               FROM conversations WHERE id = $1",
            &[&conv],
        )
        .unwrap();
    assert_eq!((row.get::<_, i32>(0), row.get::<_, bool>(1)), (400, true));
    assert_eq!(one(&mut c, "SELECT count(*) FROM verify_counts()"), 0);
    indexes_complete(&mut c, "conversations");
}

/// A counter write stamps `updated_at` with the transaction time, as set_updated_at() does.
#[test]
fn counter_writes_stamp_updated_at() {
    let db = TestDb::new("one_row_updated_at");
    let mut c = db.superuser();
    c.batch_execute("INSERT INTO scenarios (id, title) VALUES ('market', 'Market')").unwrap();
    let user = profile(&mut c, "stamp@example.com");
    let s = session(&mut c, user);
    c.batch_execute("UPDATE sessions SET updated_at = '2020-01-01' WHERE true; UPDATE profiles SET updated_at = '2020-01-01' WHERE true")
        .unwrap();
    let mut tx = c.transaction().unwrap();
    tx.execute("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'x')", &[&s]).unwrap();
    tx.execute("INSERT INTO sessions (user_id, scenario_id) VALUES ($1, 'market')", &[&user]).unwrap();
    let stamped = tx
        .query_one(
            "SELECT (SELECT updated_at = now() FROM sessions WHERE id = $1), (SELECT updated_at = now() FROM profiles WHERE id = $2)",
            &[&s, &user],
        )
        .unwrap();
    assert!(stamped.get::<_, bool>(0) && stamped.get::<_, bool>(1));
    tx.commit().unwrap();
}

/// A parent table that carries a trigger of someone else's (here a superuser's audit trigger)
/// is written through an UPDATE statement, so that trigger sees every counter write.
#[test]
fn a_parent_with_a_foreign_update_trigger_still_fires_it() {
    let db = TestDb::new("one_row_foreign_trigger");
    let mut c = db.superuser();
    c.batch_execute(
        "INSERT INTO scenarios (id, title) VALUES ('market', 'Market');
         CREATE TABLE public.session_audit (session_id uuid, main int);
         CREATE FUNCTION public.audit_session() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN INSERT INTO public.session_audit VALUES (NEW.id, NEW.message_count_main); RETURN NULL; END $f$;
         ALTER FUNCTION public.audit_session() SET search_path = pg_catalog, pg_temp;
         CREATE TRIGGER audit_session AFTER UPDATE ON public.sessions FOR EACH ROW EXECUTE FUNCTION public.audit_session();",
    )
    .unwrap();
    let user = profile(&mut c, "audited@example.com");
    let s = session(&mut c, user);
    for _ in 0..3 {
        c.execute("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'x')", &[&s]).unwrap();
    }
    let audited: Vec<i32> =
        c.query("SELECT main FROM session_audit ORDER BY main", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(audited, vec![1, 2, 3]);
    c.batch_execute("DROP TRIGGER audit_session ON public.sessions").unwrap();
    c.execute("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'x')", &[&s]).unwrap();
    assert_eq!(one(&mut c, "SELECT count(*) FROM session_audit"), 3);
    assert_eq!(one(&mut c, "SELECT count(*) FROM verify_counts()"), 0);
}

/// Two REPEATABLE READ transactions add a message to the same session: a counter is added to,
/// never overwritten, so the second starts from the first's committed value (no lost update,
/// and no serialization failure for a counter).
#[test]
fn counters_from_two_repeatable_read_transactions_both_count() {
    let db = TestDb::new("one_row_repeatable_read");
    let mut c = db.superuser();
    c.batch_execute("INSERT INTO scenarios (id, title) VALUES ('market', 'Market')").unwrap();
    let user = profile(&mut c, "rr@example.com");
    let s = session(&mut c, user);
    let mut a = db.superuser();
    let mut b = db.superuser();
    let mut ta = a.build_transaction().isolation_level(pg_assistant_integration::postgres::IsolationLevel::RepeatableRead).start().unwrap();
    let mut tb = b.build_transaction().isolation_level(pg_assistant_integration::postgres::IsolationLevel::RepeatableRead).start().unwrap();
    // both snapshots taken before either writes
    assert_eq!(one(&mut ta, "SELECT count(*) FROM messages"), 0);
    assert_eq!(one(&mut tb, "SELECT count(*) FROM messages"), 0);
    ta.execute("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'a')", &[&s]).unwrap();
    ta.commit().unwrap();
    tb.execute("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'b')", &[&s]).unwrap();
    tb.commit().unwrap();
    let main: i32 = c.query_one("SELECT message_count_main FROM sessions WHERE id = $1", &[&s]).unwrap().get(0);
    assert_eq!(main, 2);
    assert_eq!(one(&mut c, "SELECT count(*) FROM verify_counts()"), 0);
}

/// The counter trigger starts from the version of the parent its statement's row trigger read
/// (common::parent::update_by_key_at); when the same statement has moved the parent on since
/// (a data-modifying CTE, run after the INSERT), it finds the newest version again.
#[test]
fn a_parent_moved_on_by_the_same_statement_is_counted_in_its_newest_version() {
    let db = TestDb::new("one_row_moved_parent");
    let mut c = db.superuser();
    c.batch_execute(
        "INSERT INTO scenarios (id, title) VALUES ('market', 'Market'), ('travel', 'Travel');
         INSERT INTO tenants (id, name, slug) VALUES ('a0000000-0000-4000-8000-000000000001', 'Acme', 'acme')",
    )
    .unwrap();
    let user = profile(&mut c, "moved@example.com");
    let s = session(&mut c, user);
    // The CTE's UPDATE runs after the INSERT (nothing reads it), between the row trigger's
    // read of the session and the counter trigger.
    for (i, scenario) in ["travel", "market", "travel"].into_iter().enumerate() {
        c.execute(
            "WITH moved AS (UPDATE sessions SET scenario_id = $2 WHERE id = $1 RETURNING id)
             INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'm')",
            &[&s, &scenario],
        )
        .unwrap();
        let row = c.query_one("SELECT message_count_main, scenario_id FROM sessions WHERE id = $1", &[&s]).unwrap();
        assert_eq!((row.get::<_, i32>(0), row.get::<_, String>(1)), (i as i32 + 1, scenario.to_owned()));
    }
    // The UPDATE first, then the INSERT that reads it.
    c.execute(
        "WITH moved AS (UPDATE sessions SET scenario_id = 'market' WHERE id = $1 RETURNING id)
         INSERT INTO messages (session_id, role, chat_type, content) SELECT id, 'user', 'main', 'm' FROM moved",
        &[&s],
    )
    .unwrap();
    assert_eq!(c.query_one("SELECT message_count_main FROM sessions WHERE id = $1", &[&s]).unwrap().get::<_, i32>(0), 4);

    let conv = conversation(&mut c, user);
    for (i, title) in ["one", "two"].into_iter().enumerate() {
        c.execute(
            "WITH moved AS (UPDATE conversations SET title = $2 WHERE id = $1 RETURNING id)
             INSERT INTO conversation_messages (conversation_id, role, content) VALUES ($1, 'user', 'm')",
            &[&conv, &title],
        )
        .unwrap();
        let row = c.query_one("SELECT message_count, title FROM conversations WHERE id = $1", &[&conv]).unwrap();
        assert_eq!((row.get::<_, i32>(0), row.get::<_, String>(1)), (i as i32 + 1, title.to_owned()));
    }
    assert_eq!(one(&mut c, "SELECT count(*) FROM verify_counts()"), 0);
    indexes_complete(&mut c, "sessions");
    indexes_complete(&mut c, "conversations");
}

/// The native counter write waits for the parent's row lock as an UPDATE would; when the wait
/// ends in an error (lock_timeout here, a deadlock or a cancel alike) the statement fails with
/// that error, and the connection and the counts are as before.
#[test]
fn a_counter_write_that_times_out_waiting_for_its_parent_fails_cleanly() {
    let db = TestDb::new("one_row_lock_timeout");
    let mut c = db.superuser();
    c.batch_execute("INSERT INTO scenarios (id, title) VALUES ('market', 'Market')").unwrap();
    let user = profile(&mut c, "timeout@example.com");
    let s = session(&mut c, user);
    let mut holder = db.superuser();
    let mut tx = holder.transaction().unwrap();
    tx.execute("UPDATE sessions SET scenario_id = 'market' WHERE id = $1", &[&s]).unwrap();
    for attempt in 0..3 {
        c.batch_execute("SET lock_timeout = '50ms'").unwrap();
        let err = c
            .execute("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'm')", &[&s])
            .unwrap_err();
        let code = err.as_db_error().map(|e| e.code().code().to_owned());
        assert_eq!(code.as_deref(), Some("55P03"), "attempt {attempt}: {err:?}");
        c.batch_execute("RESET lock_timeout").unwrap();
    }
    tx.rollback().unwrap();
    c.execute("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'm')", &[&s]).unwrap();
    assert_eq!(c.query_one("SELECT message_count_main FROM sessions WHERE id = $1", &[&s]).unwrap().get::<_, i32>(0), 1);
    assert_eq!(one(&mut c, "SELECT count(*) FROM verify_counts()"), 0);
}

/// Between the row trigger's read of the session and the counter trigger, another transaction
/// changes the session and commits (the statement waits on an advisory lock in between): the
/// counter is added to the session's newest version, and the other change is kept.
#[test]
fn a_parent_changed_and_committed_by_another_transaction_mid_statement_is_counted_in_its_newest_version() {
    let db = TestDb::new("one_row_concurrent_parent");
    let mut c = db.superuser();
    c.batch_execute("INSERT INTO scenarios (id, title) VALUES ('market', 'Market'), ('travel', 'Travel')").unwrap();
    let user = profile(&mut c, "concurrent@example.com");
    let s = session(&mut c, user);
    let mut gate = db.superuser();
    gate.batch_execute("SELECT pg_advisory_lock(4242)").unwrap();
    let writer = {
        let mut w = db.superuser();
        std::thread::spawn(move || {
            w.query_one(
                "WITH m AS (INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'm') RETURNING 1)
                 SELECT pg_advisory_lock(4242) FROM m",
                &[&s],
            )
            .map(|_| ())
        })
    };
    // Wait until the INSERT has run its row trigger and waits for the gate.
    let mut waiting = false;
    for _ in 0..500 {
        waiting = one(&mut c, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted") == 1;
        if waiting {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(waiting, "the INSERT never reached the gate");
    c.execute("UPDATE sessions SET scenario_id = 'travel' WHERE id = $1", &[&s]).unwrap();
    gate.batch_execute("SELECT pg_advisory_unlock(4242)").unwrap();
    writer.join().unwrap().unwrap();
    let row = c.query_one("SELECT message_count_main, scenario_id FROM sessions WHERE id = $1", &[&s]).unwrap();
    assert_eq!((row.get::<_, i32>(0), row.get::<_, String>(1)), (1, "travel".to_owned()));
    assert_eq!(one(&mut c, "SELECT count(*) FROM verify_counts()"), 0);
}

/// A function called by the same statement rewrites the sessions table (CLUSTER) between the
/// row trigger's read and the counter trigger: the TID read before means nothing in the new
/// storage (here it is past its end), so the session is found again by its key.
#[test]
fn a_parent_table_rewritten_mid_statement_is_searched_again() {
    let db = TestDb::new("one_row_rewritten_parent");
    let mut c = db.superuser();
    c.batch_execute("INSERT INTO scenarios (id, title) VALUES ('market', 'Market')").unwrap();
    let user = profile(&mut c, "rewritten@example.com");
    // The session sits far into the table; after CLUSTER the table is one page.
    c.execute("INSERT INTO sessions (user_id, scenario_id) SELECT $1, 'market' FROM generate_series(1, 3000)", &[&user]).unwrap();
    let s = session(&mut c, user);
    c.execute("DELETE FROM sessions WHERE user_id = $1 AND id <> $2", &[&user, &s]).unwrap();
    let block: i64 = c.query_one("SELECT (ctid::text::point)[0]::bigint FROM sessions WHERE id = $1", &[&s]).unwrap().get(0);
    assert!(block > 10, "the session is on block {block}");
    let storage = |c: &mut Client| -> i64 { c.query_one("SELECT pg_relation_filenode('sessions')::bigint", &[]).unwrap().get(0) };
    let before = storage(&mut c);
    c.batch_execute(
        "CREATE FUNCTION rewrite_sessions() RETURNS int LANGUAGE plpgsql AS
         $$ BEGIN CLUSTER public.sessions USING sessions_pkey; RETURN 1; END $$",
    )
    .unwrap();
    c.query_one(
        "WITH m AS (INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'm') RETURNING 1)
         SELECT rewrite_sessions() FROM m",
        &[&s],
    )
    .unwrap();
    // Usually the deleted rows are gone from the new file and the old TID lies past its end; a
    // snapshot of another backend (one still connecting, say) can keep them, and then the TID
    // points at whatever row the new file has there, which the key check turns down as well.
    assert_eq!(c.query_one("SELECT message_count_main FROM sessions WHERE id = $1", &[&s]).unwrap().get::<_, i32>(0), 1);
    assert_ne!(storage(&mut c), before, "the table was not rewritten");
    assert_eq!(one(&mut c, "SELECT count(*) FROM verify_counts()"), 0);
}
