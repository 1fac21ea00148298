//! Installation in any schema, independence from the caller's search_path, identity claims per
//! connection, and a server that survives every error path.

use pg_assistant_integration::{assert_server_alive, connect, sqlstate, TestDb};
use uuid::Uuid;

#[test]
fn installs_into_a_named_schema_and_ignores_the_callers_search_path() {
    let db = TestDb::new("named_schema");
    let mut c = db.superuser();
    c.batch_execute(
        "DROP EXTENSION pg_assistant; DROP EXTENSION citext;
         CREATE SCHEMA app;
         CREATE EXTENSION pg_assistant SCHEMA app CASCADE;
         -- Shadow objects a careless implementation would resolve through search_path.
         CREATE TABLE public.profiles (id uuid, email text);
         CREATE TABLE public.sessions (id uuid, user_id uuid);
         SET search_path = public;",
    )
    .unwrap();
    let user = Uuid::new_v4();
    c.execute("SELECT app.create_profile($1, 'schema@example.com')", &[&user]).unwrap();
    c.batch_execute("INSERT INTO app.scenarios (id, title) VALUES ('s', 'S')").unwrap();
    let session: Uuid = c
        .query_one("INSERT INTO app.sessions (user_id, scenario_id) VALUES ($1, 's') RETURNING id", &[&user])
        .unwrap()
        .get(0);
    c.execute("INSERT INTO app.messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'hi')", &[&session])
        .unwrap();
    c.execute("UPDATE app.sessions SET is_completed = true WHERE id = $1", &[&session]).unwrap();
    let row = c
        .query_one(
            "SELECT p.total_completed_sessions, s.message_count_main, s.duration_seconds IS NOT NULL
               FROM app.profiles p JOIN app.sessions s ON s.user_id = p.id",
            &[],
        )
        .unwrap();
    assert_eq!((row.get::<_, i32>(0), row.get::<_, i32>(1), row.get::<_, bool>(2)), (1, 1, true));
    let shadow: i64 = c.query_one("SELECT count(*) FROM public.profiles", &[]).unwrap().get(0);
    assert_eq!(shadow, 0);
    let schema: String = c
        .query_one("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_assistant'", &[])
        .unwrap()
        .get(0);
    assert_eq!(schema, "app");
}

#[test]
fn claims_are_per_connection_and_per_transaction() {
    let db = TestDb::new("claims");
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut ca = db.superuser();
    let mut cb = db.superuser();
    ca.execute("SELECT set_config('request.jwt.claims', $1, false)", &[&format!(r#"{{"sub":"{a}","role":"authenticated"}}"#)])
        .unwrap();
    cb.execute("SELECT set_config('request.jwt.claim.sub', $1, false)", &[&b.to_string()]).unwrap();
    let got_a: Option<Uuid> = ca.query_one("SELECT current_user_id()", &[]).unwrap().get(0);
    let got_b: Option<Uuid> = cb.query_one("SELECT current_user_id()", &[]).unwrap().get(0);
    assert_eq!((got_a, got_b), (Some(a), Some(b)));
    let role_b: Option<String> = cb.query_one("SELECT current_app_role()", &[]).unwrap().get(0);
    assert_eq!(role_b, None);
}

#[test]
fn server_survives_every_error_path() {
    let db = TestDb::new("errors");
    let mut c = db.superuser();
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, updated_at timestamptz, born date);
         INSERT INTO t VALUES (1);
         INSERT INTO scenarios (id, title) VALUES ('s', 'S');",
    )
    .unwrap();
    let user = Uuid::new_v4();
    c.execute("SELECT create_profile($1, 'e@example.com')", &[&user]).unwrap();
    let cases: &[(&str, &str)] = &[
        ("CREATE TRIGGER x AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION set_updated_at(); UPDATE t SET id = 1", "39P01"),
        ("CREATE TRIGGER x BEFORE UPDATE ON t FOR EACH STATEMENT EXECUTE FUNCTION set_updated_at(); UPDATE t SET id = 1", "39P01"),
        ("CREATE TRIGGER x BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION set_updated_at('nope'); UPDATE t SET id = 1", "42703"),
        ("CREATE TRIGGER x BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION set_updated_at('born'); UPDATE t SET id = 1", "42804"),
        ("CREATE TRIGGER x BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION forbid_update(); INSERT INTO t VALUES (2)", "39P01"),
        ("CREATE TRIGGER x BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION forbid_update(); UPDATE t SET id = 1", "P0001"),
        ("CREATE TRIGGER x AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION messages_count(); INSERT INTO t VALUES (3)", "39P01"),
        ("CREATE TRIGGER x BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION sessions_before_write(); UPDATE t SET id = 1", "39P01"),
        ("CREATE TRIGGER x BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION messages_before_insert(); INSERT INTO t VALUES (4)", "39P01"),
        // A transition table named like the rules' own, on another table: refused, not planned.
        ("CREATE TRIGGER x AFTER INSERT ON t REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION messages_count(); INSERT INTO t VALUES (5)", "39P01"),
        ("CREATE TRIGGER x AFTER UPDATE ON t REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sessions_count_completions(); UPDATE t SET id = 1", "39P01"),
        ("CREATE TRIGGER x BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION profiles_guard_protected_columns(); UPDATE t SET id = 1", "39P01"),
        ("SELECT set_updated_at()", "39P01"),
        ("SELECT create_profile(NULL, 'x@example.com')", "22004"),
        ("SELECT create_profile(gen_random_uuid(), repeat('a', 300) || '@example.com')", "22023"),
        ("SELECT reset_weekly_limits(0)", "22023"),
        ("SELECT delete_old_logs('-1 day')", "22023"),
        ("SET pg_assistant.clock_override = 'not a time'; SELECT reset_weekly_limits()", "22007"),
    ];
    for (sql, code) in cases {
        let mut tx = c.transaction().unwrap();
        let err = tx.batch_execute(sql).unwrap_err();
        let got = sqlstate(&err);
        assert_ne!(got, "XX000", "{sql}: {err}");
        assert_eq!(&got, code, "{sql}: {err}");
        tx.rollback().unwrap();
        assert_server_alive();
    }
    // Every connection is still usable afterwards.
    let one: i32 = connect(&db.name, "postgres").query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
}
