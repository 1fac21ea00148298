//! Source 001's "Verification Steps", "Post-Migration Tasks", monitoring and maintenance queries,
//! run against a database right after `CREATE EXTENSION pg_assistant` (001's `messages` table is
//! `conversation_messages` here, its `users` are `profiles`).

use pg_assistant_integration::postgres::Client;
use pg_assistant_integration::TestDb;
use uuid::Uuid;

const TABLES: [&str; 4] = ["conversation_messages", "conversations", "feedback", "usage_metrics"];

fn texts(c: &mut Client, sql: &str) -> Vec<String> {
    c.query(sql, &[]).unwrap().iter().map(|r| r.get(0)).collect()
}

#[test]
fn source_001_verification_queries_hold() {
    let db = TestDb::new("conv_verify_001");
    let mut c = db.superuser();

    // 1. Tables.
    let tables = texts(
        &mut c,
        "SELECT table_name || ' ' || table_type FROM information_schema.tables
          WHERE table_schema = 'public' AND table_name IN ('conversations', 'conversation_messages', 'feedback', 'usage_metrics')
          ORDER BY table_name",
    );
    assert_eq!(tables, TABLES.iter().map(|t| format!("{t} BASE TABLE")).collect::<Vec<_>>());
    let parents =
        texts(&mut c, "SELECT table_name::text FROM information_schema.tables WHERE table_name IN ('tenants', 'profiles') ORDER BY 1");
    assert_eq!(parents, ["profiles", "tenants"]);

    // 2. Indexes: the ones 001's queries rely on.
    let defs = texts(
        &mut c,
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'
            AND tablename IN ('conversations', 'conversation_messages', 'feedback', 'usage_metrics') ORDER BY tablename, indexname",
    );
    for wanted in [
        "ON public.conversations USING btree (tenant_id, is_archived, updated_at DESC)",
        "ON public.conversations USING btree (id)",
        "ON public.conversation_messages USING btree (conversation_id, created_at)",
        "UNIQUE INDEX feedback_message_user_key ON public.feedback USING btree (message_id, user_id)",
        "ON public.usage_metrics USING btree (tenant_id, user_id, date)",
    ] {
        assert!(defs.iter().any(|d| d.contains(wanted)), "no index {wanted}: {defs:#?}");
    }

    // 3. Policies: every command covered on the tables users write; usage_metrics is written by
    //    increment_usage_metrics() only, so it has read policies.
    for table in ["conversations", "conversation_messages", "feedback"] {
        let cmds = texts(
            &mut c,
            &format!(
                "SELECT DISTINCT x FROM pg_policies p, unnest(CASE WHEN p.cmd = 'ALL' THEN ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE'] ELSE ARRAY[p.cmd] END) x
                  WHERE schemaname = 'public' AND tablename = '{table}' AND permissive = 'PERMISSIVE' ORDER BY 1"
            ),
        );
        assert_eq!(cmds, ["DELETE", "INSERT", "SELECT", "UPDATE"], "{table}");
        let tenant_policies: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_policies WHERE tablename = $1 AND cmd <> 'ALL' AND (qual LIKE '%current_tenant_id%' OR with_check LIKE '%current_tenant_id%')",
                &[&table],
            )
            .unwrap()
            .get(0);
        assert_eq!(tenant_policies, 4, "{table}: one tenant policy per command (SELECT, INSERT, UPDATE, DELETE)");
    }
    let usage = texts(&mut c, "SELECT DISTINCT cmd FROM pg_policies WHERE tablename = 'usage_metrics'");
    assert_eq!(usage, ["SELECT"]);

    // 4. Foreign keys, with 001's query.
    let fks = texts(
        &mut c,
        "SELECT tc.table_name || '.' || kcu.column_name || ' -> ' || ccu.table_name || '.' || ccu.column_name
           FROM information_schema.table_constraints AS tc
           JOIN information_schema.key_column_usage AS kcu ON tc.constraint_name = kcu.constraint_name
           JOIN information_schema.constraint_column_usage AS ccu ON ccu.constraint_name = tc.constraint_name
          WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = 'public'
            AND tc.table_name IN ('conversations', 'conversation_messages', 'feedback', 'usage_metrics')
          ORDER BY 1",
    );
    assert_eq!(
        fks,
        [
            "conversation_messages.conversation_id -> conversations.id",
            "conversations.tenant_id -> tenants.id",
            "conversations.user_id -> profiles.id",
            "feedback.message_id -> conversation_messages.id",
            "usage_metrics.tenant_id -> tenants.id",
        ]
    );

    // 5. Materialized views.
    let mvs = texts(
        &mut c,
        "SELECT matviewname::text FROM pg_matviews WHERE schemaname = 'public'
            AND matviewname IN ('message_feedback_summary', 'monthly_usage_summary') ORDER BY 1",
    );
    assert_eq!(mvs, ["message_feedback_summary", "monthly_usage_summary"]);

    // Troubleshooting: RLS is enabled on every table of the extension.
    let without_rls = texts(
        &mut c,
        "SELECT c.relname::text FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
          WHERE d.classid = 'pg_class'::regclass AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_assistant')
            AND d.deptype = 'e' AND c.relkind IN ('r', 'p') AND NOT c.relrowsecurity",
    );
    assert!(without_rls.is_empty(), "tables without row-level security: {without_rls:?}");
    let rls: Vec<bool> = c
        .query(
            "SELECT relrowsecurity FROM pg_class WHERE relname IN ('conversations', 'conversation_messages', 'feedback', 'usage_metrics')
                AND relnamespace = 'public'::regnamespace",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rls, [true; 4]);
}

#[test]
fn source_001_queries_and_maintenance_run() {
    let db = TestDb::new("conv_verify_001_ops");
    let mut c = db.superuser();
    let tenant: Uuid =
        c.query_one("INSERT INTO tenants (name, slug) VALUES ('Test Tenant 1', 'test-tenant-1') RETURNING id", &[]).unwrap().get(0);
    let user = Uuid::new_v4();
    c.execute("SELECT create_profile($1, 'test@example.com', 'Test User')", &[&user]).unwrap();
    c.execute("UPDATE profiles SET tenant_id = $2 WHERE id = $1", &[&user, &tenant]).unwrap();
    let conv: Uuid = c
        .query_one(
            "INSERT INTO conversations (tenant_id, user_id, title) VALUES ($1, $2, 'Test Conversation') RETURNING id",
            &[&tenant, &user],
        )
        .unwrap()
        .get(0);
    c.execute(
        "INSERT INTO conversation_messages (conversation_id, role, content, input_tokens, output_tokens)
         SELECT $1, CASE WHEN g % 2 = 0 THEN 'assistant' ELSE 'user' END, 'm' || g, g, 2 * g FROM generate_series(1, 20) g",
        &[&conv],
    )
    .unwrap();
    c.execute("INSERT INTO feedback (message_id, user_id, rating) SELECT id, $1, 1 FROM conversation_messages LIMIT 3", &[&user]).unwrap();
    c.execute(
        "INSERT INTO usage_metrics (tenant_id, user_id, date, message_count, input_tokens, output_tokens, estimated_cost)
         VALUES ($1, $2, current_date, 20, 210, 420, 0.42)",
        &[&tenant, &user],
    )
    .unwrap();

    // 7. Performance: the planner can serve 001's two hot queries from the indexes.
    c.batch_execute("SET enable_seqscan = off; ANALYZE conversations; ANALYZE conversation_messages;").unwrap();
    let plan = |c: &mut Client, sql: &str| -> String {
        c.query(&format!("EXPLAIN {sql}"), &[]).unwrap().iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>().join("\n")
    };
    let p = plan(
        &mut c,
        &format!("SELECT * FROM conversations WHERE tenant_id = '{tenant}' AND is_archived = false ORDER BY updated_at DESC LIMIT 20"),
    );
    assert!(p.contains("conversations_tenant_archived_updated_idx") && !p.contains("Sort"), "{p}");
    let p = plan(&mut c, &format!("SELECT * FROM conversation_messages WHERE conversation_id = '{conv}' ORDER BY created_at ASC"));
    assert!(p.contains("conversation_messages_conversation_created_idx") && !p.contains("Sort"), "{p}");
    c.batch_execute("RESET enable_seqscan").unwrap();

    // Post-migration tasks and scheduled maintenance.
    c.batch_execute(
        "REFRESH MATERIALIZED VIEW public.message_feedback_summary;
         REFRESH MATERIALIZED VIEW public.monthly_usage_summary;
         REFRESH MATERIALIZED VIEW CONCURRENTLY message_feedback_summary;
         REFRESH MATERIALIZED VIEW CONCURRENTLY monthly_usage_summary;
         ANALYZE public.conversations; ANALYZE public.conversation_messages; ANALYZE public.feedback; ANALYZE public.usage_metrics;",
    )
    .unwrap();
    for t in TABLES {
        c.batch_execute(&format!("VACUUM ANALYZE public.{t}")).unwrap();
    }
    let fb: (i64, i64) = {
        let r = c.query_one("SELECT feedback_count, positive_count FROM message_feedback_summary LIMIT 1", &[]).unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(fb, (1, 1));
    let n: i64 = c.query_one("SELECT count(*) FROM message_feedback_summary", &[]).unwrap().get(0);
    assert_eq!(n, 3);
    let usage: i64 = c.query_one("SELECT total_tokens FROM monthly_usage_summary", &[]).unwrap().get(0);
    assert_eq!(usage, 630);

    // Monitoring queries.
    let dau: i64 = c
        .query_one(
            "SELECT count(*) FROM (SELECT date, COUNT(DISTINCT user_id) AS active_users FROM usage_metrics
              WHERE date >= CURRENT_DATE - INTERVAL '30 days' GROUP BY date ORDER BY date DESC) x",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(dau, 1);
    let sentiment: i64 = c
        .query_one(
            "SELECT sum(positive)::bigint FROM (SELECT DATE(f.created_at) AS date, COUNT(*) FILTER (WHERE rating = 1) AS positive,
                    COUNT(*) FILTER (WHERE rating = -1) AS negative, ROUND(AVG(rating), 2) AS avg_rating
               FROM feedback f WHERE f.created_at >= CURRENT_DATE - INTERVAL '30 days' GROUP BY DATE(f.created_at)) x",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(sentiment, 3);
    let by_tenant = c
        .query_one(
            "SELECT t.name AS tenant_name, SUM(um.total_tokens)::bigint AS total_tokens, SUM(um.estimated_cost)::text AS total_cost
               FROM usage_metrics um JOIN tenants t ON um.tenant_id = t.id
              WHERE um.date >= CURRENT_DATE - INTERVAL '7 days' GROUP BY t.name ORDER BY total_tokens DESC",
            &[],
        )
        .unwrap();
    assert_eq!(by_tenant.get::<_, String>(0), "Test Tenant 1");
    assert_eq!(by_tenant.get::<_, i64>(1), 630);
    assert_eq!(by_tenant.get::<_, String>(2), "0.420000");
    c.query(
        "SELECT schemaname, tablename, pg_size_pretty(pg_total_relation_size(schemaname||'.'||tablename)) AS size
           FROM pg_tables WHERE schemaname = 'public' ORDER BY pg_total_relation_size(schemaname||'.'||tablename) DESC",
        &[],
    )
    .unwrap();
    // Monthly: archive old conversations (one last touched a year ago).
    c.execute(
        "INSERT INTO conversations (tenant_id, user_id, title, created_at, updated_at)
         VALUES ($1, $2, 'old', now() - interval '13 months', now() - interval '1 year')",
        &[&tenant, &user],
    )
    .unwrap();
    let archived = c
        .execute(
            "UPDATE conversations SET is_archived = true WHERE updated_at < CURRENT_DATE - INTERVAL '6 months' AND is_archived = false",
            &[],
        )
        .unwrap();
    assert_eq!(archived, 1);
    let rows = texts(&mut c, "SELECT title || ' ' || is_archived || ' ' || message_count FROM conversations ORDER BY title");
    assert_eq!(rows, ["Test Conversation false 20", "old true 0"]);
}
