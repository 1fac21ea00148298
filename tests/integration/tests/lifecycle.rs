//! Drop protection through every statement that would take the extension's tables with it:
//! DROP EXTENSION, DROP SCHEMA of its schema (the extension in a schema of its own), DROP OWNED
//! BY its owner. Refused while a table holds a row; allowed when empty or when the session sets
//! pg_assistant.allow_drop_with_data.

use pg_assistant_integration::{assert_server_alive, connect, detail_and_hint, message, sqlstate, TestDb};
use uuid::Uuid;

fn count(c: &mut pg_assistant_integration::postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn drop_schema_cascade_of_the_extensions_schema_is_refused_while_it_holds_rows() {
    let db = TestDb::new("drop_schema");
    let mut c = db.superuser();
    c.batch_execute(
        "DROP EXTENSION pg_assistant; DROP EXTENSION citext;
         CREATE SCHEMA app;
         CREATE EXTENSION pg_assistant SCHEMA app CASCADE;",
    )
    .unwrap();
    c.execute("SELECT app.create_profile($1, 'kept@example.com')", &[&Uuid::new_v4()]).unwrap();
    c.batch_execute("INSERT INTO app.scenarios (id, title) VALUES ('s', 'S')").unwrap();

    for sql in ["DROP SCHEMA app CASCADE", "DROP EXTENSION pg_assistant CASCADE", "DROP SCHEMA public, app CASCADE"] {
        let err = c.batch_execute(sql).unwrap_err();
        assert_eq!(sqlstate(&err), "55006", "{sql}: {err}");
        assert_eq!(message(&err), "cannot drop extension pg_assistant while its tables hold data");
        assert!(detail_and_hint(&err).contains("profiles, scenarios"), "{sql}: {}", detail_and_hint(&err));
        assert_server_alive();
    }
    assert_eq!(count(&mut c, "SELECT count(*) FROM app.profiles"), 1);

    // A fresh connection, where the library is not loaded yet: still refused.
    let mut fresh = db.superuser();
    let err = fresh.batch_execute("DROP SCHEMA app CASCADE").unwrap_err();
    assert_eq!(sqlstate(&err), "55006", "{err}");

    // Said so: the schema goes, rows and all.
    c.batch_execute("SET pg_assistant.allow_drop_with_data = on; DROP SCHEMA app CASCADE; RESET pg_assistant.allow_drop_with_data")
        .unwrap();
    assert_eq!(count(&mut c, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_assistant'"), 0);
    assert_eq!(count(&mut c, "SELECT count(*) FROM pg_namespace WHERE nspname = 'app'"), 0);

    // Re-created in the same connection, in another schema: the rules follow it.
    c.batch_execute("CREATE SCHEMA app2; CREATE EXTENSION pg_assistant SCHEMA app2 CASCADE").unwrap();
    let user = Uuid::new_v4();
    c.execute("SELECT app2.create_profile($1, 'again@example.com')", &[&user]).unwrap();
    c.batch_execute("INSERT INTO app2.scenarios (id, title) VALUES ('s', 'S')").unwrap();
    c.execute("INSERT INTO app2.sessions (user_id, scenario_id, is_completed) VALUES ($1, 's', true)", &[&user]).unwrap();
    assert_eq!(count(&mut c, "SELECT total_completed_sessions::bigint FROM app2.profiles"), 1);
}

#[test]
fn drop_owned_by_the_extension_owner_is_refused_while_it_holds_rows() {
    let mut admin = connect("postgres", "postgres");
    let _ = admin.batch_execute("CREATE ROLE pga_it_owner SUPERUSER");
    let db = TestDb::new("drop_owned");
    let mut c = db.superuser();
    c.batch_execute(
        "DROP EXTENSION pg_assistant;
         SET ROLE pga_it_owner; CREATE EXTENSION pg_assistant; RESET ROLE;",
    )
    .unwrap();
    c.execute("SELECT create_profile($1, 'owned@example.com')", &[&Uuid::new_v4()]).unwrap();
    let err = c.batch_execute("DROP OWNED BY pga_it_owner CASCADE").unwrap_err();
    assert_eq!(sqlstate(&err), "55006", "{err}");
    assert_eq!(count(&mut c, "SELECT count(*) FROM profiles"), 1);
    c.batch_execute("DELETE FROM profiles; DROP OWNED BY pga_it_owner CASCADE").unwrap();
    assert_eq!(count(&mut c, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_assistant'"), 0);
    assert_server_alive();
}
