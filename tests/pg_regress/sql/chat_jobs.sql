-- Retention jobs: what they delete, that counters follow, and the job's own log row.
\set u1 '''10000000-0000-4000-8000-000000000001'''
SET client_min_messages = warning;
TRUNCATE tenants, profiles, scenarios, sessions, messages, logs, behavior_patterns, conversations, conversation_messages, feedback, usage_metrics;
SELECT count(*) FROM create_profile(:u1, 'jobs@example.com');
INSERT INTO scenarios (id, title) VALUES ('jobs', 'Jobs');
-- Two old sessions (one completed, with messages), one recent.
INSERT INTO sessions (user_id, scenario_id, started_at) VALUES
    (:u1, 'jobs', now() - interval '120 days'),
    (:u1, 'jobs', now() - interval '100 days'),
    (:u1, 'jobs', now() - interval '2 days');
INSERT INTO messages (session_id, role, chat_type, content)
SELECT id, 'user', 'main', 'old' FROM sessions WHERE started_at < now() - interval '90 days';
UPDATE sessions SET is_completed = true WHERE started_at < now() - interval '110 days';
SELECT total_completed_sessions FROM profiles;
INSERT INTO logs (user_id, level, event, created_at) VALUES
    (:u1, 'info', 'old', now() - interval '40 days'),
    (:u1, 'warn', 'recent', now() - interval '1 day');

SELECT delete_expired_sessions() AS sessions_deleted;
SELECT count(*) AS sessions_left, (SELECT count(*) FROM messages) AS messages_left FROM sessions;
-- Counters follow the delete like any other.
SELECT total_completed_sessions, weekly_completed_sessions FROM profiles;
SELECT count(*) AS drifted FROM verify_counts();
SELECT delete_expired_sessions('1 day') AS with_argument;

SELECT delete_old_logs() AS logs_deleted;
-- One job row per run, after the deletion, so a job never deletes its own record.
SELECT level, event, message,
       metadata->>'job' AS job, (metadata->>'rows_deleted')::int AS rows_deleted, (metadata->>'older_than_seconds')::numeric AS older_than_seconds,
       (metadata->>'finished_at')::timestamptz >= (metadata->>'started_at')::timestamptz AS timed
  FROM logs WHERE event = 'job' ORDER BY id;
SELECT event FROM logs WHERE event <> 'job';
-- Idempotent: nothing left to delete.
SELECT delete_old_logs('30 days') AS again;
