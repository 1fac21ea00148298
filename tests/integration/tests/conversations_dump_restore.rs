//! pg_dump / pg_restore of a database holding conversations, messages, feedback, usage and the
//! web tables keeps every row as it was: counters are not counted twice, tenants are not
//! re-derived, session durations and optimization stamps are not recomputed at restore time; and
//! the rules work again afterwards.

use std::process::Command;

use pg_assistant_integration::postgres::Client;
use pg_assistant_integration::{bindir, connect, host, port, TestDb};
use uuid::Uuid;

const TABLES: [&str; 12] = [
    "tenants",
    "profiles",
    "conversations",
    "conversation_messages",
    "feedback",
    "usage_metrics",
    "user_sessions",
    "interaction_events",
    "conversion_funnels",
    "optimization_history",
    "a_b_tests",
    "variant_assignments",
];

fn fill(db: &TestDb) {
    let mut c = db.superuser();
    for t in 0..2 {
        let tenant: Uuid =
            c.query_one("INSERT INTO tenants (name, slug) VALUES ($1, $1) RETURNING id", &[&format!("tenant-{t}")]).unwrap().get(0);
        for u in 0..2 {
            let user = Uuid::new_v4();
            c.execute("SELECT create_profile($1, $2)", &[&user, &format!("u{u}@t{t}.example.com")]).unwrap();
            c.execute("UPDATE profiles SET tenant_id = $2 WHERE id = $1", &[&user, &tenant]).unwrap();
            for k in 0..3 {
                let conv: Uuid = c
                    .query_one(
                        "INSERT INTO conversations (tenant_id, user_id, title, created_at) VALUES ($1, $2, $3, now() - interval '3 days') RETURNING id",
                        &[&tenant, &user, &format!("chat {k}")],
                    )
                    .unwrap()
                    .get(0);
                c.execute(
                    "INSERT INTO conversation_messages (conversation_id, user_id, role, content, model, input_tokens, output_tokens, created_at)
                     SELECT $1, CASE WHEN g % 2 = 1 THEN $2::uuid END, CASE WHEN g % 2 = 1 THEN 'user' ELSE 'assistant' END, 'm' || g,
                            CASE WHEN g % 2 = 0 THEN 'model-x' END, g * 3, g * 5, now() - make_interval(hours => 30 - g)
                       FROM generate_series(1, 10 + $3) g",
                    &[&conv, &user, &(k as i32)],
                )
                .unwrap();
                // A few deleted, so the counters are not simply "everything ever inserted".
                c.execute("DELETE FROM conversation_messages WHERE conversation_id = $1 AND content IN ('m2', 'm3')", &[&conv]).unwrap();
                c.execute(
                    "INSERT INTO feedback (message_id, user_id, rating, comment)
                     SELECT id, $2, CASE WHEN content = 'm4' THEN -1 ELSE 1 END, 'c' FROM conversation_messages
                      WHERE conversation_id = $1 AND role = 'assistant'",
                    &[&conv, &user],
                )
                .unwrap();
            }
            c.execute(
                "INSERT INTO usage_metrics (tenant_id, user_id, date, message_count, input_tokens, output_tokens, estimated_cost)
                 SELECT $1, $2, current_date - d, 10 + d, 100 * d, 7 * d, d * 0.012345 FROM generate_series(0, 5) d",
                &[&tenant, &user],
            )
            .unwrap();
        }
    }
    c.batch_execute(
        "INSERT INTO user_sessions (session_id, landing_page, exit_page, exit_reason, device_type, created_at)
              SELECT 'ws-' || g, '/p' || g, CASE WHEN g % 3 <> 0 THEN '/exit' END, CASE WHEN g % 3 <> 0 THEN 'close' END,
                     'desktop', now() - make_interval(hours => g)
                FROM generate_series(1, 9) g;
         UPDATE user_sessions SET exit_page = '/late-exit' WHERE session_id = 'ws-3';
         UPDATE user_sessions SET page_count = 5 WHERE session_id = 'ws-1';
         INSERT INTO interaction_events (session_id, event_type, element_path, page_url, component_id, event_data, \"timestamp\")
              SELECT 'ws-' || (1 + g % 9), (ARRAY['click', 'rage_click', 'hesitation', 'scroll_depth'])[1 + g % 4], '#e' || (g % 5),
                     '/p', 'cmp-' || (g % 3), jsonb_build_object('hesitation_ms', g, 'percentage', g % 100), now() - make_interval(mins => g)
                FROM generate_series(1, 60) g;
         INSERT INTO conversion_funnels (funnel_name, step_name, step_order, session_id, component_id, duration_seconds)
              SELECT 'lead_capture', 'step', s, 'ws-' || g, 'cmp-1', g * s FROM generate_series(1, 9) g, generate_series(1, 2) s;
         INSERT INTO optimization_history (proposal_id, status, friction_point, component_id, change_description, proposed_changes)
              VALUES ('o-1', 'proposed', 'f', 'cmp-1', 'd', '{}'), ('o-2', 'proposed', 'f', 'cmp-2', 'd', '{}'),
                     ('o-3', 'implemented', 'f', 'cmp-0', 'd', '{}');
         UPDATE optimization_history SET status = 'testing' WHERE proposal_id = 'o-1';
         UPDATE optimization_history SET status = 'implemented' WHERE proposal_id = 'o-2';
         UPDATE optimization_history SET status = 'rolled_back', rollback_reason = 'worse' WHERE proposal_id = 'o-3';
         INSERT INTO a_b_tests (test_id, test_name, component_id, variant_a, variant_b, status)
              VALUES ('ab-1', 'hero', 'cmp-1', '{\"c\": 1}', '{\"c\": 2}', 'active');
         INSERT INTO variant_assignments (test_id, session_id, variant) SELECT 'ab-1', 'ws-' || g, CASE WHEN g % 2 = 0 THEN 'A' ELSE 'B' END
                FROM generate_series(1, 9) g;
         SELECT refresh_analytics_views();",
    )
    .unwrap();
    // Time passes between the writes and the dump: anything recomputed at restore time shows.
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

/// Every table's rows as text, in a stable order.
fn snapshot(dbname: &str) -> Vec<String> {
    let mut c = connect(dbname, "postgres");
    TABLES
        .iter()
        .map(|t| c.query_one(&format!("SELECT coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '') FROM {t} x"), &[]).unwrap().get(0))
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
    let target = format!("{}_copy", db.name);
    let dump = std::env::temp_dir().join(format!("pga_{target}.dump"));
    let server = ["-h".to_string(), host(), "-p".into(), port().to_string(), "-U".into(), "postgres".into()];
    let format = if matches!(how, Restore::Plain) { "-Fp" } else { "-Fc" };
    let out = Command::new(bindir().join("pg_dump")).args(&server).args([format, "-f"]).arg(&dump).arg(&db.name).output().unwrap();
    assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
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
    let _ = std::fs::remove_file(&dump);
    assert!(out.status.success(), "restore failed: {}", String::from_utf8_lossy(&out.stderr));

    let after = snapshot(&target);
    let mut differences = Vec::new();
    for (i, table) in TABLES.iter().enumerate() {
        if before[i] != after[i] {
            let b: Vec<&str> = before[i].lines().collect();
            let a: Vec<&str> = after[i].lines().collect();
            let gone: Vec<&&str> = b.iter().filter(|l| !a.contains(l)).take(3).collect();
            let new: Vec<&&str> = a.iter().filter(|l| !b.contains(l)).take(3).collect();
            differences.push(format!(
                "table {table} differs after restore ({} rows before, {} after; {} rows changed)\n  before: {gone:#?}\n  after: {new:#?}",
                b.len(),
                a.len(),
                b.iter().filter(|l| !a.contains(l)).count()
            ));
        }
    }
    let mut c = connect(&target, "postgres");
    check_restored(&mut c);
    drop(c);
    admin.batch_execute(&format!("DROP DATABASE {target} WITH (FORCE)")).unwrap();
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// Counters equal their recounts, the materialized views can be refreshed, and the rules run
/// again on new writes.
fn check_restored(c: &mut Client) {
    let drift: i64 = c.query_one("SELECT count(*) FROM verify_counts()", &[]).unwrap().get(0);
    assert_eq!(drift, 0, "verify_counts() after restore");
    let wrong: i64 = c
        .query_one(
            "SELECT count(*) FROM conversations c
              WHERE message_count <> (SELECT count(*) FROM conversation_messages m WHERE m.conversation_id = c.id)
                 OR last_message_at IS DISTINCT FROM (SELECT max(created_at) FROM conversation_messages m WHERE m.conversation_id = c.id)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(wrong, 0, "conversation counters after restore");
    let total: i64 = c.query_one("SELECT sum(message_count)::bigint FROM conversations", &[]).unwrap().get(0);
    assert_eq!(total, 4 * (10 + 11 + 12 - 6), "no double counting");
    c.execute("SELECT refresh_analytics_views()", &[]).unwrap();

    let conv: Uuid = c.query_one("SELECT id FROM conversations ORDER BY id LIMIT 1", &[]).unwrap().get(0);
    let (tenant, count): (Uuid, i32) = {
        let r = c.query_one("SELECT tenant_id, message_count FROM conversations WHERE id = $1", &[&conv]).unwrap();
        (r.get(0), r.get(1))
    };
    let filled: Uuid = c
        .query_one(
            "INSERT INTO conversation_messages (conversation_id, role, content) VALUES ($1, 'user', 'after restore') RETURNING tenant_id",
            &[&conv],
        )
        .unwrap()
        .get(0);
    assert_eq!(filled, tenant);
    let n: i32 = c.query_one("SELECT message_count FROM conversations WHERE id = $1", &[&conv]).unwrap().get(0);
    assert_eq!(n, count + 1);
    let err = c.execute("UPDATE conversations SET tenant_id = gen_random_uuid() WHERE id = $1", &[&conv]).unwrap_err();
    assert_eq!(err.code().unwrap().code(), "P0001");
    c.execute("INSERT INTO user_sessions (session_id, landing_page, exit_page, created_at) VALUES ('new', '/', '/x', now() - interval '42 seconds')", &[])
        .unwrap();
    let d: Option<i32> = c.query_one("SELECT duration_seconds FROM user_sessions WHERE session_id = 'new'", &[]).unwrap().get(0);
    assert_eq!(d, Some(42));
    let err = c.execute("UPDATE optimization_history SET status = 'rolled_back' WHERE proposal_id = 'o-2'", &[]).unwrap_err();
    assert_eq!(err.code().unwrap().code(), "P0001");
    let drift: i64 = c.query_one("SELECT count(*) FROM verify_counts()", &[]).unwrap().get(0);
    assert_eq!(drift, 0);
}

#[test]
fn pg_restore_keeps_conversations_usage_and_web_rows() {
    round_trip("conv_dump_custom", Restore::Custom(None));
}

/// With `session_replication_role = replica`, as Supabase's restore procedure sets it.
#[test]
fn pg_restore_in_replica_mode_keeps_conversations_usage_and_web_rows() {
    round_trip("conv_dump_replica", Restore::Custom(Some("-c session_replication_role=replica")));
}

/// A plain SQL dump loaded with psql.
#[test]
fn plain_sql_dump_keeps_conversations_usage_and_web_rows() {
    round_trip("conv_dump_plain", Restore::Plain);
}
