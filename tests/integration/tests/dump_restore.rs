//! pg_dump / pg_restore of a database with the extension keeps every row and every counter.

use std::process::Command;

use pg_assistant_integration::{bindir, connect, host, port, TestDb};
use uuid::Uuid;

fn fill(db: &TestDb) {
    let mut c = db.superuser();
    c.batch_execute("INSERT INTO scenarios (id, title) VALUES ('market', 'Marketplace'), ('party', 'Party')").unwrap();
    for u in 0..5 {
        let user = Uuid::new_v4();
        c.execute("SELECT create_profile($1, $2)", &[&user, &format!("dump{u}@example.com")]).unwrap();
        for s in 0..4 {
            let session: Uuid = c
                .query_one(
                    "INSERT INTO sessions (user_id, scenario_id, started_at) VALUES ($1, 'market', now() - interval '1 hour') RETURNING id",
                    &[&user],
                )
                .unwrap()
                .get(0);
            c.execute(
                "INSERT INTO messages (session_id, role, chat_type, content)
                 SELECT $1, 'user', CASE WHEN i % 3 = 0 THEN 'helper' ELSE 'main' END::chat_type, 'm' || i
                   FROM generate_series(1, 25) i",
                &[&session],
            )
            .unwrap();
            if s % 2 == 0 {
                c.execute("UPDATE sessions SET is_completed = true WHERE id = $1", &[&session]).unwrap();
            }
        }
    }
    c.batch_execute("INSERT INTO logs (level, event, message) VALUES ('info', 'dump-test', 'kept')").unwrap();
}

/// Every table's rows, as text, in a stable order: equal before and after a round trip.
fn snapshot(dbname: &str) -> Vec<String> {
    let mut c = connect(dbname, "postgres");
    ["tenants", "profiles", "scenarios", "sessions", "messages", "logs"]
        .iter()
        .map(|t| {
            c.query_one(&format!("SELECT coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '') FROM {t} x"), &[])
                .unwrap()
                .get::<_, String>(0)
        })
        .collect()
}

enum Restore {
    /// `pg_dump -Fc` then `pg_restore`, optionally with PGOPTIONS.
    Custom(Option<&'static str>),
    /// `pg_dump` plain SQL then `psql -f`, as many hosted-database guides do.
    Plain,
}

fn round_trip(test: &str, how: Restore) {
    let db = TestDb::new(test);
    fill(&db);
    let before = snapshot(&db.name);
    let target = format!("{}_copy", db.name);
    let dump = std::env::temp_dir().join(format!("pga_{target}.dump"));
    let server = ["-h".to_string(), host(), "-p".into(), port().to_string(), "-U".into(), "postgres".into()];
    let format = if matches!(how, Restore::Plain) { "-Fp" } else { "-Fc" };
    let status = Command::new(bindir().join("pg_dump")).args(&server).args([format, "-f"]).arg(&dump).arg(&db.name).status().unwrap();
    assert!(status.success());
    let mut admin = connect("postgres", "postgres");
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {target}")).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {target} TEMPLATE template0")).unwrap();
    let out = match how {
        Restore::Custom(pgoptions) => {
            let mut restore = Command::new(bindir().join("pg_restore"));
            restore.args(&server).args(["--exit-on-error", "-d", &target]).arg(&dump);
            if let Some(opts) = pgoptions {
                restore.env("PGOPTIONS", opts);
            }
            restore.output().unwrap()
        }
        Restore::Plain => Command::new(bindir().join("psql"))
            .args(&server)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &target, "-f"])
            .arg(&dump)
            .output()
            .unwrap(),
    };
    assert!(out.status.success(), "restore failed: {}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_file(&dump);

    let after = snapshot(&target);
    for (i, table) in ["tenants", "profiles", "scenarios", "sessions", "messages", "logs"].iter().enumerate() {
        assert_eq!(before[i], after[i], "table {table} differs after restore");
    }
    let mut c = connect(&target, "postgres");
    let drift: i64 = c.query_one("SELECT count(*) FROM verify_counts()", &[]).unwrap().get(0);
    assert_eq!(drift, 0);
    // The rules are back on in the restored database.
    let err = c.execute("UPDATE messages SET content = 'x'", &[]).unwrap_err();
    assert_eq!(err.code().unwrap().code(), "P0001");
    let open: Uuid = c.query_one("SELECT id FROM sessions WHERE NOT is_completed LIMIT 1", &[]).unwrap().get(0);
    c.execute("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'after restore')", &[&open])
        .unwrap();
    let drift: i64 = c.query_one("SELECT count(*) FROM verify_counts()", &[]).unwrap().get(0);
    assert_eq!(drift, 0);
    drop(c);
    admin.batch_execute(&format!("DROP DATABASE {target} WITH (FORCE)")).unwrap();
}

/// A plain `pg_restore`: the rules recognise the dump's COPY and neither re-count nor re-judge
/// the restored rows.
#[test]
fn pg_restore_keeps_every_row_and_counter() {
    round_trip("dump_custom", Restore::Custom(None));
}

/// With `session_replication_role = replica`, as Supabase's restore procedure sets it.
#[test]
fn pg_restore_in_replica_mode_keeps_every_row_and_counter() {
    round_trip("dump_replica", Restore::Custom(Some("-c session_replication_role=replica")));
}

/// A plain SQL dump loaded with psql.
#[test]
fn plain_sql_dump_keeps_every_row_and_counter() {
    round_trip("dump_plain", Restore::Plain);
}
