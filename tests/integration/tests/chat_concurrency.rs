//! Counters and guards under concurrency: several connections at once, as in production.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use pg_assistant_integration::{assert_server_alive, message, postgres, sqlstate, TestDb};
use uuid::Uuid;

fn seed(db: &TestDb, users: usize, sessions_per_user: usize) -> Vec<(Uuid, Uuid)> {
    let mut c = db.superuser();
    c.batch_execute("INSERT INTO scenarios (id, title) VALUES ('market', 'Marketplace')").unwrap();
    let mut out = Vec::new();
    for u in 0..users {
        let user = Uuid::new_v4();
        c.execute("SELECT create_profile($1, $2)", &[&user, &format!("user{u}@example.com")]).unwrap();
        for _ in 0..sessions_per_user {
            let session: Uuid = c
                .query_one("INSERT INTO sessions (user_id, scenario_id) VALUES ($1, 'market') RETURNING id", &[&user])
                .unwrap()
                .get(0);
            out.push((user, session));
        }
    }
    out
}

fn drifted(db: &TestDb) -> i64 {
    db.superuser().query_one("SELECT count(*) FROM verify_counts()", &[]).unwrap().get(0)
}

/// Two transactions complete the same session at once: it is counted once.
#[test]
fn concurrent_completion_counts_once() {
    let db = TestDb::new("concurrent_completion");
    let (user, session) = seed(&db, 1, 1)[0];
    let mut a = db.superuser();
    let mut b = db.superuser();
    let mut ta = a.transaction().unwrap();
    ta.execute("UPDATE sessions SET is_completed = true WHERE id = $1", &[&session]).unwrap();
    // B blocks on A's row lock; when A commits, B re-reads the completed row and changes nothing.
    let waiter = thread::spawn(move || {
        let mut tb = b.transaction().unwrap();
        let n = tb.execute("UPDATE sessions SET is_completed = true WHERE id = $1", &[&session]).unwrap();
        tb.commit().unwrap();
        n
    });
    thread::sleep(Duration::from_millis(300));
    assert!(!waiter.is_finished(), "second completion should wait for the first");
    ta.commit().unwrap();
    assert_eq!(waiter.join().unwrap(), 1);
    let row = db
        .superuser()
        .query_one("SELECT total_completed_sessions, weekly_completed_sessions FROM profiles WHERE id = $1", &[&user])
        .unwrap();
    assert_eq!((row.get::<_, i32>(0), row.get::<_, i32>(1)), (1, 1));
    assert_eq!(drifted(&db), 0);
}

/// Many users completing many sessions from several connections at once.
#[test]
fn concurrent_completions_of_different_sessions_add_up() {
    let db = TestDb::new("concurrent_completions");
    let pairs = seed(&db, 4, 25);
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = pairs
        .chunks(25)
        .map(|chunk| {
            let chunk = chunk.to_vec();
            let mut c = db.superuser();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                // Each client completes every session of every user, racing the others.
                for (_, s) in &chunk {
                    c.execute("UPDATE sessions SET is_completed = true WHERE id = $1", &[s]).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let total: i64 = db.superuser().query_one("SELECT sum(total_completed_sessions) FROM profiles", &[]).unwrap().get(0);
    assert_eq!(total, 100);
    assert_eq!(drifted(&db), 0);
}

/// 8 clients insert 2,000 messages each into 50 sessions: every counter equals a recount.
#[test]
fn eight_clients_insert_2000_messages_each_into_50_sessions() {
    let db = TestDb::new("eight_clients");
    let sessions: Vec<Uuid> = seed(&db, 10, 5).into_iter().map(|(_, s)| s).collect();
    assert_eq!(sessions.len(), 50);
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8u64)
        .map(|client| {
            let sessions = sessions.clone();
            let mut c = db.superuser();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let stmt = c
                    .prepare("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', $2::text::chat_type, $3)")
                    .unwrap();
                barrier.wait();
                let mut x = client * 7919 + 1;
                for i in 0..2000u64 {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let session = sessions[((x >> 33) % 50) as usize];
                    let chat = if i % 3 == 0 { "helper" } else { "main" };
                    c.execute(&stmt, &[&session, &chat, &format!("client {client} message {i}")]).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut c = db.superuser();
    let row = c
        .query_one("SELECT sum(message_count_main)::bigint, sum(message_count_helper)::bigint, (SELECT count(*) FROM messages) FROM sessions", &[])
        .unwrap();
    let (main, helper, all): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(all, 16_000);
    assert_eq!(main + helper, 16_000);
    let mismatched: i64 = c
        .query_one(
            "SELECT count(*) FROM sessions s
              WHERE message_count_main <> (SELECT count(*) FROM messages m WHERE m.session_id = s.id AND chat_type = 'main')
                 OR message_count_helper <> (SELECT count(*) FROM messages m WHERE m.session_id = s.id AND chat_type = 'helper')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(mismatched, 0);
    assert_eq!(drifted(&db), 0);
}

/// Messages race a completion: every message that got in was counted, and no insert that started
/// after the completion committed got in.
#[test]
fn messages_racing_a_completion_never_land_in_a_completed_session() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let db = TestDb::new("race_completion");
    let pairs = seed(&db, 1, 20);
    for (_, session) in pairs {
        let mut writer = db.superuser();
        let mut completer = db.superuser();
        let completed = Arc::new(AtomicBool::new(false));
        let seen = completed.clone();
        let inserting = thread::spawn(move || {
            let (mut landed, mut landed_after_completion) = (0, 0);
            for i in 0..200 {
                let started_after_completion = seen.load(Ordering::SeqCst);
                match writer.execute(
                    "INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', $2)",
                    &[&session, &format!("m{i}")],
                ) {
                    Ok(_) => {
                        landed += 1;
                        if started_after_completion {
                            landed_after_completion += 1;
                        }
                    }
                    Err(e) => {
                        assert_eq!(sqlstate(&e), "P0001", "{e}");
                        assert!(message(&e).starts_with("cannot add messages to completed session"), "{e}");
                        break;
                    }
                }
            }
            (landed, landed_after_completion)
        });
        thread::sleep(Duration::from_millis(5));
        completer.execute("UPDATE sessions SET is_completed = true WHERE id = $1", &[&session]).unwrap();
        completed.store(true, Ordering::SeqCst);
        let (landed, landed_after_completion) = inserting.join().unwrap();
        assert_eq!(landed_after_completion, 0, "a message got into session {session} after it was completed");
        let mut c = db.superuser();
        let row = c
            .query_one(
                "SELECT s.message_count_main, (SELECT count(*) FROM messages m WHERE m.session_id = s.id)
                   FROM sessions s WHERE s.id = $1",
                &[&session],
            )
            .unwrap();
        assert_eq!(row.get::<_, i32>(0) as i64, row.get::<_, i64>(1));
        assert_eq!(row.get::<_, i64>(1), landed as i64);
    }
    assert_eq!(drifted(&db), 0);
    assert_server_alive();
}

/// A client retries the same message (same idempotency key) from two connections at once.
#[test]
fn concurrent_idempotent_retries_count_once() {
    let db = TestDb::new("idempotent_retries");
    let (_, session) = seed(&db, 1, 1)[0];
    for _ in 0..50 {
        let key = Uuid::new_v4();
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let mut c = db.superuser();
                let barrier = barrier.clone();
                thread::spawn(move || {
                    barrier.wait();
                    c.execute(
                        "INSERT INTO messages (session_id, role, chat_type, content, client_message_id)
                         VALUES ($1, 'user', 'main', 'retry', $2) ON CONFLICT DO NOTHING",
                        &[&session, &key],
                    )
                    .unwrap()
                })
            })
            .collect();
        let inserted: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(inserted, 1);
    }
    let count: i32 = db.superuser().query_one("SELECT message_count_main FROM sessions", &[]).unwrap().get(0);
    assert_eq!(count, 50);
    assert_eq!(drifted(&db), 0);
}

/// Runs `op(connection, client number, random)` `rounds` times from each of `clients` superuser
/// connections at once (deadlocks detected after 100 ms); returns the failures as
/// "SQLSTATE: message".
fn race_batches(
    db: &TestDb,
    clients: u64,
    rounds: u64,
    op: fn(&mut postgres::Client, u64, u64) -> Result<u64, postgres::Error>,
) -> Vec<String> {
    db.superuser().batch_execute(&format!("ALTER DATABASE {} SET deadlock_timeout = '100ms'", db.name)).unwrap();
    let barrier = Arc::new(Barrier::new(clients as usize));
    let handles: Vec<_> = (0..clients)
        .map(|client| {
            let mut c = db.superuser();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                let mut x = client * 7919 + 13;
                let mut failures = Vec::new();
                for _ in 0..rounds {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    if let Err(e) = op(&mut c, client, x) {
                        failures.push(format!("{}: {}", sqlstate(&e), message(&e)));
                    }
                }
                failures
            })
        })
        .collect();
    handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
}

/// Batches that span several sessions, in different orders, from several clients at once (an
/// import, a worker flushing many chats): no statement deadlocks with another, nothing is lost.
#[test]
fn concurrent_message_batches_across_sessions_neither_deadlock_nor_lose_anything() {
    let db = TestDb::new("concurrent_message_batches");
    let sessions: Vec<Uuid> = seed(&db, 2, 5).into_iter().map(|(_, s)| s).collect();
    db.superuser()
        .execute("CREATE TABLE batch_sessions AS SELECT * FROM unnest($1::uuid[]) WITH ORDINALITY AS s(id, n)", &[&sessions])
        .unwrap();
    let failures = race_batches(&db, 4, 60, |c, _client, x| {
        // Two to ten of the ten sessions, in an order that differs between statements.
        let start = ((x >> 33) % 10) as i32;
        let step = [1, 3, 7, 9][((x >> 40) % 4) as usize];
        let last = 1 + ((x >> 44) % 9) as i32;
        if (x >> 50) % 4 == 0 {
            c.execute(
                "DELETE FROM messages WHERE id IN (
                   SELECT DISTINCT ON (m.session_id) m.id FROM messages m JOIN batch_sessions b ON b.id = m.session_id
                    WHERE b.n - 1 IN (SELECT ($1 + g * $2) % 10 FROM generate_series(0, $3) g))",
                &[&start, &step, &last],
            )
        } else {
            c.execute(
                "INSERT INTO messages (session_id, role, chat_type, content)
                 SELECT b.id, 'user', 'main', 'flush'
                   FROM generate_series(0, $3) g JOIN batch_sessions b ON b.n = 1 + ($1 + g * $2) % 10
                  ORDER BY g",
                &[&start, &step, &last],
            )
        }
    });
    assert!(failures.is_empty(), "{} of 240 batches failed, first: {}", failures.len(), failures[0]);
    assert_eq!(drifted(&db), 0);
    let kept: i64 = db.superuser().query_one("SELECT count(*) FROM messages", &[]).unwrap().get(0);
    assert!(kept > 0);
}

/// A service inserting sessions for several profiles per statement, in different orders, from
/// several clients at once: no deadlock, every profile's counters exact.
#[test]
fn concurrent_session_batches_across_profiles_neither_deadlock_nor_lose_anything() {
    let db = TestDb::new("concurrent_session_batches");
    seed(&db, 10, 0); // profiles without sessions
    let users: Vec<Uuid> =
        db.superuser().query("SELECT id FROM profiles ORDER BY email", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(users.len(), 10);
    let mut su = db.superuser();
    su.execute("CREATE TABLE batch_users AS SELECT * FROM unnest($1::uuid[]) WITH ORDINALITY AS u(id, n)", &[&users]).unwrap();
    // each client its own scenario, so that the sessions each one completes are its own
    su.batch_execute("INSERT INTO scenarios (id, title) SELECT 'c' || i, 'Client ' || i FROM generate_series(0, 3) i").unwrap();
    let failures = race_batches(&db, 4, 40, |c, client, x| {
        let start = ((x >> 33) % 10) as i32;
        let step = [1, 3, 7, 9][((x >> 40) % 4) as usize];
        c.execute(
            "INSERT INTO sessions (user_id, scenario_id, is_completed)
             SELECT u.id, $3, g % 2 = 0
               FROM generate_series(0, 4) g JOIN batch_users u ON u.n = 1 + ($1 + g * $2) % 10
              ORDER BY g",
            &[&start, &step, &format!("c{client}")],
        )?;
        // and completes a few sessions of several profiles at once, in another order
        c.execute(
            "UPDATE sessions SET is_completed = true
              WHERE id IN (SELECT s.id FROM sessions s JOIN batch_users u ON u.id = s.user_id
                            WHERE NOT s.is_completed AND s.scenario_id = $2
                              AND u.n IN (1 + $1, 1 + (($1 + 5) % 10)) LIMIT 3)",
            &[&start, &format!("c{client}")],
        )
    });
    assert!(failures.is_empty(), "{} of 160 batches failed, first: {}", failures.len(), failures[0]);
    assert_eq!(drifted(&db), 0);
    let started: i64 = db.superuser().query_one("SELECT sum(weekly_started_sessions)::bigint FROM profiles", &[]).unwrap().get(0);
    assert_eq!(started, 160 * 5);
}
