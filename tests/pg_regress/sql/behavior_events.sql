-- behavior: events keep the customer's insights and the session's summary exact, per statement.
SET client_min_messages = warning;
TRUNCATE behavior_events, behavior_insights, behavior_sessions;
SET TIME ZONE 'UTC';
\set VERBOSITY sqlstate
\set t0 '''2026-03-02 12:00:00+00'''
-- Whole days from the customer's latest event to now, as the rules must keep it.
CREATE TEMP VIEW expected_days AS
SELECT customer_id, days_since_last_activity = greatest(0, floor(extract(epoch FROM now() - last_session_timestamp) / 86400))::int AS days_ok
  FROM behavior_insights;

-- The first event creates both summaries.
INSERT INTO behavior_events (customer_id, session_id, event_type, business_impact, tool_name, event_timestamp)
VALUES ('acme', 's1', 'tool_usage', 'high', 'Read', :t0::timestamptz - interval '5 days');
SELECT customer_id, total_events, events_by_type, high_impact_events, session_count, first_event_at,
       last_session_timestamp, last_session_id, days_ok
  FROM behavior_insights JOIN expected_days USING (customer_id);
SELECT session_id, customer_id, event_count, high_impact_count, tools_used, duration_seconds FROM behavior_sessions;

-- Out of order: an older event moves first_event_at back, not last_session_*; tools stay
-- distinct and sorted; a second session counts once.
INSERT INTO behavior_events (customer_id, session_id, event_type, business_impact, tool_name, event_timestamp) VALUES
    ('acme', 's1', 'export', 'critical', 'Bash', :t0::timestamptz - interval '6 days'),
    ('acme', 's1', 'tool_usage', 'low', 'Read', :t0::timestamptz - interval '5 days' + interval '90 seconds'),
    ('acme', 's2', 'tool_usage', 'medium', 'Edit', :t0::timestamptz - interval '2 days'),
    ('globex', 's3', 'page_view', 'low', NULL, :t0::timestamptz - interval '10 days');
INSERT INTO behavior_events (customer_id, session_id, event_type, event_timestamp)
VALUES ('acme', 's1', 'page_view', :t0::timestamptz - interval '7 days');
SELECT customer_id, total_events, events_by_type, high_impact_events, session_count, first_event_at,
       last_session_timestamp, last_session_id, days_ok
  FROM behavior_insights JOIN expected_days USING (customer_id) ORDER BY customer_id;
SELECT session_id, customer_id, started_at, ended_at, event_count, high_impact_count, tools_used, duration_seconds
  FROM behavior_sessions ORDER BY session_id;

-- A batch writes each summary row once: 2,000 events, 20 customers, 200 sessions.
INSERT INTO behavior_events (customer_id, session_id, event_type, business_impact, tool_name, event_timestamp)
SELECT 'batch' || (i % 20), 'bs' || (i % 200), 'type' || (i % 3),
       (ARRAY['low', 'medium', 'high', 'critical'])[1 + i % 4], CASE WHEN i % 5 = 0 THEN NULL ELSE 'tool' || (i % 7) END,
       :t0::timestamptz - (i % 97) * interval '1 hour'
  FROM generate_series(1, 2000) i;
SELECT count(*) AS customers, sum(total_events) AS events, sum(session_count) AS sessions, sum(high_impact_events) AS high
  FROM behavior_insights WHERE customer_id LIKE 'batch%';
SELECT count(*) AS sessions, sum(event_count) AS events FROM behavior_sessions WHERE customer_id LIKE 'batch%';
SELECT xmin = (SELECT xmin FROM behavior_insights WHERE customer_id = 'batch0') AS one_transaction,
       count(*) FILTER (WHERE updated_at = created_at) AS written_once
  FROM behavior_sessions WHERE customer_id LIKE 'batch%' GROUP BY 1;

-- The rebuild equals what the rule kept: nothing to change, twice.
SELECT backfill_behavior_insights() AS changed;
SELECT backfill_behavior_insights() AS changed_again;
-- Losing the summaries: the rebuild writes them back.
DELETE FROM behavior_insights WHERE customer_id = 'acme';
UPDATE behavior_sessions SET event_count = 0 WHERE session_id = 'bs7';
SELECT backfill_behavior_insights() AS rebuilt;
SELECT customer_id, total_events, session_count, last_session_id FROM behavior_insights WHERE customer_id = 'acme';
SELECT event_count FROM behavior_sessions WHERE session_id = 'bs7';

-- A session belongs to one customer.
\set VERBOSITY default
INSERT INTO behavior_events (customer_id, session_id, event_type) VALUES ('globex', 's1', 'page_view');
\set VERBOSITY sqlstate
INSERT INTO behavior_events (customer_id, session_id, event_type) VALUES ('x', 'mixed', 'a'), ('y', 'mixed', 'a');
SELECT count(*) AS mixed_session_rows FROM behavior_sessions WHERE session_id = 'mixed';

-- Bad events: the table's own constraints.
INSERT INTO behavior_events (customer_id, session_id, event_type, business_impact) VALUES ('c', 's', 'e', 'urgent');
INSERT INTO behavior_events (customer_id, session_id, event_type) VALUES (NULL, 's', 'e');
INSERT INTO behavior_events (customer_id, session_id, event_type) VALUES ('', 's', 'e');
INSERT INTO behavior_events (customer_id, session_id, event_type, duration_ms) VALUES ('c', 's', 'e', -1);
INSERT INTO behavior_events (customer_id, session_id, event_type, event_timestamp) VALUES ('c', 's', 'e', 'infinity');

-- Events are append-only where the summaries are concerned; other columns may change.
UPDATE behavior_events SET event_type = 'other' WHERE customer_id = 'globex';
UPDATE behavior_events SET event_timestamp = now() WHERE customer_id = 'globex';
UPDATE behavior_events SET properties = '{"fixed": true}', expires_at = now() + interval '1 day' WHERE customer_id = 'globex';
SELECT properties FROM behavior_events WHERE customer_id = 'globex';

-- Recency: whole days since the latest event, never negative.
UPDATE behavior_insights SET days_since_last_activity = 99 WHERE customer_id = 'globex';
SELECT refresh_activity_recency() AS refreshed;
SELECT refresh_activity_recency() AS refreshed_again;
SELECT days_ok FROM expected_days WHERE customer_id = 'globex';
INSERT INTO behavior_events (customer_id, session_id, event_type, event_timestamp) VALUES ('future', 'fs', 'e', now() + interval '3 days');
SELECT days_since_last_activity FROM behavior_insights WHERE customer_id = 'future';

-- Retention: expired events go (in batches if asked), the insights stay cumulative.
UPDATE behavior_events SET expires_at = now() - interval '1 second' WHERE customer_id LIKE 'batch%';
SELECT cleanup_expired_behavior_events(0);
SELECT cleanup_expired_behavior_events(1500) AS first_batch;
SELECT cleanup_expired_behavior_events(1500) AS second_batch;
SELECT cleanup_expired_behavior_events() AS nothing_left;
SELECT count(*) AS batch_events_left FROM behavior_events WHERE customer_id LIKE 'batch%';
SELECT sum(total_events) AS insights_unchanged FROM behavior_insights WHERE customer_id LIKE 'batch%';
SELECT bool_and(days_ok) AS every_recency_exact FROM expected_days;
SELECT metadata->>'job' AS job, (metadata->>'rows_deleted')::int AS rows_deleted FROM logs
 WHERE event = 'job' AND metadata->>'job' = 'cleanup_expired_behavior_events' ORDER BY id;

-- Leave nothing behind for the other tests.
TRUNCATE behavior_events, behavior_insights, behavior_sessions;
DELETE FROM logs WHERE metadata->>'job' = 'cleanup_expired_behavior_events';
