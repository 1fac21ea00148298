-- Drop protection (DESIGN.md section 4): no DROP takes the application's rows with it unless
-- the session says so; empty tables never stop a drop.
SET client_min_messages = warning;
TRUNCATE tenants, profiles, scenarios, sessions, messages, logs, behavior_patterns, conversations, conversation_messages, feedback, usage_metrics;
SELECT count(*) AS created FROM create_profile('d0000000-0000-4000-8000-000000000001', 'keep@example.com');
INSERT INTO scenarios (id, title) VALUES ('kept', 'Kept');
\set VERBOSITY default
DROP EXTENSION pg_assistant;
DROP EXTENSION pg_assistant CASCADE;
DROP EXTENSION IF EXISTS citext, pg_assistant CASCADE;
DROP SCHEMA public CASCADE;
\set VERBOSITY sqlstate
SELECT count(*) AS still_there FROM profiles;
-- Other drops are not its business.
CREATE SCHEMA scratch;
DROP SCHEMA scratch;
-- Empty tables never stop a drop ...
TRUNCATE tenants, profiles, scenarios, sessions, messages, logs, behavior_patterns, conversations, conversation_messages, feedback, usage_metrics;
DROP EXTENSION pg_assistant;
CREATE EXTENSION pg_assistant;
-- ... and a session that says so drops the rows with the tables.
SELECT count(*) AS created FROM create_profile('d0000000-0000-4000-8000-000000000002', 'gone@example.com');
SET pg_assistant.allow_drop_with_data = on;
DROP EXTENSION pg_assistant;
RESET pg_assistant.allow_drop_with_data;
CREATE EXTENSION pg_assistant;
SELECT count(*) AS profiles_after_recreate FROM profiles;
