-- conversations (DESIGN.md 3.4, source 001): tenants' assistant chats, feedback and usage.
-- A conversation message takes its tenant from its conversation and bumps the conversation's
-- counters once per conversation per statement (src/conversations.rs).

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
