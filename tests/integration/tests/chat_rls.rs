//! Row-level security through a real non-superuser role with JWT claims, as PostgREST runs it:
//! one login role for every request, the user in `request.jwt.claims` per transaction.

use pg_assistant_integration::postgres::{Client, Transaction};
use pg_assistant_integration::{assert_server_alive, ensure_login_role, message, sqlstate, TestDb};
use uuid::Uuid;

const ROLE: &str = "pga_it_authenticated";

struct Fixture {
    db: TestDb,
    alice: Uuid,
    bob: Uuid,
    alice_session: Uuid,
    bob_session: Uuid,
}

fn fixture(name: &str) -> Fixture {
    ensure_login_role(ROLE);
    let db = TestDb::new(name);
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
    let mut sessions = Vec::new();
    for user in [alice, bob] {
        let s: Uuid = su
            .query_one("INSERT INTO sessions (user_id, scenario_id) VALUES ($1, 'market') RETURNING id", &[&user])
            .unwrap()
            .get(0);
        su.execute("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'hello')", &[&s])
            .unwrap();
        su.execute("INSERT INTO logs (session_id, user_id, level, event) VALUES ($1, $2, 'info', 'start')", &[&s, &user])
            .unwrap();
        sessions.push(s);
    }
    Fixture { db, alice, bob, alice_session: sessions[0], bob_session: sessions[1] }
}

/// A transaction carrying the JWT claims of `user` with app role `role`, as PostgREST sets them.
fn as_user<'a>(client: &'a mut Client, user: Uuid, role: &str) -> Transaction<'a> {
    let mut tx = client.transaction().unwrap();
    let claims = serde_json::json!({ "sub": user.to_string(), "role": role }).to_string();
    tx.execute("SELECT set_config('request.jwt.claims', $1, true)", &[&claims]).unwrap();
    tx
}

fn count(tx: &mut Transaction<'_>, sql: &str) -> i64 {
    tx.query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn users_see_only_their_own_rows() {
    let f = fixture("rls_visibility");
    let mut c = f.db.connect_as(ROLE);
    for (me, my_session) in [(f.alice, f.alice_session), (f.bob, f.bob_session)] {
        let mut tx = as_user(&mut c, me, "authenticated");
        let ids: Vec<Uuid> = tx.query("SELECT id FROM profiles", &[]).unwrap().iter().map(|r| r.get(0)).collect();
        assert_eq!(ids, vec![me]);
        let sessions: Vec<Uuid> = tx.query("SELECT id FROM sessions", &[]).unwrap().iter().map(|r| r.get(0)).collect();
        assert_eq!(sessions, vec![my_session]);
        assert_eq!(count(&mut tx, "SELECT count(*) FROM messages"), 1);
        assert_eq!(count(&mut tx, "SELECT count(*) FROM logs"), 1);
        assert_eq!(count(&mut tx, "SELECT count(*) FROM scenarios"), 1);
        tx.commit().unwrap();
    }
    // No JWT at all: nothing of anyone's.
    let mut tx = c.transaction().unwrap();
    assert_eq!(count(&mut tx, "SELECT count(*) FROM profiles"), 0);
    assert_eq!(count(&mut tx, "SELECT count(*) FROM messages"), 0);
}

#[test]
fn users_write_only_their_own_rows() {
    let f = fixture("rls_writes");
    let mut c = f.db.connect_as(ROLE);

    // Alice writes in her own session; user_id is filled from the session.
    let mut tx = as_user(&mut c, f.alice, "authenticated");
    tx.execute("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'mine')", &[&f.alice_session])
        .unwrap();
    tx.commit().unwrap();

    // Into Bob's session: the filled user_id is Bob's, which RLS refuses (42501) ...
    let mut tx = as_user(&mut c, f.alice, "authenticated");
    let err = tx
        .execute("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'not mine')", &[&f.bob_session])
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err}");
    tx.rollback().unwrap();
    // ... and so is claiming her own user_id there: refused before the rule reads Bob's session,
    // so the error cannot name its owner (it once said "does not match", with his id).
    let mut tx = as_user(&mut c, f.alice, "authenticated");
    let err = tx
        .execute(
            "INSERT INTO messages (session_id, user_id, role, chat_type, content) VALUES ($1, $2, 'user', 'main', 'sneaky')",
            &[&f.bob_session, &f.alice],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    assert_eq!(message(&err), "new row violates row-level security policy for table \"messages\"");
    tx.rollback().unwrap();

    // A session for Bob, or a log in Bob's name: refused.
    for sql in [
        "INSERT INTO sessions (user_id, scenario_id) VALUES ($1, 'market')",
        "INSERT INTO logs (user_id, level, event) VALUES ($1, 'info', 'x')",
    ] {
        let mut tx = as_user(&mut c, f.alice, "authenticated");
        let err = tx.execute(sql, &[&f.bob]).unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err}");
        tx.rollback().unwrap();
    }

    // Updates and deletes of Bob's rows touch nothing.
    let mut tx = as_user(&mut c, f.alice, "authenticated");
    assert_eq!(tx.execute("UPDATE profiles SET display_name = 'hacked' WHERE id = $1", &[&f.bob]).unwrap(), 0);
    assert_eq!(tx.execute("UPDATE sessions SET is_completed = true WHERE id = $1", &[&f.bob_session]).unwrap(), 0);
    assert_eq!(tx.execute("DELETE FROM messages WHERE session_id = $1", &[&f.bob_session]).unwrap(), 0);
    assert_eq!(tx.execute("DELETE FROM sessions WHERE id = $1", &[&f.bob_session]).unwrap(), 0);
    tx.commit().unwrap();

    let mut su = f.db.superuser();
    let row = su
        .query_one("SELECT display_name, is_completed, message_count_main FROM profiles p JOIN sessions s ON s.user_id = p.id WHERE p.id = $1", &[&f.bob])
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), None);
    assert!(!row.get::<_, bool>(1));
    assert_eq!(row.get::<_, i32>(2), 1);
    let alice_count: i32 =
        su.query_one("SELECT message_count_main FROM sessions WHERE id = $1", &[&f.alice_session]).unwrap().get(0);
    assert_eq!(alice_count, 2);
    assert_server_alive();
}

#[test]
fn users_cannot_write_counters_but_can_complete_their_session() {
    let f = fixture("rls_counters");
    let mut c = f.db.connect_as(ROLE);

    for (sql, column) in [
        ("UPDATE profiles SET total_completed_sessions = 100", "total_completed_sessions"),
        ("UPDATE profiles SET weekly_completed_sessions = 5", "weekly_completed_sessions"),
        ("UPDATE profiles SET weekly_session_limit = 3", "weekly_session_limit"),
        ("UPDATE profiles SET week_reset_date = now() + interval '1 year'", "week_reset_date"),
        ("UPDATE profiles SET tenant_id = gen_random_uuid()", "tenant_id"),
        ("UPDATE sessions SET message_count_main = 0", "message_count_main"),
        ("UPDATE sessions SET message_count_helper = 5", "message_count_helper"),
        ("UPDATE sessions SET duration_seconds = 1", "duration_seconds"),
        ("UPDATE sessions SET is_completed = true, completed_at = now() + interval '1 day'", "completed_at"),
    ] {
        let mut tx = as_user(&mut c, f.alice, "authenticated");
        let err = tx.execute(sql, &[]).err().unwrap_or_else(|| panic!("{sql} succeeded"));
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err}");
        assert!(message(&err).contains(column), "{sql}: {err}");
        tx.rollback().unwrap();
    }
    // Inserting a session with a head start on the counters is refused too.
    let mut tx = as_user(&mut c, f.alice, "authenticated");
    let err = tx
        .execute("INSERT INTO sessions (user_id, scenario_id, message_count_main) VALUES ($1, 'market', 10)", &[&f.alice])
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err}");
    tx.rollback().unwrap();

    // What a user may do: rename themselves and complete their own session.
    let mut tx = as_user(&mut c, f.alice, "authenticated");
    assert_eq!(tx.execute("UPDATE profiles SET display_name = 'Alice'", &[]).unwrap(), 1);
    assert_eq!(tx.execute("UPDATE sessions SET is_completed = true WHERE id = $1", &[&f.alice_session]).unwrap(), 1);
    tx.commit().unwrap();
    let mut tx = as_user(&mut c, f.alice, "authenticated");
    let row = tx
        .query_one("SELECT display_name, total_completed_sessions, weekly_completed_sessions FROM profiles", &[])
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Alice");
    assert_eq!((row.get::<_, i32>(1), row.get::<_, i32>(2)), (1, 1));
    let completed: bool = tx.query_one("SELECT completed_at IS NOT NULL FROM sessions", &[]).unwrap().get(0);
    assert!(completed);
    tx.commit().unwrap();
    let drift: i64 = f.db.superuser().query_one("SELECT count(*) FROM verify_counts()", &[]).unwrap().get(0);
    assert_eq!(drift, 0);
}

#[test]
fn create_profile_only_for_oneself() {
    let f = fixture("rls_create_profile");
    let mut c = f.db.connect_as(ROLE);
    let carol = Uuid::new_v4();
    let mut tx = as_user(&mut c, carol, "authenticated");
    let err = tx.execute("SELECT create_profile($1, 'mallory@example.com')", &[&Uuid::new_v4()]).unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    tx.rollback().unwrap();
    // There is no INSERT policy: the direct path is closed.
    let mut tx = as_user(&mut c, carol, "authenticated");
    let err = tx.execute("INSERT INTO profiles (id, email) VALUES ($1, 'carol@example.com')", &[&carol]).unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    tx.rollback().unwrap();
    // Only with the address her token vouches for (without an email claim: refused).
    let mut tx = as_user(&mut c, carol, "authenticated");
    let err = tx.execute("SELECT create_profile($1, 'carol@example.com')", &[&carol]).unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    tx.rollback().unwrap();
    let mut tx = c.transaction().unwrap();
    let claims = serde_json::json!({ "sub": carol.to_string(), "role": "authenticated", "email": "carol@example.com" }).to_string();
    tx.execute("SELECT set_config('request.jwt.claims', $1, true)", &[&claims]).unwrap();
    let row = tx.query_one("SELECT id, email::text FROM create_profile($1, 'carol@example.com', 'Carol')", &[&carol]).unwrap();
    assert_eq!(row.get::<_, Uuid>(0), carol);
    assert_eq!(row.get::<_, String>(1), "carol@example.com");
    tx.commit().unwrap();
}

#[test]
fn scenarios_are_readable_by_all_and_writable_by_admins() {
    let f = fixture("rls_scenarios");
    let mut c = f.db.connect_as(ROLE);
    let mut tx = as_user(&mut c, f.alice, "authenticated");
    let err = tx.execute("INSERT INTO scenarios (id, title) VALUES ('party', 'Party')", &[]).unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    tx.rollback().unwrap();
    let mut tx = as_user(&mut c, f.alice, "authenticated");
    assert_eq!(tx.execute("UPDATE scenarios SET title = 'Mine'", &[]).unwrap(), 0);
    tx.commit().unwrap();
    let mut tx = as_user(&mut c, f.alice, "admin");
    assert_eq!(tx.execute("INSERT INTO scenarios (id, title) VALUES ('party', 'Party')", &[]).unwrap(), 1);
    assert_eq!(tx.execute("UPDATE scenarios SET sort_order = 2 WHERE id = 'party'", &[]).unwrap(), 1);
    tx.commit().unwrap();
    let mut anon = f.db.connect_as(ROLE);
    let mut tx = anon.transaction().unwrap();
    assert_eq!(count(&mut tx, "SELECT count(*) FROM scenarios"), 2);
}

#[test]
fn rule_trigger_functions_are_not_for_ordinary_roles() {
    let f = fixture("rls_trigger_functions");
    let mut su = f.db.superuser();
    su.batch_execute(&format!("GRANT CREATE ON SCHEMA public TO {ROLE}")).unwrap();
    let mut c = f.db.connect_as(ROLE);
    c.batch_execute("CREATE TABLE mine (id int, updated_at timestamptz)").unwrap();
    for function in ["messages_count()", "messages_before_insert()", "sessions_count_completions()", "sessions_before_write()", "profiles_guard_protected_columns()"] {
        let err = c
            .batch_execute(&format!("CREATE TRIGGER x AFTER INSERT ON mine FOR EACH STATEMENT EXECUTE FUNCTION {function}"))
            .unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{function}: {err}");
    }
    // The generic triggers are meant for users' tables.
    c.batch_execute(
        "CREATE TRIGGER mine_updated_at BEFORE UPDATE ON mine FOR EACH ROW EXECUTE FUNCTION set_updated_at();
         INSERT INTO mine VALUES (1, NULL); UPDATE mine SET id = 2;",
    )
    .unwrap();
    let stamped: bool = c.query_one("SELECT updated_at IS NOT NULL FROM mine", &[]).unwrap().get(0);
    assert!(stamped);
}

#[test]
fn jobs_are_not_for_ordinary_roles() {
    let f = fixture("rls_jobs");
    let mut c = f.db.connect_as(ROLE);
    for sql in [
        "SELECT reset_weekly_limits()",
        "SELECT delete_expired_sessions()",
        "SELECT delete_old_logs()",
        "SELECT repair_counts()",
        "SELECT count(*) FROM verify_counts()",
    ] {
        let mut tx = as_user(&mut c, f.alice, "authenticated");
        let err = tx.execute(sql, &[]).unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{sql}");
        tx.rollback().unwrap();
    }
}

/// With Supabase's auth.users present at CREATE EXTENSION, a sign-up creates the profile.
#[test]
fn supabase_auth_users_hook_creates_profiles() {
    let db = TestDb::new("auth_hook");
    let mut su = db.superuser();
    su.batch_execute(
        "DROP EXTENSION pg_assistant; DROP EXTENSION citext;
         CREATE SCHEMA auth;
         CREATE TABLE auth.users (id uuid PRIMARY KEY, email varchar(255), raw_user_meta_data jsonb);
         CREATE EXTENSION pg_assistant CASCADE;",
    )
    .unwrap();
    let user = Uuid::new_v4();
    su.execute("INSERT INTO auth.users (id, email) VALUES ($1, 'new.user@example.com')", &[&user]).unwrap();
    let row = su.query_one("SELECT email::text, week_reset_date > now() FROM profiles WHERE id = $1", &[&user]).unwrap();
    assert_eq!(row.get::<_, String>(0), "new.user@example.com");
    assert!(row.get::<_, bool>(1));
    // A sign-up without a valid address fails as create_profile does.
    let err = su.execute("INSERT INTO auth.users (id, email) VALUES ($1, 'nope')", &[&Uuid::new_v4()]).unwrap_err();
    assert_eq!(sqlstate(&err), "22023");
}

/// 003's "RLS performance" item: at scale, a user's message page uses the pagination index,
/// evaluates the identity once per query (InitPlan) and runs no per-row subquery (no N+1).
#[test]
fn rls_message_queries_at_scale_use_the_index_and_no_per_row_subqueries() {
    let f = fixture("rls_scale");
    let mut su = f.db.superuser();
    // 20,000 messages per user over 20 sessions each.
    for user in [f.alice, f.bob] {
        su.execute(
            "INSERT INTO sessions (user_id, scenario_id) SELECT $1, 'market' FROM generate_series(1, 19)",
            &[&user],
        )
        .unwrap();
        su.execute(
            "INSERT INTO messages (session_id, role, chat_type, content)
             SELECT s.id, 'user', 'main', 'message ' || i
               FROM sessions s, generate_series(1, 1000) i WHERE s.user_id = $1",
            &[&user],
        )
        .unwrap();
    }
    su.batch_execute("ANALYZE messages; ANALYZE sessions").unwrap();

    let mut c = f.db.connect_as(ROLE);
    let mut tx = as_user(&mut c, f.alice, "authenticated");
    let page = format!(
        "SELECT id, content, sent_at FROM messages WHERE session_id = '{}' ORDER BY sent_at, id LIMIT 50",
        f.alice_session
    );
    let plan: serde_json::Value =
        tx.query_one(&format!("EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON) {page}"), &[]).unwrap().get(0);
    let text = plan.to_string();
    assert!(text.contains("messages_session_time_id_idx"), "page should use the pagination index: {text}");
    assert!(text.contains("InitPlan"), "current_user_id() should be an InitPlan: {text}");
    assert!(!text.contains("SubPlan"), "no per-row subquery (N+1): {text}");
    let rows = tx.query(&page, &[]).unwrap();
    assert_eq!(rows.len(), 50);
    // Her whole history: exactly her own 20,001 messages, none of Bob's.
    let mine: i64 = tx.query_one("SELECT count(*) FROM messages", &[]).unwrap().get(0);
    assert_eq!(mine, 20_001);
    let all_hers: bool = tx
        .query_one("SELECT bool_and(user_id = $1) FROM messages", &[&f.alice])
        .unwrap()
        .get(0);
    assert!(all_hers);
    // Bob's session is invisible, whatever the query asks for.
    let theirs: i64 = tx
        .query_one("SELECT count(*) FROM messages WHERE session_id = $1", &[&f.bob_session])
        .unwrap()
        .get(0);
    assert_eq!(theirs, 0);
}
