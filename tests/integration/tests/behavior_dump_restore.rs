//! pg_dump / pg_restore of a database holding rows in all four behavior tables keeps every row
//! and the summaries exactly: the restored events are not summarised a second time on top of
//! the restored insights and session summaries, the patterns keep their embeddings (small ones
//! in the row, large ones in TOAST) and norms, and the rules are on again afterwards.

use std::process::Command;

use pg_assistant_integration::{behavior_drift, bindir, connect, host, port, sqlstate, TestDb};
use uuid::Uuid;

const TABLES: [&str; 4] = ["behavior_events", "behavior_insights", "behavior_sessions", "behavior_patterns"];

fn fill(db: &TestDb) {
    let mut c = db.superuser();
    // Events: single rows and batches, out of order, several customers and sessions; some
    // already expired and cleaned up (the insights stay cumulative, so they no longer equal a
    // recount: the restore must keep them as they are, not recompute them).
    for i in 0..20 {
        c.execute(
            "INSERT INTO behavior_events (customer_id, session_id, event_type, business_impact, tool_name, page_url,
                                          properties, duration_ms, event_timestamp)
             VALUES ('cust-' || ($1 % 4), 'cust-' || ($1 % 4) || '-s' || ($1 % 3), 'click',
                     (ARRAY['low','medium','high','critical'])[1 + $1 % 4], 'tool-' || ($1 % 5), '/page/' || $1,
                     jsonb_build_object('i', $1, 'nested', jsonb_build_object('ok', true)), $1 * 10,
                     now() - interval '2 days' + ($1 * 37 % 20) * interval '1 hour')",
            &[&i],
        )
        .unwrap();
    }
    c.batch_execute(
        "INSERT INTO behavior_events (customer_id, session_id, event_type, business_impact, tool_name, event_timestamp)
         SELECT 'cust-' || (g % 4), 'cust-' || (g % 4) || '-s' || (g % 3), (ARRAY['view','purchase','error'])[1 + g % 3],
                (ARRAY['low','high'])[1 + g % 2], CASE WHEN g % 7 = 0 THEN NULL ELSE 'tool-' || (g % 6) END,
                now() - interval '3 days' + (g * 7919 % 5000) * interval '1 minute'
           FROM generate_series(1, 2000) g;
         INSERT INTO behavior_events (customer_id, session_id, event_type, expires_at)
         SELECT 'cust-9', 'cust-9-old', 'view', now() - interval '1 day' FROM generate_series(1, 15);
         SELECT cleanup_expired_behavior_events();",
    )
    .unwrap();
    // Patterns: small embeddings (in the row), a 3,000-dimension one (TOAST), none, and JSON.
    for u in 0..3 {
        let user = Uuid::new_v4();
        c.execute("SELECT create_profile($1, $2)", &[&user, &format!("bdump{u}@example.com")]).unwrap();
        c.execute(
            "INSERT INTO behavior_patterns (user_id, trigger, trigger_embedding, context, actions, final_outcome, confidence)
             SELECT $1, 'pattern ' || g, ARRAY[g::real, $2::real, 1, -g],
                    jsonb_build_object('directory', '/src/' || g, 'files_touched', jsonb_build_array('a.rs', 'b.rs')),
                    jsonb_build_array(jsonb_build_object('tool', 'grep', 'duration_ms', g, 'parameters', '{}'::jsonb)),
                    (ARRAY['success','partial','failed'])[1 + g % 3], g / 10.0
               FROM generate_series(1, 10) g",
            &[&user, &(u as f32)],
        )
        .unwrap();
        c.execute(
            "INSERT INTO behavior_patterns (user_id, trigger, trigger_embedding, final_outcome)
             VALUES ($1, 'large', ARRAY(SELECT sin(g * ($2::float8 + 1))::real FROM generate_series(1, 3000) g), 'success'),
                    ($1, 'no embedding', NULL, 'failed')",
            &[&user, &(u as f64)],
        )
        .unwrap();
        let pattern: Uuid = c.query_one("SELECT id FROM behavior_patterns WHERE user_id = $1 AND trigger = 'pattern 3'", &[&user]).unwrap().get(0);
        c.execute("SELECT increment_pattern_use_count($1)", &[&pattern]).unwrap();
    }
}

/// Every row of the four tables (every column, the kept norm included), as text, in a stable
/// order: equal before and after a round trip.
fn snapshot(dbname: &str) -> Vec<String> {
    let mut c = connect(dbname, "postgres");
    TABLES
        .iter()
        .map(|t| {
            c.query_one(&format!("SELECT count(*) || E'\\n' || coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '') FROM {t} x"), &[])
                .unwrap()
                .get::<_, String>(0)
        })
        .collect()
}

enum Restore {
    Custom(Option<&'static str>),
    Plain,
}

fn round_trip(test: &str, how: Restore) {
    let db = TestDb::new(test);
    fill(&db);
    let before = snapshot(&db.name);
    // The cleaned-up events left cumulative insights behind: they differ from a recount, which
    // is what a double count or a recomputation on restore would change.
    let drift_before = behavior_drift(&mut db.superuser());
    assert!(!drift_before.is_empty());
    let target = format!("{}_copy", db.name);
    let dump = std::env::temp_dir().join(format!("pga_{target}.dump"));
    let server = ["-h".to_string(), host(), "-p".into(), port().to_string(), "-U".into(), "postgres".into()];
    let format = if matches!(how, Restore::Plain) { "-Fp" } else { "-Fc" };
    let status = Command::new(bindir().join("pg_dump")).args(&server).args([format, "-f"]).arg(&dump).arg(&db.name).status().unwrap();
    assert!(status.success());
    let mut admin = connect("postgres", "postgres");
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {target} WITH (FORCE)")).unwrap();
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
    for (i, table) in TABLES.iter().enumerate() {
        assert_eq!(before[i], after[i], "table {table} differs after restore");
    }
    let mut c = connect(&target, "postgres");
    assert_eq!(behavior_drift(&mut c), drift_before, "the restore changed how the summaries relate to the events");

    // The rules are on again: a new event counts once on top of the restored insights ...
    let total = |c: &mut pg_assistant_integration::postgres::Client| -> (i64, i32) {
        let r = c.query_one("SELECT total_events, event_count FROM behavior_insights i JOIN behavior_sessions s ON s.session_id = 'cust-1-s1' WHERE i.customer_id = 'cust-1'", &[]).unwrap();
        (r.get(0), r.get(1))
    };
    let (events, session_events) = total(&mut c);
    c.batch_execute(
        "INSERT INTO behavior_events (customer_id, session_id, event_type) VALUES ('cust-1', 'cust-1-s1', 'after-restore');
         INSERT INTO behavior_events (customer_id, session_id, event_type)
         SELECT 'cust-1', 'cust-1-s1', 'after-restore' FROM generate_series(1, 9);",
    )
    .unwrap();
    assert_eq!(total(&mut c), (events + 10, session_events + 10));
    // ... another customer's session is refused, summarised columns are immutable ...
    let err = c.execute("INSERT INTO behavior_events (customer_id, session_id, event_type) VALUES ('cust-2', 'cust-1-s1', 'x')", &[]).unwrap_err();
    assert_eq!(sqlstate(&err), "P0001", "{err:?}");
    let err = c.execute("UPDATE behavior_events SET event_type = 'y' WHERE customer_id = 'cust-1'", &[]).unwrap_err();
    assert_eq!(sqlstate(&err), "P0001", "{err:?}");
    // ... patterns are validated, and the search finds the restored ones with their norms.
    let err = c
        .execute("UPDATE behavior_patterns SET trigger_embedding = '{0,0}' WHERE trigger = 'pattern 1'", &[])
        .unwrap_err();
    assert_eq!(sqlstate(&err), "22023", "{err:?}");
    let found: i64 = c
        .query_one(
            "SELECT count(*) FROM behavior_patterns p
              WHERE p.trigger_embedding IS NOT NULL
                AND (SELECT f.id FROM find_similar_patterns(p.trigger_embedding, 0.999, 1, p.user_id) f) = p.id",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(found, 33, "every restored pattern finds itself first");
    let norms_ok: bool = c
        .query_one(
            "SELECT bool_and(abs(trigger_embedding_norm - sqrt((SELECT sum(v::float8 * v) FROM unnest(trigger_embedding) v))) < 1e-3 * trigger_embedding_norm)
               FROM behavior_patterns WHERE trigger_embedding IS NOT NULL",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(norms_ok);
    drop(c);
    admin.batch_execute(&format!("DROP DATABASE {target} WITH (FORCE)")).unwrap();
}

/// `pg_dump -Fc` and a plain `pg_restore`.
#[test]
fn pg_restore_keeps_behavior_rows_and_summaries() {
    round_trip("bdump_custom", Restore::Custom(None));
}

/// With `session_replication_role = replica`, as Supabase's restore procedure sets it.
#[test]
fn pg_restore_in_replica_mode_keeps_behavior_rows_and_summaries() {
    round_trip("bdump_replica", Restore::Custom(Some("-c session_replication_role=replica")));
}

/// A plain SQL dump loaded with psql.
#[test]
fn plain_sql_dump_keeps_behavior_rows_and_summaries() {
    round_trip("bdump_plain", Restore::Plain);
}
