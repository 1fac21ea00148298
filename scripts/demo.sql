-- What pg_assistant does, step by step. Run by scripts/demo.sh.
\set ON_ERROR_STOP 0
\set VERBOSITY default
\pset footer off
SET client_min_messages = warning;

\echo
\echo '== 1. CREATE EXTENSION creates the whole database of the assistant'
CREATE EXTENSION pg_assistant CASCADE;
SELECT c.relname AS "table", c.relrowsecurity AS "row-level security",
       (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal) AS "native triggers"
  FROM pg_class c JOIN pg_depend d ON d.objid = c.oid AND d.deptype = 'e'
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_assistant') AND c.relkind = 'r'
 ORDER BY 1;

\echo '== 2. A profile (create_profile is the one way in; the weekly counter resets next Monday 00:00 UTC)'
SELECT id, email, weekly_session_limit, week_reset_date
  FROM create_profile('00000000-0000-4000-8000-00000000a1a1', 'ada@example.com', 'Ada');
\echo '   ... a bad address is refused:'
SELECT create_profile(gen_random_uuid(), 'ada-at-example');

\echo
\echo '== 3. A practice session with messages: user_id comes from the session, counts follow'
INSERT INTO scenarios (id, title, emoji) VALUES ('market', 'At the market', '🛒');
INSERT INTO sessions (id, user_id, scenario_id, started_at)
VALUES ('00000000-0000-4000-8000-0000000005e5', '00000000-0000-4000-8000-00000000a1a1', 'market', now() - interval '7 minutes 12 seconds');
INSERT INTO messages (session_id, role, chat_type, content) VALUES
    ('00000000-0000-4000-8000-0000000005e5', 'scenario', 'main',   'Welcome! Fresh apples today.'),
    ('00000000-0000-4000-8000-0000000005e5', 'user',     'main',   'How much are they?'),
    ('00000000-0000-4000-8000-0000000005e5', 'user',     'helper', 'How do I ask for a discount?'),
    ('00000000-0000-4000-8000-0000000005e5', 'helper',   'helper', 'Try: "Could you do a better price?"');
SELECT role, chat_type, content, user_id FROM messages ORDER BY sent_at, role;
SELECT message_count_main, message_count_helper FROM sessions;

\echo '== 4. Messages are immutable'
UPDATE messages SET content = 'edited' WHERE role = 'user' AND chat_type = 'main';

\echo
\echo '== 5. Completing the session stamps completed_at and duration, and counts it on the profile'
UPDATE sessions SET is_completed = true;
SELECT is_completed, completed_at, duration_seconds FROM sessions;
SELECT total_completed_sessions, weekly_completed_sessions FROM profiles;

\echo '== 6. A completed session takes no more messages and cannot be reopened'
INSERT INTO messages (session_id, role, chat_type, content)
VALUES ('00000000-0000-4000-8000-0000000005e5', 'user', 'main', 'One more thing...');
UPDATE sessions SET is_completed = false;

\echo
\echo '== 7. The weekly limit'
UPDATE profiles SET weekly_session_limit = 1;
INSERT INTO sessions (user_id, scenario_id) VALUES ('00000000-0000-4000-8000-00000000a1a1', 'market');

\echo
\echo '== 8. Jobs: the weekly reset is idempotent; counters verify against a recount'
SELECT reset_weekly_limits() AS reset_now;
SELECT count(*) AS drifted_counters FROM verify_counts();

\echo
\echo '== 9. The generic triggers work on your own tables too'
CREATE TABLE notes (id int PRIMARY KEY, body text, updated_at timestamptz);
CREATE TRIGGER notes_updated_at BEFORE UPDATE ON notes FOR EACH ROW EXECUTE FUNCTION set_updated_at();
INSERT INTO notes VALUES (1, 'draft', NULL);
UPDATE notes SET body = 'final';
SELECT id, body, updated_at IS NOT NULL AS stamped FROM notes;

\echo
\echo '== 10. behavior: events arrive (out of order, in a batch), insights follow per statement'
INSERT INTO behavior_events (customer_id, session_id, event_type, business_impact, tool_name, event_timestamp) VALUES
    ('acme', 'web-1', 'tool_usage', 'high', 'Read', now() - interval '3 days'),
    ('acme', 'web-1', 'export', 'critical', 'Export', now() - interval '3 days' + interval '4 minutes'),
    ('acme', 'web-2', 'page_view', 'low', NULL, now() - interval '1 day');
INSERT INTO behavior_events (customer_id, session_id, event_type, tool_name, event_timestamp)
VALUES ('acme', 'web-1', 'tool_usage', 'Edit', now() - interval '3 days' - interval '2 minutes');  -- arrives late
SELECT customer_id, total_events, events_by_type, high_impact_events, session_count, last_session_id,
       days_since_last_activity FROM behavior_insights;
SELECT session_id, event_count, tools_used, duration_seconds FROM behavior_sessions ORDER BY session_id;
INSERT INTO behavior_events (customer_id, session_id, event_type, event_timestamp)
SELECT 'customer-' || (i % 100), 'visit-' || (i % 1000), (ARRAY['page_view', 'tool_usage', 'export'])[1 + i % 3],
       now() - (i % 500) * interval '1 minute'
  FROM generate_series(1, 20000) i;
SELECT count(*) AS customers, sum(total_events) AS events FROM behavior_insights;
SELECT backfill_behavior_insights() AS rebuild_changes_nothing;

\echo
\echo '== 11. behavior: similarity search over 300 patterns of 1,536 dimensions (native SIMD scan)'
INSERT INTO behavior_patterns (user_id, trigger, trigger_embedding, final_outcome, actions)
SELECT '00000000-0000-4000-8000-00000000a1a1', 'workflow ' || p,
       (SELECT array_agg(sin(p * 0.37 + d * (1 + p % 7) * 0.01)::real) FROM generate_series(1, 1536) d),
       (ARRAY['success', 'partial', 'failed'])[1 + p % 3], '[{"tool": "Read", "duration_ms": 120}]'
  FROM generate_series(1, 300) p;
SELECT similarity_kernel() AS kernel;
SELECT trigger, final_outcome, round(similarity::numeric, 4) AS similarity
  FROM find_similar_patterns((SELECT array_agg(sin(42 * 0.37 + d * (1 + 42 % 7) * 0.01)::real) FROM generate_series(1, 1536) d), 0.5, 5);
INSERT INTO behavior_patterns (user_id, trigger, final_outcome, actions)
VALUES ('00000000-0000-4000-8000-00000000a1a1', 'bad', 'success', '[{"tool": "Read"}, {"tool": 42}]');

\echo
\echo '== 12. conversations: a tenant''s chat; counters per statement; usage as one atomic upsert'
INSERT INTO tenants (id, name, slug) VALUES ('00000000-0000-4000-8000-00000000ac3e', 'Acme', 'acme');
UPDATE profiles SET tenant_id = '00000000-0000-4000-8000-00000000ac3e';
INSERT INTO conversations (id, tenant_id, user_id, title)
VALUES ('00000000-0000-4000-8000-0000000c0de1', '00000000-0000-4000-8000-00000000ac3e', '00000000-0000-4000-8000-00000000a1a1', 'Pricing question');
INSERT INTO conversation_messages (conversation_id, role, content, input_tokens, output_tokens)
VALUES ('00000000-0000-4000-8000-0000000c0de1', 'user', 'How much is the pro plan?', 12, 0),
       ('00000000-0000-4000-8000-0000000c0de1', 'assistant', 'Twelve euros a month.', 0, 9);
SELECT title, message_count, last_message_at IS NOT NULL AS has_last FROM conversations;
SELECT role, tenant_id IS NOT NULL AS tenant_filled FROM conversation_messages;
SELECT message_count, input_tokens, output_tokens, total_tokens, estimated_cost
  FROM increment_usage_metrics('00000000-0000-4000-8000-00000000ac3e', '00000000-0000-4000-8000-00000000a1a1', current_date, 12, 9, 0.0004);
INSERT INTO feedback (message_id, user_id, rating)
SELECT id, '00000000-0000-4000-8000-00000000a1a1', 1 FROM conversation_messages WHERE role = 'assistant';
SELECT refresh_analytics_views();
SELECT month, message_count, total_tokens FROM monthly_usage_summary;

\echo
\echo '== 13. web: a visit''s duration when it exits; optimization stamps; a rollback needs a reason'
INSERT INTO user_sessions (session_id, landing_page, created_at) VALUES ('visit-1', '/pricing', now() - interval '95 seconds');
UPDATE user_sessions SET exit_page = '/signup';
SELECT session_id, landing_page, exit_page, duration_seconds FROM user_sessions;
INSERT INTO optimization_history (proposal_id, status, friction_point, component_id, change_description, proposed_changes)
VALUES ('shorter-form', 'proposed', 'form abandon', 'signup', 'ask two fields instead of six', '{}');
UPDATE optimization_history SET status = 'implemented';
SELECT proposal_id, status, implemented_at IS NOT NULL AS implemented, deployed_at IS NOT NULL AS deployed FROM optimization_history;
UPDATE optimization_history SET status = 'rolled_back';

\echo
\echo '== 14. The application data is protected from a careless DROP'
DROP EXTENSION pg_assistant CASCADE;
