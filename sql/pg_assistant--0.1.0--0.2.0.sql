-- pg_assistant 0.1.0 -> 0.2.0: the behavior, conversations and web modules (DESIGN.md 3.3 to
-- 3.5). Only new objects: nothing of 0.1.0 changes, so the update takes no lock on the
-- existing tables and rewrites none of their rows.

-- Native functions the new tables' rules and policies use.
CREATE FUNCTION @extschema@."_similar_patterns"(
	"query_embedding" real[],
	"match_threshold" double precision,
	"match_count" INT,
	"p_user_id" uuid
) RETURNS TABLE (
	"id" uuid, 
	"similarity" double precision 
)
STABLE PARALLEL UNSAFE 
LANGUAGE c
AS 'MODULE_PATHNAME', 'similar_patterns_wrapper';

CREATE FUNCTION @extschema@."backfill_behavior_insights"() RETURNS INT
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'backfill_behavior_insights_wrapper';

CREATE FUNCTION @extschema@."cleanup_expired_behavior_events"(
	"batch_size" INT DEFAULT NULL
) RETURNS INT
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'cleanup_expired_behavior_events_wrapper';

CREATE FUNCTION @extschema@."cosine_similarity"(
	"a" real[],
	"b" real[]
) RETURNS double precision
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'cosine_similarity_wrapper';

CREATE FUNCTION @extschema@."increment_pattern_use_count"(
	"pattern_id" uuid
) RETURNS INT
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'increment_pattern_use_count_wrapper';

CREATE FUNCTION @extschema@."refresh_activity_recency"() RETURNS INT
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'refresh_activity_recency_wrapper';

CREATE FUNCTION @extschema@."similarity_kernel"() RETURNS TEXT
IMMUTABLE STRICT PARALLEL SAFE 
LANGUAGE c
AS 'MODULE_PATHNAME', 'similarity_kernel_name_wrapper';

CREATE FUNCTION @extschema@."current_tenant_id"() RETURNS uuid
STRICT STABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'current_tenant_id_wrapper';

CREATE FUNCTION @extschema@."_sees_every_tenant"() RETURNS bool
STRICT STABLE PARALLEL SAFE 
LANGUAGE c
AS 'MODULE_PATHNAME', 'sees_every_tenant_sql_wrapper';

CREATE FUNCTION @extschema@."_sees_web_analytics"() RETURNS bool
STRICT STABLE PARALLEL SAFE 
LANGUAGE c
AS 'MODULE_PATHNAME', 'sees_web_analytics_wrapper';

CREATE FUNCTION @extschema@."refresh_analytics_views"() RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'refresh_analytics_views_wrapper';

-- behavior: sql/behavior.sql as of 0.2.0.

CREATE TABLE @extschema@.behavior_events (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    customer_id      text NOT NULL CHECK (customer_id <> ''),
    session_id       text NOT NULL CHECK (session_id <> ''),
    event_type       text NOT NULL CHECK (event_type <> ''),
    business_impact  text NOT NULL DEFAULT 'low' CHECK (business_impact IN ('low', 'medium', 'high', 'critical')),
    tool_name        text,
    page_url         text,
    properties       jsonb NOT NULL DEFAULT '{}',
    duration_ms      int CHECK (duration_ms >= 0),
    event_timestamp  timestamptz NOT NULL DEFAULT now() CHECK (isfinite(event_timestamp)),
    expires_at       timestamptz NOT NULL DEFAULT now() + interval '180 days',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- A customer's timeline (backfill, dashboards), a session's events (its summary), retention.
CREATE INDEX behavior_events_customer_time_idx ON @extschema@.behavior_events (customer_id, event_timestamp DESC);
CREATE INDEX behavior_events_session_time_idx ON @extschema@.behavior_events (session_id, event_timestamp);
CREATE INDEX behavior_events_expires_at_idx ON @extschema@.behavior_events (expires_at);
CREATE INDEX behavior_events_type_time_idx ON @extschema@.behavior_events (event_type, event_timestamp DESC);

CREATE TABLE @extschema@.behavior_insights (
    customer_id               text PRIMARY KEY,
    total_events              bigint NOT NULL DEFAULT 0 CHECK (total_events >= 0),
    events_by_type            jsonb NOT NULL DEFAULT '{}',
    high_impact_events        bigint NOT NULL DEFAULT 0 CHECK (high_impact_events >= 0),
    session_count             int NOT NULL DEFAULT 0 CHECK (session_count >= 0),
    first_event_at            timestamptz,
    last_session_timestamp    timestamptz,
    last_session_id           text,
    days_since_last_activity  int CHECK (days_since_last_activity >= 0),
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);
-- Customers by recency (re-engagement lists, refresh_activity_recency()).
CREATE INDEX behavior_insights_last_activity_idx ON @extschema@.behavior_insights (last_session_timestamp DESC);

CREATE TABLE @extschema@.behavior_sessions (
    session_id         text PRIMARY KEY,
    customer_id        text NOT NULL,
    started_at         timestamptz NOT NULL,
    ended_at           timestamptz NOT NULL,
    event_count        int NOT NULL DEFAULT 0 CHECK (event_count >= 0),
    high_impact_count  int NOT NULL DEFAULT 0 CHECK (high_impact_count >= 0),
    tools_used         text[] NOT NULL DEFAULT '{}',
    duration_seconds   int NOT NULL DEFAULT 0 CHECK (duration_seconds >= 0),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT behavior_sessions_ended_after_started CHECK (ended_at >= started_at)
);
CREATE INDEX behavior_sessions_customer_idx ON @extschema@.behavior_sessions (customer_id, started_at DESC);

CREATE TABLE @extschema@.behavior_patterns (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                 uuid NOT NULL REFERENCES @extschema@.profiles (id) ON DELETE CASCADE ON UPDATE CASCADE,
    trigger                 text NOT NULL,
    -- Kept in the row (STORAGE MAIN): up to about 2,000 dimensions a scan reads it in place,
    -- without de-TOASTing; the other wide columns move to TOAST first.
    trigger_embedding       real[],
    -- Euclidean norm of trigger_embedding, written by the validation trigger.
    trigger_embedding_norm  float8,
    context                 jsonb NOT NULL DEFAULT '{}',
    actions                 jsonb NOT NULL DEFAULT '[]',
    final_outcome           text NOT NULL CHECK (final_outcome IN ('success', 'partial', 'failed')),
    confidence              float8 NOT NULL DEFAULT 0.7 CHECK (confidence >= 0 AND confidence <= 1),
    use_count               int NOT NULL DEFAULT 1 CHECK (use_count >= 0),
    last_used_at            timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE @extschema@.behavior_patterns ALTER COLUMN trigger_embedding SET STORAGE MAIN;
-- A user's search reads only that user's patterns, through this index.
CREATE INDEX behavior_patterns_user_id_idx ON @extschema@.behavior_patterns (user_id);
CREATE INDEX behavior_patterns_user_confidence_idx ON @extschema@.behavior_patterns (user_id, confidence DESC);

-- updated_at
CREATE TRIGGER behavior_events_set_updated_at BEFORE UPDATE ON @extschema@.behavior_events
    FOR EACH ROW EXECUTE FUNCTION @extschema@.set_updated_at();
CREATE TRIGGER behavior_insights_set_updated_at BEFORE UPDATE ON @extschema@.behavior_insights
    FOR EACH ROW EXECUTE FUNCTION @extschema@.set_updated_at();
CREATE TRIGGER behavior_sessions_set_updated_at BEFORE UPDATE ON @extschema@.behavior_sessions
    FOR EACH ROW EXECUTE FUNCTION @extschema@.set_updated_at();
CREATE TRIGGER behavior_patterns_set_updated_at BEFORE UPDATE ON @extschema@.behavior_patterns
    FOR EACH ROW EXECUTE FUNCTION @extschema@.set_updated_at();

-- events: what the summaries are made of cannot change afterwards (row level) ...
CREATE FUNCTION @extschema@.behavior_events_before_update() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'pga_behavior_events_before_update';
CREATE TRIGGER behavior_events_before_update BEFORE UPDATE ON @extschema@.behavior_events
    FOR EACH ROW EXECUTE FUNCTION @extschema@.behavior_events_before_update();

-- ... and the insights and session summaries follow every insert (statement level).
CREATE FUNCTION @extschema@.behavior_events_summarize() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'pga_behavior_events_summarize';
CREATE TRIGGER behavior_events_summarize AFTER INSERT ON @extschema@.behavior_events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.behavior_events_summarize();

-- patterns: embedding and JSON shapes validated, the embedding's norm kept.
CREATE FUNCTION @extschema@.behavior_patterns_before_write() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'pga_behavior_patterns_before_write';
CREATE TRIGGER behavior_patterns_before_write BEFORE INSERT OR UPDATE ON @extschema@.behavior_patterns
    FOR EACH ROW EXECUTE FUNCTION @extschema@.behavior_patterns_before_write();

CREATE TRIGGER behavior_patterns_guard_cascades BEFORE DELETE ON @extschema@.behavior_patterns
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.guard_cascades();

-- Row-level security (DESIGN.md section 2 identity rules).
ALTER TABLE @extschema@.behavior_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.behavior_insights ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.behavior_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.behavior_patterns ENABLE ROW LEVEL SECURITY;

-- Analytics are read by admins, the analysis service and services; events are written by the
-- web beacon and services. The summaries have no write policy: only the rules (and roles with
-- BYPASSRLS) write them.
CREATE POLICY behavior_events_read ON @extschema@.behavior_events FOR SELECT
    USING ((SELECT @extschema@.current_app_role()) IN ('admin', 'ai_analysis', 'service_role'));
CREATE POLICY behavior_events_ingest ON @extschema@.behavior_events FOR INSERT
    WITH CHECK ((SELECT @extschema@.current_app_role()) IN ('beacon_ingest', 'service_role'));
CREATE POLICY behavior_insights_read ON @extschema@.behavior_insights FOR SELECT
    USING ((SELECT @extschema@.current_app_role()) IN ('admin', 'ai_analysis', 'service_role'));
CREATE POLICY behavior_sessions_read ON @extschema@.behavior_sessions FOR SELECT
    USING ((SELECT @extschema@.current_app_role()) IN ('admin', 'ai_analysis', 'service_role'));

-- A user reads and writes their own patterns.
CREATE POLICY behavior_patterns_own ON @extschema@.behavior_patterns FOR ALL
    USING (user_id = (SELECT @extschema@.current_user_id()))
    WITH CHECK (user_id = (SELECT @extschema@.current_user_id()));

SELECT pg_catalog.pg_extension_config_dump('@extschema@.behavior_events', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.behavior_insights', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.behavior_sessions', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.behavior_patterns', '');

CREATE FUNCTION @extschema@.find_similar_patterns(
    query_embedding real[],
    match_threshold float8 DEFAULT 0.7,
    match_count int DEFAULT 5,
    p_user_id uuid DEFAULT NULL)
    RETURNS TABLE (id uuid, trigger text, context jsonb, actions jsonb, final_outcome text,
                   confidence float8, use_count int, similarity float8)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    -- The native scan picks the best match_count patterns the caller may see; the rows are
    -- then read as the caller, under row-level security.
    AS $$
        SELECT p.id, p.trigger, p.context, p.actions, p.final_outcome, p.confidence, p.use_count, m.similarity
          FROM @extschema@._similar_patterns(query_embedding, match_threshold, match_count, p_user_id) m
          JOIN @extschema@.behavior_patterns p ON p.id OPERATOR(pg_catalog.=) m.id
         ORDER BY m.similarity DESC, m.id
    $$;
COMMENT ON FUNCTION @extschema@.find_similar_patterns(real[], float8, int, uuid) IS
    'The patterns most similar to query_embedding (cosine similarity >= match_threshold, best first, ties by id). Callers without BYPASSRLS see only their own patterns.';

-- Jobs act on every customer's rows: each checks natively that its caller is a superuser or
-- has BYPASSRLS.
REVOKE EXECUTE ON FUNCTION @extschema@.backfill_behavior_insights() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.refresh_activity_recency() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.cleanup_expired_behavior_events(int) FROM PUBLIC;

REVOKE EXECUTE ON FUNCTION @extschema@.behavior_events_before_update() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.behavior_events_summarize() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.behavior_patterns_before_write() FROM PUBLIC;

-- conversations: sql/conversations.sql as of 0.2.0.

CREATE TABLE @extschema@.conversations (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES @extschema@.tenants (id) ON DELETE CASCADE,
    user_id          uuid NOT NULL REFERENCES @extschema@.profiles (id) ON DELETE CASCADE,
    title            text,
    is_archived      boolean NOT NULL DEFAULT false,
    message_count    int NOT NULL DEFAULT 0 CHECK (message_count >= 0),
    last_message_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversations_tenant_archived_updated_idx ON @extschema@.conversations (tenant_id, is_archived, updated_at DESC);
CREATE INDEX conversations_user_updated_idx ON @extschema@.conversations (user_id, updated_at DESC);

CREATE TABLE @extschema@.conversation_messages (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id  uuid NOT NULL REFERENCES @extschema@.conversations (id) ON DELETE CASCADE,
    tenant_id        uuid NOT NULL,
    user_id          uuid,
    role             text NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content          text NOT NULL,
    model            text,
    input_tokens     int NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens    int NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversation_messages_conversation_created_idx ON @extschema@.conversation_messages (conversation_id, created_at);
CREATE INDEX conversation_messages_tenant_created_idx ON @extschema@.conversation_messages (tenant_id, created_at);

CREATE TABLE @extschema@.feedback (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    message_id  uuid NOT NULL REFERENCES @extschema@.conversation_messages (id) ON DELETE CASCADE,
    tenant_id   uuid NOT NULL,
    user_id     uuid NOT NULL,
    rating      smallint NOT NULL CHECK (rating IN (-1, 1)),
    comment     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT feedback_message_user_key UNIQUE (message_id, user_id)
);
CREATE INDEX feedback_tenant_created_idx ON @extschema@.feedback (tenant_id, created_at);

CREATE TABLE @extschema@.usage_metrics (
    tenant_id       uuid NOT NULL REFERENCES @extschema@.tenants (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL,
    date            date NOT NULL,
    message_count   int NOT NULL DEFAULT 0 CHECK (message_count >= 0),
    input_tokens    bigint NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens   bigint NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    -- Always input + output: derived, so no write can make it disagree.
    total_tokens    bigint GENERATED ALWAYS AS (input_tokens + output_tokens) STORED,
    estimated_cost  numeric(14,6) NOT NULL DEFAULT 0 CHECK (estimated_cost >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id, date)
);
CREATE INDEX usage_metrics_date_idx ON @extschema@.usage_metrics (date);

-- updated_at
CREATE TRIGGER conversations_set_updated_at BEFORE UPDATE ON @extschema@.conversations
    FOR EACH ROW EXECUTE FUNCTION @extschema@.set_updated_at();
CREATE TRIGGER feedback_set_updated_at BEFORE UPDATE ON @extschema@.feedback
    FOR EACH ROW EXECUTE FUNCTION @extschema@.set_updated_at();
CREATE TRIGGER usage_metrics_set_updated_at BEFORE UPDATE ON @extschema@.usage_metrics
    FOR EACH ROW EXECUTE FUNCTION @extschema@.set_updated_at();

-- conversations: counters written by the rules only; tenant and owner stay put.
CREATE FUNCTION @extschema@.conversations_before_write() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'pga_conversations_before_write';
CREATE TRIGGER conversations_before_write BEFORE INSERT OR UPDATE ON @extschema@.conversations
    FOR EACH ROW EXECUTE FUNCTION @extschema@.conversations_before_write();

-- messages: tenant from the conversation (row level) ...
CREATE FUNCTION @extschema@.conversation_messages_before_write() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'pga_conversation_messages_before_write';
CREATE TRIGGER conversation_messages_before_write BEFORE INSERT OR UPDATE ON @extschema@.conversation_messages
    FOR EACH ROW EXECUTE FUNCTION @extschema@.conversation_messages_before_write();

-- ... and the conversation's counters (statement level).
CREATE FUNCTION @extschema@.conversation_messages_count() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'pga_conversation_messages_count';
CREATE TRIGGER conversation_messages_count_insert AFTER INSERT ON @extschema@.conversation_messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.conversation_messages_count();
CREATE TRIGGER conversation_messages_count_delete AFTER DELETE ON @extschema@.conversation_messages
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.conversation_messages_count();

-- feedback: tenant from the message; only on messages of the caller's tenant.
CREATE FUNCTION @extschema@.feedback_before_write() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'pga_feedback_before_write';
CREATE TRIGGER feedback_before_write BEFORE INSERT OR UPDATE ON @extschema@.feedback
    FOR EACH ROW EXECUTE FUNCTION @extschema@.feedback_before_write();

CREATE TRIGGER conversations_guard_cascades BEFORE DELETE ON @extschema@.conversations
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.guard_cascades();
CREATE TRIGGER conversation_messages_guard_cascades BEFORE DELETE ON @extschema@.conversation_messages
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.guard_cascades();

-- Row-level security: a user reads and writes the rows of their own tenant (the tenant of
-- their profile); admins and services everything.
ALTER TABLE @extschema@.conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.conversation_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.feedback ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.usage_metrics ENABLE ROW LEVEL SECURITY;

CREATE POLICY conversations_tenant_read ON @extschema@.conversations FOR SELECT
    USING (tenant_id = (SELECT @extschema@.current_tenant_id()));
CREATE POLICY conversations_tenant_insert ON @extschema@.conversations FOR INSERT
    WITH CHECK (tenant_id = (SELECT @extschema@.current_tenant_id()) AND user_id = (SELECT @extschema@.current_user_id()));
CREATE POLICY conversations_tenant_update ON @extschema@.conversations FOR UPDATE
    USING (tenant_id = (SELECT @extschema@.current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT @extschema@.current_tenant_id()));
CREATE POLICY conversations_tenant_delete ON @extschema@.conversations FOR DELETE
    USING (tenant_id = (SELECT @extschema@.current_tenant_id()));

CREATE POLICY conversation_messages_tenant_read ON @extschema@.conversation_messages FOR SELECT
    USING (tenant_id = (SELECT @extschema@.current_tenant_id()));
CREATE POLICY conversation_messages_tenant_insert ON @extschema@.conversation_messages FOR INSERT
    WITH CHECK (tenant_id = (SELECT @extschema@.current_tenant_id())
                AND (user_id IS NULL OR user_id = (SELECT @extschema@.current_user_id())));
CREATE POLICY conversation_messages_tenant_update ON @extschema@.conversation_messages FOR UPDATE
    USING (tenant_id = (SELECT @extschema@.current_tenant_id()))
    WITH CHECK (tenant_id = (SELECT @extschema@.current_tenant_id()));
CREATE POLICY conversation_messages_tenant_delete ON @extschema@.conversation_messages FOR DELETE
    USING (tenant_id = (SELECT @extschema@.current_tenant_id()));

CREATE POLICY feedback_tenant_read ON @extschema@.feedback FOR SELECT
    USING (tenant_id = (SELECT @extschema@.current_tenant_id()));
CREATE POLICY feedback_own_insert ON @extschema@.feedback FOR INSERT
    WITH CHECK (tenant_id = (SELECT @extschema@.current_tenant_id()) AND user_id = (SELECT @extschema@.current_user_id()));
CREATE POLICY feedback_own_update ON @extschema@.feedback FOR UPDATE
    USING (user_id = (SELECT @extschema@.current_user_id()) AND tenant_id = (SELECT @extschema@.current_tenant_id()))
    WITH CHECK (user_id = (SELECT @extschema@.current_user_id()) AND tenant_id = (SELECT @extschema@.current_tenant_id()));
CREATE POLICY feedback_own_delete ON @extschema@.feedback FOR DELETE
    USING (user_id = (SELECT @extschema@.current_user_id()) AND tenant_id = (SELECT @extschema@.current_tenant_id()));

-- Usage is recorded by increment_usage_metrics() (as the owner); users read their tenant's.
CREATE POLICY usage_metrics_tenant_read ON @extschema@.usage_metrics FOR SELECT
    USING (tenant_id = (SELECT @extschema@.current_tenant_id()));

CREATE POLICY conversations_admin_all ON @extschema@.conversations FOR ALL
    USING ((SELECT @extschema@.current_app_role()) IN ('admin', 'service_role'))
    WITH CHECK ((SELECT @extschema@.current_app_role()) IN ('admin', 'service_role'));
CREATE POLICY conversation_messages_admin_all ON @extschema@.conversation_messages FOR ALL
    USING ((SELECT @extschema@.current_app_role()) IN ('admin', 'service_role'))
    WITH CHECK ((SELECT @extschema@.current_app_role()) IN ('admin', 'service_role'));
CREATE POLICY feedback_admin_all ON @extschema@.feedback FOR ALL
    USING ((SELECT @extschema@.current_app_role()) IN ('admin', 'service_role'))
    WITH CHECK ((SELECT @extschema@.current_app_role()) IN ('admin', 'service_role'));
CREATE POLICY usage_metrics_admin_read ON @extschema@.usage_metrics FOR SELECT
    USING ((SELECT @extschema@.current_app_role()) IN ('admin', 'service_role'));

SELECT pg_catalog.pg_extension_config_dump('@extschema@.conversations', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.conversation_messages', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.feedback', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.usage_metrics', '');

-- Views. Materialized views cannot carry row-level security: they are readable by the owner and
-- by roles with BYPASSRLS that are granted SELECT (the privilege hardening takes it from anyone
-- else); each has a unique index so refresh_analytics_views() refreshes it CONCURRENTLY.
CREATE MATERIALIZED VIEW @extschema@.message_feedback_summary AS
SELECT f.message_id, f.tenant_id,
       count(*) AS feedback_count,
       count(*) FILTER (WHERE f.rating = 1) AS positive_count,
       count(*) FILTER (WHERE f.rating = -1) AS negative_count,
       round(avg(f.rating), 4) AS average_rating,
       max(f.updated_at) AS last_feedback_at
  FROM @extschema@.feedback f
 GROUP BY f.message_id, f.tenant_id;
CREATE UNIQUE INDEX message_feedback_summary_key ON @extschema@.message_feedback_summary (message_id);

CREATE MATERIALIZED VIEW @extschema@.monthly_usage_summary AS
SELECT u.tenant_id, date_trunc('month', u.date)::date AS month,
       count(DISTINCT u.user_id) AS active_users,
       sum(u.message_count)::bigint AS message_count,
       sum(u.input_tokens)::bigint AS input_tokens,
       sum(u.output_tokens)::bigint AS output_tokens,
       sum(u.total_tokens)::bigint AS total_tokens,
       sum(u.estimated_cost) AS estimated_cost
  FROM @extschema@.usage_metrics u
 GROUP BY u.tenant_id, date_trunc('month', u.date);
CREATE UNIQUE INDEX monthly_usage_summary_key ON @extschema@.monthly_usage_summary (tenant_id, month);

-- Today's usage, under the caller's row-level security (security_barrier: the filter runs first).
CREATE VIEW @extschema@.current_day_usage WITH (security_barrier) AS
SELECT u.tenant_id, u.user_id, u.date, u.message_count, u.input_tokens, u.output_tokens, u.total_tokens, u.estimated_cost
  FROM @extschema@.usage_metrics u
 WHERE u.date = CURRENT_DATE
   AND (@extschema@._sees_every_tenant() OR u.tenant_id = (SELECT @extschema@.current_tenant_id()));

REVOKE EXECUTE ON FUNCTION @extschema@.conversations_before_write() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.conversation_messages_before_write() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.conversation_messages_count() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.feedback_before_write() FROM PUBLIC;

CREATE FUNCTION @extschema@."increment_usage_metrics"(
	"p_tenant_id" uuid,
	"p_user_id" uuid,
	"p_date" date,
	"p_input_tokens" INT,
	"p_output_tokens" INT,
	"p_cost" NUMERIC
) RETURNS usage_metrics /* :: pgrx :: heap_tuple :: PgHeapTuple < '_, :: pgrx :: pgbox :: AllocatedByRust
> */
VOLATILE PARALLEL UNSAFE 
LANGUAGE c
AS 'MODULE_PATHNAME', 'increment_usage_metrics_wrapper';

-- web: sql/web.sql as of 0.2.0.

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

-- Last, as in the install script: whatever default privileges granted on the new objects.
SELECT @extschema@._harden_privileges();
