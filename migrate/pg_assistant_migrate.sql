-- pg_assistant_migrate.sql: moves a database built from the source documents' PL/pgSQL
-- migrations (tables in one schema, usually public) onto the pg_assistant extension.
--
--   psql -X -v dry_run=on  -f pg_assistant_migrate.sql "$DATABASE_URL"   # report only (default)
--   psql -X -v dry_run=off -f pg_assistant_migrate.sql "$DATABASE_URL"   # migrate
--
-- Variables (psql -v name=value): dry_run (on), source_schema (public), target_schema (public),
-- legacy_schema (legacy_plpgsql), lock_timeout (30s). Run as a superuser. docs/migrating.md
-- explains every step; in short, in ONE transaction:
--   1. find the documents' tables in source_schema (by name and a signature column);
--   2. move them, with the documents' views, types and functions, into legacy_schema (kept,
--      untouched rows: the way back) and drop the old profile trigger on auth.users;
--   3. CREATE EXTENSION pg_assistant SCHEMA target_schema;
--   4. copy every row (columns by name, documented renames, types cast), the rules' derived
--      values computed the way the rules compute them;
--   5. repair counters, insights and summaries; refresh the materialized views;
--   6. check: rows per table equal, no orphan, no counter drift (else nothing is changed);
--   7. switch the application's own updated_at triggers to set_updated_at(), drop the old
--      triggers and functions;
--   8. print the report, then ROLLBACK (dry run) or COMMIT.
-- The script is plain SQL and psql; no PL/pgSQL. A failed check prints the problems it found
-- ("the migration stops") and ends with an error (constraint "migration_stopped"); the
-- transaction leaves the database as it was.

\set ON_ERROR_STOP on
\set QUIET on
\if :{?dry_run}
\else
\set dry_run on
\endif
\if :{?source_schema}
\else
\set source_schema public
\endif
\if :{?target_schema}
\else
\set target_schema public
\endif
\if :{?legacy_schema}
\else
\set legacy_schema legacy_plpgsql
\endif
\if :{?lock_timeout}
\else
\set lock_timeout 30s
\endif
\pset pager off
\pset footer off

BEGIN;
-- Everything below names its schema; nothing resolves through the caller's search_path.
SET LOCAL search_path = pg_catalog, pg_temp;
SET LOCAL standard_conforming_strings = on;
SELECT pg_catalog.set_config('lock_timeout', :'lock_timeout', true) \g /dev/null

CREATE TEMP TABLE _m_settings ON COMMIT DROP AS
    SELECT :'source_schema'::text AS src, :'target_schema'::text AS tgt, :'legacy_schema'::text AS leg,
           :'dry_run'::bool AS dry_run;
-- psql decides COMMIT or ROLLBACK from the value the server parsed, not its own reading.
SELECT dry_run AS m_dry_run FROM _m_settings \gset

-- A failed check adds its reason to _m_problems; at each checkpoint the script prints them and
-- stops with an error on _m_guard (constraint "migration_stopped"), which rolls everything back.
CREATE TEMP TABLE _m_problems (problem text) ON COMMIT DROP;
CREATE TEMP TABLE _m_guard (problem text, CONSTRAINT migration_stopped CHECK (problem IS NULL)) ON COMMIT DROP;

-- What the run did (or, in a dry run, would do).
CREATE TEMP TABLE _m_report (seq serial, step text, object text, n bigint, note text) ON COMMIT DROP;

-- ---- 1. the documents' tables ------------------------------------------------------------------
-- (ord, source table, columns that table has in its document, extension table, document): a
-- table is taken only when it has every one of them, so an application's own `users` or
-- `logs` of another shape stays where it is.
CREATE TEMP TABLE _m_tables ON COMMIT DROP AS
SELECT * FROM (VALUES
    (10,  'tenants',              '{slug,name}',                                             'tenants',               '001'),
    (20,  'profiles',             '{email,week_reset_date,total_completed_sessions,weekly_completed_sessions}', 'profiles', '003'),
    (21,  'users',                '{tenant_id,email,name}',                                  'profiles',              '001'),
    (30,  'scenarios',            '{title,emoji}',                                           'scenarios',             '003'),
    (40,  'sessions',             '{user_id,scenario_id,is_completed,message_count_main,message_count_helper}', 'sessions', '003'),
    (50,  'messages',             '{session_id,role,chat_type,content}',                     'messages',              '003'),
    (60,  'logs',                 '{session_id,level,event,metadata}',                       'logs',                  '003'),
    (70,  'behavior_events',      '{customer_id,session_id,event_type,business_impact}',     'behavior_events',       '000'),
    (71,  'behavior_insights',    '{customer_id,total_events,events_by_type}',               'behavior_insights',     '000'),
    (72,  'behavior_sessions',    '{session_id,customer_id,tools_used}',                     'behavior_sessions',     '000'),
    (80,  'behavior_patterns',    '{user_id,trigger,trigger_embedding,final_outcome}',       'behavior_patterns',     '004'),
    (90,  'conversations',        '{tenant_id,user_id,message_count,is_archived}',           'conversations',         '001'),
    (91,  'messages',             '{conversation_id,role,content}',                          'conversation_messages', '001'),
    (92,  'feedback',             '{message_id,user_id,rating}',                             'feedback',              '001'),
    (93,  'usage_metrics',        '{tenant_id,user_id,date,input_tokens,output_tokens}',     'usage_metrics',         '001'),
    (100, 'user_sessions',        '{session_id,landing_page,exit_page}',                     'user_sessions',         '002'),
    (101, 'behavior_events',      '{session_id,event_type,element_path,page_url}',           'interaction_events',    '002'),
    (102, 'conversion_funnels',   '{funnel_name,step_name,step_order,session_id}',           'conversion_funnels',    '002'),
    (103, 'optimization_history', '{proposal_id,status,friction_point}',                     'optimization_history',  '002'),
    (104, 'a_b_tests',            '{test_id,variant_a,variant_b}',                           'a_b_tests',             '002'),
    (105, 'variant_assignments',  '{test_id,session_id,variant}',                            'variant_assignments',   '002')
) v(ord, source, signature, target, document);
ALTER TABLE _m_tables ADD COLUMN relid oid;
UPDATE _m_tables t SET relid = c.oid
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, _m_settings s
 WHERE n.nspname = s.src AND c.relname = t.source AND c.relkind IN ('r', 'p')
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(t.signature::text[]) col
                    WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = col
                                         AND a.attnum > 0 AND NOT a.attisdropped));
DELETE FROM _m_tables WHERE relid IS NULL;

-- Columns the extension computes itself or renames: (ord, extension column, expression over the
-- old row `s`; {leg} is the legacy schema). Everything else is copied by name.
CREATE TEMP TABLE _m_columns ON COMMIT DROP AS
SELECT * FROM (VALUES
    -- 001's users become profiles (no week_reset_date there: the column default applies)
    (21, 'display_name', 's.name'),
    -- a completed session has completed_at and a duration (003's own backfill rule)
    (40, 'completed_at', 'CASE WHEN s.is_completed AND s.completed_at IS NULL
                               THEN greatest(s.started_at, coalesce(s.updated_at, s.started_at))
                               ELSE s.completed_at END'),
    (40, 'duration_seconds', 'CASE WHEN s.is_completed AND s.duration_seconds IS NULL
                                   THEN greatest(0, pg_catalog.floor(pg_catalog.date_part(''epoch'',
                                        coalesce(s.completed_at, greatest(s.started_at,
                                        coalesce(s.updated_at, s.started_at))) - s.started_at)))::int
                                   ELSE s.duration_seconds END'),
    -- a message belongs to its session's user (the rule fills it; a differing value is corrected)
    (50, 'user_id', 'coalesce((SELECT x.user_id FROM {leg}.sessions x WHERE x.id = s.session_id), s.user_id)'),
    -- an all-zero embedding has no direction: migrated as NULL (the old row keeps it)
    (80, 'trigger_embedding', 'CASE WHEN s.trigger_embedding IS NULL
                                      OR (SELECT pg_catalog.bool_and(v = 0) FROM pg_catalog.unnest(s.trigger_embedding::real[]) v)
                                    THEN NULL ELSE s.trigger_embedding::real[] END'),
    -- a conversation message belongs to its conversation's tenant
    (91, 'tenant_id', '(SELECT c.tenant_id FROM {leg}.conversations c WHERE c.id = s.conversation_id)'),
    -- feedback belongs to its message's tenant
    (92, 'tenant_id', '(SELECT c.tenant_id FROM {leg}.messages m JOIN {leg}.conversations c ON c.id = m.conversation_id
                        WHERE m.id = s.message_id)'),
    -- 002's trigger missed exits set at insert: their duration is computed from updated_at
    (100, 'duration_seconds', 'CASE WHEN s.exit_page IS NOT NULL AND s.duration_seconds IS NULL
                                    THEN greatest(0, pg_catalog.floor(pg_catalog.date_part(''epoch'',
                                         coalesce(s.updated_at, s.created_at) - s.created_at)))::int
                                    ELSE s.duration_seconds END')
) v(ord, col, expr);
-- an override applies only when the old table has every column it reads
DELETE FROM _m_columns o USING _m_tables t
 WHERE o.ord = t.ord
   AND EXISTS (SELECT 1 FROM pg_catalog.regexp_matches(o.expr, '\ms\.([a-z_]+)', 'g') m(c)
                WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t.relid AND a.attname = m.c[1]
                                     AND a.attnum > 0 AND NOT a.attisdropped));

-- The documents' views and materialized views (the extension has its own).
CREATE TEMP TABLE _m_views ON COMMIT DROP AS
SELECT c.oid AS relid, c.relname, c.relkind
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, _m_settings s
 WHERE n.nspname = s.src AND c.relkind IN ('v', 'm')
   AND c.relname IN ('message_feedback_summary', 'monthly_usage_summary', 'current_day_usage', 'friction_points',
                     'conversion_impact', 'session_analytics', 'daily_friction_summary', 'component_performance');

-- The documents' functions: every trigger function of their tables and of the profile trigger on
-- auth.users, plus the functions the documents define by name.
CREATE TEMP TABLE _m_functions ON COMMIT DROP AS
SELECT DISTINCT p.oid AS funcid, p.proname
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, _m_settings s
 WHERE n.nspname = s.src
   AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_catalog.pg_proc'::regclass AND e.objid = p.oid AND e.deptype = 'e')
   AND (p.oid IN (SELECT tg.tgfoid FROM pg_trigger tg WHERE NOT tg.tgisinternal AND tg.tgrelid IN (SELECT relid FROM _m_tables))
        OR p.proname IN ('update_updated_at_column', 'update_behavior_pattern_timestamp', 'calculate_session_duration',
                         'prevent_messages_in_completed_sessions', 'prevent_message_updates', 'increment_message_count',
                         'decrement_message_count', 'update_profile_completion_counts', 'populate_message_user_id',
                         'create_profile_for_new_user', 'reset_weekly_limits', 'delete_expired_sessions', 'delete_old_logs',
                         'update_behavior_insights_on_event', 'cleanup_expired_behavior_events',
                         'increment_pattern_use_count', 'find_similar_patterns', 'update_conversation_timestamp',
                         'increment_usage_metrics'));

-- Functions that only set NEW.updated_at: the application's triggers on them switch to set_updated_at().
CREATE TEMP TABLE _m_updated_at_functions ON COMMIT DROP AS
SELECT funcid FROM _m_functions f JOIN pg_proc p ON p.oid = f.funcid
 WHERE p.prorettype = 'pg_catalog.trigger'::regtype
   AND p.prosrc ~* '^\s*begin\s+new\.updated_at\s*:?=\s*(now\(\)|current_timestamp|pg_catalog\.now\(\))\s*;\s*return\s+new\s*;\s*end\s*;?\s*$';

-- ---- preflight ---------------------------------------------------------------------------------
INSERT INTO _m_problems SELECT 'run the migration as a superuser'
 WHERE NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
INSERT INTO _m_problems SELECT 'pg_assistant is already installed in this database'
  FROM pg_extension WHERE extname = 'pg_assistant';
INSERT INTO _m_problems SELECT pg_catalog.format('schema %I already exists: choose another -v legacy_schema', leg)
  FROM _m_settings WHERE pg_catalog.to_regnamespace(pg_catalog.quote_ident(leg)) IS NOT NULL;
INSERT INTO _m_problems SELECT pg_catalog.format('schema %I does not exist', src)
  FROM _m_settings WHERE pg_catalog.to_regnamespace(pg_catalog.quote_ident(src)) IS NULL;
INSERT INTO _m_problems SELECT pg_catalog.format('no table of the source documents in schema %I', src)
  FROM _m_settings WHERE NOT EXISTS (SELECT 1 FROM _m_tables);
INSERT INTO _m_problems SELECT pg_catalog.format('two old tables map onto %s: migrate one database at a time', target)
  FROM _m_tables GROUP BY target HAVING count(*) > 1;
-- The copy casts the old columns' types and compares them: a cast of those types whose
-- function a non-superuser wrote would run as the superuser running this script.
CREATE TEMP TABLE _m_types ON COMMIT DROP AS
SELECT DISTINCT ty FROM _m_tables t JOIN pg_attribute a ON a.attrelid = t.relid AND a.attnum > 0 AND NOT a.attisdropped,
       LATERAL (SELECT a.atttypid UNION SELECT e.typelem FROM pg_type e WHERE e.oid = a.atttypid AND e.typelem <> 0
                UNION SELECT d.typbasetype FROM pg_type d WHERE d.oid = a.atttypid AND d.typbasetype <> 0) x(ty);
INSERT INTO _m_problems
SELECT pg_catalog.format('the cast from %s to %s calls %s, owned by %s, who is not a superuser: drop it or have a superuser own that function',
                         c.castsource::regtype, c.casttarget::regtype, c.castfunc::regprocedure, r.rolname)
  FROM pg_cast c JOIN pg_proc p ON p.oid = c.castfunc JOIN pg_roles r ON r.oid = p.proowner
 WHERE NOT r.rolsuper AND (c.castsource IN (SELECT ty FROM _m_types) OR c.casttarget IN (SELECT ty FROM _m_types));
-- A profile trigger on auth.users other than the document's would insert profiles next to the
-- extension's own hook: sign-ups would fail on the duplicate.
INSERT INTO _m_problems
SELECT pg_catalog.format('trigger %I on auth.users calls %s, which writes profiles; the extension installs its own profile trigger there: drop or change yours first',
                         tg.tgname, tg.tgfoid::regprocedure)
  FROM pg_trigger tg JOIN pg_proc f ON f.oid = tg.tgfoid
 WHERE NOT tg.tgisinternal AND tg.tgrelid = pg_catalog.to_regclass('auth.users')
   AND f.prosrc ~* 'profiles' AND tg.tgfoid NOT IN (SELECT funcid FROM _m_functions);
-- A type of the old columns that the application's own tables use too stays where it is; if
-- the extension needs its name there, the two cannot both be in that schema.
CREATE TEMP TABLE _m_move_types ON COMMIT DROP AS
SELECT DISTINCT ty.oid AS typid, ty.typname
  FROM _m_tables t JOIN pg_attribute a ON a.attrelid = t.relid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_type ty ON ty.oid = a.atttypid JOIN pg_namespace n ON n.oid = ty.typnamespace, _m_settings s
 WHERE n.nspname = s.src AND ty.typtype IN ('e', 'd', 'c') AND ty.typrelid = 0
   AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_catalog.pg_type'::regclass AND e.objid = ty.oid AND e.deptype = 'e')
   AND NOT EXISTS (SELECT 1 FROM pg_attribute u JOIN pg_class uc ON uc.oid = u.attrelid
                    WHERE u.atttypid IN (ty.oid, ty.typarray) AND NOT u.attisdropped AND u.attnum > 0
                      AND uc.relkind IN ('r', 'p', 'f', 'm') AND u.attrelid NOT IN (SELECT relid FROM _m_tables));
INSERT INTO _m_problems
SELECT pg_catalog.format('type %s is used by the application''s own tables as well, and the extension creates a type of that name in schema %I: rename yours first',
                         ty.oid::regtype, s.tgt)
  FROM _m_tables t JOIN pg_attribute a ON a.attrelid = t.relid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_type ty ON ty.oid = a.atttypid JOIN pg_namespace n ON n.oid = ty.typnamespace, _m_settings s
 WHERE n.nspname = s.tgt AND ty.typname IN ('message_role', 'chat_type') AND ty.oid NOT IN (SELECT typid FROM _m_move_types)
 GROUP BY ty.oid, s.tgt;

SELECT count(*) > 0 AS stop FROM _m_problems \gset
\if :stop
\pset footer off
SELECT problem AS "the migration stops: nothing has been changed" FROM _m_problems;
INSERT INTO _m_guard SELECT 'see the problems listed above' FROM _m_problems LIMIT 1;
\endif

INSERT INTO _m_report (step, object, n, note)
SELECT 'found', pg_catalog.format('%I.%I', s.src, t.source), NULL::bigint,
       pg_catalog.format('document %s -> %s', t.document, t.target)
  FROM _m_tables t, _m_settings s ORDER BY t.ord;
SELECT pg_catalog.format($q$UPDATE _m_report SET n = (SELECT count(*) FROM %1$I.%2$I) WHERE step = 'found' AND object = %3$L$q$,
                         s.src, t.source, pg_catalog.format('%I.%I', s.src, t.source))
  FROM _m_tables t, _m_settings s \gexec

-- Views of the application that read an old table: they will keep reading the legacy copy.
INSERT INTO _m_report (step, object, n, note)
SELECT DISTINCT 'ACTION NEEDED', pg_catalog.format('view %s', v.oid::regclass), NULL::bigint,
       pg_catalog.format('reads %I.%I, which moves to %I: recreate the view over %I.%I after the migration',
                         s.src, t.source, s.leg, s.tgt, t.target)
  FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
  JOIN _m_tables t ON t.relid = d.refobjid, _m_settings s
 WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
   AND v.oid <> t.relid AND v.oid NOT IN (SELECT relid FROM _m_views);

-- Publications (Supabase realtime, logical replication) that carry an old table.
INSERT INTO _m_report (step, object, n, note)
SELECT 'ACTION NEEDED', pg_catalog.format('publication %I', p.pubname), NULL::bigint,
       pg_catalog.format('publishes %s, which moves to %I: ALTER PUBLICATION %I ADD TABLE %I.%I', t.relid::regclass, s.leg,
                         p.pubname, s.tgt, t.target)
  FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid JOIN _m_tables t ON t.relid = pr.prrelid, _m_settings s;

-- What the copy itself will change (counted on the old rows).
SELECT pg_catalog.format($q$INSERT INTO _m_report (step, object, n, note)
       SELECT 'derived', %L, count(*), %L FROM %I.%I s WHERE %s HAVING count(*) > 0$q$,
       t.source || '.' || w.col, w.note, st.src, t.source, w.cond)
  FROM (VALUES
        (40, 'completed_at', 's.is_completed AND s.completed_at IS NULL', 'completed session without completed_at: set'),
        (40, 'duration_seconds', 's.is_completed AND s.duration_seconds IS NULL', 'completed session without duration: computed'),
        (50, 'user_id', 's.user_id IS DISTINCT FROM (SELECT x.user_id FROM ' || pg_catalog.quote_ident((SELECT src FROM _m_settings))
                        || '.sessions x WHERE x.id = s.session_id)', 'message user_id differed from its session: corrected'),
        (50, 'session_id', 'EXISTS (SELECT 1 FROM ' || pg_catalog.quote_ident((SELECT src FROM _m_settings))
                           || '.sessions x WHERE x.id = s.session_id AND x.is_completed AND s.sent_at > x.completed_at)',
             'message sent after its session completed: kept as history'),
        (80, 'trigger_embedding', 's.trigger_embedding IS NOT NULL AND (SELECT pg_catalog.bool_and(v = 0) FROM pg_catalog.unnest(s.trigger_embedding::real[]) v)',
             'all-zero embedding: migrated as NULL'),
        (91, 'tenant_id', 's.tenant_id IS DISTINCT FROM (SELECT c.tenant_id FROM ' || pg_catalog.quote_ident((SELECT src FROM _m_settings))
                          || '.conversations c WHERE c.id = s.conversation_id)', 'message tenant differed from its conversation: corrected'),
        (100, 'duration_seconds', 's.exit_page IS NOT NULL AND s.duration_seconds IS NULL', 'exited session without duration: computed')
       ) w(ord, col, cond, note)
  JOIN _m_tables t ON t.ord = w.ord, _m_settings st
 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.regexp_matches(w.cond, '\ms\.([a-z_]+)', 'g') m(c)
                    WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t.relid AND a.attname = m.c[1]
                                         AND a.attnum > 0 AND NOT a.attisdropped))
\gexec

-- ---- 2. the old objects move aside ---------------------------------------------------------------
SELECT pg_catalog.format('CREATE SCHEMA %I', leg) FROM _m_settings \gexec
SELECT pg_catalog.format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', leg) FROM _m_settings \gexec

-- the old profile trigger on auth.users (the extension installs its own)
INSERT INTO _m_report (step, object, n, note)
SELECT 'dropped trigger', pg_catalog.format('%I on auth.users', tg.tgname), NULL::bigint, pg_catalog.format('called %s', tg.tgfoid::regproc)
  FROM pg_trigger tg WHERE NOT tg.tgisinternal AND tg.tgrelid = pg_catalog.to_regclass('auth.users')
   AND tg.tgfoid IN (SELECT funcid FROM _m_functions);
SELECT pg_catalog.format('DROP TRIGGER %I ON auth.users', tg.tgname)
  FROM pg_trigger tg WHERE NOT tg.tgisinternal AND tg.tgrelid = pg_catalog.to_regclass('auth.users')
   AND tg.tgfoid IN (SELECT funcid FROM _m_functions)
\gexec

INSERT INTO _m_report (step, object, n, note)
SELECT 'moved', pg_catalog.format('%I.%I', s.src, t.source), NULL::bigint, pg_catalog.format('to %I.%I', s.leg, t.source)
  FROM _m_tables t, _m_settings s ORDER BY t.ord;
SELECT pg_catalog.format('ALTER TABLE %s SET SCHEMA %I', t.relid::regclass, s.leg) FROM _m_tables t, _m_settings s ORDER BY t.ord \gexec
SELECT pg_catalog.format('ALTER %s %s SET SCHEMA %I', CASE v.relkind WHEN 'v' THEN 'VIEW' ELSE 'MATERIALIZED VIEW' END,
                         v.relid::regclass, s.leg)
  FROM _m_views v, _m_settings s \gexec
-- the types of the old columns (003's enums), where they live in the source schema
SELECT pg_catalog.format('ALTER TYPE %s SET SCHEMA %I', typid::regtype, s.leg) FROM _m_move_types, _m_settings s \gexec
SELECT pg_catalog.format('ALTER FUNCTION %s SET SCHEMA %I', f.funcid::regprocedure, s.leg) FROM _m_functions f, _m_settings s \gexec
SELECT pg_catalog.format('REVOKE ALL ON ALL TABLES IN SCHEMA %1$I FROM PUBLIC%2$s', s.leg,
       (SELECT pg_catalog.string_agg(pg_catalog.format(', %I', rolname), '') FROM pg_roles
         WHERE rolname IN ('anon', 'authenticated', 'service_role')))
  FROM _m_settings s \gexec
SELECT pg_catalog.format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %1$I FROM PUBLIC%2$s', s.leg,
       (SELECT pg_catalog.string_agg(pg_catalog.format(', %I', rolname), '') FROM pg_roles
         WHERE rolname IN ('anon', 'authenticated', 'service_role')))
  FROM _m_settings s \gexec

-- ---- 3. the extension ----------------------------------------------------------------------------
CREATE EXTENSION IF NOT EXISTS citext SCHEMA :"target_schema";
CREATE EXTENSION pg_assistant SCHEMA :"target_schema";
INSERT INTO _m_report (step, object, n, note)
SELECT 'created', 'extension pg_assistant ' || extversion, NULL::bigint, pg_catalog.format('in schema %I', s.tgt)
  FROM pg_extension, _m_settings s WHERE extname = 'pg_assistant';

-- ---- 4. the rows ---------------------------------------------------------------------------------
-- One INSERT ... SELECT per table: the extension's columns that the old table has (by name, cast
-- where the type differs) or that an override computes; a NOT NULL column with a default gets
-- it where the old value is NULL. Rules do not run during the copy (session_replication_role):
-- the rows are history, and everything the rules derive is recomputed in step 5.
CREATE TEMP TABLE _m_copy ON COMMIT DROP AS
SELECT t.ord, t.source, t.target, tc.oid AS target_relid,
       pg_catalog.string_agg(pg_catalog.quote_ident(ta.attname), ', ' ORDER BY ta.attnum) AS cols,
       pg_catalog.string_agg(
           CASE WHEN ta.attnotnull AND d.adbin IS NOT NULL
                THEN pg_catalog.format('coalesce(%s, %s)', e.expr, pg_catalog.pg_get_expr(d.adbin, d.adrelid))
                ELSE e.expr END, ', ' ORDER BY ta.attnum) AS exprs,
       bool_or(ta.attidentity = 'a') AS overriding
  FROM _m_tables t
  JOIN _m_settings s ON true
  JOIN pg_class tc ON tc.relname = t.target AND tc.relnamespace = pg_catalog.to_regnamespace(pg_catalog.quote_ident(s.tgt))
  JOIN pg_attribute ta ON ta.attrelid = tc.oid AND ta.attnum > 0 AND NOT ta.attisdropped AND ta.attgenerated = ''
  LEFT JOIN pg_attrdef d ON d.adrelid = tc.oid AND d.adnum = ta.attnum
  LEFT JOIN _m_columns o ON o.ord = t.ord AND o.col = ta.attname
  LEFT JOIN pg_attribute sa ON sa.attrelid = t.relid AND sa.attname = ta.attname AND sa.attnum > 0 AND NOT sa.attisdropped
  CROSS JOIN LATERAL (SELECT CASE
       WHEN o.expr IS NOT NULL THEN '(' || pg_catalog.replace(o.expr, '{leg}', pg_catalog.quote_ident(s.leg)) || ')'
       -- the INSERT's own assignment conversion: a value too long for the new column is an
       -- error, never silently cut
       WHEN sa.atttypid = ta.atttypid
         OR EXISTS (SELECT 1 FROM pg_cast c WHERE c.castsource = sa.atttypid AND c.casttarget = ta.atttypid
                       AND c.castcontext IN ('a', 'i'))
            THEN 's.' || pg_catalog.quote_ident(sa.attname)
       -- otherwise through text (one enum to another), which checks every value
       ELSE pg_catalog.format('CAST(CAST(s.%I AS text) AS %s)', sa.attname, pg_catalog.format_type(ta.atttypid, ta.atttypmod))
       END AS expr) e
 WHERE o.expr IS NOT NULL OR sa.attname IS NOT NULL
 GROUP BY t.ord, t.source, t.target, tc.oid;

INSERT INTO _m_problems SELECT pg_catalog.format('extension table %I not found after CREATE EXTENSION', t.target)
  FROM _m_tables t WHERE t.ord NOT IN (SELECT ord FROM _m_copy);

-- Old columns the extension has no place for: reported; their values stay in the legacy table.
INSERT INTO _m_report (step, object, n, note)
SELECT 'not carried over', pg_catalog.format('%I.%I', t.source, a.attname), NULL::bigint,
       pg_catalog.format('stays in %I.%I', s.leg, t.source)
  FROM _m_tables t JOIN pg_attribute a ON a.attrelid = t.relid AND a.attnum > 0 AND NOT a.attisdropped, _m_settings s
 WHERE NOT EXISTS (SELECT 1 FROM pg_attribute b JOIN _m_copy c ON c.target_relid = b.attrelid
                    WHERE c.ord = t.ord AND b.attname = a.attname AND b.attnum > 0 AND NOT b.attisdropped)
   AND NOT EXISTS (SELECT 1 FROM _m_columns o WHERE o.ord = t.ord AND pg_catalog.strpos(o.expr, 's.' || a.attname) > 0)
 ORDER BY t.ord, a.attnum;

SELECT count(*) > 0 AS stop FROM _m_problems \gset
\if :stop
\pset footer off
SELECT problem AS "the migration stops: nothing has been changed" FROM _m_problems;
INSERT INTO _m_guard SELECT 'see the problems listed above' FROM _m_problems LIMIT 1;
\endif

-- patterns' owners: a profile for every auth.users row that owns patterns but has none (004's
-- patterns referenced auth.users; the extension's reference profiles)
SELECT pg_catalog.format($q$
    WITH made AS (SELECT %1$I.create_profile(u.id, u.email::text)
                    FROM auth.users u
                   WHERE u.id IN (SELECT user_id FROM %2$I.behavior_patterns)
                     AND u.id NOT IN (SELECT id FROM %1$I.profiles)
                     AND u.id NOT IN (SELECT id FROM %2$I.%3$I))
    INSERT INTO _m_report (step, object, n, note)
    SELECT 'created', 'profiles', count(*), 'for auth.users rows that own patterns but had no profile' FROM made HAVING count(*) > 0$q$,
    s.tgt, s.leg, (SELECT source FROM _m_tables WHERE target = 'profiles'))
  FROM _m_settings s
 WHERE EXISTS (SELECT 1 FROM _m_tables WHERE ord = 80) AND pg_catalog.to_regclass('auth.users') IS NOT NULL
   AND EXISTS (SELECT 1 FROM _m_tables WHERE target = 'profiles')
\gexec

SET LOCAL session_replication_role = replica;
SELECT pg_catalog.format('INSERT INTO %I.%I AS t (%s) %s SELECT %s FROM %I.%I s',
                         s.tgt, c.target, c.cols, CASE WHEN c.overriding THEN 'OVERRIDING SYSTEM VALUE' ELSE '' END,
                         c.exprs, s.leg, c.source)
  FROM _m_copy c, _m_settings s WHERE c.ord <> 80 ORDER BY c.ord \gexec
SET LOCAL session_replication_role = origin;
-- patterns go through their validation trigger, which also keeps the embedding's norm
SELECT pg_catalog.format('INSERT INTO %I.%I AS t (%s) SELECT %s FROM %I.%I s', s.tgt, c.target, c.cols, c.exprs, s.leg, c.source)
  FROM _m_copy c, _m_settings s WHERE c.ord = 80 \gexec

-- identity columns continue after the copied values
SELECT pg_catalog.format($q$INSERT INTO _m_report (step, object, n, note)
       SELECT 'continued', %1$L, pg_catalog.setval(%1$L, max(%2$I)), 'identity continues after the largest copied value'
         FROM %3$I.%4$I HAVING max(%2$I) IS NOT NULL$q$,
                         pg_catalog.pg_get_serial_sequence(pg_catalog.format('%I.%I', s.tgt, c.target), a.attname),
                         a.attname, s.tgt, c.target)
  FROM _m_copy c JOIN pg_attribute a ON a.attrelid = c.target_relid AND a.attidentity <> '', _m_settings s
\gexec

INSERT INTO _m_report (step, object, n, note)
SELECT 'copied', pg_catalog.format('%I.%I', s.tgt, c.target), NULL::bigint, pg_catalog.format('from %I.%I', s.leg, c.source)
  FROM _m_copy c, _m_settings s ORDER BY c.ord;
SELECT pg_catalog.format($q$UPDATE _m_report SET n = (SELECT count(*) FROM %I.%I) WHERE step = 'copied' AND object = %L$q$,
                         s.tgt, c.target, pg_catalog.format('%I.%I', s.tgt, c.target))
  FROM _m_copy c, _m_settings s \gexec

-- ---- 5. counters, insights, summaries --------------------------------------------------------------
-- Without triggers: a repair is not an edit, so no `updated_at` moves (conversations sort by it).
SET LOCAL session_replication_role = replica;
-- chat: completion counters and message counts (and conversations' message_count) to their recount
SELECT pg_catalog.format($q$INSERT INTO _m_report (step, object, n, note)
       SELECT 'repaired', 'counters (profiles, sessions, conversations)', %1$I.repair_counts(),
              'rows whose stored counter differed from a recount'$q$, s.tgt)
  FROM _m_settings s WHERE EXISTS (SELECT 1 FROM _m_tables WHERE ord IN (20, 21, 40, 50, 90, 91)) \gexec
-- the weekly limit counts sessions started this week
SELECT pg_catalog.format($q$WITH w AS (
           UPDATE %1$I.profiles p
              SET weekly_started_sessions = x.n
             FROM (SELECT p2.id, count(x2.id)::int AS n
                     FROM %1$I.profiles p2
                     LEFT JOIN %1$I.sessions x2 ON x2.user_id = p2.id
                          AND x2.started_at >= p2.week_reset_date - interval '7 days'
                    WHERE p2.week_reset_date > pg_catalog.now()
                    GROUP BY p2.id) x
            WHERE p.id = x.id AND p.weekly_started_sessions <> x.n
        RETURNING 1)
       INSERT INTO _m_report (step, object, n, note)
       SELECT 'derived', 'profiles.weekly_started_sessions', count(*), 'sessions started this week, for the weekly limit' FROM w$q$, s.tgt)
  FROM _m_settings s WHERE EXISTS (SELECT 1 FROM _m_tables WHERE ord = 40) \gexec
-- conversations: last_message_at is the newest message's time
SELECT pg_catalog.format($q$WITH m AS (SELECT conversation_id, max(created_at) AS last FROM %1$I.conversation_messages GROUP BY 1),
            u AS (UPDATE %1$I.conversations c SET last_message_at = m.last FROM m
                   WHERE m.conversation_id = c.id AND c.last_message_at IS DISTINCT FROM m.last RETURNING 1)
       INSERT INTO _m_report (step, object, n, note)
       SELECT 'repaired', 'conversations.last_message_at', count(*), 'set to the newest message''s created_at' FROM u$q$, s.tgt)
  FROM _m_settings s WHERE EXISTS (SELECT 1 FROM _m_tables WHERE ord = 91) \gexec
-- behavior: insights and session summaries never lose what they counted (events may have been
-- deleted by retention), and now count every event there is: each value is the larger of the
-- old one and the recount; first/last are min/max.
SELECT pg_catalog.format($q$
    WITH c AS (SELECT customer_id, count(*) AS n,
                      count(*) FILTER (WHERE business_impact IN ('high', 'critical')) AS hi,
                      count(DISTINCT session_id)::int AS sessions,
                      min(event_timestamp) AS first_at, max(event_timestamp) AS last_at
                 FROM %1$I.behavior_events GROUP BY customer_id),
         t AS (SELECT customer_id, pg_catalog.jsonb_object_agg(event_type, n) AS by_type
                 FROM (SELECT customer_id, event_type, count(*) AS n FROM %1$I.behavior_events GROUP BY 1, 2) x GROUP BY 1),
         l AS (SELECT DISTINCT ON (customer_id) customer_id, session_id
                 FROM %1$I.behavior_events ORDER BY customer_id, event_timestamp DESC, session_id DESC),
         up AS (
    INSERT INTO %1$I.behavior_insights AS i
           (customer_id, total_events, events_by_type, high_impact_events, session_count, first_event_at,
            last_session_timestamp, last_session_id, days_since_last_activity)
    SELECT c.customer_id, c.n, t.by_type, c.hi, c.sessions, c.first_at, c.last_at, l.session_id, 0
      FROM c JOIN t USING (customer_id) JOIN l USING (customer_id)
    ON CONFLICT (customer_id) DO UPDATE
       SET total_events = greatest(i.total_events, excluded.total_events),
           events_by_type = (SELECT pg_catalog.jsonb_object_agg(k, greatest(
                                        coalesce((i.events_by_type ->> k)::bigint, 0),
                                        coalesce((excluded.events_by_type ->> k)::bigint, 0)))
                               FROM (SELECT pg_catalog.jsonb_object_keys(coalesce(i.events_by_type, '{}'))
                                     UNION SELECT pg_catalog.jsonb_object_keys(excluded.events_by_type)) ks(k)),
           high_impact_events = greatest(i.high_impact_events, excluded.high_impact_events),
           session_count = greatest(i.session_count, excluded.session_count),
           first_event_at = least(i.first_event_at, excluded.first_event_at),
           last_session_timestamp = greatest(i.last_session_timestamp, excluded.last_session_timestamp),
           last_session_id = CASE WHEN i.last_session_timestamp IS NULL OR excluded.last_session_timestamp >= i.last_session_timestamp
                                  THEN excluded.last_session_id ELSE i.last_session_id END
     WHERE i.total_events IS NULL OR i.total_events < excluded.total_events
        OR i.high_impact_events IS NULL OR i.high_impact_events < excluded.high_impact_events
        OR i.session_count IS NULL OR i.session_count < excluded.session_count
        OR i.first_event_at IS NULL OR i.first_event_at > excluded.first_event_at
        OR i.last_session_timestamp IS NULL OR i.last_session_timestamp < excluded.last_session_timestamp
        OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_each_text(excluded.events_by_type) e
                    WHERE coalesce((i.events_by_type ->> e.key)::bigint, 0) < e.value::bigint)
    RETURNING (xmax = 0) AS created)
    INSERT INTO _m_report (step, object, n, note)
    SELECT 'repaired', 'behavior_insights', count(*) FILTER (WHERE NOT created), 'raised to count every retained event'
      FROM up
    UNION ALL
    SELECT 'created', 'behavior_insights', count(*) FILTER (WHERE created), 'for customers whose events had no insights row'
      FROM up$q$, s.tgt)
  FROM _m_settings s WHERE EXISTS (SELECT 1 FROM _m_tables WHERE ord = 70) \gexec
SELECT pg_catalog.format($q$
    WITH up AS (
    INSERT INTO %1$I.behavior_sessions AS b
           (session_id, customer_id, started_at, ended_at, event_count, high_impact_count, tools_used, duration_seconds)
    SELECT session_id, customer_id, started_at, ended_at, n, hi, tools,
           pg_catalog.floor(pg_catalog.date_part('epoch', ended_at - started_at))::int
      FROM (SELECT session_id, min(customer_id) AS customer_id,
                   min(event_timestamp) AS started_at, max(event_timestamp) AS ended_at, count(*)::int AS n,
                   (count(*) FILTER (WHERE business_impact IN ('high', 'critical')))::int AS hi,
                   coalesce(pg_catalog.array_agg(DISTINCT tool_name ORDER BY tool_name)
                                       FILTER (WHERE tool_name IS NOT NULL), '{}') AS tools
              FROM %1$I.behavior_events GROUP BY session_id) x
    ON CONFLICT (session_id) DO UPDATE
       SET started_at = least(b.started_at, excluded.started_at),
           ended_at = greatest(b.ended_at, excluded.ended_at),
           event_count = greatest(b.event_count, excluded.event_count),
           high_impact_count = greatest(b.high_impact_count, excluded.high_impact_count),
           tools_used = (SELECT pg_catalog.array_agg(DISTINCT u ORDER BY u)
                           FROM pg_catalog.unnest(pg_catalog.array_cat(coalesce(b.tools_used, '{}'), excluded.tools_used)) u),
           duration_seconds = pg_catalog.floor(pg_catalog.date_part('epoch',
                                  greatest(b.ended_at, excluded.ended_at) - least(b.started_at, excluded.started_at)))::int
     WHERE b.started_at IS NULL OR b.started_at > excluded.started_at OR b.ended_at IS NULL OR b.ended_at < excluded.ended_at
        OR b.event_count IS NULL OR b.event_count < excluded.event_count
        OR b.high_impact_count IS NULL OR b.high_impact_count < excluded.high_impact_count
        OR NOT (coalesce(b.tools_used, '{}') @> excluded.tools_used)
    RETURNING (xmax = 0) AS created)
    INSERT INTO _m_report (step, object, n, note)
    SELECT 'repaired', 'behavior_sessions', count(*) FILTER (WHERE NOT created), 'raised to count every retained event' FROM up
    UNION ALL
    SELECT 'created', 'behavior_sessions', count(*) FILTER (WHERE created), 'for sessions whose events had no summary' FROM up$q$, s.tgt)
  FROM _m_settings s WHERE EXISTS (SELECT 1 FROM _m_tables WHERE ord = 70) \gexec
SELECT pg_catalog.format($q$INSERT INTO _m_report (step, object, n, note)
       SELECT 'derived', 'behavior_insights.days_since_last_activity', %1$I.refresh_activity_recency(), 'rows recomputed'$q$, s.tgt)
  FROM _m_settings s WHERE EXISTS (SELECT 1 FROM _m_tables WHERE ord IN (70, 71)) \gexec
SET LOCAL session_replication_role = origin;
-- materialized views: filled from the migrated rows
SELECT pg_catalog.format($q$INSERT INTO _m_report (step, object, n, note)
       SELECT 'refreshed', 'materialized views', NULL, 'refresh_analytics_views()' FROM %I.refresh_analytics_views()$q$, s.tgt)
  FROM _m_settings s \gexec

-- ---- 6. checks (a failure rolls everything back) -----------------------------------------------------
-- every old row is in the new table (the override of user_id/tenant_id never drops a row)
SELECT pg_catalog.format($q$INSERT INTO _m_problems
       SELECT o.n || %L || t.n || %L
         FROM (SELECT count(*) AS n FROM %I.%I) o, (SELECT count(*) AS n FROM %I.%I) t
        WHERE t.n < o.n$q$,
       pg_catalog.format(' rows in %I.%I but ', s.leg, c.source), pg_catalog.format(' in %I.%I', s.tgt, c.target),
       s.leg, c.source, s.tgt, c.target)
  FROM _m_copy c, _m_settings s WHERE c.target <> 'profiles' \gexec
-- the copy ran without foreign-key triggers: prove every reference resolves
SELECT pg_catalog.format($q$INSERT INTO _m_problems
       SELECT count(*) || %L
         FROM %s ch WHERE %s AND NOT EXISTS (SELECT 1 FROM %s p WHERE %s) HAVING count(*) > 0$q$,
       pg_catalog.format(' rows of %s reference a missing row of %s (constraint %I)', con.conrelid::regclass, con.confrelid::regclass, con.conname),
       con.conrelid::regclass,
       (SELECT pg_catalog.string_agg(pg_catalog.format('ch.%I IS NOT NULL', a.attname), ' AND ')
          FROM pg_catalog.unnest(con.conkey) k JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k),
       con.confrelid::regclass,
       (SELECT pg_catalog.string_agg(pg_catalog.format('p.%I = ch.%I', pa.attname, ca.attname), ' AND ')
          FROM ROWS FROM (pg_catalog.unnest(con.conkey), pg_catalog.unnest(con.confkey)) k(c, p)
          JOIN pg_attribute ca ON ca.attrelid = con.conrelid AND ca.attnum = k.c
          JOIN pg_attribute pa ON pa.attrelid = con.confrelid AND pa.attnum = k.p))
  FROM pg_constraint con
 WHERE con.contype = 'f' AND con.conrelid IN (SELECT target_relid FROM _m_copy) \gexec
-- counters equal their recount
SELECT pg_catalog.format($q$INSERT INTO _m_problems
       SELECT pg_catalog.format('counter %%s.%%s of %%s is %%s, recount %%s', table_name, column_name, row_id, stored, actual)
         FROM %I.verify_counts()$q$, s.tgt) FROM _m_settings s \gexec

SELECT count(*) > 0 AS stop FROM _m_problems \gset
\if :stop
\pset footer off
SELECT problem AS "the migration stops: nothing has been changed" FROM _m_problems;
INSERT INTO _m_guard SELECT 'see the problems listed above' FROM _m_problems LIMIT 1;
\endif

-- ---- 7. switch-over ---------------------------------------------------------------------------------
-- the application's own tables: updated_at triggers on the documents' helper become set_updated_at()
CREATE TEMP TABLE _m_app_triggers ON COMMIT DROP AS
SELECT tg.oid, tg.tgname, tg.tgrelid, tg.tgfoid,
       (tg.tgtype & 2) <> 0 AND (tg.tgtype & 1) <> 0 AND (tg.tgtype & (4 | 8 | 32)) = 0 AND (tg.tgtype & 16) <> 0 AS before_update_row
  FROM pg_trigger tg
 WHERE NOT tg.tgisinternal AND tg.tgfoid IN (SELECT funcid FROM _m_updated_at_functions)
   AND tg.tgrelid NOT IN (SELECT relid FROM _m_tables);
SELECT pg_catalog.format('DROP TRIGGER %I ON %s', a.tgname, a.tgrelid::regclass) || '; ' ||
       pg_catalog.regexp_replace(pg_catalog.pg_get_triggerdef(a.oid), 'EXECUTE (FUNCTION|PROCEDURE) .*$',
                                 pg_catalog.format('EXECUTE FUNCTION %I.set_updated_at()', s.tgt))
  FROM _m_app_triggers a, _m_settings s WHERE a.before_update_row \gexec
INSERT INTO _m_report (step, object, n, note)
SELECT CASE WHEN a.before_update_row THEN 'switched trigger' ELSE 'ACTION NEEDED' END,
       pg_catalog.format('%I on %s', a.tgname, a.tgrelid::regclass), NULL::bigint,
       CASE WHEN a.before_update_row THEN pg_catalog.format('%s -> %I.set_updated_at()', p.proname, s.tgt)
            ELSE pg_catalog.format('not BEFORE UPDATE FOR EACH ROW: still calls %s.%s', s.leg, p.proname) END
  FROM _m_app_triggers a JOIN pg_proc p ON p.oid = a.tgfoid, _m_settings s ORDER BY 2;

-- the application's foreign keys to an old table now reference its new table (same key values)
CREATE TEMP TABLE _m_foreign_keys ON COMMIT DROP AS
SELECT con.oid, con.conname, con.conrelid, t.relid AS old_relid, pg_catalog.format('%I.%I', s.tgt, t.target) AS new_table,
       pg_catalog.pg_get_constraintdef(con.oid) AS def,
       NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(con.confkey) k JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k
                    WHERE NOT EXISTS (SELECT 1 FROM pg_attribute b JOIN _m_copy c ON c.target_relid = b.attrelid
                                       WHERE c.ord = t.ord AND b.attname = a.attname AND NOT b.attisdropped)) AS movable
  FROM pg_constraint con JOIN _m_tables t ON t.relid = con.confrelid, _m_settings s
 WHERE con.contype = 'f' AND con.conrelid NOT IN (SELECT relid FROM _m_tables);
SELECT pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I %s', f.conrelid::regclass, f.conname, f.conname,
                         pg_catalog.replace(f.def, 'REFERENCES ' || f.old_relid::regclass::text || '(', 'REFERENCES ' || f.new_table || '('))
  FROM _m_foreign_keys f WHERE f.movable \gexec
INSERT INTO _m_report (step, object, n, note)
SELECT CASE WHEN f.movable THEN 're-pointed' ELSE 'ACTION NEEDED' END,
       pg_catalog.format('foreign key %I of %s', f.conname, f.conrelid::regclass), NULL::bigint,
       CASE WHEN f.movable THEN pg_catalog.format('now references %s', f.new_table)
            ELSE pg_catalog.format('still references %s (its columns are not in %s)', f.old_relid::regclass, f.new_table) END
  FROM _m_foreign_keys f ORDER BY 2;

-- the old tables' triggers go (the legacy copies stay as they were, without rules)
INSERT INTO _m_report (step, object, n, note)
SELECT 'dropped trigger', pg_catalog.format('%I on %s', tg.tgname, tg.tgrelid::regclass), NULL::bigint, pg_catalog.format('called %s', p.proname)
  FROM pg_trigger tg JOIN pg_proc p ON p.oid = tg.tgfoid
 WHERE NOT tg.tgisinternal AND tg.tgrelid IN (SELECT relid FROM _m_tables) ORDER BY 2;
SELECT pg_catalog.format('DROP TRIGGER %I ON %s', tg.tgname, tg.tgrelid::regclass)
  FROM pg_trigger tg WHERE NOT tg.tgisinternal AND tg.tgrelid IN (SELECT relid FROM _m_tables) \gexec

-- and the old functions, where nothing depends on them any more
CREATE TEMP TABLE _m_drop_functions ON COMMIT DROP AS
SELECT f.funcid, f.proname FROM _m_functions f
 WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.refclassid = 'pg_catalog.pg_proc'::regclass AND d.refobjid = f.funcid
                      AND d.deptype = 'n');
INSERT INTO _m_report (step, object, n, note)
SELECT CASE WHEN d.funcid IS NULL THEN 'ACTION NEEDED' ELSE 'dropped function' END, f.funcid::regprocedure::text, NULL::bigint,
       CASE WHEN d.funcid IS NULL THEN 'kept: still used (see the switched/ACTION NEEDED triggers)' ELSE '' END
  FROM _m_functions f LEFT JOIN _m_drop_functions d USING (funcid) ORDER BY 2;
SELECT pg_catalog.format('DROP FUNCTION %s', funcid::regprocedure) FROM _m_drop_functions \gexec

-- PostgREST / Supabase reload their schema cache at commit
NOTIFY pgrst, 'reload schema';

-- ---- 8. report ------------------------------------------------------------------------------------
\if :m_dry_run
\echo
\echo 'pg_assistant migration: DRY RUN. This is what the migration would do; nothing has been changed.'
\else
\echo
\echo 'pg_assistant migration: APPLIED.'
\endif
SELECT step, object, n AS rows, note FROM _m_report ORDER BY seq;
\if :m_dry_run
ROLLBACK;
\echo 'Rolled back (dry run). Run again with -v dry_run=off to migrate.'
\else
COMMIT;
\echo 'Committed. The old tables stay in the legacy schema until you drop it (docs/migrating.md).'
\endif
