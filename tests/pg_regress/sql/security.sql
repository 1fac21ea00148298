-- The security rules as an ordinary role sees them: refusals, their SQLSTATEs and what they
-- do not say. The attacks themselves, through real login roles, are tests/integration/tests/attack_*.rs.
SET client_min_messages = warning;
TRUNCATE tenants, profiles, scenarios, sessions, messages, logs, behavior_patterns, conversations, conversation_messages, feedback, usage_metrics;
\set alice '''a0000000-0000-4000-8000-00000000000a'''
\set bob '''b0000000-0000-4000-8000-00000000000b'''
\set bob_session '''c0000000-0000-4000-8000-00000000000b'''
\set alice_done '''c0000000-0000-4000-8000-00000000000a'''
SELECT count(*) AS profiles FROM (SELECT create_profile(:alice, 'alice@example.com') UNION ALL SELECT create_profile(:bob, 'bob@example.com')) p;
INSERT INTO scenarios (id, title) VALUES ('s', 'S');
UPDATE profiles SET weekly_session_limit = 1 WHERE id = :bob;
INSERT INTO sessions (id, user_id, scenario_id) VALUES (:bob_session, :bob, 's');
INSERT INTO sessions (id, user_id, scenario_id, is_completed) VALUES (:alice_done, :alice, 's', true);
CREATE ROLE pga_regress_user;
GRANT USAGE ON SCHEMA public TO pga_regress_user;
-- Even GRANT ALL leaves out TRIGGER, TRUNCATE and REFERENCES (the DDL guard takes them back).
GRANT ALL ON ALL TABLES IN SCHEMA public TO pga_regress_user;
SELECT p AS privilege, bool_or(has_table_privilege('pga_regress_user', t, p)) AS on_any_table
  FROM unnest(ARRAY['SELECT', 'INSERT', 'TRIGGER', 'TRUNCATE', 'REFERENCES']) p,
       unnest(ARRAY['profiles', 'sessions', 'messages', 'logs', 'behavior_events', 'behavior_insights', 'behavior_sessions', 'behavior_patterns']) t
 GROUP BY p ORDER BY p;
SELECT has_sequence_privilege('pga_regress_user', 'logs_id_seq', 'UPDATE') AS may_setval;
\set as_alice 'SET LOCAL ROLE pga_regress_user; SET LOCAL request.jwt.claims = ''{"sub":"a0000000-0000-4000-8000-00000000000a","role":"authenticated"}'';'

-- Someone else's rows: PostgreSQL's own RLS error, with no DETAIL naming Bob, his counts or
-- whether his session is completed.
\set VERBOSITY default
BEGIN; :as_alice
INSERT INTO sessions (user_id, scenario_id) VALUES (:bob, 's');
ROLLBACK;
BEGIN; :as_alice
INSERT INTO messages (session_id, role, chat_type, content) VALUES (:bob_session, 'user', 'main', 'hi');
ROLLBACK;
BEGIN; :as_alice
INSERT INTO messages (session_id, user_id, role, chat_type, content) VALUES (:bob_session, :alice, 'user', 'main', 'hi');
ROLLBACK;
BEGIN; :as_alice
INSERT INTO logs (session_id, user_id, level, event) VALUES (:bob_session, :alice, 'info', 'peek');
ROLLBACK;
-- Her own rows keep their detail.
BEGIN; :as_alice
INSERT INTO messages (session_id, role, chat_type, content) VALUES (:alice_done, 'user', 'main', 'late');
ROLLBACK;

-- The address is not hers to change (no 23505 oracle either).
\set VERBOSITY sqlstate
BEGIN; :as_alice
UPDATE profiles SET email = 'bob@example.com';
ROLLBACK;
BEGIN; :as_alice
UPDATE profiles SET email = 'nobody@example.com';
ROLLBACK;

-- started_at: near now at insert, fixed afterwards.
\set VERBOSITY terse
BEGIN; :as_alice
INSERT INTO sessions (user_id, scenario_id, started_at) VALUES (:alice, 's', 'infinity');
ROLLBACK;
BEGIN; :as_alice
INSERT INTO sessions (user_id, scenario_id, started_at) VALUES (:alice, 's', now() - interval '1 hour');
ROLLBACK;
BEGIN; :as_alice
UPDATE sessions SET started_at = '2000-01-01' WHERE id = :alice_done;
ROLLBACK;
\set VERBOSITY sqlstate
INSERT INTO sessions (user_id, scenario_id, started_at) VALUES (:alice, 's', '-infinity');

-- Logs: the id and the time are assigned, whatever the statement says.
BEGIN; :as_alice
INSERT INTO logs (id, user_id, level, event, created_at) OVERRIDING SYSTEM VALUE
VALUES (1000000, :alice, 'info', 'forged', 'infinity');
SELECT id < 1000000 AS assigned_id, created_at = now() AS assigned_time FROM logs WHERE event = 'forged';
COMMIT;

-- A statement passing itself off as a restore is judged like any other.
BEGIN; :as_alice
COPY (INSERT INTO messages (session_id, role, chat_type, content)
      SELECT :alice_done, 'user', 'main', 'sneaked' FROM (SELECT pg_catalog.set_config('row_security', 'off', true)) off
      RETURNING content) TO STDOUT;
ROLLBACK;

-- Jobs: EXECUTE is granted, and still refused.
GRANT EXECUTE ON FUNCTION delete_expired_sessions(interval) TO pga_regress_user;
BEGIN; :as_alice
SELECT delete_expired_sessions('0 seconds');
ROLLBACK;
SELECT count(*) AS sessions_left FROM sessions;

-- Completed sessions: their messages are final for her.
INSERT INTO sessions (id, user_id, scenario_id) VALUES ('c0000000-0000-4000-8000-0000000000a2', :alice, 's');
INSERT INTO messages (session_id, role, chat_type, content) VALUES ('c0000000-0000-4000-8000-0000000000a2', 'user', 'main', 'kept');
UPDATE sessions SET is_completed = true WHERE id = 'c0000000-0000-4000-8000-0000000000a2';
\set VERBOSITY default
BEGIN; :as_alice
DELETE FROM messages WHERE session_id = 'c0000000-0000-4000-8000-0000000000a2';
ROLLBACK;
\set VERBOSITY sqlstate

-- The weekly limit counts sessions started: Bob (limit 1) has started one.
INSERT INTO sessions (user_id, scenario_id) VALUES (:bob, 's');
DELETE FROM sessions WHERE user_id = :bob;
INSERT INTO sessions (user_id, scenario_id) VALUES (:bob, 's');
SELECT weekly_started_sessions, weekly_session_limit FROM profiles WHERE id = :bob;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM pga_regress_user;
REVOKE ALL ON FUNCTION delete_expired_sessions(interval) FROM pga_regress_user;
REVOKE ALL ON SCHEMA public FROM pga_regress_user;
DROP ROLE pga_regress_user;
SELECT count(*) AS drifted FROM verify_counts();
