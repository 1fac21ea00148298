-- conversations: tenant from the conversation, counters per statement, feedback, usage, views.
SET client_min_messages = warning;
TRUNCATE tenants, profiles, scenarios, sessions, messages, logs, behavior_patterns, conversations, conversation_messages, feedback, usage_metrics;
\set VERBOSITY sqlstate
\set ta '''a0000000-0000-4000-8000-00000000000a'''
\set tb '''b0000000-0000-4000-8000-00000000000b'''
\set ua '''a1000000-0000-4000-8000-00000000000a'''
\set ub '''b1000000-0000-4000-8000-00000000000b'''
\set ca '''ca000000-0000-4000-8000-00000000000a'''
\set cb '''cb000000-0000-4000-8000-00000000000b'''
INSERT INTO tenants (id, name, slug) VALUES (:ta, 'Tenant A', 'tenant-a'), (:tb, 'Tenant B', 'tenant-b');
SELECT count(*) AS profiles FROM (SELECT create_profile(:ua, 'ua@example.com') UNION ALL SELECT create_profile(:ub, 'ub@example.com')) p;
UPDATE profiles SET tenant_id = CASE id WHEN :ua THEN :ta::uuid ELSE :tb::uuid END;
INSERT INTO conversations (id, tenant_id, user_id, title) VALUES (:ca, :ta, :ua, 'A chat'), (:cb, :tb, :ub, 'B chat');

-- A message takes its tenant from its conversation; the conversation's counters follow.
INSERT INTO conversation_messages (conversation_id, role, content, input_tokens, created_at)
VALUES (:ca, 'user', 'Hello', 5, '2026-03-01 10:00+00');
INSERT INTO conversation_messages (conversation_id, role, content, output_tokens, created_at)
SELECT :ca, 'assistant', 'answer ' || i, 10, '2026-03-01 10:00+00'::timestamptz + i * interval '1 minute'
  FROM generate_series(1, 100) i;
SELECT count(*) FILTER (WHERE tenant_id = :ta) AS tenant_filled, count(*) AS messages
  FROM conversation_messages WHERE conversation_id = :ca;
SELECT message_count, last_message_at AT TIME ZONE 'UTC' AS last_message_at, updated_at > created_at AS touched
  FROM conversations WHERE id = :ca;
-- A batch into several conversations writes each once.
INSERT INTO conversation_messages (conversation_id, role, content, created_at)
SELECT CASE WHEN i % 2 = 0 THEN :ca::uuid ELSE :cb::uuid END, 'user', 'm' || i, '2026-03-01 09:00+00'::timestamptz + i * interval '1 second'
  FROM generate_series(1, 1000) i;
SELECT id = :ca AS is_a, message_count FROM conversations ORDER BY id;
\set VERBOSITY default
INSERT INTO conversation_messages (conversation_id, tenant_id, role, content) VALUES (:ca, :tb, 'user', 'x');
\set VERBOSITY sqlstate
INSERT INTO conversation_messages (conversation_id, role, content) VALUES ('cf000000-0000-4000-8000-00000000000f', 'user', 'x');
INSERT INTO conversation_messages (conversation_id, role, content) VALUES (:ca, 'robot', 'x');
INSERT INTO conversation_messages (conversation_id, role, content, input_tokens) VALUES (:ca, 'user', 'x', -1);
-- Messages stay where they are.
UPDATE conversation_messages SET conversation_id = :cb WHERE content = 'Hello';
UPDATE conversation_messages SET tenant_id = :tb WHERE content = 'Hello';
UPDATE conversation_messages SET model = 'gpt' WHERE content = 'Hello';
UPDATE conversations SET tenant_id = :tb WHERE id = :ca;
-- Deletes keep the count and the latest message exact.
DELETE FROM conversation_messages WHERE conversation_id = :ca AND content LIKE 'answer %' AND created_at >= '2026-03-01 11:00+00';
SELECT message_count, last_message_at AT TIME ZONE 'UTC' AS last_message_at FROM conversations WHERE id = :ca;
SELECT count(*) AS drifted FROM verify_counts();
UPDATE conversations SET message_count = 3 WHERE id = :cb;
SELECT table_name, column_name, stored, actual FROM verify_counts();
SELECT repair_counts() AS repaired;
SELECT count(*) AS drifted FROM verify_counts();

-- Feedback takes its tenant from its message.
INSERT INTO feedback (message_id, user_id, rating)
SELECT id, :ua, CASE WHEN content = 'Hello' THEN -1 ELSE 1 END FROM conversation_messages
 WHERE conversation_id = :ca AND content IN ('Hello', 'answer 1');
SELECT count(*) FILTER (WHERE tenant_id = :ta) AS tenant_filled FROM feedback;
INSERT INTO feedback (message_id, user_id, rating) SELECT id, :ua, 1 FROM conversation_messages WHERE content = 'Hello';
INSERT INTO feedback (message_id, user_id, rating) SELECT id, :ub, 0 FROM conversation_messages WHERE content = 'Hello';
INSERT INTO feedback (message_id, tenant_id, user_id, rating) SELECT id, :tb, :ub, 1 FROM conversation_messages WHERE content = 'Hello';
INSERT INTO feedback (message_id, user_id, rating) VALUES ('cf000000-0000-4000-8000-00000000000f', :ua, 1);

-- Usage: one atomic upsert per call; total_tokens is always input + output.
SELECT message_count, input_tokens, output_tokens, total_tokens, estimated_cost
  FROM increment_usage_metrics(:ta, :ua, '2026-03-01', 100, 250, 0.0125);
SELECT message_count, input_tokens, output_tokens, total_tokens, estimated_cost
  FROM increment_usage_metrics(:ta, :ua, '2026-03-01', 1, 2, 0.001);
SELECT increment_usage_metrics(:ta, :ua, '2026-03-01', -1, 0, 0);
SELECT increment_usage_metrics(:ta, :ua, '2026-03-01', 0, -1, 0);
SELECT increment_usage_metrics(:ta, :ua, '2026-03-01', 0, 0, -0.5);
SELECT increment_usage_metrics(:ta, :ua, '2026-03-01', 0, 0, 'NaN');
SELECT increment_usage_metrics(NULL, :ua, '2026-03-01', 0, 0, 0);
SELECT increment_usage_metrics(:ta, :ua, NULL, 0, 0, 0);
SELECT increment_usage_metrics(:ta, :ua, 'infinity', 0, 0, 0);
SELECT increment_usage_metrics(:ta, :ua, '2026-03-01', NULL, 0, 0);
UPDATE usage_metrics SET total_tokens = 1;
SELECT count(*) AS today FROM increment_usage_metrics(:tb, :ub, current_date, 7, 8, 0.5);
SELECT count(*) AS today FROM increment_usage_metrics(:ta, :ua, current_date, 1, 1, 0);

-- As a user of tenant A: their tenant's rows only.
CREATE ROLE pga_regress_tenant;
GRANT USAGE ON SCHEMA public TO pga_regress_tenant;
GRANT SELECT, INSERT, UPDATE, DELETE ON conversations, conversation_messages, feedback, usage_metrics, current_day_usage,
      message_feedback_summary TO pga_regress_tenant;
GRANT EXECUTE ON FUNCTION refresh_analytics_views() TO pga_regress_tenant;
SELECT has_table_privilege('pga_regress_tenant', 'message_feedback_summary', 'SELECT') AS may_read_materialized_view;
\set as_ua 'SET LOCAL ROLE pga_regress_tenant; SET LOCAL request.jwt.claims = ''{"sub":"a1000000-0000-4000-8000-00000000000a","role":"authenticated"}'';'
BEGIN; :as_ua
SELECT current_tenant_id() = :ta AS own_tenant;
SELECT title FROM conversations;
SELECT count(*) AS visible_messages, count(DISTINCT tenant_id) AS tenants FROM conversation_messages;
SELECT count(*) AS visible_usage FROM usage_metrics;
SELECT count(*) AS visible_today FROM current_day_usage;
INSERT INTO conversations (tenant_id, user_id, title) VALUES (:ta, :ua, 'mine') RETURNING title;
ROLLBACK;
\set VERBOSITY default
BEGIN; :as_ua
INSERT INTO conversation_messages (conversation_id, role, content) VALUES (:cb, 'user', 'into B');
ROLLBACK;
BEGIN; :as_ua
INSERT INTO feedback (message_id, user_id, rating) SELECT id, :ua, 1 FROM conversation_messages LIMIT 0;
INSERT INTO conversations (tenant_id, user_id, title, message_count) VALUES (:ta, :ua, 'inflated', 99);
ROLLBACK;
BEGIN; :as_ua
SELECT increment_usage_metrics(:tb, :ub, '2026-03-01', 1, 1, 0);
ROLLBACK;
BEGIN; :as_ua
SELECT refresh_analytics_views();
ROLLBACK;
\set VERBOSITY sqlstate
BEGIN; :as_ua
UPDATE conversations SET message_count = 0;
ROLLBACK;
BEGIN; :as_ua
SELECT count(*) FROM message_feedback_summary;
ROLLBACK;
BEGIN; :as_ua
SELECT message_count FROM increment_usage_metrics(:ta, :ua, '2026-03-02', 1, 1, 0);
ROLLBACK;
REVOKE ALL ON conversations, conversation_messages, feedback, usage_metrics, current_day_usage, message_feedback_summary FROM pga_regress_tenant;
REVOKE ALL ON FUNCTION refresh_analytics_views() FROM pga_regress_tenant;
REVOKE ALL ON SCHEMA public FROM pga_regress_tenant;
DROP ROLE pga_regress_tenant;

-- Materialized views refresh concurrently (each has a unique index).
SELECT refresh_analytics_views();
SELECT positive_count, negative_count, average_rating FROM message_feedback_summary ORDER BY average_rating;
SELECT month, message_count, input_tokens, output_tokens, total_tokens, estimated_cost FROM monthly_usage_summary
 WHERE tenant_id = :ta AND month = '2026-03-01';
SELECT m.matviewname, bool_or(i.indisunique) AS has_unique_index
  FROM pg_matviews m JOIN pg_class c ON c.relname = m.matviewname JOIN pg_index i ON i.indrelid = c.oid
 GROUP BY 1 ORDER BY 1;

-- Deleting a tenant takes its conversations, messages and feedback.
DELETE FROM tenants WHERE id = :tb;
SELECT count(*) AS left_of_b FROM conversation_messages WHERE tenant_id = :tb;
TRUNCATE tenants, profiles, scenarios, sessions, messages, logs, behavior_patterns, conversations, conversation_messages, feedback, usage_metrics;
