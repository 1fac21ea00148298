//! The materialized views of conversations and web (DESIGN.md 3.4, 3.5) and
//! `refresh_analytics_views()`: it refreshes them concurrently while applications keep writing,
//! only services and jobs may run it, each view has the unique index a concurrent refresh needs,
//! and since a materialized view cannot carry row-level security, only BYPASSRLS roles read them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use pg_assistant_integration::postgres::Client;
use pg_assistant_integration::{assert_server_alive, ensure_bypassrls_role, message, sqlstate, with_claims, TestDb};
use serde_json::json;
use uuid::Uuid;

const ROLE: &str = "pga_it_conv_mv_app";
const SERVICE: &str = "pga_it_conv_mv_svc";
const VIEWS: [&str; 4] = ["component_performance", "daily_friction_summary", "message_feedback_summary", "monthly_usage_summary"];

struct Fixture {
    db: TestDb,
    tenant: Uuid,
    alice: Uuid,
    conv: Uuid,
}

fn fixture(test: &str) -> Fixture {
    let db = TestDb::supabase_like(test, &[ROLE]);
    ensure_bypassrls_role(SERVICE);
    let mut su = db.superuser();
    su.batch_execute(&format!("GRANT USAGE ON SCHEMA public TO {SERVICE}")).unwrap();
    let tenant: Uuid = su.query_one("INSERT INTO tenants (name, slug) VALUES ('Acme', 'acme') RETURNING id", &[]).unwrap().get(0);
    let alice = Uuid::new_v4();
    su.execute("SELECT create_profile($1, 'alice@acme.example.com')", &[&alice]).unwrap();
    su.execute("UPDATE profiles SET tenant_id = $2 WHERE id = $1", &[&alice, &tenant]).unwrap();
    let conv: Uuid = su
        .query_one("INSERT INTO conversations (tenant_id, user_id, title) VALUES ($1, $2, 'chat') RETURNING id", &[&tenant, &alice])
        .unwrap()
        .get(0);
    su.batch_execute("INSERT INTO user_sessions (session_id, landing_page) VALUES ('s-1', '/'), ('s-2', '/pricing')").unwrap();
    Fixture { db, tenant, alice, conv }
}

/// Rows in which materialized view `view` differs from its own query run now: 0 when it is fresh.
fn staleness(su: &mut Client, view: &str) -> i64 {
    let def: String = su.query_one("SELECT pg_get_viewdef($1::text::regclass)", &[&view]).unwrap().get(0);
    let def = def.trim().trim_end_matches(';');
    su.query_one(&format!("SELECT count(*) FROM ((TABLE {view} EXCEPT ALL ({def})) UNION ALL (({def}) EXCEPT ALL TABLE {view})) d"), &[])
        .unwrap()
        .get(0)
}

/// One application connection keeps writing (messages and feedback as alice, interaction events
/// as the beacon) and a service records usage, while another connection refreshes the views over
/// and over: nobody gets an error, and after a final refresh every view matches its data.
#[test]
fn refresh_runs_while_applications_keep_writing() {
    let f = fixture("conv_mv_refresh");
    let mut su = f.db.superuser();
    su.batch_execute(&format!(
        "GRANT EXECUTE ON FUNCTION refresh_analytics_views() TO {SERVICE}; GRANT SELECT, INSERT, UPDATE ON usage_metrics TO {SERVICE};"
    ))
    .unwrap();
    let done = Arc::new(AtomicBool::new(false));

    let writer = {
        let mut app = f.db.connect_as(ROLE);
        let mut service = f.db.connect_as(SERVICE);
        let (tenant, alice, conv) = (f.tenant, f.alice, f.conv);
        let done = done.clone();
        thread::spawn(move || {
            let user = json!({ "sub": alice.to_string(), "role": "authenticated" });
            let beacon = json!({ "role": "beacon_ingest" });
            for i in 0..150i32 {
                let mut tx = with_claims(&mut app, user.clone());
                let id: Uuid = tx
                    .query_one(
                        "INSERT INTO conversation_messages (conversation_id, role, content, input_tokens, output_tokens)
                         VALUES ($1, 'assistant', $2, $3, $3 * 2) RETURNING id",
                        &[&conv, &format!("reply {i}"), &i],
                    )
                    .unwrap()
                    .get(0);
                tx.execute(
                    "INSERT INTO feedback (message_id, user_id, rating) VALUES ($1, $2, $3)",
                    &[&id, &alice, &(if i % 3 == 0 { -1i16 } else { 1i16 })],
                )
                .unwrap();
                tx.commit().unwrap();
                let mut tx = with_claims(&mut app, beacon.clone());
                tx.execute(
                    "INSERT INTO interaction_events (session_id, event_type, element_path, page_url, component_id, event_data)
                     VALUES ($1, $2, $3, $4, $5, jsonb_build_object('hesitation_ms', $6::int))",
                    &[
                        &(if i % 2 == 0 { "s-1" } else { "s-2" }),
                        &(["click", "rage_click", "hesitation"][(i % 3) as usize]),
                        &format!("#button-{}", i % 4),
                        &(if i % 5 == 0 { "/pricing" } else { "/" }),
                        &format!("cta-{}", i % 3),
                        &(i * 10),
                    ],
                )
                .unwrap();
                tx.commit().unwrap();
                // A service records the day's usage (a plain upsert: BYPASSRLS).
                service
                    .execute(
                        "INSERT INTO usage_metrics AS u (tenant_id, user_id, date, message_count, input_tokens, output_tokens, estimated_cost)
                         VALUES ($1, $2, current_date - ($3 % 40), 1, $3, $3 * 2, 0.001)
                         ON CONFLICT (tenant_id, user_id, date) DO UPDATE
                            SET message_count = u.message_count + 1, input_tokens = u.input_tokens + excluded.input_tokens,
                                output_tokens = u.output_tokens + excluded.output_tokens, estimated_cost = u.estimated_cost + excluded.estimated_cost",
                        &[&tenant, &alice, &i],
                    )
                    .unwrap();
            }
            done.store(true, Ordering::SeqCst);
        })
    };

    let mut refresher = f.db.connect_as(SERVICE);
    let mut refreshes = 0;
    while !done.load(Ordering::SeqCst) && !writer.is_finished() {
        refresher.execute("SELECT refresh_analytics_views()", &[]).unwrap();
        refreshes += 1;
    }
    writer.join().expect("the writer got an error while the views were refreshed");
    assert!(refreshes >= 2, "only {refreshes} refreshes ran while the writer wrote");
    refresher.execute("SELECT refresh_analytics_views()", &[]).unwrap();

    for view in VIEWS {
        assert_eq!(staleness(&mut su, view), 0, "{view} after the final refresh");
        let rows: i64 = su.query_one(&format!("SELECT count(*) FROM {view}"), &[]).unwrap().get(0);
        assert!(rows > 0, "{view} is empty");
    }
    // Spot checks against the tables.
    let row = su
        .query_one(
            "SELECT (SELECT sum(feedback_count)::bigint FROM message_feedback_summary),
                    (SELECT sum(negative_count)::bigint FROM message_feedback_summary),
                    (SELECT sum(message_count)::bigint FROM monthly_usage_summary),
                    (SELECT sum(total_interactions)::bigint FROM component_performance),
                    (SELECT sum(event_count)::bigint FROM daily_friction_summary)",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 150);
    assert_eq!(row.get::<_, i64>(1), 50);
    assert_eq!(row.get::<_, i64>(2), 150);
    assert_eq!(row.get::<_, i64>(3), 150);
    assert_eq!(row.get::<_, i64>(4), 150);
    let drift: i64 = su.query_one("SELECT count(*) FROM verify_counts()", &[]).unwrap().get(0);
    assert_eq!(drift, 0);
    eprintln!("{refreshes} refreshes during the writes");
}

/// Ordinary roles may not run it, whatever they are granted and whatever their JWT says.
#[test]
fn refresh_is_refused_for_ordinary_roles() {
    let f = fixture("conv_mv_refused");
    let mut su = f.db.superuser();
    let granted: bool = su.query_one("SELECT has_function_privilege($1, 'refresh_analytics_views()', 'EXECUTE')", &[&ROLE]).unwrap().get(0);
    if !granted {
        su.batch_execute(&format!("GRANT EXECUTE ON FUNCTION refresh_analytics_views() TO {ROLE}")).unwrap();
    }
    let mut c = f.db.connect_as(ROLE);
    for claims in [
        json!({}),
        json!({ "role": "anon" }),
        json!({ "sub": f.alice.to_string(), "role": "authenticated" }),
        json!({ "sub": f.alice.to_string(), "role": "admin" }),
        json!({ "role": "service_role" }),
        json!({ "role": "ai_analysis" }),
    ] {
        let mut tx = with_claims(&mut c, claims.clone());
        let err = tx.execute("SELECT refresh_analytics_views()", &[]).err().unwrap_or_else(|| panic!("refreshed with {claims}"));
        assert_eq!(sqlstate(&err), "42501", "{claims}: {err:?}");
        assert!(message(&err).contains("refresh_analytics_views"), "{claims}: {err:?}");
        tx.rollback().unwrap();
        assert_server_alive();
    }
    // Not even by calling REFRESH itself.
    let err = c.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY message_feedback_summary", &[]).unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err:?}");
    // The superuser and a BYPASSRLS role with EXECUTE may.
    su.execute("SELECT refresh_analytics_views()", &[]).unwrap();
    su.batch_execute(&format!("GRANT EXECUTE ON FUNCTION refresh_analytics_views() TO {SERVICE}")).unwrap();
    f.db.connect_as(SERVICE).execute("SELECT refresh_analytics_views()", &[]).unwrap();
}

#[test]
fn every_materialized_view_has_a_unique_index_for_concurrent_refresh() {
    let f = fixture("conv_mv_indexes");
    let mut su = f.db.superuser();
    let views: Vec<String> = su
        .query(
            "SELECT c.relname::text FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
              WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_extension'::regclass
                AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_assistant')
                AND d.deptype = 'e' AND c.relkind = 'm'
              ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(views, VIEWS.to_vec(), "the extension's materialized views");
    for view in &views {
        // What REFRESH ... CONCURRENTLY needs: a unique index on plain columns, without WHERE.
        let usable: i64 = su
            .query_one(
                "SELECT count(*) FROM pg_index i
                  WHERE i.indrelid = $1::text::regclass AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
                    AND i.indexprs IS NULL",
                &[view],
            )
            .unwrap()
            .get(0);
        assert!(usable >= 1, "{view} has no unique index usable by REFRESH CONCURRENTLY");
        su.execute(&format!("REFRESH MATERIALIZED VIEW CONCURRENTLY {view}"), &[]).unwrap();
    }
    // With data in them, twice in a row (the second refresh diffs against the first).
    su.batch_execute(&format!(
        "INSERT INTO conversation_messages (conversation_id, role, content) VALUES ('{c}', 'user', 'a'), ('{c}', 'user', 'b');
         INSERT INTO feedback (message_id, user_id, rating) SELECT id, '{u}', 1 FROM conversation_messages;
         INSERT INTO usage_metrics (tenant_id, user_id, date, message_count) VALUES ('{t}', '{u}', current_date, 2);
         INSERT INTO interaction_events (session_id, event_type, page_url, component_id, element_path)
              VALUES ('s-1', 'click', '/', 'cta', NULL), ('s-1', 'click', '/', 'cta', NULL), ('s-2', 'error', '/', NULL, NULL);",
        c = f.conv,
        u = f.alice,
        t = f.tenant
    ))
    .unwrap();
    for _ in 0..2 {
        su.execute("SELECT refresh_analytics_views()", &[]).unwrap();
        for view in VIEWS {
            assert_eq!(staleness(&mut su, view), 0, "{view}");
        }
    }
}

/// A materialized view holds every tenant's aggregates and cannot carry row-level security: no
/// ordinary role reads one, whatever default privileges or later GRANTs say, while a BYPASSRLS
/// service granted SELECT does.
#[test]
fn materialized_views_are_readable_only_by_bypassrls_roles() {
    let f = fixture("conv_mv_privileges");
    let mut su = f.db.superuser();
    su.batch_execute(&format!(
        "INSERT INTO conversation_messages (conversation_id, role, content) VALUES ('{c}', 'user', 'a');
         INSERT INTO feedback (message_id, user_id, rating) SELECT id, '{u}', 1 FROM conversation_messages;
         INSERT INTO usage_metrics (tenant_id, user_id, date, message_count) VALUES ('{t}', '{u}', current_date, 2);
         INSERT INTO interaction_events (session_id, event_type, page_url, component_id) VALUES ('s-1', 'click', '/', 'cta');
         SELECT refresh_analytics_views();",
        c = f.conv,
        u = f.alice,
        t = f.tenant
    ))
    .unwrap();
    let mut c = f.db.connect_as(ROLE);
    let refused = |c: &mut Client, view: &str, what: &str| {
        for claims in [json!({ "sub": f.alice.to_string(), "role": "authenticated" }), json!({ "role": "admin" })] {
            let mut tx = with_claims(c, claims);
            let err = tx.query(&format!("SELECT * FROM {view}"), &[]).err().unwrap_or_else(|| panic!("{what}: {view} readable"));
            assert_eq!(sqlstate(&err), "42501", "{what}: {view}: {err:?}");
            tx.rollback().unwrap();
        }
    };
    for view in VIEWS {
        let has: bool = su.query_one("SELECT has_table_privilege($1, $2, 'SELECT')", &[&ROLE, &view]).unwrap().get(0);
        assert!(!has, "{ROLE} holds SELECT on {view} (from the default privileges)");
        refused(&mut c, view, "default privileges");
    }
    // Granting it explicitly, to the role or to PUBLIC, does not stick.
    for view in VIEWS {
        su.batch_execute(&format!("GRANT SELECT ON {view} TO {ROLE}; GRANT SELECT ON {view} TO PUBLIC")).unwrap();
        refused(&mut c, view, "explicit grant");
    }
    // A BYPASSRLS service reads them once granted.
    let mut svc = f.db.connect_as(SERVICE);
    for view in VIEWS {
        let err = svc.query(&format!("SELECT * FROM {view}"), &[]).unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{view} readable by the service before any grant");
        su.batch_execute(&format!("GRANT SELECT ON {view} TO {SERVICE}")).unwrap();
        let n: i64 = svc.query_one(&format!("SELECT count(*) FROM {view}"), &[]).unwrap().get(0);
        assert!(n >= 1, "{view}");
    }
}
