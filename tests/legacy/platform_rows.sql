-- tests/legacy/platform_rows.sql
-- Production-like rows for the old "platform" database (load after supabase.sql,
-- platform_schema.sql and app_tables.sql). Deterministic: no random(), fixed uuids
--   kind || '-0000-4000-8000-' || n   (kind 00000000 users, 00000010 tenants, 00000020 conversations,
--                                       00000021 messages, 00000022 feedback, 00000030 web events,
--                                       00000031 funnel steps, 00000032 optimisation proposals,
--                                       00000033 A/B tests, 00000034 variant assignments,
--                                       00000035 user_sessions)
-- Timestamps are relative to D = today 00:00 UTC at load time (all history lies before D), so every
-- count below, including the materialized views', holds whenever the file is loaded.
--
-- Part 1 loads everything the normal way, through the old triggers and increment_usage_metrics().
-- Part 2 makes the ANOMALIES the application's history left behind. README.md lists them.

BEGIN;
SET LOCAL TimeZone = 'UTC';

CREATE FUNCTION pg_temp.uid(kind integer, n bigint) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$
  SELECT (lpad(kind::text, 8, '0') || '-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid
$$;

-- Today 00:00 UTC.
CREATE FUNCTION pg_temp.d() RETURNS timestamptz
LANGUAGE sql STABLE AS $$
  SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
$$;

-- ============================================================================
-- Part 1: normal history
-- ============================================================================

INSERT INTO public.tenants (id, name, slug, plan, created_at, updated_at)
SELECT pg_temp.uid(10, n),
       (ARRAY['Acme Corp', 'Globex', 'Initech', 'Umbrella Health', 'Stark Logistics', 'Wayne Media'])[n],
       (ARRAY['acme', 'globex', 'initech', 'umbrella-health', 'stark-logistics', 'wayne-media'])[n],
       (ARRAY['enterprise', 'pro', 'pro', 'free', 'enterprise', 'free'])[n],
       pg_temp.d() - interval '120 days' + n * interval '1 day',
       pg_temp.d() - interval '120 days' + n * interval '1 day'
FROM generate_series(1, 6) AS n;

-- 150 members, 25 per tenant: the first is the owner, the next two admins.
INSERT INTO auth.users (id, email, created_at)
SELECT pg_temp.uid(0, n),
       'member' || lpad(n::text, 3, '0') || '@' || t.slug || '.example.com',
       pg_temp.d() - interval '100 days' + n * interval '2 hours'
FROM generate_series(1, 150) AS n
JOIN public.tenants t ON t.id = pg_temp.uid(10, 1 + (n - 1) / 25);

INSERT INTO public.users (id, tenant_id, email, name, role, last_login_at, created_at, updated_at)
SELECT u.id,
       pg_temp.uid(10, 1 + (n - 1) / 25),
       u.email,
       'Member ' || n,
       CASE WHEN (n - 1) % 25 = 0 THEN 'owner' WHEN (n - 1) % 25 IN (1, 2) THEN 'admin' ELSE 'user' END,
       pg_temp.d() - interval '1 day' * (n % 10) + interval '9 hours',
       u.created_at,
       u.created_at
FROM auth.users u
CROSS JOIN LATERAL (SELECT right(u.id::text, 12)::integer AS n) k
ORDER BY n;

-- 6 conversations per member, a week apart; every 7th is archived.
CREATE TEMP TABLE _c ON COMMIT DROP AS
SELECT cn,
       pg_temp.uid(20, cn) AS id,
       pg_temp.uid(0, 1 + (cn - 1) / 6) AS user_id,
       pg_temp.uid(10, 1 + ((cn - 1) / 6 - 0) / 25) AS tenant_id,
       1 + cn % 6 AS q,                 -- user/assistant exchanges
       cn % 10 = 0 AS has_system,
       pg_temp.d() - interval '44 days' + ((cn - 1) % 6) * interval '7 days'
         + ((cn - 1) / 6) * interval '67 minutes' AS created_at
FROM generate_series(1, 900) AS cn;

INSERT INTO public.conversations (id, tenant_id, user_id, title, is_archived, metadata, created_at, updated_at)
SELECT id, tenant_id, user_id,
       (ARRAY['Quarterly report draft', 'SQL help', 'Marketing copy ideas', 'Refund policy question',
              'Onboarding checklist', 'Contract summary', 'Bug triage', 'Translate product page'])[1 + cn % 8],
       cn % 7 = 0,
       jsonb_build_object('client', CASE WHEN cn % 3 = 0 THEN 'mobile' ELSE 'web' END),
       created_at, created_at
FROM _c
ORDER BY cn;

CREATE TEMP TABLE _m ON COMMIT DROP AS
SELECT c.cn, c.id AS conversation_id, c.tenant_id, c.user_id AS owner_id, pos,
       CASE WHEN pos = 0 THEN 'system' WHEN pos % 2 = 1 THEN 'user' ELSE 'assistant' END AS role,
       c.created_at + pos * interval '2 minutes' AS created_at,
       row_number() OVER (ORDER BY c.cn, pos) AS mn
FROM _c c
CROSS JOIN LATERAL generate_series(CASE WHEN c.has_system THEN 0 ELSE 1 END, 2 * c.q) AS pos;

-- trigger_messages_update_conversation bumps message_count / last_message_at / updated_at.
INSERT INTO public.messages (id, conversation_id, tenant_id, user_id, role, content, model,
                             input_tokens, output_tokens, latency_ms, created_at)
SELECT pg_temp.uid(21, mn), conversation_id, tenant_id,
       CASE WHEN role = 'user' THEN owner_id END,
       role,
       CASE role
         WHEN 'system' THEN 'You are a concise assistant for the company''s staff.'
         WHEN 'user' THEN (ARRAY['Can you summarise this for me?', 'Write a first draft, please.',
                                 'What does this error mean?', 'Make it shorter.', 'Give me three options.'])[1 + mn % 5]
         ELSE (ARRAY['Here is a short summary of the main points.', 'Sure, here is a first draft.',
                     'The error means the column does not exist in that table.', 'Shorter version below.',
                     'Option A, option B and option C, each with pros and cons.'])[1 + mn % 5]
       END,
       CASE WHEN role = 'assistant' THEN (ARRAY['gpt-4o-mini', 'gpt-4o', 'claude-3-5-sonnet'])[1 + mn % 3] END,
       CASE WHEN role = 'assistant' THEN 200 + (mn * 37) % 800 ELSE 0 END,
       CASE WHEN role = 'assistant' THEN 50 + (mn * 53) % 600 ELSE 0 END,
       CASE WHEN role = 'assistant' THEN 400 + (mn * 71) % 3000 END,
       created_at
FROM _m
ORDER BY mn;

-- The app records usage for every assistant reply.
DO $$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT m.tenant_id, m.owner_id, m.created_at::date AS day, x.input_tokens, x.output_tokens
    FROM _m m
    JOIN public.messages x ON x.id = pg_temp.uid(21, m.mn)
    WHERE m.role = 'assistant'
    ORDER BY m.mn
  LOOP
    PERFORM public.increment_usage_metrics(
      r.tenant_id, r.owner_id, r.day, r.input_tokens, r.output_tokens,
      round((r.input_tokens * 0.15 + r.output_tokens * 0.60) / 1000000.0, 6));
  END LOOP;
END
$$;

-- Thumbs up / down on every 7th assistant reply, by the conversation's owner.
INSERT INTO public.feedback (id, message_id, tenant_id, user_id, rating, comment, tags, created_at, updated_at)
SELECT pg_temp.uid(22, mn), pg_temp.uid(21, mn), tenant_id, owner_id,
       CASE WHEN mn % 3 = 0 THEN -1 ELSE 1 END,
       CASE WHEN mn % 3 = 0 THEN 'Not what I asked for.' WHEN mn % 5 = 0 THEN 'Great answer, thanks!' END,
       CASE WHEN mn % 3 = 0 THEN ARRAY['inaccurate'] ELSE ARRAY[]::text[] END,
       created_at + interval '1 minute', created_at + interval '1 minute'
FROM _m
WHERE role = 'assistant' AND mn % 7 = 0
ORDER BY mn;

-- Some users changed their mind (trigger_feedback_updated_at stamps updated_at).
UPDATE public.feedback SET rating = -rating, comment = 'Changed my mind.'
WHERE id IN (SELECT pg_temp.uid(22, mn) FROM _m WHERE role = 'assistant' AND mn % 7 = 0 AND mn % 11 = 0);

-- Web analytics (002). 1200 visits over the last 40 days.
CREATE TEMP TABLE _us ON COMMIT DROP AS
SELECT n,
       'sess_' || lpad(n::text, 5, '0') AS session_id,
       (ARRAY['desktop', 'mobile', 'tablet'])[1 + n % 3] AS device_type,
       (ARRAY['/', '/pricing', '/features', '/blog/ai-assistants', '/signup'])[1 + n % 5] AS landing_page,
       pg_temp.d() - interval '40 days' + (n - 1) * interval '48 minutes' AS created_at
FROM generate_series(1, 1200) AS n;

INSERT INTO public.user_sessions (id, session_id, user_agent, referrer, landing_page, device_type, screen_resolution,
                                  language, country_code, created_at, updated_at, page_count)
SELECT pg_temp.uid(35, n), session_id,
       CASE device_type
         WHEN 'desktop' THEN 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0'
         WHEN 'mobile' THEN 'Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/126.0 Mobile'
         ELSE 'Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) Safari/604.1' END,
       (ARRAY['https://www.google.com/', 'https://news.ycombinator.com/', NULL, 'https://twitter.com/'])[1 + n % 4],
       landing_page, device_type,
       CASE device_type WHEN 'desktop' THEN '1920x1080' WHEN 'mobile' THEN '390x844' ELSE '820x1180' END,
       (ARRAY['en', 'es', 'de', 'fr'])[1 + n % 4],
       (ARRAY['US', 'ES', 'DE', 'FR', 'GB'])[1 + n % 5],
       created_at, created_at,
       1 + n % 8
FROM _us
ORDER BY n;

-- The beacon's exit ping: calculate_session_duration_trigger measures the visit.
UPDATE public.user_sessions s
SET exit_page = CASE WHEN u.n % 4 = 0 THEN '/signup' ELSE u.landing_page END,
    exit_reason = (ARRAY['timeout', 'navigation', 'close', 'refresh'])[1 + u.n % 4]
FROM _us u
WHERE u.session_id = s.session_id AND u.n % 5 <> 0;

CREATE TEMP TABLE _we ON COMMIT DROP AS
SELECT u.n, u.session_id, u.landing_page, u.device_type, e,
       (ARRAY['page_view', 'click', 'scroll', 'hover', 'click', 'rage_click', 'hesitation', 'form_start',
              'form_submit', 'form_abandon', 'error', 'scroll_depth', 'time_on_element'])[1 + (u.n * 3 + e) % 13] AS event_type,
       1 + (u.n + e) % 5 AS el,
       u.created_at + e * interval '20 seconds' AS ts,
       row_number() OVER (ORDER BY u.n, e) AS en
FROM _us u
CROSS JOIN LATERAL generate_series(1, 3 + u.n % 6) AS e;

INSERT INTO public.behavior_events (id, session_id, event_type, element_path, element_type, element_text,
                                    coordinates, viewport_size, event_data, "timestamp", page_url, component_id, metadata)
SELECT pg_temp.uid(30, en), session_id, event_type,
       CASE WHEN event_type IN ('page_view', 'scroll', 'scroll_depth') THEN NULL
            ELSE (ARRAY['button#signup-cta', 'form#lead > input[name=email]', 'nav > a.pricing',
                        'div.pricing-table > button.choose-plan', 'form#lead > button[type=submit]'])[el] END,
       CASE WHEN event_type IN ('page_view', 'scroll', 'scroll_depth') THEN NULL
            ELSE (ARRAY['button', 'input', 'a', 'button', 'button'])[el] END,
       CASE WHEN event_type IN ('page_view', 'scroll', 'scroll_depth') THEN NULL
            ELSE (ARRAY['Get started', NULL, 'Pricing', 'Choose plan', 'Send'])[el] END,
       CASE WHEN event_type IN ('click', 'rage_click', 'hover') THEN jsonb_build_object('x', 100 + (en * 7) % 1200, 'y', 80 + (en * 11) % 700) END,
       CASE device_type WHEN 'desktop' THEN '{"w": 1440, "h": 900}'::jsonb
                        WHEN 'mobile' THEN '{"w": 390, "h": 844}'::jsonb
                        ELSE '{"w": 820, "h": 1180}'::jsonb END,
       CASE event_type
         WHEN 'hesitation' THEN jsonb_build_object('hesitation_ms', 800 + (n * 7 + e) % 4000)
         WHEN 'scroll_depth' THEN jsonb_build_object('percentage', (n * 13 + e) % 101)
         WHEN 'rage_click' THEN jsonb_build_object('clicks', 3 + e % 4)
         WHEN 'error' THEN jsonb_build_object('message', 'Validation failed: email')
         ELSE '{}'::jsonb END,
       ts,
       CASE WHEN el IN (2, 5) THEN '/signup' ELSE landing_page END,
       CASE WHEN event_type IN ('page_view', 'scroll', 'scroll_depth') THEN NULL
            ELSE (ARRAY['hero_cta', 'lead_form', 'nav_menu', 'pricing_table', 'lead_form'])[el] END,
       jsonb_build_object('sdk', 'beacon-1.4')
FROM _we
ORDER BY en;

-- Funnels: every 3rd visit entered lead_capture (1..4 steps), every 10th pricing_to_signup (2 steps).
INSERT INTO public.conversion_funnels (id, funnel_name, step_name, step_order, session_id, entered_at, exited_at,
                                       duration_seconds, dropoff_reason, metadata)
SELECT pg_temp.uid(31, row_number() OVER (ORDER BY f.n, f.funnel_name, f.step)),
       f.funnel_name, f.step_name, f.step, f.session_id,
       f.created_at + f.step * interval '30 seconds',
       CASE WHEN f.step < f.steps THEN f.created_at + (f.step + 1) * interval '30 seconds' END,
       CASE WHEN f.step < f.steps THEN 30 END,
       CASE WHEN f.step = f.steps AND f.steps < f.max_steps THEN 'abandoned' END,
       '{}'::jsonb
FROM (
  SELECT u.n, u.session_id, u.created_at, 'lead_capture' AS funnel_name, 4 AS max_steps, 1 + u.n % 4 AS steps, s AS step,
         (ARRAY['landing', 'form_start', 'form_submit', 'confirmation'])[s] AS step_name
  FROM _us u CROSS JOIN LATERAL generate_series(1, 1 + u.n % 4) AS s
  WHERE u.n % 3 = 0
  UNION ALL
  SELECT u.n, u.session_id, u.created_at, 'pricing_to_signup', 2, 2, s,
         (ARRAY['pricing', 'signup'])[s]
  FROM _us u CROSS JOIN LATERAL generate_series(1, 2) AS s
  WHERE u.n % 10 = 0
) f;

INSERT INTO public.optimization_history (id, proposal_id, status, friction_point, component_id, page_url, change_description,
                                         proposed_changes, ai_confidence, expected_impact, actual_impact, pr_url, pr_number,
                                         created_at, implemented_at, tested_at, deployed_at, rollback_reason, metadata)
SELECT pg_temp.uid(32, n),
       'prop-' || lpad(n::text, 3, '0'),
       st,
       (ARRAY['rage clicks on signup CTA', 'email field hesitation', 'pricing table confusion', 'form abandon on submit'])[1 + n % 4],
       (ARRAY['hero_cta', 'lead_form', 'pricing_table', 'lead_form'])[1 + n % 4],
       (ARRAY['/', '/signup', '/pricing', '/signup'])[1 + n % 4],
       'Proposal ' || n || ': ' || (ARRAY['enlarge the button', 'inline email validation', 'simplify plan names', 'shorter form'])[1 + n % 4],
       jsonb_build_object('css', jsonb_build_object('padding', (8 + n % 8) || 'px'), 'copy_change', n % 2 = 0),
       0.55 + (n % 40) / 100.0,
       0.05 + (n % 10) / 100.0,
       CASE WHEN st IN ('implemented', 'testing', 'rolled_back') THEN 0.02 + (n % 7) / 100.0 END,
       CASE WHEN st IN ('implemented', 'testing', 'rolled_back') THEN 'https://github.com/example/site/pull/' || (100 + n) END,
       CASE WHEN st IN ('implemented', 'testing', 'rolled_back') THEN 100 + n END,
       pg_temp.d() - interval '30 days' + n * interval '1 day',
       CASE WHEN st IN ('implemented', 'testing', 'rolled_back') THEN pg_temp.d() - interval '30 days' + n * interval '1 day' + interval '2 hours' END,
       CASE WHEN st IN ('testing', 'implemented', 'rolled_back') THEN pg_temp.d() - interval '30 days' + n * interval '1 day' + interval '3 hours' END,
       CASE WHEN st IN ('implemented', 'rolled_back') THEN pg_temp.d() - interval '30 days' + n * interval '1 day' + interval '4 hours' END,
       CASE WHEN st = 'rolled_back' THEN 'Conversion dropped 4% in the first day' END,
       '{}'::jsonb
FROM generate_series(1, 24) AS n
CROSS JOIN LATERAL (SELECT (ARRAY['proposed', 'approved', 'rejected', 'implemented', 'testing', 'rolled_back', 'archived'])[1 + n % 7] AS st) AS s;

INSERT INTO public.a_b_tests (id, test_id, test_name, component_id, variant_a, variant_b, status, start_date, end_date,
                              target_conversion, sample_size, confidence_threshold, winner_variant, created_at, metadata)
SELECT pg_temp.uid(33, n),
       'ab-' || lpad(n::text, 3, '0'),
       (ARRAY['CTA colour', 'Email field label', 'Plan names', 'Form length', 'Hero headline', 'Nav order'])[n],
       (ARRAY['hero_cta', 'lead_form', 'pricing_table', 'lead_form', 'hero_cta', 'nav_menu'])[n],
       jsonb_build_object('label', 'control'),
       jsonb_build_object('label', 'variant ' || n),
       (ARRAY['active', 'active', 'paused', 'completed', 'completed', 'archived'])[n],
       pg_temp.d() - interval '40 days' + n * interval '2 days',
       CASE WHEN n >= 4 THEN pg_temp.d() - interval '5 days' END,
       'lead_capture',
       1000,
       0.95,
       CASE n WHEN 4 THEN 'B' WHEN 5 THEN 'none' WHEN 6 THEN 'A' END,
       pg_temp.d() - interval '40 days' + n * interval '2 days',
       '{}'::jsonb
FROM generate_series(1, 6) AS n;

INSERT INTO public.variant_assignments (id, test_id, session_id, variant, assigned_at, conversion_events, metadata)
SELECT pg_temp.uid(34, n / 2),
       'ab-' || lpad((1 + (n / 2) % 6)::text, 3, '0'),
       session_id,
       CASE WHEN n % 4 = 0 THEN 'A' ELSE 'B' END,
       created_at + interval '5 seconds',
       CASE WHEN n % 3 = 0 THEN '["form_submit"]'::jsonb ELSE '[]'::jsonb END,
       '{}'::jsonb
FROM _us
WHERE n % 2 = 0;

-- The nightly refresh of the analytics views.
REFRESH MATERIALIZED VIEW public.message_feedback_summary;
REFRESH MATERIALIZED VIEW public.monthly_usage_summary;
REFRESH MATERIALIZED VIEW public.daily_friction_summary;
REFRESH MATERIALIZED VIEW public.component_performance;

-- ============================================================================
-- Part 2: ANOMALIES left by the application's history
-- ============================================================================

-- P1: a support clean-up deleted the first user message of 4 conversations (101, 202, 303, 404).
-- The old trigger counts inserts only: message_count is 1 too high; last_message_at is unaffected.
DELETE FROM public.messages
WHERE id IN (SELECT pg_temp.uid(21, mn) FROM _m WHERE cn IN (101, 202, 303, 404) AND pos = 1);

-- P2: an import that ran with triggers skipped added a user message and an assistant reply to 3
-- conversations (150, 250, 350), one hour after their last message: message_count is 2 too low
-- and last_message_at is older than the newest message.
SET LOCAL session_replication_role = replica;
INSERT INTO public.messages (id, conversation_id, tenant_id, user_id, role, content, model,
                             input_tokens, output_tokens, created_at)
SELECT pg_temp.uid(21, 900000 + c.cn * 10 + x.k), c.id, c.tenant_id,
       CASE WHEN x.role = 'user' THEN c.user_id END,
       x.role, x.content,
       CASE WHEN x.role = 'assistant' THEN 'gpt-4o-mini' END,
       CASE WHEN x.role = 'assistant' THEN 300 ELSE 0 END,
       CASE WHEN x.role = 'assistant' THEN 120 ELSE 0 END,
       (SELECT max(m.created_at) FROM public.messages m WHERE m.conversation_id = c.id) + interval '1 hour' + x.k * interval '1 minute'
FROM _c c
CROSS JOIN (VALUES (1, 'user', 'Follow-up from the mobile app.'),
                   (2, 'assistant', 'Here is the follow-up answer.')) AS x(k, role, content)
WHERE c.cn IN (150, 250, 350);
SET LOCAL session_replication_role = origin;

-- P3: a faulty admin script cleared last_message_at of 2 conversations (77, 177) that have messages.
UPDATE public.conversations SET last_message_at = NULL
WHERE id IN (pg_temp.uid(20, 77), pg_temp.uid(20, 177));

-- P4: 3 visits whose beacon sent the whole session at once: inserted with exit_page already set,
-- which calculate_session_duration() never measures (duration_seconds stays NULL).
INSERT INTO public.user_sessions (id, session_id, user_agent, landing_page, exit_page, exit_reason, device_type,
                                  screen_resolution, language, country_code, created_at, updated_at, page_count)
SELECT pg_temp.uid(35, 5000 + n), 'sess_batch_' || n,
       'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0',
       '/pricing', '/signup', 'navigation', 'desktop', '1920x1080', 'en', 'US',
       pg_temp.d() - interval '2 days' + n * interval '1 hour',
       pg_temp.d() - interval '2 days' + n * interval '1 hour',
       3
FROM generate_series(1, 3) AS n;

COMMIT;

ANALYZE;
