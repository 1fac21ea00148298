-- web: session duration, optimization status stamps, the JWT-role policies and 002's views.
SET client_min_messages = warning;
TRUNCATE user_sessions, interaction_events, conversion_funnels, optimization_history, a_b_tests, variant_assignments;
\set VERBOSITY sqlstate

-- duration_seconds: when exit_page is first set, at insert too; never negative; set once.
INSERT INTO user_sessions (session_id, landing_page, created_at, exit_page) VALUES ('s-insert', '/', now() - interval '90.7 seconds', '/bye');
INSERT INTO user_sessions (session_id, landing_page, created_at) VALUES ('s-update', '/', now() - interval '30 seconds');
INSERT INTO user_sessions (session_id, landing_page, created_at, exit_page) VALUES ('s-future', '/', now() + interval '1 hour', '/');
SELECT session_id, duration_seconds FROM user_sessions ORDER BY session_id;
UPDATE user_sessions SET exit_page = '/checkout' WHERE session_id = 's-update';
SELECT duration_seconds BETWEEN 30 AND 31 AS about_thirty FROM user_sessions WHERE session_id = 's-update';
UPDATE user_sessions SET duration_seconds = 5 WHERE session_id = 's-update';
UPDATE user_sessions SET exit_page = '/again' WHERE session_id = 's-update';
SELECT duration_seconds AS not_recomputed FROM user_sessions WHERE session_id = 's-update';
INSERT INTO user_sessions (session_id, landing_page, device_type) VALUES ('s-bad', '/', 'watch');
INSERT INTO user_sessions (session_id, landing_page) VALUES ('s-insert', '/');

-- optimization_history: stamps on the first change, a reason for a rollback.
INSERT INTO optimization_history (proposal_id, status, friction_point, component_id, change_description, proposed_changes)
VALUES ('p1', 'proposed', 'slow form', 'signup', 'shorter form', '{}'),
       ('p2', 'implemented', 'dead link', 'footer', 'fix link', '{}');
SELECT proposal_id, implemented_at IS NOT NULL AS implemented, deployed_at IS NOT NULL AS deployed, tested_at IS NOT NULL AS tested
  FROM optimization_history ORDER BY proposal_id;
UPDATE optimization_history SET status = 'testing' WHERE proposal_id = 'p1';
UPDATE optimization_history SET status = 'implemented', deployed_at = '2026-01-01 00:00+00' WHERE proposal_id = 'p1';
SELECT tested_at < implemented_at AS tested_first, deployed_at AT TIME ZONE 'UTC' AS deployed_kept
  FROM optimization_history WHERE proposal_id = 'p1';
UPDATE optimization_history SET status = 'testing', tested_at = '2025-01-01 00:00+00' WHERE proposal_id = 'p1';
SELECT tested_at AT TIME ZONE 'UTC' AS tested_at FROM optimization_history WHERE proposal_id = 'p1';
\set VERBOSITY terse
UPDATE optimization_history SET status = 'rolled_back' WHERE proposal_id = 'p2';
\set VERBOSITY sqlstate
UPDATE optimization_history SET status = 'rolled_back', rollback_reason = ' ' WHERE proposal_id = 'p2';
INSERT INTO optimization_history (proposal_id, status, friction_point, change_description, proposed_changes)
VALUES ('p3', 'rolled_back', 'x', 'y', '{}');
UPDATE optimization_history SET status = 'rolled_back', rollback_reason = 'conversion dropped' WHERE proposal_id = 'p2';
UPDATE optimization_history SET metadata = '{"note": 1}' WHERE proposal_id = 'p2';
SELECT proposal_id, status, rollback_reason FROM optimization_history ORDER BY proposal_id;
INSERT INTO optimization_history (proposal_id, status, friction_point, change_description, proposed_changes, ai_confidence)
VALUES ('p4', 'proposed', 'x', 'y', '{}', 1.5);

-- Events, funnels and experiments, and 002's views over them.
INSERT INTO interaction_events (session_id, event_type, element_path, page_url, component_id, event_data)
SELECT CASE WHEN i % 2 = 0 THEN 's-insert' ELSE 's-update' END, (ARRAY['rage_click', 'click', 'hesitation'])[1 + i % 3],
       '#buy', '/shop', 'signup', jsonb_build_object('hesitation_ms', i * 10)
  FROM generate_series(1, 60) i;
INSERT INTO interaction_events (session_id, event_type, page_url) VALUES ('s-insert', 'teleport', '/');
INSERT INTO interaction_events (session_id, event_type, page_url) VALUES ('nowhere', 'click', '/');
INSERT INTO conversion_funnels (funnel_name, step_name, step_order, session_id, component_id, duration_seconds)
VALUES ('lead_capture', 'form', 1, 's-insert', 'signup', 40), ('lead_capture', 'form', 1, 's-update', 'signup', 20);
INSERT INTO conversion_funnels (funnel_name, step_name, step_order, session_id) VALUES ('lead_capture', 'again', 1, 's-insert');
INSERT INTO a_b_tests (test_id, test_name, component_id, variant_a, variant_b, status) VALUES ('t1', 'Button', 'signup', '{}', '{}', 'active');
INSERT INTO variant_assignments (test_id, session_id, variant) VALUES ('t1', 's-insert', 'A');
INSERT INTO variant_assignments (test_id, session_id, variant) VALUES ('t1', 's-insert', 'B');
SELECT element_path, event_type, event_count, affected_sessions FROM friction_points ORDER BY event_type;
SELECT proposal_id, status, total_conversions, avg_funnel_time, affected_funnels FROM conversion_impact ORDER BY proposal_id;
SELECT session_id, total_events, click_count, rage_click_count, hesitation_count, funnels_entered FROM session_analytics ORDER BY session_id;
SELECT refresh_analytics_views();
SELECT element_path, event_type, event_count, unique_sessions FROM daily_friction_summary ORDER BY event_type;
SELECT component_id, page_url, total_interactions, clicks, rage_clicks, hesitations, conversions FROM component_performance;

-- The views show rows only to admin, ai_analysis and services.
CREATE ROLE pga_regress_web;
GRANT USAGE ON SCHEMA public TO pga_regress_web;
GRANT SELECT, INSERT, UPDATE, DELETE ON user_sessions, interaction_events, friction_points, session_analytics TO pga_regress_web;
BEGIN; SET LOCAL ROLE pga_regress_web; SET LOCAL request.jwt.claims = '{"role":"ai_analysis"}';
SELECT count(*) AS sessions, (SELECT count(*) FROM friction_points) AS friction, (SELECT count(*) FROM session_analytics) AS analytics
  FROM user_sessions;
INSERT INTO user_sessions (session_id, landing_page) VALUES ('by-analysis', '/');
ROLLBACK;
BEGIN; SET LOCAL ROLE pga_regress_web; SET LOCAL request.jwt.claims = '{"role":"beacon_ingest"}';
INSERT INTO user_sessions (session_id, landing_page, exit_page) VALUES ('by-beacon', '/', '/');
INSERT INTO interaction_events (session_id, event_type, page_url) VALUES ('by-beacon', 'click', '/');
SELECT count(*) AS beacon_reads, (SELECT count(*) FROM friction_points) AS friction FROM user_sessions;
UPDATE user_sessions SET exit_page = '/x';
ROLLBACK;
BEGIN; SET LOCAL ROLE pga_regress_web; SET LOCAL request.jwt.claims = '{"role":"authenticated"}';
SELECT count(*) AS sessions, (SELECT count(*) FROM session_analytics) AS analytics FROM user_sessions;
INSERT INTO user_sessions (session_id, landing_page) VALUES ('by-user', '/');
ROLLBACK;
REVOKE ALL ON user_sessions, interaction_events, friction_points, session_analytics FROM pga_regress_web;
REVOKE ALL ON SCHEMA public FROM pga_regress_web;
DROP ROLE pga_regress_web;

TRUNCATE user_sessions, interaction_events, conversion_funnels, optimization_history, a_b_tests, variant_assignments;
SELECT refresh_analytics_views();
