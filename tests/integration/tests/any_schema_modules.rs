//! Every module's rules in a non-default schema (`CREATE EXTENSION pg_assistant SCHEMA app`),
//! called with a `search_path` that does not name `app` and puts a schema of look-alike
//! functions, operators and tables in front of `pg_catalog` (DESIGN.md section 1 and 2).

use pg_assistant_integration::postgres::Client;
use pg_assistant_integration::{ensure_ordinary_role, with_claims, TestDb};
use serde_json::json;
use uuid::Uuid;

const ROLE: &str = "pga_any_schema_user";

/// Look-alikes that would give wrong answers (or record that they ran) if anything of ours
/// resolved a name through the caller's search_path.
const EVIL: &str = "
    CREATE SCHEMA evil;
    CREATE TABLE evil.ran (what text);
    GRANT ALL ON SCHEMA evil TO PUBLIC; GRANT ALL ON evil.ran TO PUBLIC;
    CREATE FUNCTION evil.texteq(text, text) RETURNS boolean LANGUAGE sql AS
        $$ INSERT INTO evil.ran VALUES ('text ='); SELECT true $$;
    CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.texteq);
    CREATE FUNCTION evil.uuideq(uuid, uuid) RETURNS boolean LANGUAGE sql AS
        $$ INSERT INTO evil.ran VALUES ('uuid ='); SELECT true $$;
    CREATE OPERATOR evil.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = evil.uuideq);
    CREATE FUNCTION evil.int4pl(integer, integer) RETURNS integer LANGUAGE sql AS
        $$ INSERT INTO evil.ran VALUES ('int +'); SELECT 1000 $$;
    CREATE OPERATOR evil.+ (LEFTARG = integer, RIGHTARG = integer, FUNCTION = evil.int4pl);
    CREATE FUNCTION evil.int8pl(bigint, bigint) RETURNS bigint LANGUAGE sql AS
        $$ INSERT INTO evil.ran VALUES ('bigint +'); SELECT 1000::bigint $$;
    CREATE OPERATOR evil.+ (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.int8pl);
    CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS
        $$ INSERT INTO evil.ran VALUES ('now'); SELECT '2000-01-01'::timestamptz $$;
    CREATE FUNCTION evil.jsonb_set(jsonb, text[], jsonb) RETURNS jsonb LANGUAGE sql AS
        $$ INSERT INTO evil.ran VALUES ('jsonb_set'); SELECT '{}'::jsonb $$;
    CREATE FUNCTION evil.current_user_id() RETURNS uuid LANGUAGE sql AS
        $$ SELECT '00000000-0000-0000-0000-000000000000'::uuid $$;
    CREATE FUNCTION evil.current_tenant_id() RETURNS uuid LANGUAGE sql AS
        $$ SELECT '00000000-0000-0000-0000-000000000000'::uuid $$;
    CREATE TABLE evil.behavior_insights (customer_id text, total_events bigint);
    CREATE TABLE evil.conversations (id uuid, message_count int);
    CREATE TABLE evil.usage_metrics (tenant_id uuid, user_id uuid, date date, message_count int);
    GRANT ALL ON ALL TABLES IN SCHEMA evil TO PUBLIC;";

const HOSTILE_PATH: &str = "SET search_path = evil, pg_catalog, public";

fn install(test: &str) -> TestDb {
    ensure_ordinary_role(ROLE);
    let db = TestDb::new(test);
    let mut c = db.superuser();
    c.batch_execute(&format!(
        "DROP EXTENSION pg_assistant; DROP EXTENSION citext;
         CREATE SCHEMA app;
         CREATE EXTENSION pg_assistant SCHEMA app CASCADE;
         {EVIL}
         GRANT USAGE ON SCHEMA app TO {ROLE};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA app TO {ROLE};"
    ))
    .unwrap();
    db
}

fn ran(c: &mut Client) -> Vec<String> {
    c.query("SELECT what FROM evil.ran ORDER BY 1", &[]).unwrap().iter().map(|r| r.get(0)).collect()
}

#[test]
fn behavior_rules_ignore_the_callers_search_path_and_look_alikes() {
    let db = install("any_schema_behavior");
    let mut su = db.superuser();
    su.batch_execute(HOSTILE_PATH).unwrap();
    su.batch_execute(
        "INSERT INTO app.behavior_events (customer_id, session_id, event_type, business_impact, tool_name, event_timestamp)
         VALUES ('acme', 's1', 'click', 'high', 'Read', '2026-01-02 00:00+00');
         INSERT INTO app.behavior_events (customer_id, session_id, event_type, tool_name, event_timestamp)
         SELECT 'acme', 's' || (i % 3), 'view', 'Edit', '2026-01-01 00:00+00'::timestamptz + i * interval '1 minute'
           FROM generate_series(1, 30) i;",
    )
    .unwrap();
    let row = su
        .query_one(
            "SELECT total_events, (events_by_type->>'click')::int, high_impact_events, session_count, last_session_id
               FROM app.behavior_insights WHERE customer_id OPERATOR(pg_catalog.=) 'acme'",
            &[],
        )
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, i32>(1), row.get::<_, i64>(2), row.get::<_, i32>(3), row.get::<_, String>(4)),
        (31, 1, 1, 3, "s1".to_owned())
    );
    let changed: i32 = su.query_one("SELECT app.backfill_behavior_insights()", &[]).unwrap().get(0);
    assert_eq!(changed, 0, "the rebuild agrees with what the rules kept");
    su.query_one("SELECT app.refresh_activity_recency()", &[]).unwrap();
    su.query_one("SELECT app.cleanup_expired_behavior_events(10)", &[]).unwrap();

    // Patterns and the search, as their owner: an ordinary role with JWT claims.
    let user = Uuid::new_v4();
    su.execute("SELECT app.create_profile($1, 'any-schema@example.com')", &[&user]).unwrap();
    let mut c = db.connect_as(ROLE);
    c.batch_execute(HOSTILE_PATH).unwrap();
    let mut tx = with_claims(&mut c, json!({"sub": user.to_string(), "role": "authenticated"}));
    tx.execute(
        "INSERT INTO app.behavior_patterns (user_id, trigger, trigger_embedding, final_outcome, actions)
         VALUES ($1, 'near', '{1,0.1,0}', 'success', '[{\"tool\": \"Read\"}]'), ($1, 'far', '{0,0,1}', 'failed', '[]')",
        &[&user],
    )
    .unwrap();
    let found: Vec<String> = tx
        .query("SELECT trigger FROM app.find_similar_patterns('{1,0,0}', 0.5, 5)", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(found, vec!["near".to_owned()]);
    let id: Uuid = tx.query_one("SELECT id FROM app.behavior_patterns WHERE trigger OPERATOR(pg_catalog.=) 'near'", &[]).unwrap().get(0);
    let count: i32 = tx.query_one("SELECT app.increment_pattern_use_count($1)", &[&id]).unwrap().get(0);
    assert_eq!(count, 2);
    tx.commit().unwrap();
    assert_eq!(ran(&mut su), Vec::<String>::new(), "no look-alike ran");
    let shadow: i64 = su.query_one("SELECT count(*) FROM evil.behavior_insights", &[]).unwrap().get(0);
    assert_eq!(shadow, 0);
}

#[test]
fn conversations_and_web_rules_ignore_the_callers_search_path_and_look_alikes() {
    let db = install("any_schema_conversations");
    let mut su = db.superuser();
    let (tenant, user) = (Uuid::new_v4(), Uuid::new_v4());
    su.execute("INSERT INTO app.tenants (id, name, slug) VALUES ($1, 'T', 't')", &[&tenant]).unwrap();
    su.execute("SELECT app.create_profile($1, 'tenant-user@example.com')", &[&user]).unwrap();
    su.execute("UPDATE app.profiles SET tenant_id = $1", &[&tenant]).unwrap();

    let mut c = db.connect_as(ROLE);
    c.batch_execute(HOSTILE_PATH).unwrap();
    let mut tx = with_claims(&mut c, json!({"sub": user.to_string(), "role": "authenticated"}));
    let conversation: Uuid = tx
        .query_one("INSERT INTO app.conversations (tenant_id, user_id, title) VALUES ($1, $2, 'c') RETURNING id", &[&tenant, &user])
        .unwrap()
        .get(0);
    tx.execute(
        "INSERT INTO app.conversation_messages (conversation_id, user_id, role, content) VALUES ($1, $2, 'user', 'hi')",
        &[&conversation, &user],
    )
    .unwrap();
    tx.execute(
        "INSERT INTO app.conversation_messages (conversation_id, role, content)
         SELECT $1, 'assistant', 'a' || i FROM generate_series(1, 5) i",
        &[&conversation],
    )
    .unwrap();
    let message: Uuid = tx
        .query_one("SELECT id FROM app.conversation_messages WHERE content OPERATOR(pg_catalog.=) 'a1'", &[])
        .unwrap()
        .get(0);
    tx.execute("INSERT INTO app.feedback (message_id, user_id, rating) VALUES ($1, $2, 1)", &[&message, &user]).unwrap();
    let usage = tx
        .query_one(
            "SELECT message_count, total_tokens FROM app.increment_usage_metrics($1, $2, '2026-01-01', 3, 4, 0.5)",
            &[&tenant, &user],
        )
        .unwrap();
    assert_eq!((usage.get::<_, i32>(0), usage.get::<_, i64>(1)), (1, 7));
    let counted: i32 = tx.query_one("SELECT message_count FROM app.conversations", &[]).unwrap().get(0);
    assert_eq!(counted, 6);
    tx.commit().unwrap();

    su.batch_execute(HOSTILE_PATH).unwrap();
    su.batch_execute(
        "INSERT INTO app.user_sessions (session_id, landing_page, created_at, exit_page) VALUES ('w', '/', pg_catalog.now() - interval '10 seconds', '/x');
         INSERT INTO app.optimization_history (proposal_id, status, friction_point, change_description, proposed_changes)
         VALUES ('p', 'implemented', 'f', 'd', '{}');
         SELECT app.refresh_analytics_views();",
    )
    .unwrap();
    let row = su
        .query_one(
            "SELECT (SELECT duration_seconds FROM app.user_sessions), (SELECT implemented_at IS NOT NULL FROM app.optimization_history),
                    (SELECT count(*) FROM app.verify_counts()), (SELECT feedback_count FROM app.message_feedback_summary)",
            &[],
        )
        .unwrap();
    assert!((10..=11).contains(&row.get::<_, i32>(0)), "duration from the real now(): {}", row.get::<_, i32>(0));
    assert!(row.get::<_, bool>(1));
    assert_eq!(row.get::<_, i64>(2), 0, "counters match a recount");
    assert_eq!(row.get::<_, i64>(3), 1);
    assert_eq!(ran(&mut su), Vec::<String>::new(), "no look-alike ran");
}
