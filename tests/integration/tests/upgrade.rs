//! `ALTER EXTENSION pg_assistant UPDATE` from every released version keeps all data
//! (DESIGN.md section 4): a database of the last release, with rows in every table, is brought
//! up to the version under test; every row is still there, byte for byte as text, the counters
//! still match a recount, the old rules still hold and the new modules work.

use pg_assistant_integration::postgres::Client;
use pg_assistant_integration::TestDb;

fn tables(c: &mut Client) -> Vec<String> {
    c.query(
        "SELECT c.relname::text FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
          WHERE d.refclassid = 'pg_extension'::regclass AND d.classid = 'pg_class'::regclass AND d.deptype = 'e'
            AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_assistant') AND c.relkind = 'r'
          ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Every row of `table`, as sorted text.
fn contents(c: &mut Client, table: &str) -> Vec<String> {
    c.query(&format!("SELECT t::text FROM public.{table} t ORDER BY 1"), &[]).unwrap().iter().map(|r| r.get(0)).collect()
}

fn released_versions(c: &mut Client) -> Vec<String> {
    let current: String =
        c.query_one("SELECT default_version FROM pg_available_extensions WHERE name = 'pg_assistant'", &[]).unwrap().get(0);
    c.query("SELECT version FROM pg_available_extension_versions WHERE name = 'pg_assistant' ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|v| !v.ends_with("-frozen") && *v != current)
        .collect()
}

/// Rows in every table 0.1.0 has, made through its rules (counters, completions, logs).
const FILL_0_1_0: &str = "
    INSERT INTO tenants (id, name, slug) VALUES ('a0000000-0000-4000-8000-000000000001', 'Acme', 'acme');
    SELECT create_profile('10000000-0000-4000-8000-000000000001', 'ada@example.com', 'Ada');
    SELECT create_profile('10000000-0000-4000-8000-000000000002', 'bob@example.com');
    UPDATE profiles SET tenant_id = 'a0000000-0000-4000-8000-000000000001', weekly_session_limit = 5
     WHERE id = '10000000-0000-4000-8000-000000000001';
    INSERT INTO scenarios (id, title, emoji) VALUES ('market', 'Market', '🛒'), ('party', 'Party', NULL);
    INSERT INTO sessions (id, user_id, scenario_id)
    SELECT ('20000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
           CASE WHEN i % 2 = 0 THEN '10000000-0000-4000-8000-000000000001' ELSE '10000000-0000-4000-8000-000000000002' END::uuid,
           CASE WHEN i % 3 = 0 THEN 'party' ELSE 'market' END
      FROM generate_series(1, 6) i;
    INSERT INTO messages (session_id, role, chat_type, content)
    SELECT ('20000000-0000-4000-8000-' || lpad((i % 6 + 1)::text, 12, '0'))::uuid, 'user',
           CASE WHEN i % 2 = 0 THEN 'main' ELSE 'helper' END::chat_type, 'message ' || i
      FROM generate_series(1, 60) i;
    UPDATE sessions SET is_completed = true WHERE id IN ('20000000-0000-4000-8000-000000000001', '20000000-0000-4000-8000-000000000002');
    INSERT INTO logs (session_id, user_id, level, event, metadata)
    VALUES ('20000000-0000-4000-8000-000000000003', '10000000-0000-4000-8000-000000000002', 'info', 'opened', '{\"k\": 1}');
    SELECT delete_old_logs(interval '30 days');";

#[test]
fn updating_from_every_release_keeps_every_row_and_every_rule() {
    let probe = TestDb::new("upgrade_probe");
    let releases = released_versions(&mut probe.superuser());
    assert!(!releases.is_empty(), "sql/releases/ holds at least one earlier release (0.1.0)");
    for release in releases {
        let db = TestDb::new_after(&format!("upgrade_from_{}", release.replace('.', "_")), "");
        let mut c = db.superuser();
        c.batch_execute(&format!("DROP EXTENSION pg_assistant; CREATE EXTENSION pg_assistant VERSION '{release}'")).unwrap();
        c.batch_execute(FILL_0_1_0).unwrap();
        let before: Vec<(String, Vec<String>)> = tables(&mut c).into_iter().map(|t| {
            let rows = contents(&mut c, &t);
            (t, rows)
        }).collect();
        for (table, rows) in &before {
            assert!(!rows.is_empty(), "{release}: table {table} holds rows before the update");
        }

        c.batch_execute("ALTER EXTENSION pg_assistant UPDATE").unwrap_or_else(|e| panic!("update from {release}: {e}"));
        let version: String = c.query_one("SELECT extversion FROM pg_extension WHERE extname = 'pg_assistant'", &[]).unwrap().get(0);
        assert_ne!(version, release, "the update moved to the current version");

        for (table, rows) in &before {
            assert_eq!(&contents(&mut c, table), rows, "{release} -> {version}: every row of {table} kept as it was");
        }
        let drifted: i64 = c.query_one("SELECT count(*) FROM verify_counts()", &[]).unwrap().get(0);
        assert_eq!(drifted, 0, "counters still match a recount");

        // The old rules still hold after the update ...
        let err = c
            .batch_execute(
                "INSERT INTO messages (session_id, role, chat_type, content)
                 VALUES ('20000000-0000-4000-8000-000000000001', 'user', 'main', 'late')",
            )
            .unwrap_err();
        assert_eq!(err.code().map(|s| s.code()), Some("P0001"), "completed sessions take no messages: {err}");
        c.batch_execute(
            "INSERT INTO messages (session_id, role, chat_type, content)
             VALUES ('20000000-0000-4000-8000-000000000003', 'user', 'main', 'after the update')",
        )
        .unwrap();
        let main: i32 = c
            .query_one("SELECT message_count_main FROM sessions WHERE id = '20000000-0000-4000-8000-000000000003'", &[])
            .unwrap()
            .get(0);
        let recount: i64 = c
            .query_one(
                "SELECT count(*) FROM messages WHERE session_id = '20000000-0000-4000-8000-000000000003' AND chat_type = 'main'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(main as i64, recount);

        // ... and the modules the update added work, privileges hardened as at install.
        c.batch_execute(
            "INSERT INTO behavior_events (customer_id, session_id, event_type) VALUES ('acme', 'web-1', 'page_view');
             INSERT INTO behavior_patterns (user_id, trigger, trigger_embedding, final_outcome)
             VALUES ('10000000-0000-4000-8000-000000000001', 'after update', '{1,0,0}', 'success');",
        )
        .unwrap();
        let total: i64 =
            c.query_one("SELECT total_events FROM behavior_insights WHERE customer_id = 'acme'", &[]).unwrap().get(0);
        assert_eq!(total, 1);
        let found: i64 = c.query_one("SELECT count(*) FROM find_similar_patterns('{1,0.1,0}', 0.5, 5)", &[]).unwrap().get(0);
        assert_eq!(found, 1);
        let trigger_grants: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a
                  WHERE c.relname LIKE 'behavior_%' AND c.relkind = 'r' AND a.grantee <> c.relowner
                    AND a.privilege_type IN ('TRIGGER', 'TRUNCATE', 'REFERENCES')",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(trigger_grants, 0);
    }
}
