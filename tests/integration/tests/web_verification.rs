//! Source 002's schema, checked right after `CREATE EXTENSION pg_assistant`: the six tables
//! (002's `behavior_events` is `interaction_events`), their checks, uniques, indexes and foreign
//! keys, row-level security and its policies, the views and the materialized views with their
//! unique indexes, and 002's setup step (refresh the materialized views).

use pg_assistant_integration::postgres::Client;
use pg_assistant_integration::{sqlstate, TestDb};

const TABLES: [&str; 6] =
    ["a_b_tests", "conversion_funnels", "interaction_events", "optimization_history", "user_sessions", "variant_assignments"];

fn texts(c: &mut Client, sql: &str) -> Vec<String> {
    c.query(sql, &[]).unwrap().iter().map(|r| r.get(0)).collect()
}

#[test]
fn source_002_schema_is_in_place() {
    let db = TestDb::new("web_verify_002");
    let mut c = db.superuser();

    let tables = texts(
        &mut c,
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'
            AND table_name = ANY ('{a_b_tests,conversion_funnels,interaction_events,optimization_history,user_sessions,variant_assignments}')
          ORDER BY 1",
    );
    assert_eq!(tables, TABLES);

    // 002's indexes: every indexed column (list) leads some index of its table.
    let indexes: Vec<(String, String)> = c
        .query(
            "SELECT tablename::text, regexp_replace(indexdef, '^.* USING btree \\((.*)\\)$', '\\1') FROM pg_indexes WHERE schemaname = 'public'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (table, columns) in [
        ("user_sessions", "created_at"),
        ("user_sessions", "session_id"),
        ("user_sessions", "exit_reason"),
        ("interaction_events", "session_id"),
        ("interaction_events", "event_type"),
        ("interaction_events", "\"timestamp\""),
        ("interaction_events", "component_id"),
        ("conversion_funnels", "funnel_name"),
        ("conversion_funnels", "session_id"),
        ("conversion_funnels", "entered_at"),
        ("conversion_funnels", "component_id"),
        ("optimization_history", "status"),
        ("optimization_history", "created_at"),
        ("optimization_history", "component_id"),
        ("a_b_tests", "status"),
        ("a_b_tests", "component_id"),
        ("variant_assignments", "test_id"),
        ("variant_assignments", "session_id"),
        ("daily_friction_summary", "date, element_path, event_type"),
        ("component_performance", "component_id, page_url"),
    ] {
        assert!(
            indexes.iter().any(|(t, cols)| t == table && (cols == columns || cols.starts_with(&format!("{columns}, ")))),
            "no index on {table} ({columns})"
        );
    }
    // 002's uniques.
    let uniques = texts(
        &mut c,
        "SELECT conrelid::regclass::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
          WHERE contype IN ('u', 'p') AND conrelid = ANY (ARRAY['user_sessions', 'interaction_events', 'conversion_funnels',
                'optimization_history', 'a_b_tests', 'variant_assignments']::regclass[])
          ORDER BY 1",
    );
    for wanted in [
        "a_b_tests UNIQUE (test_id)",
        "conversion_funnels UNIQUE (session_id, funnel_name, step_order)",
        "optimization_history UNIQUE (proposal_id)",
        "user_sessions UNIQUE (session_id)",
        "variant_assignments UNIQUE (test_id, session_id)",
    ] {
        assert!(uniques.iter().any(|u| u == wanted), "missing {wanted}: {uniques:?}");
    }
    for t in TABLES {
        assert!(uniques.iter().any(|u| u == &format!("{t} PRIMARY KEY (id)")), "{t} primary key");
    }

    // Foreign keys, with their cascades.
    let fks = texts(
        &mut c,
        "SELECT conrelid::regclass::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
          WHERE contype = 'f' AND conrelid = ANY (ARRAY['interaction_events', 'conversion_funnels', 'variant_assignments']::regclass[])
          ORDER BY 1",
    );
    let expected = [
        "conversion_funnels FOREIGN KEY (session_id) REFERENCES user_sessions(session_id)",
        "interaction_events FOREIGN KEY (session_id) REFERENCES user_sessions(session_id)",
        "variant_assignments FOREIGN KEY (session_id) REFERENCES user_sessions(session_id)",
        "variant_assignments FOREIGN KEY (test_id) REFERENCES a_b_tests(test_id)",
    ];
    assert_eq!(fks.len(), expected.len(), "{fks:?}");
    for (fk, want) in fks.iter().zip(expected) {
        assert!(fk.starts_with(want) && fk.contains("ON DELETE CASCADE"), "{fk} (wanted {want} ... ON DELETE CASCADE)");
    }

    // Row-level security and 002's policies (plus variant_assignments for the beacon, and
    // a_b_tests / variant_assignments for the analysis worker).
    let rls = texts(&mut c, "SELECT relname::text FROM pg_class WHERE relrowsecurity AND relname = ANY ('{a_b_tests,conversion_funnels,interaction_events,optimization_history,user_sessions,variant_assignments}') ORDER BY 1");
    assert_eq!(rls, TABLES);
    let policies = texts(
        &mut c,
        "SELECT policyname || ' ' || tablename || ' ' || cmd FROM pg_policies
          WHERE schemaname = 'public' AND tablename = ANY ('{a_b_tests,conversion_funnels,interaction_events,optimization_history,user_sessions,variant_assignments}')
          ORDER BY 1",
    );
    let mut want: Vec<String> = Vec::new();
    for t in TABLES {
        want.push(format!("admin_all {t} ALL"));
        want.push(format!("ai_analysis_read {t} SELECT"));
    }
    for t in ["conversion_funnels", "interaction_events", "user_sessions", "variant_assignments"] {
        want.push(format!("beacon_ingest_insert {t} INSERT"));
    }
    want.sort();
    assert_eq!(policies, want);

    // Views and materialized views.
    let views = texts(
        &mut c,
        "SELECT table_name::text FROM information_schema.views WHERE table_schema = 'public'
            AND table_name IN ('friction_points', 'conversion_impact', 'session_analytics') ORDER BY 1",
    );
    assert_eq!(views, ["conversion_impact", "friction_points", "session_analytics"]);
    let mvs = texts(
        &mut c,
        "SELECT matviewname::text FROM pg_matviews WHERE schemaname = 'public'
            AND matviewname IN ('daily_friction_summary', 'component_performance') ORDER BY 1",
    );
    assert_eq!(mvs, ["component_performance", "daily_friction_summary"]);
    let unique_mv: i64 = c
        .query_one(
            "SELECT count(DISTINCT indrelid) FROM pg_index
              WHERE indisunique AND indrelid IN ('daily_friction_summary'::regclass, 'component_performance'::regclass)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(unique_mv, 2);
}

#[test]
fn source_002_checks_and_setup_steps_work() {
    let db = TestDb::new("web_verify_002_checks");
    let mut c = db.superuser();
    c.batch_execute(
        "INSERT INTO user_sessions (session_id, landing_page, device_type, exit_reason, country_code) VALUES ('s', '/', 'tablet', 'refresh', 'DE');
         INSERT INTO a_b_tests (test_id, test_name, component_id, variant_a, variant_b, status) VALUES ('t', 'n', 'c', '{}', '{}', 'active');
         INSERT INTO interaction_events (session_id, event_type, page_url, event_data) VALUES ('s', 'time_on_element', '/', '{\"hesitation_ms\": 10}');",
    )
    .unwrap();
    // Defaults from 002.
    let row = c
        .query_one(
            "SELECT page_count, (SELECT sample_size FROM a_b_tests), (SELECT confidence_threshold::text FROM a_b_tests)
               FROM user_sessions",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, Option<i32>>(0), Some(1));
    assert_eq!(row.get::<_, Option<i32>>(1), Some(1000));
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("0.95"));
    for (what, sql, code) in [
        ("exit_reason", "INSERT INTO user_sessions (session_id, landing_page, exit_reason) VALUES ('x1', '/', 'crash')", "23514"),
        ("device_type", "INSERT INTO user_sessions (session_id, landing_page, device_type) VALUES ('x2', '/', 'watch')", "23514"),
        ("landing_page", "INSERT INTO user_sessions (session_id) VALUES ('x3')", "23502"),
        ("duplicate session", "INSERT INTO user_sessions (session_id, landing_page) VALUES ('s', '/')", "23505"),
        ("event_type", "INSERT INTO interaction_events (session_id, event_type, page_url) VALUES ('s', 'swipe', '/')", "23514"),
        ("unknown session", "INSERT INTO interaction_events (session_id, event_type, page_url) VALUES ('nope', 'click', '/')", "23503"),
        (
            "status",
            "INSERT INTO optimization_history (proposal_id, status, friction_point, change_description, proposed_changes) VALUES ('p', 'done', 'f', 'd', '{}')",
            "23514",
        ),
        (
            "ai_confidence",
            "INSERT INTO optimization_history (proposal_id, status, friction_point, change_description, proposed_changes, ai_confidence)
             VALUES ('p', 'proposed', 'f', 'd', '{}', 1.5)",
            "23514",
        ),
        ("a/b status", "INSERT INTO a_b_tests (test_id, test_name, component_id, variant_a, variant_b, status) VALUES ('t2', 'n', 'c', '{}', '{}', 'running')", "23514"),
        ("winner", "UPDATE a_b_tests SET winner_variant = 'C'", "23514"),
        ("variant", "INSERT INTO variant_assignments (test_id, session_id, variant) VALUES ('t', 's', 'C')", "23514"),
        ("unknown test", "INSERT INTO variant_assignments (test_id, session_id, variant) VALUES ('t9', 's', 'A')", "23503"),
        (
            "duplicate funnel step",
            "INSERT INTO conversion_funnels (funnel_name, step_name, step_order, session_id) VALUES ('f', 'a', 1, 's'), ('f', 'b', 1, 's')",
            "23505",
        ),
    ] {
        let err = c.execute(sql, &[]).err().unwrap_or_else(|| panic!("{what}: accepted"));
        assert_eq!(sqlstate(&err), code, "{what}: {err:?}");
    }
    // Deleting a session removes its events, funnel steps and assignments (ON DELETE CASCADE).
    c.batch_execute(
        "INSERT INTO conversion_funnels (funnel_name, step_name, step_order, session_id) VALUES ('f', 'a', 1, 's');
         INSERT INTO variant_assignments (test_id, session_id, variant) VALUES ('t', 's', 'A');",
    )
    .unwrap();
    // 002's setup: initialise the materialized views.
    c.batch_execute("REFRESH MATERIALIZED VIEW daily_friction_summary; REFRESH MATERIALIZED VIEW component_performance;").unwrap();
    let n: i64 = c.query_one("SELECT count(*) FROM daily_friction_summary", &[]).unwrap().get(0);
    assert_eq!(n, 1);
    c.execute("DELETE FROM user_sessions WHERE session_id = 's'", &[]).unwrap();
    let left: i64 = c
        .query_one(
            "SELECT (SELECT count(*) FROM interaction_events) + (SELECT count(*) FROM conversion_funnels) + (SELECT count(*) FROM variant_assignments)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}
