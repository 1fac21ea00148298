-- tests/legacy/supabase.sql
-- The part of a Supabase project the old migrations relied on, reduced to what they use:
-- schema auth, auth.users, auth.uid(), auth.role(), and Supabase's default grants on schema public.
-- Loaded first into both old databases (legacy_chat and legacy_platform).
-- The roles anon, authenticated and service_role are created by the test harness (the cluster is
-- shared by parallel tests); this file only grants to them.

CREATE SCHEMA IF NOT EXISTS auth;

CREATE TABLE auth.users (
  id uuid PRIMARY KEY,
  email text,
  created_at timestamptz DEFAULT now()
);

-- The JWT's "sub" claim as PostgREST passes it (request.jwt.claims JSON; the older
-- request.jwt.claim.sub setting first, as Supabase's own auth.uid() does). NULL when there is none.
CREATE OR REPLACE FUNCTION auth.uid()
RETURNS uuid
LANGUAGE sql STABLE
AS $$
  SELECT coalesce(
           nullif(current_setting('request.jwt.claim.sub', true), ''),
           nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
         )::uuid
$$;

-- The JWT's "role" claim. NULL when there is none.
CREATE OR REPLACE FUNCTION auth.role()
RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT coalesce(
           nullif(current_setting('request.jwt.claim.role', true), ''),
           nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'
         )::text
$$;

GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION auth.uid(), auth.role() TO anon, authenticated, service_role;
GRANT ALL ON TABLE auth.users TO service_role;

-- Supabase's defaults for schema public: the API roles may use it, and every table, sequence and
-- function the project owner creates there is granted to them (RLS does the filtering).
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO anon, authenticated, service_role;
