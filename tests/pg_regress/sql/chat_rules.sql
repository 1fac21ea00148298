-- chat: every rule of DESIGN.md 3.2 as a user sees it through SQL.
\set u1 '''10000000-0000-4000-8000-000000000001'''
\set u2 '''20000000-0000-4000-8000-000000000002'''
\set s1 '''a0000000-0000-4000-8000-000000000001'''
\set s2 '''a0000000-0000-4000-8000-000000000002'''
SET client_min_messages = warning;
TRUNCATE tenants, profiles, scenarios, sessions, messages, logs, behavior_patterns, conversations, conversation_messages, feedback, usage_metrics;

-- Profiles: create_profile() is the one creation path.
SELECT id, email, display_name, total_completed_sessions, weekly_completed_sessions, weekly_session_limit,
       week_reset_date = next_week_start(now()) AS resets_next_monday
  FROM create_profile(:u1, 'Ada@Example.COM', 'Ada');
SELECT id, email FROM create_profile(:u2, 'grace@example.com');
\set VERBOSITY default
SELECT create_profile('30000000-0000-4000-8000-000000000003', 'not-an-address');
\set VERBOSITY sqlstate
SELECT create_profile('30000000-0000-4000-8000-000000000003', NULL);
SELECT create_profile('30000000-0000-4000-8000-000000000003', '');
SELECT create_profile('30000000-0000-4000-8000-000000000003', 'two@@example.com');
SELECT create_profile('30000000-0000-4000-8000-000000000003', 'a b@example.com');
SELECT create_profile(NULL, 'x@example.com');
-- citext: the same address in another case is a duplicate (23505).
SELECT create_profile('30000000-0000-4000-8000-000000000003', 'ADA@example.com');
SELECT count(*) AS profiles FROM profiles;

INSERT INTO scenarios (id, title, emoji, sort_order) VALUES ('market', 'Marketplace', '🛒', 1), ('party', 'Party', '🎉', 2);
INSERT INTO scenarios (id, title) VALUES ('market2', 'Marketplace');
INSERT INTO scenarios (id, title, emoji) VALUES ('long', 'Long emoji', repeat('🎉', 5));

-- Sessions and messages: user_id comes from the session, counts follow every insert.
INSERT INTO sessions (id, user_id, scenario_id, started_at) VALUES (:s1, :u1, 'market', now() - interval '10 minutes 30 seconds');
INSERT INTO messages (id, session_id, role, chat_type, content) VALUES
    ('b0000000-0000-4000-8000-000000000001', :s1, 'scenario', 'main', 'Welcome to the market!'),
    ('b0000000-0000-4000-8000-000000000002', :s1, 'user', 'main', 'How much are the apples?'),
    ('b0000000-0000-4000-8000-000000000003', :s1, 'user', 'helper', 'How do I say apples?'),
    ('b0000000-0000-4000-8000-000000000004', :s1, 'helper', 'helper', 'Try: the apples.');
SELECT role, chat_type, user_id = :u1 AS user_from_session FROM messages ORDER BY id;
SELECT message_count_main, message_count_helper FROM sessions WHERE id = :s1;

-- A supplied user_id must match the session.
\set VERBOSITY default
INSERT INTO messages (session_id, user_id, role, chat_type, content) VALUES (:s1, :u2, 'user', 'main', 'impostor');
\set VERBOSITY sqlstate
INSERT INTO messages (session_id, user_id, role, chat_type, content) VALUES (:s1, :u2, 'user', 'main', 'impostor');
INSERT INTO messages (session_id, user_id, role, chat_type, content) VALUES (:s1, :u1, 'user', 'main', 'explicit, matching');

-- Invalid values are rejected by declarative constraints with PostgreSQL's own codes.
INSERT INTO messages (session_id, role, chat_type, content) VALUES (:s1, 'assistant', 'main', 'bad role');
INSERT INTO messages (session_id, role, chat_type, content) VALUES (:s1, 'user', 'side', 'bad chat type');
INSERT INTO messages (session_id, role, chat_type, content) VALUES (:s1, 'scenario', 'helper', 'scenario speaks only in main');
INSERT INTO messages (session_id, role, chat_type, content) VALUES (:s1, 'helper', 'main', 'helper speaks only in helper');
INSERT INTO messages (session_id, role, chat_type, content) VALUES (:s1, 'user', 'main', '');
INSERT INTO messages (session_id, role, chat_type, content) VALUES (:s1, 'user', 'main', repeat('x', 8001));
INSERT INTO messages (session_id, role, chat_type, content) VALUES (:s1, 'user', 'main', repeat('x', 8000));
INSERT INTO messages (session_id, role, chat_type, content) VALUES (NULL, 'user', 'main', 'no session');
-- A missing session is a foreign-key violation.
INSERT INTO messages (session_id, role, chat_type, content) VALUES ('a0000000-0000-4000-8000-0000000000ff', 'user', 'main', 'nowhere');
SELECT message_count_main, message_count_helper FROM sessions WHERE id = :s1;

-- Idempotency keys: a retry with ON CONFLICT DO NOTHING inserts nothing and counts nothing.
INSERT INTO messages (session_id, role, chat_type, content, client_message_id)
     VALUES (:s1, 'user', 'main', 'sent once', 'c0000000-0000-4000-8000-000000000001')
ON CONFLICT DO NOTHING;
INSERT INTO messages (session_id, role, chat_type, content, client_message_id)
     VALUES (:s1, 'user', 'main', 'sent once', 'c0000000-0000-4000-8000-000000000001')
ON CONFLICT DO NOTHING;
INSERT INTO messages (session_id, role, chat_type, content, client_message_id)
     VALUES (:s1, 'user', 'main', 'sent once', 'c0000000-0000-4000-8000-000000000001');
SELECT message_count_main, message_count_helper FROM sessions WHERE id = :s1;

-- Messages are immutable: every column, every form of UPDATE.
\set VERBOSITY default
UPDATE messages SET content = 'edited' WHERE role = 'scenario';
\set VERBOSITY sqlstate
UPDATE messages SET content = 'edited';
UPDATE messages SET sent_at = now();
UPDATE messages SET role = 'user' WHERE role = 'scenario';
UPDATE messages SET chat_type = 'main', role = 'user' WHERE chat_type = 'helper';
UPDATE messages SET session_id = session_id;
UPDATE messages SET client_message_id = gen_random_uuid();
INSERT INTO messages (session_id, role, chat_type, content, client_message_id)
     VALUES (:s1, 'user', 'main', 'upsert', 'c0000000-0000-4000-8000-000000000001')
ON CONFLICT (user_id, client_message_id) WHERE client_message_id IS NOT NULL DO UPDATE SET content = 'changed';
SELECT count(*) AS unchanged FROM messages WHERE content IN ('Welcome to the market!', 'sent once');

-- Deleting messages decrements the counts.
DELETE FROM messages WHERE content = repeat('x', 8000);
SELECT message_count_main, message_count_helper FROM sessions WHERE id = :s1;

-- Ordinary users cannot write counters; the owner (this session) can, and verify_counts() sees it.
UPDATE sessions SET message_count_main = 99 WHERE id = :s1;
SELECT table_name, row_id, column_name, stored, actual FROM verify_counts();
SELECT repair_counts();
SELECT count(*) AS drifted FROM verify_counts();

-- Completion: completed_at and duration_seconds are set, counts follow.
BEGIN;
UPDATE sessions SET is_completed = true WHERE id = :s1;
SELECT is_completed, completed_at = now() AS completed_now, duration_seconds FROM sessions WHERE id = :s1;
COMMIT;
SELECT total_completed_sessions, weekly_completed_sessions FROM profiles WHERE id = :u1;
-- Completing again changes nothing; a completed session stays completed.
UPDATE sessions SET is_completed = true WHERE id = :s1;
SELECT total_completed_sessions, weekly_completed_sessions FROM profiles WHERE id = :u1;
\set VERBOSITY default
UPDATE sessions SET is_completed = false WHERE id = :s1;
INSERT INTO messages (session_id, role, chat_type, content) VALUES (:s1, 'user', 'main', 'too late');
\set VERBOSITY sqlstate
UPDATE sessions SET is_completed = false WHERE id = :s1;
INSERT INTO messages (session_id, role, chat_type, content) VALUES (:s1, 'user', 'main', 'too late');
INSERT INTO messages (session_id, role, chat_type, content) SELECT :s1, 'user', 'main', 'batch ' || i FROM generate_series(1, 3) i;
SELECT message_count_main, message_count_helper FROM sessions WHERE id = :s1;

-- A session inserted as completed: an explicit completed_at is kept, duration computed.
BEGIN;
INSERT INTO sessions (id, user_id, scenario_id, started_at, is_completed, completed_at)
VALUES (:s2, :u2, 'party', now() - interval '1 hour', true, now() - interval '15 minutes');
SELECT completed_at = now() - interval '15 minutes' AS kept, duration_seconds FROM sessions WHERE id = :s2;
COMMIT;
-- (the weekly counter against this week's completions: `now() - interval '15 minutes'` is last week
-- during the first quarter hour of a Monday)
SELECT id, total_completed_sessions, weekly_completed_sessions = (SELECT count(*) FROM sessions s WHERE s.user_id = p.id
         AND s.is_completed AND s.completed_at >= next_week_start(now()) - interval '7 days') AS weekly_exact
  FROM profiles p ORDER BY id;
-- Temporal checks.
INSERT INTO sessions (user_id, scenario_id, started_at, is_completed, completed_at)
VALUES (:u2, 'party', now(), true, now() - interval '1 second');
-- A completion last week counts in the total, not in this week.
INSERT INTO sessions (user_id, scenario_id, started_at, is_completed, completed_at)
VALUES (:u2, 'party', now() - interval '8 days', true, now() - interval '8 days');
SELECT id, total_completed_sessions, weekly_completed_sessions = (SELECT count(*) FROM sessions s WHERE s.user_id = p.id
         AND s.is_completed AND s.completed_at >= next_week_start(now()) - interval '7 days') AS weekly_exact
  FROM profiles p ORDER BY id;

-- Deleting completed sessions: the total follows; the weekly counter only for this week's completions.
DELETE FROM sessions WHERE user_id = :u2 AND completed_at < now() - interval '7 days';
SELECT id, total_completed_sessions, weekly_completed_sessions = (SELECT count(*) FROM sessions s WHERE s.user_id = p.id
         AND s.is_completed AND s.completed_at >= next_week_start(now()) - interval '7 days') AS weekly_exact
  FROM profiles p ORDER BY id;
DELETE FROM sessions WHERE id = :s2;
SELECT id, total_completed_sessions, weekly_completed_sessions = (SELECT count(*) FROM sessions s WHERE s.user_id = p.id
         AND s.is_completed AND s.completed_at >= next_week_start(now()) - interval '7 days') AS weekly_exact
  FROM profiles p ORDER BY id;
-- Deleting a session deletes its messages.
SELECT count(*) AS messages_before FROM messages;
DELETE FROM sessions WHERE id = :s1;
SELECT count(*) AS messages_after FROM messages;
SELECT id, total_completed_sessions, weekly_completed_sessions = (SELECT count(*) FROM sessions s WHERE s.user_id = p.id
         AND s.is_completed AND s.completed_at >= next_week_start(now()) - interval '7 days') AS weekly_exact
  FROM profiles p ORDER BY id;
SELECT count(*) AS drifted FROM verify_counts();

-- The weekly limit caps the sessions started in a week (its DETAIL and HINT are in chat_week,
-- where the clock is pinned). Start counting afresh here.
SELECT weekly_started_sessions AS started_so_far FROM profiles WHERE id = :u1;
UPDATE profiles SET weekly_session_limit = 1, weekly_started_sessions = 0 WHERE id = :u1;
INSERT INTO sessions (user_id, scenario_id, is_completed) VALUES (:u1, 'market', true);
\set VERBOSITY terse
INSERT INTO sessions (user_id, scenario_id) VALUES (:u1, 'market');
\set VERBOSITY sqlstate
INSERT INTO sessions (user_id, scenario_id) VALUES (:u1, 'market');
-- Deleting sessions does not hand their slots back.
DELETE FROM sessions WHERE user_id = :u1;
INSERT INTO sessions (user_id, scenario_id) VALUES (:u1, 'market');
SELECT weekly_started_sessions, weekly_completed_sessions FROM profiles WHERE id = :u1;
-- A stale counter (last week's count; its reset date passed and the job has not run yet)
-- counts as zero ...
UPDATE profiles SET weekly_completed_sessions = 1, weekly_started_sessions = 1, week_reset_date = now() - interval '1 second' WHERE id = :u1;
INSERT INTO sessions (user_id, scenario_id) VALUES (:u1, 'market') RETURNING is_completed;
-- ... and completing a session with it starts the new week.
UPDATE sessions SET is_completed = true WHERE user_id = :u1 AND NOT is_completed;
SELECT weekly_started_sessions, weekly_completed_sessions, week_reset_date = next_week_start(now()) AS next_monday FROM profiles WHERE id = :u1;
UPDATE profiles SET weekly_session_limit = NULL WHERE id = :u1;
INSERT INTO sessions (user_id, scenario_id) VALUES (:u1, 'market') RETURNING is_completed;

-- Bad arguments to the jobs.
SELECT reset_weekly_limits(0);
SELECT reset_weekly_limits(-5);
SELECT delete_expired_sessions(NULL);
SELECT delete_expired_sessions('-1 day');
SELECT delete_old_logs(NULL);
SELECT delete_old_logs('-1 hour');
SELECT count(*) AS drifted FROM verify_counts();
