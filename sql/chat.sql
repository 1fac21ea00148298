-- chat (DESIGN.md 3.2, source 003): scenarios, sessions, messages, logs.
-- Every rule is a native trigger; counters are kept per statement from transition tables.

CREATE TYPE @extschema@.message_role AS ENUM ('user', 'scenario', 'helper');
CREATE TYPE @extschema@.chat_type AS ENUM ('main', 'helper');

CREATE TABLE @extschema@.scenarios (
    id           text PRIMARY KEY,
    title        text NOT NULL UNIQUE,
    emoji        text CHECK (octet_length(emoji) <= 16),
    description  text,
    sort_order   smallint NOT NULL DEFAULT 0,
    is_active    boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE @extschema@.sessions (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id               uuid NOT NULL REFERENCES @extschema@.profiles (id) ON DELETE CASCADE ON UPDATE CASCADE,
    scenario_id           text NOT NULL REFERENCES @extschema@.scenarios (id) ON UPDATE CASCADE,
    started_at            timestamptz NOT NULL DEFAULT now(),
    is_completed          boolean NOT NULL DEFAULT false,
    completed_at          timestamptz,
    duration_seconds      int,
    message_count_main    int NOT NULL DEFAULT 0,
    message_count_helper  int NOT NULL DEFAULT 0,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sessions_completed_has_completed_at CHECK (NOT is_completed OR completed_at IS NOT NULL),
    CONSTRAINT sessions_times_finite CHECK (isfinite(started_at) AND (completed_at IS NULL OR isfinite(completed_at))),
    CONSTRAINT sessions_completed_after_started CHECK (completed_at IS NULL OR completed_at >= started_at),
    CONSTRAINT sessions_duration_non_negative CHECK (duration_seconds IS NULL OR duration_seconds >= 0),
    CONSTRAINT sessions_message_counts_non_negative CHECK (message_count_main >= 0 AND message_count_helper >= 0)
);
CREATE INDEX sessions_user_history_idx ON @extschema@.sessions (user_id, started_at DESC);
CREATE INDEX sessions_user_scenario_idx ON @extschema@.sessions (user_id, scenario_id, started_at DESC);
CREATE INDEX sessions_scenario_idx ON @extschema@.sessions (scenario_id, is_completed);
CREATE INDEX sessions_user_completed_idx ON @extschema@.sessions (user_id, completed_at) WHERE is_completed;
CREATE INDEX sessions_started_at_idx ON @extschema@.sessions (started_at);

CREATE TABLE @extschema@.messages (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id         uuid NOT NULL REFERENCES @extschema@.sessions (id) ON DELETE CASCADE ON UPDATE CASCADE,
    user_id            uuid NOT NULL,
    role               @extschema@.message_role NOT NULL,
    chat_type          @extschema@.chat_type NOT NULL,
    content            text NOT NULL CHECK (char_length(content) BETWEEN 1 AND 8000),
    sent_at            timestamptz NOT NULL DEFAULT now(),
    client_message_id  uuid,
    CONSTRAINT messages_role_chat_type_valid CHECK (
        (role = 'scenario' AND chat_type = 'main')
     OR (role = 'helper' AND chat_type = 'helper')
     OR role = 'user')
);
CREATE INDEX messages_session_time_id_idx ON @extschema@.messages (session_id, sent_at, id);
CREATE INDEX messages_user_idx ON @extschema@.messages (user_id);
CREATE UNIQUE INDEX messages_client_message_id_key ON @extschema@.messages (user_id, client_message_id)
    WHERE client_message_id IS NOT NULL;

CREATE TABLE @extschema@.logs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id  uuid REFERENCES @extschema@.sessions (id) ON DELETE SET NULL ON UPDATE CASCADE,
    user_id     uuid,
    level       text NOT NULL CHECK (level IN ('debug', 'info', 'warn', 'error')),
    event       text NOT NULL,
    message     text,
    metadata    jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX logs_session_idx ON @extschema@.logs (session_id, created_at DESC);
CREATE INDEX logs_created_at_idx ON @extschema@.logs (created_at);
CREATE INDEX logs_metadata_idx ON @extschema@.logs USING gin (metadata);

-- updated_at
CREATE TRIGGER scenarios_set_updated_at BEFORE UPDATE ON @extschema@.scenarios
    FOR EACH ROW EXECUTE FUNCTION @extschema@.set_updated_at();
CREATE TRIGGER sessions_set_updated_at BEFORE UPDATE ON @extschema@.sessions
    FOR EACH ROW EXECUTE FUNCTION @extschema@.set_updated_at();

-- sessions: completion, reopening, weekly limit, protected columns (row level) ...
CREATE FUNCTION @extschema@.sessions_before_write() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'pga_sessions_before_write';
CREATE TRIGGER sessions_before_write BEFORE INSERT OR UPDATE ON @extschema@.sessions
    FOR EACH ROW EXECUTE FUNCTION @extschema@.sessions_before_write();

-- ... and the profile completion counters (statement level).
CREATE FUNCTION @extschema@.sessions_count_completions() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'pga_sessions_count_completions';
CREATE TRIGGER sessions_count_completions_insert AFTER INSERT ON @extschema@.sessions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.sessions_count_completions();
CREATE TRIGGER sessions_count_completions_update AFTER UPDATE ON @extschema@.sessions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.sessions_count_completions();
CREATE TRIGGER sessions_count_completions_delete AFTER DELETE ON @extschema@.sessions
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.sessions_count_completions();

-- messages: user_id from the session, completed-session guard (row level) ...
CREATE FUNCTION @extschema@.messages_before_insert() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'pga_messages_before_insert';
CREATE TRIGGER messages_before_insert BEFORE INSERT ON @extschema@.messages
    FOR EACH ROW EXECUTE FUNCTION @extschema@.messages_before_insert();

-- ... immutability ...
CREATE TRIGGER messages_immutable BEFORE UPDATE ON @extschema@.messages
    FOR EACH ROW EXECUTE FUNCTION @extschema@.forbid_update('messages are immutable');

-- ... and the per-session message counts (statement level).
CREATE FUNCTION @extschema@.messages_count() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'pga_messages_count';
CREATE TRIGGER messages_count_insert AFTER INSERT ON @extschema@.messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.messages_count();
CREATE TRIGGER messages_count_delete AFTER DELETE ON @extschema@.messages
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.messages_count();

-- logs: ordinary callers log only about their own sessions; id and created_at are assigned.
CREATE FUNCTION @extschema@.logs_before_insert() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'pga_logs_before_insert';
CREATE TRIGGER logs_before_insert BEFORE INSERT ON @extschema@.logs
    FOR EACH ROW EXECUTE FUNCTION @extschema@.logs_before_insert();

-- Deletes that cascade (tenants -> profiles -> sessions -> messages, logs) run the children's
-- triggers as the table owner: check that they are all trusted before the first row goes.
CREATE FUNCTION @extschema@.guard_cascades() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'pga_guard_cascades';
CREATE TRIGGER tenants_guard_cascades BEFORE DELETE ON @extschema@.tenants
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.guard_cascades();
CREATE TRIGGER profiles_guard_cascades BEFORE DELETE ON @extschema@.profiles
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.guard_cascades();
CREATE TRIGGER sessions_guard_cascades BEFORE DELETE ON @extschema@.sessions
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.guard_cascades();

-- Row-level security: a user reads and writes only their own rows.
ALTER TABLE @extschema@.scenarios ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.logs ENABLE ROW LEVEL SECURITY;

CREATE POLICY scenarios_select_all ON @extschema@.scenarios FOR SELECT USING (true);
CREATE POLICY scenarios_admin_write ON @extschema@.scenarios FOR ALL
    USING ((SELECT @extschema@.current_app_role()) IN ('admin', 'service_role'))
    WITH CHECK ((SELECT @extschema@.current_app_role()) IN ('admin', 'service_role'));

CREATE POLICY sessions_own ON @extschema@.sessions FOR ALL
    USING (user_id = (SELECT @extschema@.current_user_id()))
    WITH CHECK (user_id = (SELECT @extschema@.current_user_id()));

CREATE POLICY messages_select_own ON @extschema@.messages FOR SELECT
    USING (user_id = (SELECT @extschema@.current_user_id()));
CREATE POLICY messages_insert_own ON @extschema@.messages FOR INSERT
    WITH CHECK (user_id = (SELECT @extschema@.current_user_id()));
CREATE POLICY messages_delete_own ON @extschema@.messages FOR DELETE
    USING (user_id = (SELECT @extschema@.current_user_id()));

CREATE POLICY logs_select_own ON @extschema@.logs FOR SELECT
    USING (user_id = (SELECT @extschema@.current_user_id()));
CREATE POLICY logs_insert_own ON @extschema@.logs FOR INSERT
    WITH CHECK (user_id = (SELECT @extschema@.current_user_id()));

SELECT pg_catalog.pg_extension_config_dump('@extschema@.scenarios', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.sessions', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.messages', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.logs', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.logs_id_seq', '');

-- Jobs and maintenance functions are for the owner and services: each checks natively that its
-- caller is a superuser or has BYPASSRLS, whatever EXECUTE grants say.
REVOKE EXECUTE ON FUNCTION @extschema@.reset_weekly_limits(int) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.delete_expired_sessions(interval) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.delete_old_logs(interval) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.repair_counts() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.verify_counts() FROM PUBLIC;

-- The chat trigger functions serve only the extension's own tables.
REVOKE EXECUTE ON FUNCTION @extschema@.sessions_before_write() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.sessions_count_completions() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.messages_before_insert() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.messages_count() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.logs_before_insert() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.guard_cascades() FROM PUBLIC;
