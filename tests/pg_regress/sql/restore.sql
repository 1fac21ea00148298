-- Restoring a dump: pg_restore and plain dumps SET row_security = off and load with COPY.
-- Restored rows carry their counters and may belong to completed sessions; the rules neither
-- re-count nor re-judge them. Any other COPY is an ordinary insert.
SET client_min_messages = warning;
TRUNCATE tenants, profiles, scenarios, sessions, messages, logs, behavior_patterns, conversations, conversation_messages, feedback, usage_metrics;
\set VERBOSITY sqlstate

-- As a dump has them: a profile whose counters already include its completed session (of an
-- earlier week: a fixed date, so it counts in the total only) ...
SET row_security = off;
COPY profiles (id, email, total_completed_sessions, weekly_completed_sessions, weekly_session_limit, week_reset_date) FROM stdin;
10000000-0000-4000-8000-000000000001	restored@example.com	1	0	1	2099-01-05 00:00:00+00
\.
COPY scenarios (id, title) FROM stdin;
market	Marketplace
\.
-- ... that session, completed, with its counts (the weekly limit of 1 is already reached) ...
COPY sessions (id, user_id, scenario_id, started_at, is_completed, completed_at, duration_seconds, message_count_main, message_count_helper) FROM stdin;
a0000000-0000-4000-8000-000000000001	10000000-0000-4000-8000-000000000001	market	2026-11-20 10:00:00+00	t	2026-11-20 10:05:00+00	300	2	1
\.
-- ... and its messages, in the completed session.
COPY messages (id, session_id, user_id, role, chat_type, content, sent_at) FROM stdin;
b0000000-0000-4000-8000-000000000001	a0000000-0000-4000-8000-000000000001	10000000-0000-4000-8000-000000000001	scenario	main	Welcome!	2026-11-20 10:00:01+00
b0000000-0000-4000-8000-000000000002	a0000000-0000-4000-8000-000000000001	10000000-0000-4000-8000-000000000001	user	main	Hello	2026-11-20 10:00:02+00
b0000000-0000-4000-8000-000000000003	a0000000-0000-4000-8000-000000000001	10000000-0000-4000-8000-000000000001	user	helper	Help?	2026-11-20 10:00:03+00
\.
RESET row_security;
SELECT total_completed_sessions, weekly_completed_sessions FROM profiles;
SELECT message_count_main, message_count_helper, duration_seconds FROM sessions;
SELECT count(*) AS drifted FROM verify_counts();

-- With row_security on, COPY is an ordinary insert: judged and counted.
COPY messages (session_id, role, chat_type, content) FROM stdin;
a0000000-0000-4000-8000-000000000001	user	main	late
\.
UPDATE profiles SET weekly_session_limit = NULL;
COPY sessions (id, user_id, scenario_id) FROM stdin;
a0000000-0000-4000-8000-000000000002	10000000-0000-4000-8000-000000000001	market
\.
COPY messages (session_id, role, chat_type, content) FROM stdin;
a0000000-0000-4000-8000-000000000002	user	main	one
a0000000-0000-4000-8000-000000000002	user	helper	two
\.
SELECT id, message_count_main, message_count_helper FROM sessions ORDER BY id;
-- INSERT is never a restore, whatever row_security says.
SET row_security = off;
INSERT INTO messages (session_id, role, chat_type, content) VALUES ('a0000000-0000-4000-8000-000000000001', 'user', 'main', 'late');
RESET row_security;
SELECT count(*) AS drifted FROM verify_counts();
