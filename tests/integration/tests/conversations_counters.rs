//! conversations (DESIGN.md 2 "Batches", 3.4): a conversation's `message_count`,
//! `last_message_at` and `updated_at` follow its messages, once per conversation per statement,
//! exactly, for batches, deletes and several clients at once; `verify_counts()` /
//! `repair_counts()` cover them.
//!
//! The writers are what an application runs: a LOGIN role without superuser or BYPASSRLS (with
//! Supabase's default privileges), the user in the JWT claims.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use pg_assistant_integration::postgres::Client;
use pg_assistant_integration::{assert_server_alive, sqlstate, with_claims, TestDb};
use serde_json::json;
use uuid::Uuid;

const ROLE: &str = "pga_it_conv_cnt_app";

struct Fixture {
    db: TestDb,
    tenant: Uuid,
    users: Vec<Uuid>,
}

fn fixture(test: &str, users: usize) -> Fixture {
    let db = TestDb::supabase_like(test, &[ROLE]);
    let mut su = db.superuser();
    let tenant: Uuid = su.query_one("INSERT INTO tenants (name, slug) VALUES ('Acme', 'acme') RETURNING id", &[]).unwrap().get(0);
    let users = (0..users)
        .map(|i| {
            let id = Uuid::new_v4();
            su.execute("SELECT create_profile($1, $2)", &[&id, &format!("user{i}@acme.example.com")]).unwrap();
            su.execute("UPDATE profiles SET tenant_id = $2 WHERE id = $1", &[&id, &tenant]).unwrap();
            id
        })
        .collect();
    Fixture { db, tenant, users }
}

fn user_claims(user: Uuid) -> serde_json::Value {
    json!({ "sub": user.to_string(), "role": "authenticated" })
}

/// Conversations of `user`, created by the user through the application role.
fn conversations(c: &mut Client, f: &Fixture, user: Uuid, n: usize) -> Vec<Uuid> {
    let mut tx = with_claims(c, user_claims(user));
    let ids = (0..n)
        .map(|i| {
            tx.query_one(
                "INSERT INTO conversations (tenant_id, user_id, title) VALUES ($1, $2, $3) RETURNING id",
                &[&f.tenant, &user, &format!("chat {i}")],
            )
            .unwrap()
            .get(0)
        })
        .collect();
    tx.commit().unwrap();
    ids
}

/// Conversations whose `message_count` or `last_message_at` differ from their messages, as text.
fn drift(su: &mut Client) -> Vec<String> {
    su.query(
        "SELECT c.id::text || ': stored ' || c.message_count || ' / ' || coalesce(c.last_message_at::text, 'NULL')
                || ', recount ' || count(m.id) || ' / ' || coalesce(max(m.created_at)::text, 'NULL')
           FROM conversations c LEFT JOIN conversation_messages m ON m.conversation_id = c.id
          GROUP BY c.id
         HAVING c.message_count <> count(m.id) OR c.last_message_at IS DISTINCT FROM max(m.created_at)",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Rows of `conversations` updated by this backend (the current transaction, plus possibly
/// earlier ones whose counts are not flushed yet: use differences within one transaction).
const UPDATED: &str = "SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relid = 'conversations'::regclass";

fn verify_counts(su: &mut Client) -> i64 {
    su.query_one("SELECT count(*) FROM verify_counts()", &[]).unwrap().get(0)
}

#[test]
fn a_message_bumps_count_last_message_at_and_updated_at() {
    let f = fixture("conv_cnt_one", 1);
    let me = f.users[0];
    let mut c = f.db.connect_as(ROLE);
    // An old conversation: created and last touched yesterday.
    let mut su = f.db.superuser();
    let conv: Uuid = su
        .query_one(
            "INSERT INTO conversations (tenant_id, user_id, title, created_at, updated_at)
             VALUES ($1, $2, 'old', now() - interval '1 day', now() - interval '1 day') RETURNING id",
            &[&f.tenant, &me],
        )
        .unwrap()
        .get(0);

    for n in 1..=3 {
        let mut tx = with_claims(&mut c, user_claims(me));
        // pg_stat_xact_* may still hold earlier transactions' unflushed counts: take the delta.
        let upd_before: i64 = tx.query_one(UPDATED, &[]).unwrap().get(0);
        let created: String = tx
            .query_one(
                "INSERT INTO conversation_messages (conversation_id, role, content) VALUES ($1, 'user', 'hi') RETURNING created_at::text",
                &[&conv],
            )
            .unwrap()
            .get(0);
        let row = tx
            .query_one(
                &format!(
                    "SELECT message_count, last_message_at::text, updated_at = now(), updated_at > created_at, ({UPDATED})
                   FROM conversations WHERE id = $1"
                ),
                &[&conv],
            )
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), n);
        assert_eq!(row.get::<_, Option<String>>(1), Some(created), "last_message_at is the new message's created_at");
        assert!(row.get::<_, bool>(2), "updated_at is the transaction's time");
        assert!(row.get::<_, bool>(3));
        assert_eq!(row.get::<_, i64>(4) - upd_before, 1, "one rewrite of the conversation for one message");
        tx.commit().unwrap();
    }
    // A message written with an earlier created_at does not move last_message_at back.
    let mut tx = with_claims(&mut c, user_claims(me));
    let before: String = tx.query_one("SELECT last_message_at::text FROM conversations WHERE id = $1", &[&conv]).unwrap().get(0);
    tx.execute(
        "INSERT INTO conversation_messages (conversation_id, role, content, created_at) VALUES ($1, 'tool', 'late', now() - interval '1 hour')",
        &[&conv],
    )
    .unwrap();
    let row = tx.query_one("SELECT message_count, last_message_at::text FROM conversations WHERE id = $1", &[&conv]).unwrap();
    assert_eq!(row.get::<_, i32>(0), 4);
    assert_eq!(row.get::<_, String>(1), before);
    tx.commit().unwrap();
    assert!(drift(&mut su).is_empty(), "{:?}", drift(&mut su));
    assert_eq!(verify_counts(&mut su), 0);
}

/// 100,000 messages into 100 conversations in one INSERT ... SELECT: each conversation is
/// rewritten once (not a thousand times) and ends with exactly its count.
#[test]
fn a_100000_row_insert_select_rewrites_each_conversation_once() {
    let f = fixture("conv_cnt_batch", 1);
    let me = f.users[0];
    let mut c = f.db.connect_as(ROLE);
    let convs = conversations(&mut c, &f, me, 100);
    let mut tx = with_claims(&mut c, user_claims(me));
    let upd_before: i64 = tx.query_one(UPDATED, &[]).unwrap().get(0);
    let ins_before: i64 =
        tx.query_one("SELECT n_tup_ins FROM pg_stat_xact_user_tables WHERE relid = 'conversation_messages'::regclass", &[]).unwrap().get(0);
    let started = std::time::Instant::now();
    let inserted = tx
        .execute(
            "INSERT INTO conversation_messages (conversation_id, role, content, input_tokens, output_tokens, created_at)
             SELECT ($1::uuid[])[1 + i % 100], CASE WHEN i % 2 = 0 THEN 'user' ELSE 'assistant' END, 'message ' || i,
                    i % 7, i % 11, now() - make_interval(secs => i)
               FROM generate_series(1, 100000) i",
            &[&convs],
        )
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(inserted, 100_000);
    let stats = tx
        .query_one(
            "SELECT (SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relid = 'conversations'::regclass) - $1,
                    (SELECT n_tup_ins FROM pg_stat_xact_user_tables WHERE relid = 'conversation_messages'::regclass) - $2,
                    (SELECT count(*) FROM conversations WHERE xmin::text::bigint = pg_current_xact_id()::text::bigint % 4294967296)",
            &[&upd_before, &ins_before],
        )
        .unwrap();
    assert_eq!(stats.get::<_, i64>(0), 100, "conversations rows updated by the batch (one per conversation)");
    assert_eq!(stats.get::<_, i64>(1), 100_000);
    assert_eq!(stats.get::<_, i64>(2), 100, "every conversation rewritten by this transaction");
    let rows = tx
        .query(
            "SELECT c.message_count, c.last_message_at = (SELECT max(created_at) FROM conversation_messages m WHERE m.conversation_id = c.id),
                    c.updated_at = now()
               FROM conversations c",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 100);
    for r in &rows {
        assert_eq!(r.get::<_, i32>(0), 1000);
        assert!(r.get::<_, bool>(1), "last_message_at is the latest message");
        assert!(r.get::<_, bool>(2), "updated_at bumped");
    }
    tx.commit().unwrap();
    let mut su = f.db.superuser();
    assert!(drift(&mut su).is_empty(), "{:?}", drift(&mut su));
    assert_eq!(verify_counts(&mut su), 0);
    eprintln!("100,000-row INSERT ... SELECT took {elapsed:?}");
}

#[test]
fn deletes_keep_count_exact_and_last_message_at_the_latest_remaining() {
    let f = fixture("conv_cnt_delete", 1);
    let me = f.users[0];
    let mut c = f.db.connect_as(ROLE);
    let convs = conversations(&mut c, &f, me, 3);
    let mut tx = with_claims(&mut c, user_claims(me));
    // Ten messages per conversation, minutes apart: message k is k minutes old.
    tx.execute(
        "INSERT INTO conversation_messages (conversation_id, role, content, created_at)
         SELECT conv, 'user', 'k=' || k, now() - make_interval(mins => k)
           FROM unnest($1::uuid[]) conv, generate_series(0, 9) k",
        &[&convs],
    )
    .unwrap();
    tx.commit().unwrap();
    let mut su = f.db.superuser();
    assert!(drift(&mut su).is_empty());

    let expect = |c: &mut Client, conv: Uuid, count: i32, latest_k: Option<i32>| {
        let mut tx = with_claims(c, user_claims(me));
        let row = tx
            .query_one(
                "SELECT message_count, last_message_at IS NOT DISTINCT FROM
                        (SELECT created_at FROM conversation_messages WHERE conversation_id = $1 AND content = 'k=' || $2::int)
                   FROM conversations WHERE id = $1",
                &[&conv, &latest_k],
            )
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), count, "{conv}");
        assert!(row.get::<_, bool>(1), "{conv}: last_message_at should be message k={latest_k:?}");
        tx.commit().unwrap();
    };
    let delete = |c: &mut Client, sql: &str, params: &[&(dyn pg_assistant_integration::postgres::types::ToSql + Sync)]| {
        let mut tx = with_claims(c, user_claims(me));
        let n = tx.execute(sql, params).unwrap();
        tx.commit().unwrap();
        n
    };
    // The latest message goes: last_message_at falls back to the next one.
    assert_eq!(delete(&mut c, "DELETE FROM conversation_messages WHERE conversation_id = $1 AND content = 'k=0'", &[&convs[0]]), 1);
    expect(&mut c, convs[0], 9, Some(1));
    // A middle one: the count only.
    assert_eq!(delete(&mut c, "DELETE FROM conversation_messages WHERE conversation_id = $1 AND content = 'k=5'", &[&convs[0]]), 1);
    expect(&mut c, convs[0], 8, Some(1));
    // One statement over several conversations, different numbers from each.
    assert_eq!(
        delete(
            &mut c,
            "DELETE FROM conversation_messages WHERE (conversation_id = $1 AND content IN ('k=1', 'k=2', 'k=9'))
                                                  OR (conversation_id = $2 AND content IN ('k=0', 'k=1', 'k=2', 'k=3'))",
            &[&convs[0], &convs[1]],
        ),
        7
    );
    expect(&mut c, convs[0], 5, Some(3));
    expect(&mut c, convs[1], 6, Some(4));
    expect(&mut c, convs[2], 10, Some(0));
    // Everything of one conversation: zero and NULL.
    assert_eq!(delete(&mut c, "DELETE FROM conversation_messages WHERE conversation_id = $1", &[&convs[1]]), 6);
    expect(&mut c, convs[1], 0, None);
    // Nothing matched: nothing changes.
    assert_eq!(delete(&mut c, "DELETE FROM conversation_messages WHERE content = 'no such'", &[]), 0);
    // A message deleted and re-inserted in one transaction.
    let mut tx = with_claims(&mut c, user_claims(me));
    tx.execute("DELETE FROM conversation_messages WHERE conversation_id = $1 AND content = 'k=9'", &[&convs[2]]).unwrap();
    tx.execute("INSERT INTO conversation_messages (conversation_id, role, content) VALUES ($1, 'user', 'again')", &[&convs[2]]).unwrap();
    tx.commit().unwrap();
    // The whole conversation, with its messages, by the user.
    assert_eq!(delete(&mut c, "DELETE FROM conversations WHERE id = $1", &[&convs[0]]), 1);
    assert!(drift(&mut su).is_empty(), "{:?}", drift(&mut su));
    assert_eq!(verify_counts(&mut su), 0);
    let left: i64 = su.query_one("SELECT count(*) FROM conversation_messages", &[]).unwrap().get(0);
    assert_eq!(left, 10);
}

/// Six clients insert into the same ten conversations at once (single rows and small batches
/// into one conversation): nothing is lost.
#[test]
fn concurrent_inserters_lose_nothing() {
    let f = fixture("conv_cnt_concurrent", 6);
    let mut c = f.db.connect_as(ROLE);
    let convs = conversations(&mut c, &f, f.users[0], 10);
    let sent = race(&f, &convs, 300, |c, convs, client, i, x| {
        let conv = &convs[((x >> 33) % 10) as usize];
        if i % 10 == 0 {
            c.execute(
                "INSERT INTO conversation_messages (conversation_id, role, content) SELECT $1, 'assistant', 'batch' FROM generate_series(1, 7)",
                &[conv],
            )
            .unwrap()
        } else {
            c.execute(
                "INSERT INTO conversation_messages (conversation_id, role, content) VALUES ($1, 'user', $2)",
                &[conv, &format!("c{client} m{i}")],
            )
            .unwrap()
        }
    });
    assert_eq!(sent, 6 * (270 + 30 * 7));
    let mut su = f.db.superuser();
    let total: i64 = su.query_one("SELECT sum(message_count)::bigint FROM conversations", &[]).unwrap().get(0);
    assert_eq!(total as u64, sent);
    assert!(drift(&mut su).is_empty(), "{:?}", drift(&mut su));
    assert_eq!(verify_counts(&mut su), 0);
}

/// Batches that span several conversations (a worker flushing buffered replies of many chats in
/// one INSERT), from several clients at once: every statement succeeds (the counter update of one
/// statement must not deadlock with another's) and nothing is lost.
#[test]
fn concurrent_batches_across_conversations_neither_deadlock_nor_lose_anything() {
    let f = fixture("conv_cnt_concurrent_batches", 4);
    // Detect a deadlock quickly (the default waits a second for each).
    f.db.superuser().batch_execute(&format!("ALTER DATABASE {} SET deadlock_timeout = '100ms'", f.db.name)).unwrap();
    let mut c = f.db.connect_as(ROLE);
    let convs = conversations(&mut c, &f, f.users[0], 10);
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = failures.clone();
    let sent = race(&f, &convs, 60, move |c, convs, _client, _i, x| {
        // Five conversations in a random order.
        let start = (x >> 33) as i32 % 10;
        let step = [1, 3, 7, 9][((x >> 40) % 4) as usize];
        match c.execute(
            "INSERT INTO conversation_messages (conversation_id, role, content)
             SELECT ($1::uuid[])[1 + ($2 + g * $3) % 10], 'assistant', 'flush' FROM generate_series(0, 4) g",
            &[convs, &start, &step],
        ) {
            Ok(n) => n,
            Err(e) => {
                seen.lock().unwrap().push(format!("{}: {}", sqlstate(&e), pg_assistant_integration::message(&e)));
                0
            }
        }
    });
    let failures = failures.lock().unwrap().clone();
    let mut su = f.db.superuser();
    let total: i64 = su.query_one("SELECT sum(message_count)::bigint FROM conversations", &[]).unwrap().get(0);
    assert_eq!(total as u64, sent, "counted what got in");
    assert!(drift(&mut su).is_empty(), "{:?}", drift(&mut su));
    assert!(
        failures.is_empty(),
        "{} of {} batch inserts failed, first: {}",
        failures.len(),
        4 * 60,
        failures.first().cloned().unwrap_or_default()
    );
    assert_eq!(sent, 4 * 60 * 5);
}

/// Runs `op` `rounds` times from one client per fixture user (its own connection, session-level
/// claims, autocommit), all starting together; returns the rows inserted.
fn race(
    f: &Fixture,
    convs: &[Uuid],
    rounds: u64,
    op: impl Fn(&mut Client, &Vec<Uuid>, usize, u64, u64) -> u64 + Send + Sync + Clone + 'static,
) -> u64 {
    let barrier = Arc::new(Barrier::new(f.users.len()));
    let handles: Vec<_> = f
        .users
        .iter()
        .enumerate()
        .map(|(client, &user)| {
            let convs = convs.to_vec();
            let barrier = barrier.clone();
            let op = op.clone();
            let mut c = f.db.connect_as(ROLE);
            thread::spawn(move || {
                c.execute("SELECT set_config('request.jwt.claims', $1, false)", &[&user_claims(user).to_string()]).unwrap();
                barrier.wait();
                let mut x = client as u64 * 7919 + 13;
                let mut sent = 0u64;
                for i in 0..rounds {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    sent += op(&mut c, &convs, client, i, x);
                }
                sent
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

/// A delete of a conversation's latest message commits after a concurrent insert into the same
/// conversation: the inserted message is the conversation's latest, and last_message_at must say
/// so (the delete's recount waited for the insert's row lock).
#[test]
fn a_delete_racing_an_insert_keeps_last_message_at_the_latest() {
    let f = fixture("conv_cnt_race", 2);
    let (alice, amy) = (f.users[0], f.users[1]);
    let mut c = f.db.connect_as(ROLE);
    let conv = conversations(&mut c, &f, alice, 1)[0];
    let mut tx = with_claims(&mut c, user_claims(alice));
    tx.execute(
        "INSERT INTO conversation_messages (conversation_id, role, content, created_at)
         VALUES ($1, 'user', 'old', now() - interval '2 hours'), ($1, 'user', 'latest', now() - interval '1 hour')",
        &[&conv],
    )
    .unwrap();
    tx.commit().unwrap();

    // Alice's client: a new message, not yet committed (it holds the conversation's row).
    let mut writer = f.db.connect_as(ROLE);
    let mut wtx = with_claims(&mut writer, user_claims(alice));
    wtx.execute("INSERT INTO conversation_messages (conversation_id, role, content) VALUES ($1, 'user', 'newest')", &[&conv]).unwrap();
    // Amy's client deletes the (so far) latest message; its counter update waits for alice.
    let mut deleter = f.db.connect_as(ROLE);
    let waiting = thread::spawn(move || {
        let mut tx = with_claims(&mut deleter, user_claims(amy));
        let n = tx.execute("DELETE FROM conversation_messages WHERE conversation_id = $1 AND content = 'latest'", &[&conv]).unwrap();
        tx.commit().unwrap();
        n
    });
    thread::sleep(Duration::from_millis(400));
    assert!(!waiting.is_finished(), "the delete's counter update should wait for the insert's row lock");
    wtx.commit().unwrap();
    assert_eq!(waiting.join().unwrap(), 1);

    let mut su = f.db.superuser();
    let row = su
        .query_one(
            "SELECT c.message_count, c.last_message_at::text,
                    (SELECT count(*) FROM conversation_messages m WHERE m.conversation_id = c.id),
                    (SELECT max(created_at)::text FROM conversation_messages m WHERE m.conversation_id = c.id)
               FROM conversations c WHERE c.id = $1",
            &[&conv],
        )
        .unwrap();
    assert_eq!(row.get::<_, i32>(0) as i64, row.get::<_, i64>(2), "message_count");
    assert_eq!(row.get::<_, i64>(2), 2);
    assert_eq!(
        row.get::<_, Option<String>>(1),
        row.get::<_, Option<String>>(3),
        "last_message_at must be the latest remaining message ('newest', committed before the delete)"
    );
}

/// `INSERT ... ON CONFLICT DO NOTHING` retried with the same id counts once.
#[test]
fn a_retried_insert_counts_once() {
    let f = fixture("conv_cnt_retry", 1);
    let me = f.users[0];
    let mut c = f.db.connect_as(ROLE);
    let conv = conversations(&mut c, &f, me, 1)[0];
    let id = Uuid::new_v4();
    for _ in 0..3 {
        let mut tx = with_claims(&mut c, user_claims(me));
        tx.execute(
            "INSERT INTO conversation_messages (id, conversation_id, role, content) VALUES ($1, $2, 'user', 'once') ON CONFLICT (id) DO NOTHING",
            &[&id, &conv],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let mut su = f.db.superuser();
    let n: i32 = su.query_one("SELECT message_count FROM conversations WHERE id = $1", &[&conv]).unwrap().get(0);
    assert_eq!(n, 1);
    assert_eq!(verify_counts(&mut su), 0);
}

#[test]
fn verify_counts_reports_and_repair_counts_fixes_a_corrupted_message_count() {
    let f = fixture("conv_cnt_repair", 1);
    let me = f.users[0];
    let mut c = f.db.connect_as(ROLE);
    let convs = conversations(&mut c, &f, me, 3);
    let mut tx = with_claims(&mut c, user_claims(me));
    tx.execute(
        "INSERT INTO conversation_messages (conversation_id, role, content) SELECT conv, 'user', 'x' FROM unnest($1::uuid[]) conv, generate_series(1, 4)",
        &[&convs],
    )
    .unwrap();
    tx.commit().unwrap();

    let mut su = f.db.superuser();
    assert_eq!(verify_counts(&mut su), 0);
    // Corrupted by someone who may write counters (a service, a bad manual fix).
    su.execute("UPDATE conversations SET message_count = 17, last_message_at = NULL WHERE id = $1", &[&convs[1]]).unwrap();
    let rows = su.query("SELECT table_name, row_id, column_name, stored, actual FROM verify_counts()", &[]).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].get::<_, String>(0), "conversations");
    assert_eq!(rows[0].get::<_, Uuid>(1), convs[1]);
    assert_eq!(rows[0].get::<_, String>(2), "message_count");
    assert_eq!((rows[0].get::<_, i64>(3), rows[0].get::<_, i64>(4)), (17, 4));

    // Ordinary roles may run neither, whatever their EXECUTE grants.
    let mut tx = with_claims(&mut c, json!({ "sub": me.to_string(), "role": "service_role" }));
    let err = tx.query("SELECT * FROM verify_counts()", &[]).unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err}");
    tx.rollback().unwrap();
    let mut tx = with_claims(&mut c, json!({ "sub": me.to_string(), "role": "admin" }));
    let err = tx.query("SELECT repair_counts()", &[]).unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err}");
    tx.rollback().unwrap();
    assert_server_alive();

    let fixed: i32 = su.query_one("SELECT repair_counts()", &[]).unwrap().get(0);
    assert!(fixed >= 1);
    assert_eq!(verify_counts(&mut su), 0);
    assert!(drift(&mut su).is_empty(), "{:?}", drift(&mut su));
    let n: i32 = su.query_one("SELECT message_count FROM conversations WHERE id = $1", &[&convs[1]]).unwrap().get(0);
    assert_eq!(n, 4);
    // Healthy: a second repair changes nothing.
    let again: i32 = su.query_one("SELECT repair_counts()", &[]).unwrap().get(0);
    assert_eq!(again, 0);
}
