-- Identity and tenancy (DESIGN.md 3.1): tenants and profiles.
-- Profiles are created only through create_profile() (or the auth.users hook); there is no
-- INSERT policy. Counter and limit columns, the tenant and the e-mail address are written only
-- by the extension's rules and by callers with BYPASSRLS (guarded natively by
-- profiles_guard_protected_columns).

CREATE TABLE @extschema@.tenants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    slug        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE @extschema@.profiles (
    id                         uuid PRIMARY KEY,
    tenant_id                  uuid REFERENCES @extschema@.tenants (id) ON DELETE SET NULL,
    email                      citext NOT NULL UNIQUE,
    display_name               text,
    total_completed_sessions   int NOT NULL DEFAULT 0 CHECK (total_completed_sessions >= 0),
    weekly_completed_sessions  int NOT NULL DEFAULT 0 CHECK (weekly_completed_sessions >= 0),
    -- Sessions started this week, never decremented: what weekly_session_limit caps.
    weekly_started_sessions    int NOT NULL DEFAULT 0 CHECK (weekly_started_sessions >= 0),
    weekly_session_limit       int CHECK (weekly_session_limit >= 0),
    week_reset_date            timestamptz NOT NULL DEFAULT @extschema@.next_week_start(now()),
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX profiles_tenant_idx ON @extschema@.profiles (tenant_id);
-- reset_weekly_limits() finds due profiles by index, so a second run in the same week reads nothing.
CREATE INDEX profiles_week_reset_date_idx ON @extschema@.profiles (week_reset_date);

CREATE TRIGGER tenants_set_updated_at BEFORE UPDATE ON @extschema@.tenants
    FOR EACH ROW EXECUTE FUNCTION @extschema@.set_updated_at();
CREATE TRIGGER profiles_set_updated_at BEFORE UPDATE ON @extschema@.profiles
    FOR EACH ROW EXECUTE FUNCTION @extschema@.set_updated_at();

CREATE FUNCTION @extschema@.profiles_guard_protected_columns() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'pga_profiles_guard';
CREATE TRIGGER profiles_guard_protected_columns BEFORE UPDATE ON @extschema@.profiles
    FOR EACH ROW EXECUTE FUNCTION @extschema@.profiles_guard_protected_columns();

ALTER TABLE @extschema@.tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.profiles ENABLE ROW LEVEL SECURITY;

-- A user sees their own tenant; admins and services manage tenants.
CREATE POLICY tenants_select_own ON @extschema@.tenants FOR SELECT
    USING (id = (SELECT p.tenant_id FROM @extschema@.profiles p WHERE p.id = (SELECT @extschema@.current_user_id())));
CREATE POLICY tenants_admin_all ON @extschema@.tenants FOR ALL
    USING ((SELECT @extschema@.current_app_role()) IN ('admin', 'service_role'))
    WITH CHECK ((SELECT @extschema@.current_app_role()) IN ('admin', 'service_role'));

CREATE POLICY profiles_select_own ON @extschema@.profiles FOR SELECT
    USING (id = (SELECT @extschema@.current_user_id()));
CREATE POLICY profiles_update_own ON @extschema@.profiles FOR UPDATE
    USING (id = (SELECT @extschema@.current_user_id()))
    WITH CHECK (id = (SELECT @extschema@.current_user_id()));

SELECT pg_catalog.pg_extension_config_dump('@extschema@.tenants', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.profiles', '');

CREATE FUNCTION @extschema@.create_profile(user_id uuid, email text, display_name text DEFAULT NULL)
    RETURNS @extschema@.profiles
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
    -- Two statements: the insert must run whatever the planner does with the lookup.
    AS $$
        SELECT @extschema@._create_profile(user_id, email, display_name);
        SELECT p.* FROM @extschema@.profiles p WHERE p.id = user_id;
    $$;
COMMENT ON FUNCTION @extschema@.create_profile(uuid, text, text) IS
    'Creates the profile of user_id (the only creation path). Callers without BYPASSRLS may create only their own profile.';

-- When Supabase's auth.users exists, every new user gets a profile.
SELECT @extschema@._install_auth_hook();
REVOKE EXECUTE ON FUNCTION @extschema@._install_auth_hook() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION @extschema@.profiles_guard_protected_columns() FROM PUBLIC;
