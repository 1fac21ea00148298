-- tests/legacy/app_tables.sql
-- Tables that belong to the application itself (no document defines them). They reuse the
-- documents' public.update_updated_at_column(), so a migration that drops or replaces that
-- function must keep them working. Loaded into both old databases, after the schema file.
-- Also one view of the application's own over a document table (chat: active_sessions over
-- sessions; platform: open_conversations over conversations), so the migration meets a
-- dependent view.

CREATE TABLE public.app_settings (
  key text PRIMARY KEY,
  value jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.notes (
  id bigserial PRIMARY KEY,
  body text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER app_settings_updated_at
  BEFORE UPDATE ON public.app_settings
  FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();

CREATE TRIGGER notes_updated_at
  BEFORE UPDATE ON public.notes
  FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();

INSERT INTO public.app_settings (key, value, updated_at) VALUES
  ('maintenance_mode', 'false'::jsonb, '2025-10-01 08:00:00+00'),
  ('default_model', '"gpt-4o-mini"'::jsonb, '2025-10-01 08:00:00+00'),
  ('free_weekly_session_limit', '5'::jsonb, '2025-10-01 08:00:00+00'),
  ('feature_flags', '{"helper_chat": true, "voice": false, "pattern_recall": true}'::jsonb, '2025-10-01 08:00:00+00'),
  ('support_email', '"support@example.com"'::jsonb, '2025-10-01 08:00:00+00');

INSERT INTO public.notes (body, created_at, updated_at)
SELECT 'Ops note ' || n || ': ' || (ARRAY['rotated API keys', 'raised pool size', 'weekly reset checked',
                                          'cleanup job ran late', 'vacuumed messages', 'refreshed analytics views',
                                          'restored from backup drill', 'bumped free tier limit'])[n],
       timestamptz '2025-09-01 09:00:00+00' + n * interval '3 days',
       timestamptz '2025-09-01 09:00:00+00' + n * interval '3 days'
FROM generate_series(1, 8) AS n;

-- Edits made through the app: the trigger stamps updated_at.
UPDATE public.app_settings SET value = '{"helper_chat": true, "voice": true, "pattern_recall": true}'::jsonb
WHERE key = 'feature_flags';
UPDATE public.notes SET body = body || ' (follow-up done)' WHERE id IN (2, 5);

-- The application's own view over a document table.
DO $$
BEGIN
  IF to_regclass('public.sessions') IS NOT NULL THEN
    EXECUTE $v$
      CREATE VIEW public.active_sessions AS
      SELECT s.id, s.user_id, s.scenario_id, s.started_at,
             s.message_count_main + s.message_count_helper AS message_count
      FROM public.sessions s
      WHERE NOT s.is_completed
    $v$;
  END IF;
  IF to_regclass('public.conversations') IS NOT NULL THEN
    EXECUTE $v$
      CREATE VIEW public.open_conversations AS
      SELECT c.id, c.tenant_id, c.user_id, c.title, c.message_count, c.last_message_at
      FROM public.conversations c
      WHERE NOT c.is_archived
    $v$;
  END IF;
END
$$;
