-- The Monday boundary and the weekly reset, with "now" pinned (superuser-only setting).
\set u1 '''10000000-0000-4000-8000-000000000001'''
SET client_min_messages = warning;
TRUNCATE tenants, profiles, scenarios, sessions, messages, logs, behavior_patterns, conversations, conversation_messages, feedback, usage_metrics;
SET pg_assistant.clock_override = '2026-11-22 23:59:59+00';   -- Sunday, last second of the week
SELECT id, to_char(week_reset_date AT TIME ZONE 'UTC', 'Dy YYYY-MM-DD HH24:MI:SS') AS resets
  FROM create_profile(:u1, 'week@example.com');
INSERT INTO scenarios (id, title) VALUES ('week', 'Week');
INSERT INTO sessions (user_id, scenario_id, started_at) VALUES (:u1, 'week', '2026-11-22 23:50:00+00');
UPDATE sessions SET is_completed = true WHERE user_id = :u1;
SELECT to_char(completed_at AT TIME ZONE 'UTC', 'Dy HH24:MI:SS') AS completed, duration_seconds FROM sessions;
SELECT weekly_completed_sessions, total_completed_sessions,
       to_char(week_reset_date AT TIME ZONE 'UTC', 'Dy YYYY-MM-DD HH24:MI:SS') AS resets FROM profiles;
-- Still Sunday: nothing is due.
SELECT reset_weekly_limits();
SET pg_assistant.clock_override = '2026-11-23 00:00:00+00';   -- Monday 00:00:00: the reset is due
UPDATE profiles SET weekly_session_limit = 1;
SET pg_assistant.clock_override = '2026-11-22 23:59:59.5+00';
\set VERBOSITY default
INSERT INTO sessions (user_id, scenario_id, started_at) VALUES (:u1, 'week', '2026-11-22 23:59:59+00');
SET pg_assistant.clock_override = '2026-11-23 00:00:00+00';   -- Monday 00:00:00: the reset is due
-- The stale counter counts as zero, so the limit does not block the new week's first session.
INSERT INTO sessions (user_id, scenario_id, started_at) VALUES (:u1, 'week', '2026-11-23 00:00:00+00');
-- That first session of the week already started the new week, so the job finds nothing due.
SELECT weekly_started_sessions, to_char(week_reset_date AT TIME ZONE 'UTC', 'Dy YYYY-MM-DD') AS resets FROM profiles;
SELECT reset_weekly_limits();
SELECT weekly_completed_sessions, total_completed_sessions,
       to_char(week_reset_date AT TIME ZONE 'UTC', 'Dy YYYY-MM-DD HH24:MI:SS') AS resets FROM profiles;
-- Idempotent: a second run in the same week changes nothing and rewrites no row.
SELECT xmin AS before_xmin FROM profiles WHERE id = :u1 \gset
SELECT reset_weekly_limits();
SELECT xmin = :'before_xmin' AS row_not_rewritten FROM profiles WHERE id = :u1;
-- Monday's completion counts in the new week; Sunday's is last week's, so deleting it leaves
-- this week's counter alone.
UPDATE sessions SET is_completed = true WHERE started_at = '2026-11-23 00:00:00+00';
SELECT weekly_completed_sessions, total_completed_sessions FROM profiles;
DELETE FROM sessions WHERE completed_at < '2026-11-23 00:00:00+00';
SELECT weekly_completed_sessions, total_completed_sessions FROM profiles;
-- Batches: at most batch_size profiles per call.
INSERT INTO profiles (id, email, week_reset_date)
SELECT gen_random_uuid(), 'p' || i || '@example.com', '2026-11-16 00:00:00+00' FROM generate_series(1, 25) i;
SELECT reset_weekly_limits(10), reset_weekly_limits(10), reset_weekly_limits(10), reset_weekly_limits(10);
SELECT count(*) FILTER (WHERE week_reset_date = '2026-11-30 00:00:00+00') AS next_monday, count(*) AS profiles FROM profiles;
-- Again idempotent, over every profile: no row is rewritten.
CREATE TEMP TABLE xmins AS SELECT id, xmin::text AS x FROM profiles;
SELECT reset_weekly_limits() AS changed, reset_weekly_limits(5) AS changed_in_batch;
SELECT count(*) AS rewritten FROM profiles p JOIN xmins USING (id) WHERE p.xmin::text <> xmins.x;
-- Only superusers may pin the clock.
RESET pg_assistant.clock_override;
\set VERBOSITY sqlstate
CREATE ROLE pga_regress_plain;
SET ROLE pga_regress_plain;
SET pg_assistant.clock_override = '2026-01-01 00:00:00+00';
RESET ROLE;
DROP ROLE pga_regress_plain;
