-- current_user_id() and current_app_role() from the JWT claims PostgREST / Supabase set.
SELECT current_user_id() IS NULL AS no_sub, current_app_role() IS NULL AS no_role;

BEGIN;
SELECT set_config('request.jwt.claims', '{"sub":"0b7c6a9e-1f2d-4e3c-8a5b-6c7d8e9f0a1b","role":"authenticated","email":"a@example.com"}', true);
SELECT current_user_id(), current_app_role();
COMMIT;
-- Transaction-local settings are gone after commit.
SELECT current_user_id() IS NULL AS cleared;

-- Older PostgREST: one setting per claim.
BEGIN;
SELECT set_config('request.jwt.claim.sub', '0B7C6A9E-1F2D-4E3C-8A5B-6C7D8E9F0A1B', true);
SELECT set_config('request.jwt.claim.role', 'service_role', true);
SELECT current_user_id(), current_app_role();
ROLLBACK;

-- Malformed claims give NULL, never an error.
BEGIN;
SELECT set_config('request.jwt.claims', 'not json at all', true);
SELECT current_user_id() IS NULL AS bad_json;
SELECT set_config('request.jwt.claims', '{"sub":"user-42","role":17}', true);
SELECT current_user_id() IS NULL AS not_uuid, current_app_role() IS NULL AS role_not_text;
SELECT set_config('request.jwt.claims', '{"sub":null}', true);
SELECT current_user_id() IS NULL AS null_sub;
ROLLBACK;

-- Stable, parallel safe: usable in RLS policies and evaluated once per statement as an initplan.
SELECT proname, provolatile, proparallel FROM pg_proc
 WHERE proname IN ('current_user_id', 'current_app_role', 'next_week_start') ORDER BY 1;

-- Week arithmetic at the Monday boundary (UTC).
SELECT to_char(next_week_start(t) AT TIME ZONE 'UTC', 'Dy YYYY-MM-DD HH24:MI:SS') AS resets_at, t
  FROM (VALUES ('2026-11-22 23:59:59+00'::timestamptz), ('2026-11-23 00:00:00+00'), ('2026-11-23 00:00:01+00'),
               ('2026-11-29 12:00:00+14'), ('infinity')) v(t);
