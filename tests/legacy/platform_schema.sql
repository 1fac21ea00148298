-- tests/legacy/platform_schema.sql
-- The OLD "platform" application database as its PL/pgSQL migrations left it:
--   001  AI assistant platform: migrations 003_create_conversations_table .. 006_create_usage_metrics_table
--        (plus the tenants and users tables they depend on)
--   002  website optimisation analytics (web interactions)
-- Load after supabase.sql. Everything lives in schema public (auth.* comes from supabase.sql).
-- Known defects of the documents are reproduced on purpose (see README.md); the one exception is
-- 002's conversion_impact view, which cannot be created (it joins on conversion_funnels.component_id,
-- a column that table does not have) and is therefore absent, as it was from the real database.

-- ============================================================================
-- 001: tenants and users (the parents the migrations' foreign keys point to)
-- ============================================================================

CREATE TABLE public.tenants (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL,
  slug text NOT NULL UNIQUE,
  plan text NOT NULL DEFAULT 'free',                 -- not carried by pg_assistant
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.users (
  id uuid PRIMARY KEY REFERENCES auth.users(id) ON DELETE CASCADE,
  tenant_id uuid NOT NULL REFERENCES public.tenants(id) ON DELETE CASCADE,
  email text NOT NULL UNIQUE,
  name text,
  role text NOT NULL DEFAULT 'user' CHECK (role IN ('owner', 'admin', 'user')),
  last_login_at timestamptz,                         -- not carried by pg_assistant
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_users_tenant_id ON public.users (tenant_id);

-- ============================================================================
-- 001 / migration 003_create_conversations_table.sql
-- ============================================================================

CREATE OR REPLACE FUNCTION public.update_updated_at_column()
RETURNS TRIGGER AS $$
BEGIN
  NEW.updated_at = NOW();
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TABLE public.conversations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES public.tenants(id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES public.users(id) ON DELETE CASCADE,
  title text,
  is_archived boolean NOT NULL DEFAULT false,
  message_count integer NOT NULL DEFAULT 0,
  last_message_at timestamptz,
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,       -- not carried by pg_assistant
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_conversations_tenant_archived_updated
  ON public.conversations (tenant_id, is_archived, updated_at DESC);
CREATE INDEX idx_conversations_user_id ON public.conversations (user_id);

CREATE TRIGGER trigger_conversations_updated_at
  BEFORE UPDATE ON public.conversations
  FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();

CREATE TRIGGER trigger_tenants_updated_at
  BEFORE UPDATE ON public.tenants
  FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();

CREATE TRIGGER trigger_users_updated_at
  BEFORE UPDATE ON public.users
  FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();

-- ============================================================================
-- 001 / migration 004_create_messages_table.sql
-- ============================================================================

CREATE TABLE public.messages (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  conversation_id uuid NOT NULL REFERENCES public.conversations(id) ON DELETE CASCADE,
  tenant_id uuid NOT NULL REFERENCES public.tenants(id) ON DELETE CASCADE,
  user_id uuid REFERENCES public.users(id) ON DELETE SET NULL,
  role text NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
  content text NOT NULL,
  model text,
  input_tokens integer NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
  output_tokens integer NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
  latency_ms integer,                                -- not carried by pg_assistant
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_messages_conversation_created ON public.messages (conversation_id, created_at);
CREATE INDEX idx_messages_tenant_id ON public.messages (tenant_id);

-- Bumps the conversation on every new message (insert only: deletes are not counted back)
CREATE OR REPLACE FUNCTION public.update_conversation_timestamp()
RETURNS TRIGGER AS $$
BEGIN
  UPDATE public.conversations
  SET message_count = message_count + 1,
      last_message_at = NEW.created_at,
      updated_at = NOW()
  WHERE id = NEW.conversation_id;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER trigger_messages_update_conversation
  AFTER INSERT ON public.messages
  FOR EACH ROW EXECUTE FUNCTION public.update_conversation_timestamp();

-- ============================================================================
-- 001 / migration 005_create_feedback_table.sql
-- ============================================================================

CREATE TABLE public.feedback (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  message_id uuid NOT NULL REFERENCES public.messages(id) ON DELETE CASCADE,
  tenant_id uuid NOT NULL REFERENCES public.tenants(id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES public.users(id) ON DELETE CASCADE,
  rating smallint NOT NULL CHECK (rating IN (-1, 1)),
  comment text,
  tags text[] NOT NULL DEFAULT '{}',                 -- not carried by pg_assistant
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (message_id, user_id)
);

CREATE INDEX idx_feedback_message_id ON public.feedback (message_id);
CREATE INDEX idx_feedback_tenant_created ON public.feedback (tenant_id, created_at DESC);

CREATE TRIGGER trigger_feedback_updated_at
  BEFORE UPDATE ON public.feedback
  FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();

CREATE MATERIALIZED VIEW public.message_feedback_summary AS
SELECT
  m.id AS message_id,
  m.conversation_id,
  m.tenant_id,
  m.model,
  COUNT(f.id) AS total_feedback,
  COUNT(f.id) FILTER (WHERE f.rating = 1) AS positive_count,
  COUNT(f.id) FILTER (WHERE f.rating = -1) AS negative_count,
  ROUND(AVG(f.rating), 2) AS avg_rating,
  MAX(f.created_at) AS last_feedback_at
FROM public.messages m
JOIN public.feedback f ON f.message_id = m.id
GROUP BY m.id, m.conversation_id, m.tenant_id, m.model
WITH DATA;

CREATE UNIQUE INDEX idx_message_feedback_summary_message_id
  ON public.message_feedback_summary (message_id);

-- ============================================================================
-- 001 / migration 006_create_usage_metrics_table.sql
-- ============================================================================

CREATE TABLE public.usage_metrics (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),     -- not carried by pg_assistant (its key is tenant/user/date)
  tenant_id uuid NOT NULL REFERENCES public.tenants(id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES public.users(id) ON DELETE CASCADE,
  date date NOT NULL DEFAULT CURRENT_DATE,
  message_count integer NOT NULL DEFAULT 0,
  input_tokens bigint NOT NULL DEFAULT 0,
  output_tokens bigint NOT NULL DEFAULT 0,
  total_tokens bigint NOT NULL DEFAULT 0,
  estimated_cost numeric(12,6) NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT usage_metrics_tenant_user_date_key UNIQUE (tenant_id, user_id, date)
);

CREATE INDEX idx_usage_metrics_date ON public.usage_metrics (date DESC);
CREATE INDEX idx_usage_metrics_tenant_date ON public.usage_metrics (tenant_id, date DESC);

CREATE TRIGGER trigger_usage_metrics_updated_at
  BEFORE UPDATE ON public.usage_metrics
  FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();

CREATE OR REPLACE FUNCTION public.increment_usage_metrics(
  p_tenant_id UUID,
  p_user_id UUID,
  p_date DATE,
  p_input_tokens INTEGER,
  p_output_tokens INTEGER,
  p_cost DECIMAL
)
RETURNS void AS $$
BEGIN
  INSERT INTO public.usage_metrics AS um (
    tenant_id, user_id, date, message_count, input_tokens, output_tokens, total_tokens, estimated_cost
  )
  VALUES (
    p_tenant_id, p_user_id, p_date, 1, p_input_tokens, p_output_tokens,
    p_input_tokens + p_output_tokens, p_cost
  )
  ON CONFLICT (tenant_id, user_id, date) DO UPDATE SET
    message_count = um.message_count + 1,
    input_tokens = um.input_tokens + EXCLUDED.input_tokens,
    output_tokens = um.output_tokens + EXCLUDED.output_tokens,
    total_tokens = um.total_tokens + EXCLUDED.total_tokens,
    estimated_cost = um.estimated_cost + EXCLUDED.estimated_cost,
    updated_at = NOW();
END;
$$ LANGUAGE plpgsql;

CREATE MATERIALIZED VIEW public.monthly_usage_summary AS
SELECT
  um.tenant_id,
  um.user_id,
  date_trunc('month', um.date)::date AS month,
  SUM(um.message_count) AS message_count,
  SUM(um.input_tokens) AS input_tokens,
  SUM(um.output_tokens) AS output_tokens,
  SUM(um.total_tokens) AS total_tokens,
  SUM(um.estimated_cost) AS estimated_cost,
  COUNT(*) AS active_days
FROM public.usage_metrics um
GROUP BY um.tenant_id, um.user_id, date_trunc('month', um.date)::date
WITH DATA;

CREATE UNIQUE INDEX idx_monthly_usage_summary_key
  ON public.monthly_usage_summary (tenant_id, user_id, month);

CREATE VIEW public.current_day_usage AS
SELECT
  um.tenant_id,
  um.user_id,
  um.date,
  um.message_count,
  um.input_tokens,
  um.output_tokens,
  um.total_tokens,
  um.estimated_cost
FROM public.usage_metrics um
WHERE um.date = CURRENT_DATE;

-- ============================================================================
-- 001: row level security, by tenant (4 policies per table)
-- ============================================================================

ALTER TABLE public.conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.feedback ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.usage_metrics ENABLE ROW LEVEL SECURITY;

CREATE POLICY conversations_select_tenant ON public.conversations FOR SELECT
  USING (tenant_id IN (SELECT u.tenant_id FROM public.users u WHERE u.id = auth.uid()));
CREATE POLICY conversations_insert_tenant ON public.conversations FOR INSERT
  WITH CHECK (tenant_id IN (SELECT u.tenant_id FROM public.users u WHERE u.id = auth.uid())
              AND user_id = auth.uid());
CREATE POLICY conversations_update_tenant ON public.conversations FOR UPDATE
  USING (tenant_id IN (SELECT u.tenant_id FROM public.users u WHERE u.id = auth.uid()));
CREATE POLICY conversations_delete_tenant ON public.conversations FOR DELETE
  USING (tenant_id IN (SELECT u.tenant_id FROM public.users u WHERE u.id = auth.uid()));

CREATE POLICY messages_select_tenant ON public.messages FOR SELECT
  USING (tenant_id IN (SELECT u.tenant_id FROM public.users u WHERE u.id = auth.uid()));
CREATE POLICY messages_insert_tenant ON public.messages FOR INSERT
  WITH CHECK (tenant_id IN (SELECT u.tenant_id FROM public.users u WHERE u.id = auth.uid()));
CREATE POLICY messages_update_tenant ON public.messages FOR UPDATE
  USING (tenant_id IN (SELECT u.tenant_id FROM public.users u WHERE u.id = auth.uid()));
CREATE POLICY messages_delete_tenant ON public.messages FOR DELETE
  USING (tenant_id IN (SELECT u.tenant_id FROM public.users u WHERE u.id = auth.uid()));

CREATE POLICY feedback_select_tenant ON public.feedback FOR SELECT
  USING (tenant_id IN (SELECT u.tenant_id FROM public.users u WHERE u.id = auth.uid()));
CREATE POLICY feedback_insert_tenant ON public.feedback FOR INSERT
  WITH CHECK (tenant_id IN (SELECT u.tenant_id FROM public.users u WHERE u.id = auth.uid())
              AND user_id = auth.uid());
CREATE POLICY feedback_update_tenant ON public.feedback FOR UPDATE
  USING (tenant_id IN (SELECT u.tenant_id FROM public.users u WHERE u.id = auth.uid())
         AND user_id = auth.uid());
CREATE POLICY feedback_delete_tenant ON public.feedback FOR DELETE
  USING (tenant_id IN (SELECT u.tenant_id FROM public.users u WHERE u.id = auth.uid())
         AND user_id = auth.uid());

CREATE POLICY usage_metrics_select_tenant ON public.usage_metrics FOR SELECT
  USING (tenant_id IN (SELECT u.tenant_id FROM public.users u WHERE u.id = auth.uid()));
CREATE POLICY usage_metrics_insert_tenant ON public.usage_metrics FOR INSERT
  WITH CHECK (tenant_id IN (SELECT u.tenant_id FROM public.users u WHERE u.id = auth.uid()));
CREATE POLICY usage_metrics_update_tenant ON public.usage_metrics FOR UPDATE
  USING (tenant_id IN (SELECT u.tenant_id FROM public.users u WHERE u.id = auth.uid()));
CREATE POLICY usage_metrics_delete_tenant ON public.usage_metrics FOR DELETE
  USING (tenant_id IN (SELECT u.tenant_id FROM public.users u WHERE u.id = auth.uid()));

-- ============================================================================
-- 002: website optimisation analytics (verbatim from the document)
-- ============================================================================

CREATE TABLE user_sessions (
  id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
  session_id TEXT NOT NULL UNIQUE,
  user_agent TEXT,
  referrer TEXT,
  landing_page TEXT NOT NULL,
  exit_page TEXT,
  exit_reason TEXT CHECK (exit_reason IN ('timeout', 'navigation', 'close', 'refresh')),
  device_type TEXT CHECK (device_type IN ('mobile', 'desktop', 'tablet')),
  screen_resolution TEXT,
  language TEXT,
  country_code CHAR(2),
  created_at TIMESTAMPTZ DEFAULT NOW(),
  updated_at TIMESTAMPTZ DEFAULT NOW(),
  duration_seconds INTEGER,
  page_count INTEGER DEFAULT 1
);

CREATE INDEX idx_user_sessions_created_at ON user_sessions(created_at);
CREATE INDEX idx_user_sessions_session_id ON user_sessions(session_id);
CREATE INDEX idx_user_sessions_exit_reason ON user_sessions(exit_reason);

CREATE TABLE behavior_events (
  id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
  session_id TEXT NOT NULL REFERENCES user_sessions(session_id) ON DELETE CASCADE,
  event_type TEXT NOT NULL CHECK (event_type IN (
    'click',
    'scroll',
    'hover',
    'rage_click',
    'hesitation',
    'form_start',
    'form_abandon',
    'form_submit',
    'error',
    'page_view',
    'time_on_element',
    'scroll_depth'
  )),
  element_path TEXT,
  element_type TEXT,
  element_text TEXT,
  coordinates JSONB,
  viewport_size JSONB,
  event_data JSONB NOT NULL DEFAULT '{}',
  timestamp TIMESTAMPTZ DEFAULT NOW(),
  page_url TEXT NOT NULL,
  component_id TEXT,
  metadata JSONB DEFAULT '{}'
);

CREATE INDEX idx_behavior_events_session_id ON behavior_events(session_id);
CREATE INDEX idx_behavior_events_event_type ON behavior_events(event_type);
CREATE INDEX idx_behavior_events_timestamp ON behavior_events(timestamp);
CREATE INDEX idx_behavior_events_component_id ON behavior_events(component_id);

CREATE TABLE conversion_funnels (
  id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
  funnel_name TEXT NOT NULL,
  step_name TEXT NOT NULL,
  step_order INTEGER NOT NULL,
  session_id TEXT NOT NULL REFERENCES user_sessions(session_id) ON DELETE CASCADE,
  entered_at TIMESTAMPTZ DEFAULT NOW(),
  exited_at TIMESTAMPTZ,
  duration_seconds INTEGER,
  dropoff_reason TEXT,
  metadata JSONB DEFAULT '{}',
  UNIQUE(session_id, funnel_name, step_order)
);

CREATE INDEX idx_conversion_funnels_funnel_name ON conversion_funnels(funnel_name);
CREATE INDEX idx_conversion_funnels_session_id ON conversion_funnels(session_id);
CREATE INDEX idx_conversion_funnels_entered_at ON conversion_funnels(entered_at);

CREATE TABLE optimization_history (
  id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
  proposal_id TEXT NOT NULL UNIQUE,
  status TEXT NOT NULL CHECK (status IN (
    'proposed',
    'approved',
    'rejected',
    'implemented',
    'testing',
    'rolled_back',
    'archived'
  )),
  friction_point TEXT NOT NULL,
  component_id TEXT,
  page_url TEXT,
  change_description TEXT NOT NULL,
  proposed_changes JSONB NOT NULL,
  ai_confidence DECIMAL(3,2) CHECK (ai_confidence >= 0 AND ai_confidence <= 1),
  expected_impact DECIMAL(3,2) CHECK (expected_impact >= 0 AND expected_impact <= 1),
  actual_impact DECIMAL(3,2) CHECK (actual_impact >= 0 AND actual_impact <= 1),
  pr_url TEXT,
  pr_number INTEGER,
  created_at TIMESTAMPTZ DEFAULT NOW(),
  implemented_at TIMESTAMPTZ,
  tested_at TIMESTAMPTZ,
  deployed_at TIMESTAMPTZ,
  rollback_reason TEXT,
  metadata JSONB DEFAULT '{}'
);

CREATE INDEX idx_optimization_history_status ON optimization_history(status);
CREATE INDEX idx_optimization_history_created_at ON optimization_history(created_at);
CREATE INDEX idx_optimization_history_component_id ON optimization_history(component_id);

CREATE TABLE a_b_tests (
  id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
  test_id TEXT NOT NULL UNIQUE,
  test_name TEXT NOT NULL,
  component_id TEXT NOT NULL,
  variant_a JSONB NOT NULL,
  variant_b JSONB NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('active', 'paused', 'completed', 'archived')),
  start_date TIMESTAMPTZ DEFAULT NOW(),
  end_date TIMESTAMPTZ,
  target_conversion TEXT,
  sample_size INTEGER DEFAULT 1000,
  confidence_threshold DECIMAL(3,2) DEFAULT 0.95,
  winner_variant TEXT CHECK (winner_variant IN ('A', 'B', 'none')),
  created_at TIMESTAMPTZ DEFAULT NOW(),
  metadata JSONB DEFAULT '{}'
);

CREATE INDEX idx_a_b_tests_status ON a_b_tests(status);
CREATE INDEX idx_a_b_tests_component_id ON a_b_tests(component_id);

CREATE TABLE variant_assignments (
  id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
  test_id TEXT NOT NULL REFERENCES a_b_tests(test_id) ON DELETE CASCADE,
  session_id TEXT NOT NULL REFERENCES user_sessions(session_id) ON DELETE CASCADE,
  variant TEXT NOT NULL CHECK (variant IN ('A', 'B')),
  assigned_at TIMESTAMPTZ DEFAULT NOW(),
  conversion_events JSONB DEFAULT '[]',
  metadata JSONB DEFAULT '{}',
  UNIQUE(test_id, session_id)
);

CREATE INDEX idx_variant_assignments_test_id ON variant_assignments(test_id);
CREATE INDEX idx_variant_assignments_session_id ON variant_assignments(session_id);

-- Views (conversion_impact is not here: see the header)

CREATE VIEW friction_points AS
SELECT
  be.element_path,
  be.element_type,
  be.event_type,
  COUNT(*) as event_count,
  COUNT(DISTINCT be.session_id) as affected_sessions,
  AVG(EXTRACT(EPOCH FROM (be.timestamp - us.created_at))) as avg_time_to_event,
  MIN(be.timestamp) as first_seen,
  MAX(be.timestamp) as last_seen,
  ARRAY_AGG(DISTINCT be.page_url) as pages_affected
FROM behavior_events be
JOIN user_sessions us ON be.session_id = us.session_id
WHERE be.event_type IN ('rage_click', 'hesitation', 'form_abandon', 'error')
GROUP BY be.element_path, be.element_type, be.event_type
HAVING COUNT(*) > 10;

CREATE VIEW session_analytics AS
SELECT
  us.session_id,
  us.landing_page,
  us.exit_page,
  us.exit_reason,
  us.duration_seconds,
  us.page_count,
  COUNT(DISTINCT be.id) as total_events,
  COUNT(DISTINCT CASE WHEN be.event_type = 'click' THEN be.id END) as click_count,
  COUNT(DISTINCT CASE WHEN be.event_type = 'rage_click' THEN be.id END) as rage_click_count,
  COUNT(DISTINCT CASE WHEN be.event_type = 'hesitation' THEN be.id END) as hesitation_count,
  COUNT(DISTINCT CASE WHEN be.event_type = 'form_abandon' THEN be.id END) as form_abandon_count,
  COUNT(DISTINCT CASE WHEN be.event_type = 'form_submit' THEN be.id END) as form_submit_count,
  MAX(CASE WHEN be.event_type = 'scroll_depth' THEN (be.event_data->>'percentage')::DECIMAL END) as max_scroll_depth,
  ARRAY_AGG(DISTINCT cf.funnel_name) as funnels_entered
FROM user_sessions us
LEFT JOIN behavior_events be ON us.session_id = be.session_id
LEFT JOIN conversion_funnels cf ON us.session_id = cf.session_id
GROUP BY us.session_id, us.landing_page, us.exit_page, us.exit_reason, us.duration_seconds, us.page_count;

-- Materialized views

CREATE MATERIALIZED VIEW daily_friction_summary AS
SELECT
  DATE(be.timestamp) as date,
  be.element_path,
  be.event_type,
  COUNT(*) as event_count,
  COUNT(DISTINCT be.session_id) as unique_sessions,
  AVG((be.event_data->>'hesitation_ms')::INTEGER) as avg_hesitation_ms,
  PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY (be.event_data->>'hesitation_ms')::INTEGER) as median_hesitation_ms,
  SUM(CASE WHEN be.event_type = 'form_abandon' THEN 1 ELSE 0 END) as form_abandons,
  SUM(CASE WHEN be.event_type = 'form_submit' THEN 1 ELSE 0 END) as form_submits
FROM behavior_events be
WHERE be.timestamp >= CURRENT_DATE - INTERVAL '30 days'
GROUP BY DATE(be.timestamp), be.element_path, be.event_type
WITH DATA;

CREATE UNIQUE INDEX idx_daily_friction_summary ON daily_friction_summary(date, element_path, event_type);

CREATE MATERIALIZED VIEW component_performance AS
SELECT
  be.component_id,
  be.page_url,
  COUNT(*) as total_interactions,
  COUNT(DISTINCT be.session_id) as unique_users,
  SUM(CASE WHEN be.event_type = 'click' THEN 1 ELSE 0 END) as clicks,
  SUM(CASE WHEN be.event_type = 'rage_click' THEN 1 ELSE 0 END) as rage_clicks,
  SUM(CASE WHEN be.event_type = 'hesitation' THEN 1 ELSE 0 END) as hesitations,
  AVG((be.event_data->>'hesitation_ms')::INTEGER) as avg_hesitation_ms,
  COUNT(DISTINCT cf.session_id) as conversions,
  MIN(be.timestamp) as first_seen,
  MAX(be.timestamp) as last_seen
FROM behavior_events be
LEFT JOIN conversion_funnels cf ON be.session_id = cf.session_id
  AND cf.funnel_name = 'lead_capture'
WHERE be.component_id IS NOT NULL
GROUP BY be.component_id, be.page_url
WITH DATA;

CREATE UNIQUE INDEX idx_component_performance ON component_performance(component_id, page_url);

-- Security policies

ALTER TABLE user_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE behavior_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversion_funnels ENABLE ROW LEVEL SECURITY;
ALTER TABLE optimization_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE a_b_tests ENABLE ROW LEVEL SECURITY;
ALTER TABLE variant_assignments ENABLE ROW LEVEL SECURITY;

CREATE POLICY "beacon_ingest_insert" ON user_sessions
  FOR INSERT WITH CHECK (true);
CREATE POLICY "beacon_ingest_insert" ON behavior_events
  FOR INSERT WITH CHECK (true);
CREATE POLICY "beacon_ingest_insert" ON conversion_funnels
  FOR INSERT WITH CHECK (true);

CREATE POLICY "ai_analysis_read" ON user_sessions
  FOR SELECT USING (true);
CREATE POLICY "ai_analysis_read" ON behavior_events
  FOR SELECT USING (true);
CREATE POLICY "ai_analysis_read" ON conversion_funnels
  FOR SELECT USING (true);
CREATE POLICY "ai_analysis_read" ON optimization_history
  FOR SELECT USING (true);

CREATE POLICY "admin_all" ON user_sessions
  FOR ALL USING (auth.role() = 'admin');
CREATE POLICY "admin_all" ON behavior_events
  FOR ALL USING (auth.role() = 'admin');
CREATE POLICY "admin_all" ON conversion_funnels
  FOR ALL USING (auth.role() = 'admin');
CREATE POLICY "admin_all" ON optimization_history
  FOR ALL USING (auth.role() = 'admin');
CREATE POLICY "admin_all" ON a_b_tests
  FOR ALL USING (auth.role() = 'admin');
CREATE POLICY "admin_all" ON variant_assignments
  FOR ALL USING (auth.role() = 'admin');

-- Triggers

CREATE OR REPLACE FUNCTION update_updated_at_column()
RETURNS TRIGGER AS $$
BEGIN
  NEW.updated_at = NOW();
  RETURN NEW;
END;
$$ language 'plpgsql';

CREATE TRIGGER update_user_sessions_updated_at
  BEFORE UPDATE ON user_sessions
  FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();

-- Defect kept: only an UPDATE that sets exit_page is measured; a session inserted with its
-- exit_page already set keeps duration_seconds NULL.
CREATE OR REPLACE FUNCTION calculate_session_duration()
RETURNS TRIGGER AS $$
BEGIN
  IF NEW.exit_page IS NOT NULL AND OLD.exit_page IS NULL THEN
    NEW.duration_seconds = EXTRACT(EPOCH FROM (NOW() - NEW.created_at));
  END IF;
  RETURN NEW;
END;
$$ language 'plpgsql';

CREATE TRIGGER calculate_session_duration_trigger
  BEFORE UPDATE ON user_sessions
  FOR EACH ROW EXECUTE FUNCTION calculate_session_duration();
