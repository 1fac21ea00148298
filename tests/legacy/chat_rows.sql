-- tests/legacy/chat_rows.sql
-- Production-like rows for the old "chat" database (load after supabase.sql, chat_schema.sql and
-- app_tables.sql). Deterministic: no random(), fixed uuids
--   kind || '-0000-4000-8000-' || n   (kind 00000000 users, 00000001 sessions, 00000002 messages,
--                                       00000003 patterns, 00000004 client_message_id,
--                                       00000005 behaviour events)
-- Timestamps are relative to W = this week's Monday 00:00 UTC at load time (history lies in the
-- four weeks before W, "this week" between W and now()), so every count below holds whenever the
-- file is loaded.
--
-- Part 1 loads everything the normal way, through the old triggers. Part 2 makes the ANOMALIES the
-- application's history left behind (triggers skipped with session_replication_role = replica, or
-- direct UPDATEs). README.md lists every anomaly with its count.

BEGIN;
SET LOCAL TimeZone = 'UTC';

CREATE FUNCTION pg_temp.uid(kind integer, n bigint) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$
  SELECT (lpad(kind::text, 8, '0') || '-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid
$$;

-- This week's Monday 00:00 UTC.
CREATE FUNCTION pg_temp.w() RETURNS timestamptz
LANGUAGE sql STABLE AS $$
  SELECT date_trunc('week', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
$$;

-- ============================================================================
-- Part 1: normal history, through the old triggers
-- ============================================================================

-- Sign-ups: on_auth_user_created creates each profile (week_reset_date = next Monday).
INSERT INTO auth.users (id, email, created_at)
SELECT pg_temp.uid(0, n),
       CASE WHEN n % 50 = 0 THEN 'User' || lpad(n::text, 3, '0') || '@Example.com'
            ELSE 'user' || lpad(n::text, 3, '0') || '@example.com' END,
       pg_temp.w() - interval '63 days' + n * interval '3 hours'
FROM generate_series(1, 240) AS n
ORDER BY n;

-- Profile edits by the users and the billing job (free tier: weekly limit 5). created_at is set
-- back to the sign-up time (the rows were created at sign-up in production).
UPDATE public.profiles p
SET display_name = 'User ' || n,
    avatar_url = CASE WHEN n % 3 = 0 THEN 'https://cdn.example.com/avatars/' || n || '.png' END,
    weekly_session_limit = CASE WHEN n % 4 = 0 THEN 5 END,
    created_at = u.created_at
FROM auth.users u,
     LATERAL (SELECT right(u.id::text, 12)::integer AS n) k
WHERE u.id = p.id;

INSERT INTO public.scenarios (id, title, emoji, description, system_prompt, sort_order, is_active, created_at) VALUES
  ('marketplace', 'At the marketplace', '🛒', 'Buy fruit and vegetables, ask for prices, haggle.',
   'You are a friendly market vendor in Valencia. Speak simple Spanish.', 1, true, '2025-09-01 10:00:00+00'),
  ('party', 'At a party', '🎉', 'Introduce yourself and make small talk.',
   'You are a guest at a birthday party. Ask the learner about themselves.', 2, true, '2025-09-01 10:00:00+00'),
  ('kebab', 'Ordering a kebab', '🥙', 'Order food late at night and pay.',
   'You run a kebab shop. Be quick and informal.', 3, true, '2025-09-01 10:00:00+00'),
  ('job_interview', 'Job interview', '💼', 'Answer questions about your experience.',
   'You are an interviewer for a hotel receptionist job.', 4, true, '2025-09-15 10:00:00+00'),
  ('doctor', 'At the doctor', '🩺', 'Describe symptoms and understand advice.',
   'You are a general practitioner. Speak slowly.', 5, false, '2025-09-15 10:00:00+00');

-- The sessions plan (whole seconds, so duration_seconds is exact): 3..9 sessions per user. History in the four weeks before W; for users with
-- u % 3 = 0 the last session (and for u % 6 = 0 the one before) is this week.
CREATE TEMP TABLE _s ON COMMIT DROP AS
WITH base AS (
  SELECT u, j, kk.k, row_number() OVER (ORDER BY u, j) AS sn
  FROM generate_series(1, 240) AS u
  CROSS JOIN LATERAL (SELECT 3 + u % 7 AS k) AS kk
  CROSS JOIN LATERAL generate_series(1, kk.k) AS j
), planned AS (
  SELECT b.*,
         (b.u % 3 = 0 AND b.j = b.k) OR (b.u % 6 = 0 AND b.j = b.k - 1) AS this_week,
         1 + b.sn % 5 AS p,                                             -- main-chat exchanges
         CASE WHEN b.sn % 3 = 0 THEN 2 * (1 + b.sn % 2) ELSE 0 END AS h  -- helper-chat messages
  FROM base b
)
SELECT pl.*,
       pg_temp.uid(1, pl.sn) AS id,
       pg_temp.uid(0, pl.u) AS user_id,
       2 * pl.p + pl.h AS m,
       CASE WHEN pl.this_week
            THEN (ARRAY['marketplace', 'party', 'kebab', 'job_interview'])[1 + pl.sn % 4]
            ELSE (ARRAY['marketplace', 'party', 'kebab', 'job_interview', 'doctor'])[1 + pl.sn % 5]
       END AS scenario_id,
       date_trunc('second', CASE WHEN pl.this_week
            THEN pg_temp.w() + (now() - pg_temp.w()) * CASE WHEN pl.j = pl.k THEN 0.6 ELSE 0.2 END
            ELSE pg_temp.w() - interval '28 days' + interval '1 day' * ((pl.j - 1) * 26.0 / pl.k)
                 + interval '1 hour' * (pl.u % 12)
       END) AS started_at,
       date_trunc('second', CASE WHEN pl.this_week THEN (now() - pg_temp.w()) * 0.1
            ELSE interval '1 minute' * (5 + pl.sn % 20)
       END) AS span,
       CASE WHEN pl.this_week THEN CASE WHEN pl.u % 2 = 0 THEN 'week_done' ELSE 'week_open' END
            ELSE CASE WHEN pl.sn % 10 <> 0 THEN 'hist_done' ELSE 'hist_open' END
       END AS kind
FROM planned pl;

INSERT INTO public.sessions (id, user_id, scenario_id, started_at)
SELECT id, user_id, scenario_id, started_at FROM _s ORDER BY sn;

-- Messages: main chat first (user / scenario alternating), then the helper chat (user / helper).
-- user_id is left NULL: populate_user_id_on_insert fills it; the count trigger bumps the session.
CREATE TEMP TABLE _m ON COMMIT DROP AS
SELECT s.sn, s.id AS session_id, i AS pos,
       CASE WHEN i <= 2 * s.p THEN 'main' ELSE 'helper' END AS chat_type,
       CASE WHEN i <= 2 * s.p THEN CASE WHEN i % 2 = 1 THEN 'user' ELSE 'scenario' END
            ELSE CASE WHEN (i - 2 * s.p) % 2 = 1 THEN 'user' ELSE 'helper' END
       END AS role,
       s.started_at + s.span * (i::float8 / (s.m + 1)) AS sent_at,
       row_number() OVER (ORDER BY s.sn, i) AS mn
FROM _s s
CROSS JOIN LATERAL generate_series(1, s.m) AS i;

INSERT INTO public.messages (id, session_id, role, chat_type, content, sent_at, client_message_id, token_count)
SELECT pg_temp.uid(2, mn),
       session_id,
       role::public.message_role,
       chat_type::public.chat_type_enum,
       CASE role
         WHEN 'user' THEN (ARRAY['Hola, buenos días.', '¿Cuánto cuesta esto?', 'Me gustaría probar algo nuevo.',
                                 '¿Puede repetirlo, por favor?', 'Perfecto, muchas gracias.', 'No entiendo esa palabra.'])[1 + mn % 6]
         WHEN 'scenario' THEN (ARRAY['¡Bienvenido! ¿Qué desea?', 'Son tres euros el kilo.', 'Claro, aquí tiene.',
                                     'Por supuesto. ¿Algo más?', '¡Qué bien! Cuéntame más.'])[1 + mn % 5]
         ELSE (ARRAY['Tip: "kilo" is used for weight, as in English.', 'Try the polite form: "¿Me podría...?"',
                     '"Cuesta" comes from the verb costar (o -> ue).', 'You can say "Otra vez, por favor" to ask for a repeat.'])[1 + mn % 4]
       END,
       sent_at,
       CASE WHEN role = 'user' THEN pg_temp.uid(4, mn) END,
       CASE WHEN role <> 'user' THEN 20 + (mn % 180)::integer END
FROM _m
ORDER BY mn;

-- Users finish their past sessions: completed_at is given, the triggers compute duration_seconds
-- and bump total/weekly counters on the profile.
UPDATE public.sessions s
SET is_completed = true, completed_at = x.started_at + x.span
FROM _s x
WHERE x.id = s.id AND x.kind = 'hist_done';

-- Monday's weekly job: week_reset_date was this Monday 00:00 UTC when it ran.
UPDATE public.profiles SET week_reset_date = pg_temp.w();
SELECT public.reset_weekly_limits();

-- This week's completions.
UPDATE public.sessions s
SET is_completed = true, completed_at = x.started_at + x.span
FROM _s x
WHERE x.id = s.id AND x.kind = 'week_done';

-- Application logs, oldest first (bigserial ids follow time).
INSERT INTO public.logs (session_id, user_id, level, event, message, metadata, request_id, created_at)
SELECT session_id, user_id, level, event, message, metadata, request_id, created_at
FROM (
  SELECT id AS session_id, user_id, 'info' AS level, 'session_started' AS event, 'Session started' AS message,
         jsonb_build_object('scenario_id', scenario_id) AS metadata, 'req_' || sn || '_start' AS request_id,
         started_at AS created_at, sn, 1 AS ord
  FROM _s
  UNION ALL
  SELECT id, user_id, 'info', 'session_completed', 'Session completed',
         jsonb_build_object('scenario_id', scenario_id, 'messages', m), 'req_' || sn || '_done',
         started_at + span, sn, 3
  FROM _s WHERE kind IN ('hist_done', 'week_done')
  UNION ALL
  SELECT id, user_id, 'error', 'llm_timeout', 'Upstream model timed out',
         jsonb_build_object('model', 'gpt-4o-mini', 'timeout_ms', 30000, 'attempt', 1 + sn % 3), 'req_' || sn || '_llm',
         started_at + span / 2, sn, 2
  FROM _s WHERE sn % 13 = 0
  UNION ALL
  SELECT id, user_id, 'warn', 'slow_response', 'Model response took longer than 5 s',
         jsonb_build_object('model', 'gpt-4o-mini', 'latency_ms', 5000 + sn * 3), 'req_' || sn || '_slow',
         started_at + span / 3, sn, 2
  FROM _s WHERE sn % 29 = 0
  UNION ALL
  SELECT NULL, NULL, 'debug', 'health_check', 'Daily health check',
         jsonb_build_object('db', 'ok', 'queue_depth', d % 4), NULL,
         pg_temp.w() - interval '35 days' + d * interval '1 day' + interval '4 hours', 0, 0
  FROM generate_series(0, 34) AS d
) l
ORDER BY created_at, sn, ord;

-- The nightly cleanup job (nothing is 90 days old yet; it logs its run).
SELECT public.delete_expired_sessions();

-- Behaviour tracking (000): 100 app users plus the admin account, sessions 3 days apart,
-- events in time order (the row trigger keeps insights and session summaries).
CREATE TEMP TABLE _be ON COMMIT DROP AS
WITH cust AS (
  SELECT u, pg_temp.uid(0, u)::text AS customer_id, 1 + u % 5 AS ns FROM generate_series(1, 100) AS u
  UNION ALL
  SELECT 0, 'dru78DR9789SDF862', 4
), sess AS (
  SELECT c.u, c.customer_id, c.ns, j,
         CASE WHEN c.u = 0 THEN 'bs_admin_' || j ELSE 'bs_' || lpad(c.u::text, 3, '0') || '_' || j END AS session_id,
         pg_temp.w() - interval '1 day' * ((c.ns - j) * 3 + 1) + interval '1 hour' * (c.u % 12) AS start_ts,
         5 + (c.u * 7 + j) % 13 AS ne
  FROM cust c
  CROSS JOIN LATERAL generate_series(1, c.ns) AS j
), ev AS (
  SELECT s.*, e,
         (ARRAY['page_view', 'tool_usage', 'tool_usage', 'search', 'export_action', 'feature_discovery', 'error'])[1 + (e + s.j) % 7] AS event_type,
         s.start_ts + interval '47 seconds' * e AS ts
  FROM sess s
  CROSS JOIN LATERAL generate_series(1, s.ne) AS e
)
SELECT ev.*,
       CASE ev.event_type
         WHEN 'export_action' THEN 'high'
         WHEN 'error' THEN CASE WHEN ev.e % 2 = 0 THEN 'critical' ELSE 'medium' END
         WHEN 'tool_usage' THEN 'medium'
         WHEN 'feature_discovery' THEN 'medium'
         ELSE 'low'
       END AS business_impact,
       CASE WHEN ev.event_type IN ('tool_usage', 'export_action')
            THEN (ARRAY['sql_editor', 'chart_builder', 'csv_export', 'ai_assistant'])[1 + (ev.e * 7 + ev.j + ev.u) % 4]
       END AS tool_name,
       row_number() OVER (ORDER BY ev.u, ev.j, ev.e) AS en
FROM ev;

INSERT INTO public.behavior_events (id, customer_id, session_id, event_type, business_impact, tool_name, page_url,
                                    properties, duration_ms, event_timestamp, expires_at, user_agent, referrer, created_at)
SELECT pg_temp.uid(5, en), customer_id, session_id, event_type, business_impact, tool_name,
       '/app/' || coalesce(tool_name, CASE event_type WHEN 'search' THEN 'search' ELSE 'dashboard' END),
       jsonb_build_object('device', CASE WHEN u % 4 = 0 THEN 'mobile' ELSE 'desktop' END, 'step', e),
       120 * e,
       ts,
       ts + interval '180 days',
       CASE WHEN u % 4 = 0 THEN 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X)'
            ELSE 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15' END,
       CASE WHEN e = 1 THEN 'https://www.google.com/' END,
       ts
FROM _be
ORDER BY en;

-- 000's backfill, run by the nightly job: recency from the newest event.
UPDATE public.behavior_insights bi
SET
  last_session_timestamp = sub.last_event_ts,
  days_since_last_activity = CASE
    WHEN sub.last_event_ts IS NOT NULL
    THEN GREATEST(0, FLOOR(EXTRACT(EPOCH FROM (NOW() - sub.last_event_ts)) / 86400)::int)
    ELSE NULL
  END
FROM (
  SELECT customer_id, MAX(event_timestamp) AS last_event_ts
  FROM public.behavior_events
  GROUP BY customer_id
) sub
WHERE bi.customer_id = sub.customer_id;

-- The analytics job's own columns (not carried by pg_assistant).
UPDATE public.behavior_insights
SET engagement_score = LEAST(99.99, total_events * 0.75)::numeric(5,2),
    churn_risk = CASE WHEN days_since_last_activity > 14 THEN 'high'
                      WHEN days_since_last_activity > 7 THEN 'medium'
                      ELSE 'low' END
WHERE total_events > 0;

-- Behaviour patterns (004): users 1..40 own 7 patterns each; embeddings in 8 clusters;
-- pattern numbers divisible by 50 were saved before embeddings were computed (NULL).
INSERT INTO public.behavior_patterns (id, user_id, trigger, trigger_embedding, context, actions, final_outcome,
                                      confidence, use_count, last_used_at, created_at, updated_at)
SELECT pg_temp.uid(3, pn),
       pg_temp.uid(0, 1 + (pn - 1) / 7),
       (ARRAY['Fix failing TypeScript build', 'Add REST endpoint for invoices', 'Refactor slow database query',
              'Write unit tests for the parser', 'Update npm dependencies', 'Debug production 500 error',
              'Create database migration', 'Review pull request'])[1 + pn % 8] || ' #' || pn,
       CASE WHEN pn % 50 = 0 THEN NULL ELSE
         (SELECT array_agg((sin(i * 0.37 + (pn % 8) * 1.9) + 0.15 * cos(i * 0.11 * (pn % 5 + 1) + pn))::real ORDER BY i)
          FROM generate_series(1, 1536) AS i)::vector(1536)
       END,
       jsonb_build_object(
         'directory', '/home/dev/project-' || (pn % 6),
         'project_type', (ARRAY['typescript-api', 'python-cli', 'react-app'])[1 + pn % 3],
         'branch', CASE WHEN pn % 4 = 0 THEN 'main' ELSE 'feature/task-' || pn END,
         'files_touched', jsonb_build_array('src/index.ts', 'src/module' || (pn % 9) || '.ts')),
       jsonb_build_array(
         jsonb_build_object('tool', 'Read', 'parameters', jsonb_build_object('path', 'src/index.ts'),
                            'outcome', 'success', 'timestamp', '2025-12-01T10:00:00Z', 'duration_ms', 100 + pn),
         jsonb_build_object('tool', CASE WHEN pn % 2 = 0 THEN 'Edit' ELSE 'Bash' END,
                            'parameters', jsonb_build_object('target', 'src/module' || (pn % 9) || '.ts'),
                            'outcome', CASE WHEN pn % 5 = 4 THEN 'failure' ELSE 'success' END,
                            'timestamp', '2025-12-01T10:00:05Z', 'duration_ms', 200 + pn)),
       (ARRAY['success', 'success', 'success', 'partial', 'failed'])[1 + pn % 5],
       0.5 + (pn % 50) / 100.0,
       1 + pn % 9,
       CASE WHEN pn % 9 > 0 THEN pg_temp.w() - interval '1 day' * (pn % 20) END,
       pg_temp.w() - interval '40 days' + interval '1 hour' * pn,
       pg_temp.w() - interval '40 days' + interval '1 hour' * pn
FROM generate_series(1, 280) AS pn
ORDER BY pn;

-- Recall through the old function (bumps use_count and last_used_at).
SELECT increment_pattern_use_count(pg_temp.uid(3, pn)) FROM generate_series(1, 10) AS pn;

-- ============================================================================
-- Part 2: ANOMALIES left by the application's history
-- ============================================================================

-- Sessions picked for the anomalies (disjoint sets; none of them is this week's).
CREATE TEMP TABLE _anom ON COMMIT DROP AS
SELECT 'main_count_high' AS a, id, sn FROM
  (SELECT id, sn, row_number() OVER (ORDER BY sn) AS r FROM _s WHERE kind = 'hist_done' AND h = 0) q
WHERE r IN (100, 200, 300, 400)
UNION ALL
SELECT 'helper_count_zeroed', id, sn FROM
  (SELECT id, sn, row_number() OVER (ORDER BY sn) AS r FROM _s WHERE kind = 'hist_done' AND h > 0) q
WHERE r IN (50, 150, 250)
UNION ALL
SELECT 'late_messages', id, sn FROM
  (SELECT id, sn, row_number() OVER (ORDER BY sn) AS r FROM _s WHERE kind = 'hist_done' AND h = 0) q
WHERE r IN (110, 210, 310)
UNION ALL
SELECT 'no_duration', id, sn FROM
  (SELECT id, sn, row_number() OVER (ORDER BY sn) AS r FROM _s WHERE kind = 'hist_done' AND h = 0) q
WHERE r = 410;

-- A1: 4 sessions whose message_count_main is 2 too high (a retry bug double-counted).
UPDATE public.sessions SET message_count_main = message_count_main + 2
WHERE id IN (SELECT id FROM _anom WHERE a = 'main_count_high');

-- A2: 3 sessions whose message_count_helper was zeroed although they have helper messages.
UPDATE public.sessions SET message_count_helper = 0
WHERE id IN (SELECT id FROM _anom WHERE a = 'helper_count_zeroed');

SET LOCAL session_replication_role = replica;

-- A3: 5 messages written into 3 completed sessions after completion, by a path that skipped the
-- triggers (so no guard, no count): 2 main messages in each of the first two sessions, 1 helper
-- message in the third. Their sessions' counters miss them.
INSERT INTO public.messages (id, session_id, user_id, role, chat_type, content, sent_at, client_message_id, token_count)
SELECT pg_temp.uid(2, 900000 + x.k), s.id, s.user_id, x.role::public.message_role, x.chat_type::public.chat_type_enum,
       x.content, s.completed_at + x.k * interval '5 minutes',
       CASE WHEN x.role = 'user' THEN pg_temp.uid(4, 900000 + x.k) END,
       CASE WHEN x.role <> 'user' THEN 42 END
FROM (SELECT id, row_number() OVER (ORDER BY sn) AS r FROM _anom WHERE a = 'late_messages') t
JOIN public.sessions s ON s.id = t.id
JOIN (VALUES (1, 1, 'user', 'main', '¿Sigue ahí?'),
             (1, 2, 'scenario', 'main', 'Sí, aquí estoy.'),
             (2, 3, 'user', 'main', 'Una pregunta más, por favor.'),
             (2, 4, 'scenario', 'main', 'Claro, dime.'),
             (3, 5, 'helper', 'helper', 'Tip: "dime" is the informal imperative of decir.')
     ) AS x(r, k, role, chat_type, content) ON x.r = t.r;

-- A4: 1 completed session whose duration_seconds was lost (a manual fix-up cleared it).
UPDATE public.sessions SET duration_seconds = NULL
WHERE id IN (SELECT id FROM _anom WHERE a = 'no_duration');

-- A5: 1 auth user created by a bulk import that bypassed on_auth_user_created: no profile.
INSERT INTO auth.users (id, email, created_at)
VALUES (pg_temp.uid(0, 241), 'legacy-import@example.com', pg_temp.w() - interval '45 days');

-- B1: 12 behaviour events of 2 customers that have no behavior_insights row and no
-- behavior_sessions row at all (7 for cust_legacy_1 in bs_legacy_1, 5 for cust_legacy_2 in bs_legacy_2).
INSERT INTO public.behavior_events (id, customer_id, session_id, event_type, business_impact, tool_name, page_url,
                                    properties, duration_ms, event_timestamp, expires_at, created_at)
SELECT pg_temp.uid(5, 900000 + n),
       'cust_legacy_' || c, 'bs_legacy_' || c,
       (ARRAY['page_view', 'tool_usage', 'export_action'])[1 + n % 3],
       (ARRAY['low', 'medium', 'high'])[1 + n % 3],
       CASE WHEN n % 3 > 0 THEN 'sql_editor' END,
       '/app/legacy',
       jsonb_build_object('device', 'desktop', 'imported', true),
       50 * n,
       pg_temp.w() - interval '10 days' + n * interval '1 minute',
       pg_temp.w() - interval '10 days' + n * interval '1 minute' + interval '180 days',
       pg_temp.w() - interval '10 days' + n * interval '1 minute'
FROM generate_series(1, 12) AS n
CROSS JOIN LATERAL (SELECT CASE WHEN n <= 7 THEN 1 ELSE 2 END AS c) AS cc;

-- B2: 3 customers (users 10, 20, 30) got 2 more events each in their latest session that the
-- trigger never saw: insights total_events / high_impact_events 2 too low, events_by_type
-- export_action 2 too low, last_session_timestamp older than the newest event; the session
-- summary's event_count / high_impact_count 2 too low and ended_at stale.
INSERT INTO public.behavior_events (id, customer_id, session_id, event_type, business_impact, tool_name, page_url,
                                    properties, duration_ms, event_timestamp, expires_at, created_at)
SELECT pg_temp.uid(5, 910000 + b.u * 10 + x),
       b.customer_id, b.session_id, 'export_action', 'high', 'csv_export', '/app/csv_export',
       jsonb_build_object('device', 'desktop', 'step', b.e + x),
       300,
       b.ts + x * interval '47 seconds',
       b.ts + x * interval '47 seconds' + interval '180 days',
       b.ts + x * interval '47 seconds'
FROM (SELECT DISTINCT ON (u) u, customer_id, session_id, e, ts
      FROM _be WHERE u IN (10, 20, 30) ORDER BY u, j DESC, e DESC) AS b
CROSS JOIN generate_series(1, 2) AS x;

SET LOCAL session_replication_role = origin;

-- A6: 3 profiles whose total_completed_sessions drifted (users 17: +1, 58: -1, 133: +3).
UPDATE public.profiles SET total_completed_sessions = total_completed_sessions + 1 WHERE id = pg_temp.uid(0, 17);
UPDATE public.profiles SET total_completed_sessions = total_completed_sessions - 1 WHERE id = pg_temp.uid(0, 58);
UPDATE public.profiles SET total_completed_sessions = total_completed_sessions + 3 WHERE id = pg_temp.uid(0, 133);

-- A7: 2 profiles whose weekly_completed_sessions drifted (user 12 completed 2 sessions this week
-- but shows 0; user 25 completed none this week but shows 2).
UPDATE public.profiles SET weekly_completed_sessions = 0 WHERE id = pg_temp.uid(0, 12);
UPDATE public.profiles SET weekly_completed_sessions = 2 WHERE id = pg_temp.uid(0, 25);

-- B3: the user without a profile (A5) saved 4 patterns through the API (all with embeddings).
INSERT INTO public.behavior_patterns (id, user_id, trigger, trigger_embedding, context, actions, final_outcome,
                                      confidence, use_count, created_at, updated_at)
SELECT pg_temp.uid(3, pn),
       pg_temp.uid(0, 241),
       'Imported workflow #' || pn,
       (SELECT array_agg((sin(i * 0.37 + (pn % 8) * 1.9) + 0.15 * cos(i * 0.11 * (pn % 5 + 1) + pn))::real ORDER BY i)
        FROM generate_series(1, 1536) AS i)::vector(1536),
       jsonb_build_object('directory', '/srv/import', 'project_type', 'python-cli', 'branch', 'main',
                          'files_touched', jsonb_build_array('import.py')),
       jsonb_build_array(jsonb_build_object('tool', 'Bash', 'parameters', jsonb_build_object('cmd', 'python import.py'),
                                            'outcome', 'success', 'timestamp', '2025-11-20T08:00:00Z', 'duration_ms', 1500)),
       'success', 0.8, 1,
       pg_temp.w() - interval '20 days', pg_temp.w() - interval '20 days'
FROM generate_series(281, 284) AS pn;

COMMIT;

ANALYZE;
