-- pg_assistant 0.1.0 -> 0.2.0: the behavior module (DESIGN.md 3.3): analytics events with
-- their insights and session summaries, behaviour patterns with native similarity search.
-- Only new objects: nothing of 0.1.0 changes, so the upgrade takes no lock on existing tables.

-- Native functions of the module.
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

-- Tables, rules and policies: sql/behavior.sql as of 0.2.0.

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

-- Last, as in the install script: whatever default privileges granted on the new objects.
SELECT @extschema@._harden_privileges();
