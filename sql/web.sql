-- web (DESIGN.md 3.5, source 002): site analytics and experiments. 002's behavior_events is
-- interaction_events here (000 owns that name); conversion_funnels has the component_id that
-- 002's conversion_impact view joins on. Rules: src/web.rs.

CREATE TABLE @extschema@.user_sessions (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id         text NOT NULL UNIQUE,
    user_agent         text,
    referrer           text,
    landing_page       text NOT NULL,
    exit_page          text,
    exit_reason        text CHECK (exit_reason IN ('timeout', 'navigation', 'close', 'refresh')),
    device_type        text CHECK (device_type IN ('mobile', 'desktop', 'tablet')),
    screen_resolution  text,
    language           text,
    country_code       char(2),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    duration_seconds   int CHECK (duration_seconds >= 0),
    page_count         int DEFAULT 1 CHECK (page_count >= 0)
);
CREATE INDEX user_sessions_created_at_idx ON @extschema@.user_sessions (created_at);
CREATE INDEX user_sessions_exit_reason_idx ON @extschema@.user_sessions (exit_reason);

CREATE TABLE @extschema@.interaction_events (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id     text NOT NULL REFERENCES @extschema@.user_sessions (session_id) ON DELETE CASCADE ON UPDATE CASCADE,
    event_type     text NOT NULL CHECK (event_type IN ('click', 'scroll', 'hover', 'rage_click', 'hesitation', 'form_start',
                                                      'form_abandon', 'form_submit', 'error', 'page_view',
                                                      'time_on_element', 'scroll_depth')),
    element_path   text,
    element_type   text,
    element_text   text,
    coordinates    jsonb,
    viewport_size  jsonb,
    event_data     jsonb NOT NULL DEFAULT '{}',
    "timestamp"    timestamptz NOT NULL DEFAULT now(),
    page_url       text NOT NULL,
    component_id   text,
    metadata       jsonb DEFAULT '{}'
);
CREATE INDEX interaction_events_session_id_idx ON @extschema@.interaction_events (session_id);
CREATE INDEX interaction_events_event_type_idx ON @extschema@.interaction_events (event_type);
CREATE INDEX interaction_events_timestamp_idx ON @extschema@.interaction_events ("timestamp");
CREATE INDEX interaction_events_component_id_idx ON @extschema@.interaction_events (component_id);

CREATE TABLE @extschema@.conversion_funnels (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    funnel_name       text NOT NULL,
    step_name         text NOT NULL,
    step_order        int NOT NULL,
    session_id        text NOT NULL REFERENCES @extschema@.user_sessions (session_id) ON DELETE CASCADE ON UPDATE CASCADE,
    component_id      text,
    entered_at        timestamptz DEFAULT now(),
    exited_at         timestamptz,
    duration_seconds  int CHECK (duration_seconds >= 0),
    dropoff_reason    text,
    metadata          jsonb DEFAULT '{}',
    CONSTRAINT conversion_funnels_session_funnel_step_key UNIQUE (session_id, funnel_name, step_order)
);
CREATE INDEX conversion_funnels_funnel_name_idx ON @extschema@.conversion_funnels (funnel_name);
CREATE INDEX conversion_funnels_entered_at_idx ON @extschema@.conversion_funnels (entered_at);
CREATE INDEX conversion_funnels_component_id_idx ON @extschema@.conversion_funnels (component_id);

CREATE TABLE @extschema@.optimization_history (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    proposal_id         text NOT NULL UNIQUE,
    status              text NOT NULL CHECK (status IN ('proposed', 'approved', 'rejected', 'implemented', 'testing',
                                                        'rolled_back', 'archived')),
    friction_point      text NOT NULL,
    component_id        text,
    page_url            text,
    change_description  text NOT NULL,
    proposed_changes    jsonb NOT NULL,
    ai_confidence       numeric(3,2) CHECK (ai_confidence >= 0 AND ai_confidence <= 1),
    expected_impact     numeric(3,2) CHECK (expected_impact >= 0 AND expected_impact <= 1),
    actual_impact       numeric(3,2) CHECK (actual_impact >= 0 AND actual_impact <= 1),
    pr_url              text,
    pr_number           int,
    created_at          timestamptz NOT NULL DEFAULT now(),
    implemented_at      timestamptz,
    tested_at           timestamptz,
    deployed_at         timestamptz,
    rollback_reason     text,
    metadata            jsonb DEFAULT '{}'
);
CREATE INDEX optimization_history_status_idx ON @extschema@.optimization_history (status);
CREATE INDEX optimization_history_created_at_idx ON @extschema@.optimization_history (created_at);
CREATE INDEX optimization_history_component_id_idx ON @extschema@.optimization_history (component_id);

CREATE TABLE @extschema@.a_b_tests (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    test_id               text NOT NULL UNIQUE,
    test_name             text NOT NULL,
    component_id          text NOT NULL,
    variant_a             jsonb NOT NULL,
    variant_b             jsonb NOT NULL,
    status                text NOT NULL CHECK (status IN ('active', 'paused', 'completed', 'archived')),
    start_date            timestamptz DEFAULT now(),
    end_date              timestamptz,
    target_conversion     text,
    sample_size           int DEFAULT 1000,
    confidence_threshold  numeric(3,2) DEFAULT 0.95,
    winner_variant        text CHECK (winner_variant IN ('A', 'B', 'none')),
    created_at            timestamptz NOT NULL DEFAULT now(),
    metadata              jsonb DEFAULT '{}'
);
CREATE INDEX a_b_tests_status_idx ON @extschema@.a_b_tests (status);
CREATE INDEX a_b_tests_component_id_idx ON @extschema@.a_b_tests (component_id);

CREATE TABLE @extschema@.variant_assignments (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    test_id            text NOT NULL REFERENCES @extschema@.a_b_tests (test_id) ON DELETE CASCADE ON UPDATE CASCADE,
    session_id         text NOT NULL REFERENCES @extschema@.user_sessions (session_id) ON DELETE CASCADE ON UPDATE CASCADE,
    variant            text NOT NULL CHECK (variant IN ('A', 'B')),
    assigned_at        timestamptz DEFAULT now(),
    conversion_events  jsonb DEFAULT '[]',
    metadata           jsonb DEFAULT '{}',
    CONSTRAINT variant_assignments_test_session_key UNIQUE (test_id, session_id)
);
CREATE INDEX variant_assignments_session_id_idx ON @extschema@.variant_assignments (session_id);

-- Rules.
CREATE TRIGGER user_sessions_set_updated_at BEFORE UPDATE ON @extschema@.user_sessions
    FOR EACH ROW EXECUTE FUNCTION @extschema@.set_updated_at();
CREATE FUNCTION @extschema@.user_sessions_duration() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'pga_user_sessions_duration';
CREATE TRIGGER user_sessions_duration BEFORE INSERT OR UPDATE ON @extschema@.user_sessions
    FOR EACH ROW EXECUTE FUNCTION @extschema@.user_sessions_duration();
CREATE FUNCTION @extschema@.optimization_history_status() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'pga_optimization_history_status';
CREATE TRIGGER optimization_history_status BEFORE INSERT OR UPDATE ON @extschema@.optimization_history
    FOR EACH ROW EXECUTE FUNCTION @extschema@.optimization_history_status();
CREATE TRIGGER user_sessions_guard_cascades BEFORE DELETE ON @extschema@.user_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.guard_cascades();
CREATE TRIGGER a_b_tests_guard_cascades BEFORE DELETE ON @extschema@.a_b_tests
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.guard_cascades();

-- Row-level security by JWT role: beacon_ingest inserts (sessions, events, funnel steps and the
-- session's exit), ai_analysis reads, admin and services do everything.
ALTER TABLE @extschema@.user_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.interaction_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.conversion_funnels ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.optimization_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.a_b_tests ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.variant_assignments ENABLE ROW LEVEL SECURITY;

CREATE POLICY beacon_ingest_insert ON @extschema@.user_sessions FOR INSERT
    WITH CHECK ((SELECT @extschema@.current_app_role()) = 'beacon_ingest');
CREATE POLICY beacon_ingest_insert ON @extschema@.interaction_events FOR INSERT
    WITH CHECK ((SELECT @extschema@.current_app_role()) = 'beacon_ingest');
CREATE POLICY beacon_ingest_insert ON @extschema@.conversion_funnels FOR INSERT
    WITH CHECK ((SELECT @extschema@.current_app_role()) = 'beacon_ingest');
CREATE POLICY beacon_ingest_insert ON @extschema@.variant_assignments FOR INSERT
    WITH CHECK ((SELECT @extschema@.current_app_role()) = 'beacon_ingest');

CREATE POLICY ai_analysis_read ON @extschema@.user_sessions FOR SELECT
    USING ((SELECT @extschema@.current_app_role()) = 'ai_analysis');
CREATE POLICY ai_analysis_read ON @extschema@.interaction_events FOR SELECT
    USING ((SELECT @extschema@.current_app_role()) = 'ai_analysis');
CREATE POLICY ai_analysis_read ON @extschema@.conversion_funnels FOR SELECT
    USING ((SELECT @extschema@.current_app_role()) = 'ai_analysis');
CREATE POLICY ai_analysis_read ON @extschema@.optimization_history FOR SELECT
    USING ((SELECT @extschema@.current_app_role()) = 'ai_analysis');
CREATE POLICY ai_analysis_read ON @extschema@.a_b_tests FOR SELECT
    USING ((SELECT @extschema@.current_app_role()) = 'ai_analysis');
CREATE POLICY ai_analysis_read ON @extschema@.variant_assignments FOR SELECT
    USING ((SELECT @extschema@.current_app_role()) = 'ai_analysis');

CREATE POLICY admin_all ON @extschema@.user_sessions FOR ALL
    USING ((SELECT @extschema@.current_app_role()) IN ('admin', 'service_role'))
    WITH CHECK ((SELECT @extschema@.current_app_role()) IN ('admin', 'service_role'));
CREATE POLICY admin_all ON @extschema@.interaction_events FOR ALL
    USING ((SELECT @extschema@.current_app_role()) IN ('admin', 'service_role'))
    WITH CHECK ((SELECT @extschema@.current_app_role()) IN ('admin', 'service_role'));
CREATE POLICY admin_all ON @extschema@.conversion_funnels FOR ALL
    USING ((SELECT @extschema@.current_app_role()) IN ('admin', 'service_role'))
    WITH CHECK ((SELECT @extschema@.current_app_role()) IN ('admin', 'service_role'));
CREATE POLICY admin_all ON @extschema@.optimization_history FOR ALL
    USING ((SELECT @extschema@.current_app_role()) IN ('admin', 'service_role'))
    WITH CHECK ((SELECT @extschema@.current_app_role()) IN ('admin', 'service_role'));
CREATE POLICY admin_all ON @extschema@.a_b_tests FOR ALL
    USING ((SELECT @extschema@.current_app_role()) IN ('admin', 'service_role'))
    WITH CHECK ((SELECT @extschema@.current_app_role()) IN ('admin', 'service_role'));
CREATE POLICY admin_all ON @extschema@.variant_assignments FOR ALL
    USING ((SELECT @extschema@.current_app_role()) IN ('admin', 'service_role'))
    WITH CHECK ((SELECT @extschema@.current_app_role()) IN ('admin', 'service_role'));

SELECT pg_catalog.pg_extension_config_dump('@extschema@.user_sessions', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.interaction_events', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.conversion_funnels', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.optimization_history', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.a_b_tests', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.variant_assignments', '');

-- A number in a beacon's JSON, or NULL when the beacon sent something else there: one malformed
-- payload must not break the analytics of everyone.
CREATE FUNCTION @extschema@._json_number(data jsonb, key text) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN jsonb_typeof(data -> key) = 'number' THEN (data ->> key)::numeric END;

-- 002's views. They read as the extension owner, so each shows rows only to callers the web
-- tables' read policies admit (_sees_web_analytics(): admin, ai_analysis, services).
CREATE VIEW @extschema@.friction_points WITH (security_barrier) AS
SELECT ie.element_path, ie.element_type, ie.event_type,
       count(*) AS event_count,
       count(DISTINCT ie.session_id) AS affected_sessions,
       avg(extract(epoch FROM (ie."timestamp" - us.created_at))) AS avg_time_to_event,
       min(ie."timestamp") AS first_seen,
       max(ie."timestamp") AS last_seen,
       array_agg(DISTINCT ie.page_url) AS pages_affected
  FROM @extschema@.interaction_events ie
  JOIN @extschema@.user_sessions us ON ie.session_id = us.session_id
 WHERE ie.event_type IN ('rage_click', 'hesitation', 'form_abandon', 'error')
   AND @extschema@._sees_web_analytics()
 GROUP BY ie.element_path, ie.element_type, ie.event_type
HAVING count(*) > 10;

CREATE VIEW @extschema@.conversion_impact WITH (security_barrier) AS
SELECT oh.proposal_id, oh.friction_point, oh.component_id, oh.expected_impact, oh.actual_impact, oh.status,
       count(DISTINCT cf.session_id) AS total_conversions,
       avg(cf.duration_seconds) AS avg_funnel_time,
       min(oh.created_at) AS optimization_date,
       array_agg(DISTINCT cf.funnel_name) AS affected_funnels
  FROM @extschema@.optimization_history oh
  LEFT JOIN @extschema@.conversion_funnels cf ON cf.component_id = oh.component_id
 WHERE oh.status IN ('implemented', 'testing')
   AND @extschema@._sees_web_analytics()
 GROUP BY oh.proposal_id, oh.friction_point, oh.component_id, oh.expected_impact, oh.actual_impact, oh.status;

CREATE VIEW @extschema@.session_analytics WITH (security_barrier) AS
SELECT us.session_id, us.landing_page, us.exit_page, us.exit_reason, us.duration_seconds, us.page_count,
       count(DISTINCT ie.id) AS total_events,
       count(DISTINCT CASE WHEN ie.event_type = 'click' THEN ie.id END) AS click_count,
       count(DISTINCT CASE WHEN ie.event_type = 'rage_click' THEN ie.id END) AS rage_click_count,
       count(DISTINCT CASE WHEN ie.event_type = 'hesitation' THEN ie.id END) AS hesitation_count,
       count(DISTINCT CASE WHEN ie.event_type = 'form_abandon' THEN ie.id END) AS form_abandon_count,
       count(DISTINCT CASE WHEN ie.event_type = 'form_submit' THEN ie.id END) AS form_submit_count,
       max(CASE WHEN ie.event_type = 'scroll_depth' THEN @extschema@._json_number(ie.event_data, 'percentage') END) AS max_scroll_depth,
       array_agg(DISTINCT cf.funnel_name) AS funnels_entered
  FROM @extschema@.user_sessions us
  LEFT JOIN @extschema@.interaction_events ie ON us.session_id = ie.session_id
  LEFT JOIN @extschema@.conversion_funnels cf ON us.session_id = cf.session_id
 WHERE @extschema@._sees_web_analytics()
 GROUP BY us.session_id, us.landing_page, us.exit_page, us.exit_reason, us.duration_seconds, us.page_count;

-- 002's materialized views, each with a unique index (refresh_analytics_views() refreshes them
-- CONCURRENTLY). element_path may be NULL: the unique index treats NULLs as distinct, and the
-- grouping makes each (date, element_path, event_type) one row.
CREATE MATERIALIZED VIEW @extschema@.daily_friction_summary AS
SELECT date(ie."timestamp" AT TIME ZONE 'UTC') AS date, ie.element_path, ie.event_type,
       count(*) AS event_count,
       count(DISTINCT ie.session_id) AS unique_sessions,
       avg(@extschema@._json_number(ie.event_data, 'hesitation_ms')) AS avg_hesitation_ms,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY @extschema@._json_number(ie.event_data, 'hesitation_ms')) AS median_hesitation_ms,
       sum(CASE WHEN ie.event_type = 'form_abandon' THEN 1 ELSE 0 END) AS form_abandons,
       sum(CASE WHEN ie.event_type = 'form_submit' THEN 1 ELSE 0 END) AS form_submits
  FROM @extschema@.interaction_events ie
 WHERE ie."timestamp" >= CURRENT_DATE - interval '30 days'
 GROUP BY date(ie."timestamp" AT TIME ZONE 'UTC'), ie.element_path, ie.event_type;
CREATE UNIQUE INDEX daily_friction_summary_key ON @extschema@.daily_friction_summary (date, element_path, event_type);

CREATE MATERIALIZED VIEW @extschema@.component_performance AS
SELECT ie.component_id, ie.page_url,
       count(*) AS total_interactions,
       count(DISTINCT ie.session_id) AS unique_users,
       sum(CASE WHEN ie.event_type = 'click' THEN 1 ELSE 0 END) AS clicks,
       sum(CASE WHEN ie.event_type = 'rage_click' THEN 1 ELSE 0 END) AS rage_clicks,
       sum(CASE WHEN ie.event_type = 'hesitation' THEN 1 ELSE 0 END) AS hesitations,
       avg(@extschema@._json_number(ie.event_data, 'hesitation_ms')) AS avg_hesitation_ms,
       count(DISTINCT cf.session_id) AS conversions,
       min(ie."timestamp") AS first_seen,
       max(ie."timestamp") AS last_seen
  FROM @extschema@.interaction_events ie
  LEFT JOIN @extschema@.conversion_funnels cf ON ie.session_id = cf.session_id AND cf.funnel_name = 'lead_capture'
 WHERE ie.component_id IS NOT NULL
 GROUP BY ie.component_id, ie.page_url;
CREATE UNIQUE INDEX component_performance_key ON @extschema@.component_performance (component_id, page_url);

REVOKE EXECUTE ON FUNCTION @extschema@.user_sessions_duration() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.optimization_history_status() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.refresh_analytics_views() FROM PUBLIC;
