-- tests/legacy/chat_schema.sql
-- The OLD "chat" application database as its PL/pgSQL migrations left it:
--   003  chat practice app after the "critical fixes" migration (20251110150000)
--   000  behaviour tracking (20251103000001_create_behavior_tracking_schema.sql)
--   004  behaviour patterns with pgvector embeddings (20260112_add_behavior_patterns.sql)
-- Load after supabase.sql. Everything lives in schema public (auth.* comes from supabase.sql).
-- Known defects of the documents are reproduced on purpose (see README.md).

CREATE EXTENSION IF NOT EXISTS pgcrypto;   -- 003 issue #6
CREATE EXTENSION IF NOT EXISTS citext;     -- 003 issue #42
CREATE EXTENSION IF NOT EXISTS vector;     -- 004

-- ============================================================================
-- Shared helper (000 section 0; 003 uses the same function)
-- ============================================================================

CREATE OR REPLACE FUNCTION public.update_updated_at_column()
RETURNS TRIGGER AS $$
BEGIN
  NEW.updated_at = NOW();
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

-- ============================================================================
-- 003: chat practice app
-- ============================================================================

-- Issue #13: enums instead of free text
CREATE TYPE public.message_role AS ENUM ('user', 'scenario', 'helper');
CREATE TYPE public.chat_type_enum AS ENUM ('main', 'helper');

CREATE TABLE public.profiles (
  id uuid PRIMARY KEY REFERENCES auth.users(id) ON DELETE CASCADE ON UPDATE CASCADE,
  email citext NOT NULL,
  display_name text,
  avatar_url text,                                   -- not carried by pg_assistant
  total_completed_sessions integer NOT NULL DEFAULT 0,
  weekly_completed_sessions integer NOT NULL DEFAULT 0,
  weekly_session_limit integer,                      -- NULL = unlimited
  week_reset_date timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT profiles_email_key UNIQUE (email),
  CONSTRAINT profiles_total_completed_sessions_check CHECK (total_completed_sessions >= 0),
  CONSTRAINT profiles_weekly_completed_sessions_check CHECK (weekly_completed_sessions >= 0),
  CONSTRAINT profiles_weekly_session_limit_check CHECK (weekly_session_limit IS NULL OR weekly_session_limit >= 0)
);

CREATE TABLE public.scenarios (
  id text PRIMARY KEY,
  title text NOT NULL,
  emoji text,
  description text,
  system_prompt text,                                -- not carried by pg_assistant
  sort_order smallint NOT NULL DEFAULT 0,            -- issue #38
  is_active boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),     -- issue #38
  CONSTRAINT scenarios_title_key UNIQUE (title),                             -- issue #17
  CONSTRAINT scenarios_emoji_length CHECK (octet_length(emoji) <= 16)        -- issue #16
);

-- Issue #5: no created_at (started_at is the one timestamp)
CREATE TABLE public.sessions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES public.profiles(id) ON DELETE CASCADE ON UPDATE CASCADE,
  scenario_id text NOT NULL REFERENCES public.scenarios(id) ON UPDATE CASCADE,
  started_at timestamptz NOT NULL DEFAULT now(),
  is_completed boolean NOT NULL DEFAULT false,
  completed_at timestamptz,
  duration_seconds integer,
  message_count_main integer NOT NULL DEFAULT 0,
  message_count_helper integer NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT sessions_completed_has_completed_at CHECK (NOT is_completed OR completed_at IS NOT NULL),   -- issue #1
  CONSTRAINT sessions_completed_after_start CHECK (completed_at IS NULL OR completed_at >= started_at),  -- issue #8
  CONSTRAINT sessions_message_counts_nonnegative CHECK (message_count_main >= 0 AND message_count_helper >= 0),
  CONSTRAINT sessions_duration_nonnegative CHECK (duration_seconds IS NULL OR duration_seconds >= 0)    -- issue #12
);

CREATE TABLE public.messages (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  session_id uuid NOT NULL REFERENCES public.sessions(id) ON DELETE CASCADE ON UPDATE CASCADE,
  user_id uuid NOT NULL,                             -- issue #18 (denormalised, filled by trigger)
  role public.message_role NOT NULL,
  chat_type public.chat_type_enum NOT NULL,
  content text NOT NULL,
  sent_at timestamptz NOT NULL DEFAULT now(),        -- issue #7 (was "timestamp")
  client_message_id uuid,                            -- issue #46
  token_count integer,                               -- not carried by pg_assistant
  CONSTRAINT messages_content_length CHECK (char_length(content) <= 8000),   -- issue #15
  CONSTRAINT messages_role_chat_type_valid CHECK (                           -- issue #14
    (role = 'scenario' AND chat_type = 'main')
    OR (role = 'helper' AND chat_type = 'helper')
    OR role = 'user'
  )
);

CREATE TABLE public.logs (
  id bigserial PRIMARY KEY,
  session_id uuid REFERENCES public.sessions(id) ON DELETE SET NULL ON UPDATE CASCADE,
  user_id uuid REFERENCES public.profiles(id) ON DELETE SET NULL ON UPDATE CASCADE,
  level text NOT NULL,
  event text NOT NULL,
  message text,
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  request_id text,                                   -- not carried by pg_assistant
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT logs_level_check CHECK (level IN ('debug', 'info', 'warn', 'error'))
);

-- Indexes (issues #19, #20, #21, #23, #41, #46)
CREATE INDEX idx_sessions_user_started ON public.sessions (user_id, started_at DESC);
CREATE INDEX idx_sessions_scenario_history ON public.sessions (user_id, scenario_id, started_at DESC);
CREATE INDEX idx_sessions_user_scenario ON public.sessions (user_id, scenario_id, is_completed);
CREATE INDEX idx_sessions_scenario ON public.sessions (scenario_id, is_completed);
CREATE INDEX idx_messages_session_time_id ON public.messages (session_id, sent_at, id);
CREATE INDEX idx_messages_user_id ON public.messages (user_id);
CREATE UNIQUE INDEX idx_messages_client_message_id ON public.messages (user_id, client_message_id)
  WHERE client_message_id IS NOT NULL;
CREATE INDEX idx_logs_session ON public.logs (session_id, created_at DESC);
CREATE INDEX idx_logs_created_at ON public.logs (created_at);
CREATE INDEX idx_logs_metadata ON public.logs USING GIN (metadata);

-- updated_at maintenance
CREATE TRIGGER update_profiles_updated_at
  BEFORE UPDATE ON public.profiles
  FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();
CREATE TRIGGER update_scenarios_updated_at
  BEFORE UPDATE ON public.scenarios
  FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();
CREATE TRIGGER update_sessions_updated_at
  BEFORE UPDATE ON public.sessions
  FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();

-- Issue #1: completed_at is stamped when is_completed becomes true
CREATE OR REPLACE FUNCTION public.set_session_completed_at()
RETURNS TRIGGER AS $$
BEGIN
  IF NEW.is_completed AND (TG_OP = 'INSERT' OR NOT OLD.is_completed) THEN
    NEW.completed_at := coalesce(NEW.completed_at, now());
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER set_session_completed_at
  BEFORE INSERT OR UPDATE ON public.sessions
  FOR EACH ROW EXECUTE FUNCTION public.set_session_completed_at();

-- Issue #1: duration uses coalesce() because this trigger fires before set_session_completed_at
-- (BEFORE triggers run in name order)
CREATE OR REPLACE FUNCTION public.calculate_session_duration()
RETURNS TRIGGER AS $$
BEGIN
  IF NEW.is_completed AND (TG_OP = 'INSERT' OR NOT OLD.is_completed) THEN
    NEW.duration_seconds := EXTRACT(EPOCH FROM (coalesce(NEW.completed_at, now()) - NEW.started_at))::integer;
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER calculate_session_duration_trigger
  BEFORE INSERT OR UPDATE ON public.sessions
  FOR EACH ROW EXECUTE FUNCTION public.calculate_session_duration();

-- Issues #9, #10: completion counters on profiles
CREATE OR REPLACE FUNCTION public.update_profile_completion_counts()
RETURNS TRIGGER AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.is_completed THEN
      UPDATE public.profiles
      SET total_completed_sessions = total_completed_sessions + 1,
          weekly_completed_sessions = weekly_completed_sessions + 1
      WHERE id = NEW.user_id;
    END IF;
    RETURN NEW;
  ELSIF TG_OP = 'UPDATE' THEN
    IF NEW.is_completed AND NOT OLD.is_completed THEN
      UPDATE public.profiles
      SET total_completed_sessions = total_completed_sessions + 1,
          weekly_completed_sessions = weekly_completed_sessions + 1
      WHERE id = NEW.user_id;
    ELSIF OLD.is_completed AND NOT NEW.is_completed THEN
      UPDATE public.profiles
      SET total_completed_sessions = GREATEST(0, total_completed_sessions - 1),
          weekly_completed_sessions = GREATEST(0, weekly_completed_sessions - 1)
      WHERE id = OLD.user_id;
    END IF;
    RETURN NEW;
  ELSIF TG_OP = 'DELETE' THEN
    IF OLD.is_completed THEN
      UPDATE public.profiles
      SET total_completed_sessions = GREATEST(0, total_completed_sessions - 1),
          weekly_completed_sessions = GREATEST(0, weekly_completed_sessions - 1)
      WHERE id = OLD.user_id;
    END IF;
    RETURN OLD;
  END IF;
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER maintain_profile_counts
  AFTER INSERT OR UPDATE OR DELETE ON public.sessions
  FOR EACH ROW EXECUTE FUNCTION public.update_profile_completion_counts();

-- Issue #3: no messages in completed sessions
CREATE OR REPLACE FUNCTION public.prevent_messages_in_completed_sessions()
RETURNS TRIGGER AS $$
BEGIN
  IF EXISTS (
    SELECT 1 FROM public.sessions
    WHERE id = NEW.session_id AND is_completed = true
  ) THEN
    RAISE EXCEPTION 'Cannot add messages to completed session %', NEW.session_id;
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER check_session_not_completed
  BEFORE INSERT ON public.messages
  FOR EACH ROW EXECUTE FUNCTION public.prevent_messages_in_completed_sessions();

-- Issue #18: messages.user_id copied from the session
CREATE OR REPLACE FUNCTION public.populate_message_user_id()
RETURNS TRIGGER AS $$
BEGIN
  IF NEW.user_id IS NULL THEN
    SELECT s.user_id INTO NEW.user_id
    FROM public.sessions s
    WHERE s.id = NEW.session_id;
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER populate_user_id_on_insert
  BEFORE INSERT ON public.messages
  FOR EACH ROW EXECUTE FUNCTION public.populate_message_user_id();

-- Issue #11: message counts, raising on an unknown chat_type
CREATE OR REPLACE FUNCTION public.increment_message_count()
RETURNS TRIGGER AS $$
BEGIN
  IF NEW.chat_type = 'main' THEN
    UPDATE public.sessions SET message_count_main = message_count_main + 1 WHERE id = NEW.session_id;
  ELSIF NEW.chat_type = 'helper' THEN
    UPDATE public.sessions SET message_count_helper = message_count_helper + 1 WHERE id = NEW.session_id;
  ELSE
    RAISE EXCEPTION 'Invalid chat_type: %', NEW.chat_type;
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER increment_message_count_trigger
  AFTER INSERT ON public.messages
  FOR EACH ROW EXECUTE FUNCTION public.increment_message_count();

CREATE OR REPLACE FUNCTION public.decrement_message_count()
RETURNS TRIGGER AS $$
BEGIN
  IF OLD.chat_type = 'main' THEN
    UPDATE public.sessions SET message_count_main = GREATEST(0, message_count_main - 1) WHERE id = OLD.session_id;
  ELSIF OLD.chat_type = 'helper' THEN
    UPDATE public.sessions SET message_count_helper = GREATEST(0, message_count_helper - 1) WHERE id = OLD.session_id;
  ELSE
    RAISE EXCEPTION 'Invalid chat_type: %', OLD.chat_type;
  END IF;
  RETURN OLD;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER decrement_message_count_trigger
  AFTER DELETE ON public.messages
  FOR EACH ROW EXECUTE FUNCTION public.decrement_message_count();

-- Issue #37: messages are immutable
CREATE OR REPLACE FUNCTION public.prevent_message_updates()
RETURNS TRIGGER AS $$
BEGIN
  RAISE EXCEPTION 'Messages are immutable and cannot be updated';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER messages_immutable
  BEFORE UPDATE ON public.messages
  FOR EACH ROW EXECUTE FUNCTION public.prevent_message_updates();

-- Issues #2, #25, #26: profile created by the auth trigger, week_reset_date = next Monday 00:00 UTC
CREATE OR REPLACE FUNCTION public.create_profile_for_new_user()
RETURNS TRIGGER
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
  IF NEW.email IS NULL OR btrim(NEW.email) = '' THEN
    RAISE EXCEPTION 'Cannot create profile for user %: email is required', NEW.id;
  END IF;

  INSERT INTO public.profiles (id, email, week_reset_date)
  VALUES (
    NEW.id,
    NEW.email,
    (date_trunc('week', now() AT TIME ZONE 'UTC') + interval '7 days') AT TIME ZONE 'UTC'
  );
  RETURN NEW;
END;
$$;

CREATE TRIGGER on_auth_user_created
  AFTER INSERT ON auth.users
  FOR EACH ROW EXECUTE FUNCTION public.create_profile_for_new_user();

-- Issue #2: idempotent weekly reset on the Monday boundary
CREATE OR REPLACE FUNCTION public.reset_weekly_limits()
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
  UPDATE public.profiles
  SET weekly_completed_sessions = 0,
      week_reset_date = (date_trunc('week', now() AT TIME ZONE 'UTC') + interval '7 days') AT TIME ZONE 'UTC'
  WHERE week_reset_date <= now();
END;
$$;

-- Issue #32: session cleanup with logging
CREATE OR REPLACE FUNCTION public.delete_expired_sessions()
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
  v_job_id uuid := gen_random_uuid();
  v_started timestamptz := clock_timestamp();
  v_deleted integer;
BEGIN
  DELETE FROM public.sessions
  WHERE started_at < now() - interval '90 days';
  GET DIAGNOSTICS v_deleted = ROW_COUNT;

  INSERT INTO public.logs (level, event, message, metadata)
  VALUES (
    'info',
    'job',
    'delete_expired_sessions finished',
    jsonb_build_object(
      'job', 'delete_expired_sessions',
      'job_id', v_job_id,
      'started_at', v_started,
      'finished_at', clock_timestamp(),
      'deleted_count', v_deleted
    )
  );
  RETURN v_deleted;
END;
$$;

CREATE OR REPLACE FUNCTION public.delete_old_logs()
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
  v_deleted integer;
BEGIN
  DELETE FROM public.logs
  WHERE created_at < now() - interval '30 days';
  GET DIAGNOSTICS v_deleted = ROW_COUNT;
  RETURN v_deleted;
END;
$$;

-- Row level security (issues #18, #27: no INSERT policy on profiles)
ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.scenarios ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.logs ENABLE ROW LEVEL SECURITY;

CREATE POLICY profiles_select_own ON public.profiles
  FOR SELECT USING (auth.uid() = id);
CREATE POLICY profiles_update_own ON public.profiles
  FOR UPDATE USING (auth.uid() = id) WITH CHECK (auth.uid() = id);

CREATE POLICY scenarios_select_all ON public.scenarios
  FOR SELECT USING (true);

CREATE POLICY sessions_select_own ON public.sessions
  FOR SELECT USING (auth.uid() = user_id);
CREATE POLICY sessions_insert_own ON public.sessions
  FOR INSERT WITH CHECK (auth.uid() = user_id);
CREATE POLICY sessions_update_own ON public.sessions
  FOR UPDATE USING (auth.uid() = user_id) WITH CHECK (auth.uid() = user_id);
CREATE POLICY sessions_delete_own ON public.sessions
  FOR DELETE USING (auth.uid() = user_id);

CREATE POLICY messages_select_own ON public.messages
  FOR SELECT USING (auth.uid() = user_id);
CREATE POLICY messages_insert_own ON public.messages
  FOR INSERT WITH CHECK (auth.uid() = user_id);

CREATE POLICY logs_insert_own ON public.logs
  FOR INSERT WITH CHECK (auth.uid() = user_id);
CREATE POLICY logs_select_own ON public.logs
  FOR SELECT USING (auth.uid() = user_id);

-- ============================================================================
-- 000: behaviour tracking
-- ============================================================================

CREATE TABLE IF NOT EXISTS public.behavior_events (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  customer_id text NOT NULL,
  session_id text NOT NULL,
  event_type text NOT NULL,
  business_impact text NOT NULL DEFAULT 'low'
    CHECK (business_impact IN ('low', 'medium', 'high', 'critical')),
  tool_name text,
  page_url text,
  properties jsonb NOT NULL DEFAULT '{}'::jsonb,
  duration_ms integer CHECK (duration_ms >= 0),
  event_timestamp timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL DEFAULT now() + interval '180 days',
  user_agent text,                                   -- not carried by pg_assistant
  referrer text,                                     -- not carried by pg_assistant
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.behavior_insights (
  customer_id text PRIMARY KEY,
  total_events bigint NOT NULL DEFAULT 0,
  events_by_type jsonb NOT NULL DEFAULT '{}'::jsonb,
  high_impact_events bigint NOT NULL DEFAULT 0,
  session_count integer NOT NULL DEFAULT 0,
  first_event_at timestamptz,
  last_session_timestamp timestamptz,
  last_session_id text,
  days_since_last_activity integer,
  engagement_score numeric(5,2),                     -- not carried by pg_assistant
  churn_risk text CHECK (churn_risk IN ('low', 'medium', 'high')),  -- not carried by pg_assistant
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.behavior_sessions (
  session_id text PRIMARY KEY,
  customer_id text NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  ended_at timestamptz,
  event_count integer NOT NULL DEFAULT 0,
  high_impact_count integer NOT NULL DEFAULT 0,
  tools_used text[] NOT NULL DEFAULT '{}',
  duration_seconds integer,
  entry_page text,                                   -- not carried by pg_assistant
  device_type text,                                  -- not carried by pg_assistant
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- 13 indexes
CREATE INDEX IF NOT EXISTS idx_behavior_events_customer_id ON public.behavior_events (customer_id);
CREATE INDEX IF NOT EXISTS idx_behavior_events_session_id ON public.behavior_events (session_id);
CREATE INDEX IF NOT EXISTS idx_behavior_events_event_type ON public.behavior_events (event_type);
CREATE INDEX IF NOT EXISTS idx_behavior_events_event_timestamp ON public.behavior_events (event_timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_behavior_events_business_impact ON public.behavior_events (business_impact);
CREATE INDEX IF NOT EXISTS idx_behavior_events_expires_at ON public.behavior_events (expires_at);
CREATE INDEX IF NOT EXISTS idx_behavior_events_customer_timestamp ON public.behavior_events (customer_id, event_timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_behavior_events_tool_name ON public.behavior_events (tool_name);
CREATE INDEX IF NOT EXISTS idx_behavior_insights_last_session ON public.behavior_insights (last_session_timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_behavior_insights_days_inactive ON public.behavior_insights (days_since_last_activity);
CREATE INDEX IF NOT EXISTS idx_behavior_sessions_customer_id ON public.behavior_sessions (customer_id);
CREATE INDEX IF NOT EXISTS idx_behavior_sessions_started_at ON public.behavior_sessions (started_at DESC);
CREATE INDEX IF NOT EXISTS idx_behavior_sessions_customer_started ON public.behavior_sessions (customer_id, started_at DESC);

-- 4. Update triggers
DROP TRIGGER IF EXISTS update_behavior_events_updated_at ON public.behavior_events;
CREATE TRIGGER update_behavior_events_updated_at
  BEFORE UPDATE ON public.behavior_events
  FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();

DROP TRIGGER IF EXISTS update_behavior_insights_updated_at ON public.behavior_insights;
CREATE TRIGGER update_behavior_insights_updated_at
  BEFORE UPDATE ON public.behavior_insights
  FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();

DROP TRIGGER IF EXISTS update_behavior_sessions_updated_at ON public.behavior_sessions;
CREATE TRIGGER update_behavior_sessions_updated_at
  BEFORE UPDATE ON public.behavior_sessions
  FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();

-- 5. Row level security (3 policies)
ALTER TABLE public.behavior_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.behavior_insights ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.behavior_sessions ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS "Users can access own behavior events" ON public.behavior_events;
CREATE POLICY "Users can access own behavior events" ON public.behavior_events
  FOR ALL USING (auth.uid()::text = customer_id);

DROP POLICY IF EXISTS "Users can view own behavior insights" ON public.behavior_insights;
CREATE POLICY "Users can view own behavior insights" ON public.behavior_insights
  FOR SELECT USING (auth.uid()::text = customer_id);

DROP POLICY IF EXISTS "Users can view own behavior sessions" ON public.behavior_sessions;
CREATE POLICY "Users can view own behavior sessions" ON public.behavior_sessions
  FOR SELECT USING (auth.uid()::text = customer_id);

-- 6. Data retention
CREATE OR REPLACE FUNCTION public.cleanup_expired_behavior_events()
RETURNS integer AS $$
DECLARE
  deleted_count integer;
BEGIN
  DELETE FROM public.behavior_events WHERE expires_at < NOW();
  GET DIAGNOSTICS deleted_count = ROW_COUNT;
  RETURN deleted_count;
END;
$$ LANGUAGE plpgsql;

-- 7. Insights on every event (row level; "latest inserted" wins, as the old code did)
CREATE OR REPLACE FUNCTION public.update_behavior_insights_on_event()
RETURNS TRIGGER AS $$
DECLARE
  v_high integer := CASE WHEN NEW.business_impact IN ('high', 'critical') THEN 1 ELSE 0 END;
BEGIN
  INSERT INTO public.behavior_insights AS bi (
    customer_id, total_events, events_by_type, high_impact_events, session_count,
    first_event_at, last_session_timestamp, last_session_id, days_since_last_activity
  )
  VALUES (
    NEW.customer_id, 1, jsonb_build_object(NEW.event_type, 1), v_high, 1,
    NEW.event_timestamp, NEW.event_timestamp, NEW.session_id, 0
  )
  ON CONFLICT (customer_id) DO UPDATE SET
    total_events = bi.total_events + 1,
    events_by_type = jsonb_set(
      bi.events_by_type,
      ARRAY[NEW.event_type],
      to_jsonb(coalesce((bi.events_by_type ->> NEW.event_type)::bigint, 0) + 1)
    ),
    high_impact_events = bi.high_impact_events + v_high,
    session_count = bi.session_count
      + CASE WHEN bi.last_session_id IS DISTINCT FROM NEW.session_id THEN 1 ELSE 0 END,
    first_event_at = coalesce(bi.first_event_at, NEW.event_timestamp),
    last_session_timestamp = NEW.event_timestamp,
    last_session_id = NEW.session_id,
    days_since_last_activity = 0;

  INSERT INTO public.behavior_sessions AS bs (
    session_id, customer_id, started_at, ended_at, event_count, high_impact_count,
    tools_used, duration_seconds, entry_page, device_type
  )
  VALUES (
    NEW.session_id, NEW.customer_id, NEW.event_timestamp, NEW.event_timestamp, 1, v_high,
    CASE WHEN NEW.tool_name IS NULL THEN '{}'::text[] ELSE ARRAY[NEW.tool_name] END,
    0, NEW.page_url, NEW.properties ->> 'device'
  )
  ON CONFLICT (session_id) DO UPDATE SET
    ended_at = NEW.event_timestamp,
    event_count = bs.event_count + 1,
    high_impact_count = bs.high_impact_count + v_high,
    tools_used = CASE
      WHEN NEW.tool_name IS NULL OR NEW.tool_name = ANY (bs.tools_used) THEN bs.tools_used
      ELSE (SELECT array_agg(t ORDER BY t) FROM unnest(bs.tools_used || NEW.tool_name) AS t)
    END,
    duration_seconds = EXTRACT(EPOCH FROM (NEW.event_timestamp - bs.started_at))::integer;

  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS trigger_update_insights_on_event ON public.behavior_events;
CREATE TRIGGER trigger_update_insights_on_event
  AFTER INSERT ON public.behavior_events
  FOR EACH ROW EXECUTE FUNCTION public.update_behavior_insights_on_event();

-- 8. Sample data: the admin user's insights row
INSERT INTO public.behavior_insights (customer_id)
VALUES ('dru78DR9789SDF862')
ON CONFLICT (customer_id) DO NOTHING;

-- 9. Backfill from existing events (no events yet when the migration ran)
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

-- 10. Comments
COMMENT ON TABLE public.behavior_events IS 'Raw customer behaviour events (tool usage, exports, page views)';
COMMENT ON TABLE public.behavior_insights IS 'Per-customer aggregates maintained by trigger_update_insights_on_event';
COMMENT ON TABLE public.behavior_sessions IS 'Per-session summary of behaviour events';

-- ============================================================================
-- 004: behaviour patterns
-- ============================================================================

CREATE TABLE IF NOT EXISTS public.behavior_patterns (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL REFERENCES auth.users(id) ON DELETE CASCADE,
  trigger TEXT NOT NULL,
  trigger_embedding VECTOR(1536),
  context JSONB NOT NULL DEFAULT '{}'::jsonb,
  actions JSONB NOT NULL DEFAULT '[]'::jsonb,
  final_outcome TEXT NOT NULL CHECK (final_outcome IN ('success', 'partial', 'failed')),
  confidence FLOAT NOT NULL DEFAULT 0.7 CHECK (confidence >= 0 AND confidence <= 1),
  use_count INT NOT NULL DEFAULT 1 CHECK (use_count >= 0),
  last_used_at TIMESTAMPTZ,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

COMMENT ON TABLE public.behavior_patterns IS 'Stores learned workflow patterns for behavior intelligence';
COMMENT ON COLUMN public.behavior_patterns.trigger IS 'The task/prompt that initiated this workflow';
COMMENT ON COLUMN public.behavior_patterns.trigger_embedding IS 'Vector embedding for semantic search';
COMMENT ON COLUMN public.behavior_patterns.confidence IS 'Quality score (0.0-1.0) based on outcome and user feedback';
COMMENT ON COLUMN public.behavior_patterns.use_count IS 'Number of times this pattern was recalled and used';

CREATE INDEX behavior_patterns_user_id_idx ON public.behavior_patterns(user_id);
CREATE INDEX behavior_patterns_final_outcome_idx ON public.behavior_patterns(final_outcome);
CREATE INDEX behavior_patterns_confidence_idx ON public.behavior_patterns(confidence DESC);
CREATE INDEX behavior_patterns_use_count_idx ON public.behavior_patterns(use_count DESC);
CREATE INDEX behavior_patterns_embedding_idx
  ON public.behavior_patterns
  USING ivfflat (trigger_embedding vector_cosine_ops)
  WITH (lists = 100);
CREATE INDEX behavior_patterns_context_idx ON public.behavior_patterns USING GIN (context);
CREATE INDEX behavior_patterns_actions_idx ON public.behavior_patterns USING GIN (actions);

ALTER TABLE public.behavior_patterns ENABLE ROW LEVEL SECURITY;

CREATE POLICY "Users can view own patterns"
  ON public.behavior_patterns FOR SELECT
  USING (auth.uid() = user_id);

CREATE POLICY "Users can insert own patterns"
  ON public.behavior_patterns FOR INSERT
  WITH CHECK (auth.uid() = user_id);

CREATE POLICY "Users can update own patterns"
  ON public.behavior_patterns FOR UPDATE
  USING (auth.uid() = user_id);

CREATE POLICY "Users can delete own patterns"
  ON public.behavior_patterns FOR DELETE
  USING (auth.uid() = user_id);

CREATE POLICY "Service role full access"
  ON public.behavior_patterns FOR ALL
  TO service_role
  USING (true);

CREATE OR REPLACE FUNCTION update_behavior_pattern_timestamp()
RETURNS TRIGGER AS $$
BEGIN
  NEW.updated_at = NOW();
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER behavior_patterns_updated_at
  BEFORE UPDATE ON public.behavior_patterns
  FOR EACH ROW
  EXECUTE FUNCTION update_behavior_pattern_timestamp();

-- Defect kept: SECURITY DEFINER without an owner check (anyone bumps anyone's pattern)
CREATE OR REPLACE FUNCTION increment_pattern_use_count(pattern_id UUID)
RETURNS void AS $$
BEGIN
  UPDATE public.behavior_patterns
  SET
    use_count = use_count + 1,
    last_used_at = NOW()
  WHERE id = pattern_id;
END;
$$ LANGUAGE plpgsql SECURITY DEFINER;

-- Defect kept: SECURITY DEFINER, p_user_id NULL returns every user's patterns
CREATE OR REPLACE FUNCTION find_similar_patterns(
  query_embedding VECTOR(1536),
  match_threshold FLOAT DEFAULT 0.7,
  match_count INT DEFAULT 5,
  p_user_id UUID DEFAULT NULL
)
RETURNS TABLE (
  id UUID,
  trigger TEXT,
  context JSONB,
  actions JSONB,
  final_outcome TEXT,
  confidence FLOAT,
  use_count INT,
  similarity FLOAT
) AS $$
BEGIN
  RETURN QUERY
  SELECT
    bp.id,
    bp.trigger,
    bp.context,
    bp.actions,
    bp.final_outcome,
    bp.confidence,
    bp.use_count,
    1 - (bp.trigger_embedding <=> query_embedding) AS similarity
  FROM public.behavior_patterns bp
  WHERE
    (p_user_id IS NULL OR bp.user_id = p_user_id)
    AND bp.trigger_embedding IS NOT NULL
    AND 1 - (bp.trigger_embedding <=> query_embedding) >= match_threshold
  ORDER BY bp.trigger_embedding <=> query_embedding
  LIMIT match_count;
END;
$$ LANGUAGE plpgsql SECURITY DEFINER;

GRANT USAGE ON SCHEMA public TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.behavior_patterns TO authenticated;
GRANT EXECUTE ON FUNCTION increment_pattern_use_count(UUID) TO authenticated;
GRANT EXECUTE ON FUNCTION find_similar_patterns(VECTOR(1536), FLOAT, INT, UUID) TO authenticated;
