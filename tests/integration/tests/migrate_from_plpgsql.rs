//! The migration from the source documents' PL/pgSQL schema (docs/migrating.md): old databases
//! built from `tests/legacy/` (the documents' tables, PL/pgSQL triggers and functions, rows
//! loaded through those triggers, then the anomalies of a real history) are moved onto the
//! extension by `migrate/pg_assistant_migrate.sql`, run with psql as a user would run it.
//! Checked: the dry run changes nothing and reports what the migration does; the migration
//! keeps every row (each old table's rows, column by column, in the legacy schema and in the new
//! table), repairs what drifted, switches the application's own updated_at triggers, drops the
//! old triggers and functions, and the extension's rules hold afterwards; a failed check
//! changes nothing.

use pg_assistant_integration::postgres::Client;
use pg_assistant_integration::{bindir, connect, ensure_bypassrls_role, ensure_login_role, host, port, sqlstate};
use std::process::Command;

const LEGACY_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../legacy");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrate/pg_assistant_migrate.sql");

const CHAT: &[&str] = &["supabase", "chat_schema", "app_tables", "chat_rows"];
const PLATFORM: &[&str] = &["supabase", "platform_schema", "app_tables", "platform_rows"];

/// A database built from the old migrations, dropped afterwards (kept when the test fails).
struct LegacyDb {
    name: String,
}

impl LegacyDb {
    fn build(test: &str, files: &[&str]) -> Self {
        ensure_login_role("anon");
        ensure_login_role("authenticated");
        ensure_bypassrls_role("service_role");
        let name = format!("it_{test}");
        let mut admin = connect("postgres", "postgres");
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
        admin.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0")).unwrap();
        let db = LegacyDb { name };
        for file in files {
            let path = format!("{LEGACY_DIR}/{file}.sql");
            let out = db.psql(&["-v", "ON_ERROR_STOP=1", "-q", "-f", &path]);
            assert!(out.ok, "loading {file}.sql failed:\n{}", out.stderr);
        }
        db
    }

    fn client(&self) -> Client {
        connect(&self.name, "postgres")
    }

    fn psql(&self, args: &[&str]) -> Output {
        self.psql_env(args, &[])
    }

    fn psql_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let out = Command::new(bindir().join("psql"))
            .args(["-X", "-h", &host(), "-p", &port().to_string(), "-U", "postgres", "-d", &self.name])
            .args(args)
            .envs(env.iter().copied())
            .output()
            .expect("run psql");
        Output {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs the migration with psql variables `vars`.
    fn migrate(&self, vars: &[&str]) -> Output {
        self.migrate_env(vars, &[])
    }

    fn migrate_env(&self, vars: &[&str], env: &[(&str, &str)]) -> Output {
        let mut args = Vec::new();
        for v in vars {
            args.push("-v");
            args.push(*v);
        }
        args.push("-f");
        args.push(SCRIPT);
        self.psql_env(&args, env)
    }
}

impl Drop for LegacyDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let mut admin = connect("postgres", "postgres");
        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Output {
    /// The report line `step | object | rows | note` whose step and object are given: its rows.
    fn rows(&self, step: &str, object: &str) -> Option<i64> {
        self.stdout.lines().find_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            (cells.len() == 4 && cells[0] == step && cells[1] == object).then(|| cells[2].parse().unwrap_or(-1))
        })
    }

    fn has(&self, step: &str, object: &str) -> bool {
        self.rows(step, object).is_some()
    }
}

/// Everything a migration could change: every relation, column, function, trigger, policy and
/// extension outside the system schemas, and every row of every table (as text, hashed).
/// Temporary schemas are left out: the loader's psql session drops its temporary functions
/// when its backend exits, which may be after the test has connected.
fn fingerprint(c: &mut Client) -> Vec<String> {
    let mut out: Vec<String> = c
        .query(
            "SELECT 'rel ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname !~ '^pg_(toast_)?temp_'
             UNION ALL
             SELECT 'col ' || a.attrelid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
               FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname !~ '^pg_(toast_)?temp_' AND a.attnum > 0 AND NOT a.attisdropped
             UNION ALL
             SELECT 'fn ' || p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast_)?temp_'
             UNION ALL
             SELECT 'trigger ' || tgname || ' on ' || tgrelid::regclass || ' ' || tgfoid::regprocedure || ' ' || tgenabled::text
               FROM pg_trigger WHERE NOT tgisinternal
             UNION ALL
             SELECT 'policy ' || polname || ' on ' || polrelid::regclass FROM pg_policy
             UNION ALL
             SELECT 'ext ' || extname || ' ' || extversion FROM pg_extension
             UNION ALL
             SELECT 'acl ' || c.oid::regclass || ' ' || coalesce(c.relacl::text, '')
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname !~ '^pg_(toast_)?temp_'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let tables: Vec<String> = c
        .query(
            "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname !~ '^pg_(toast_)?temp_' AND c.relkind IN ('r', 'm')",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for t in tables {
        let hash: String = c
            .query_one(&format!("SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') FROM {t} x"), &[])
            .unwrap()
            .get(0);
        out.push(format!("rows {t} {hash}"));
    }
    out.sort();
    out
}

/// For an old table and its new table: the row count and a hash of the columns both have
/// (by name, compared as text), leaving out `derived` (columns the migration recomputes).
fn same_rows(c: &mut Client, old: &str, new: &str, key: &str, derived: &[&str]) {
    same_rows_where(c, old, new, "true", key, derived)
}

/// [`same_rows`] for the rows of `new` that match `filter`.
fn same_rows_where(c: &mut Client, old: &str, new: &str, filter: &str, key: &str, derived: &[&str]) {
    let cols: Vec<String> = c
        .query(
            "SELECT a.attname::text FROM pg_attribute a
              WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped
                AND EXISTS (SELECT 1 FROM pg_attribute b WHERE b.attrelid = $2::text::regclass AND b.attname = a.attname
                               AND b.attnum > 0 AND NOT b.attisdropped AND b.attgenerated = '')
              ORDER BY a.attnum",
            &[&old, &new],
        )
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|col| !derived.contains(&col.as_str()))
        .collect();
    assert!(cols.len() >= 3, "{old}: too few common columns to compare: {cols:?}");
    let list = cols.iter().map(|c| format!("x.{c}::text")).collect::<Vec<_>>().join(", ");
    let q = |t: &str, filter: &str| {
        format!("SELECT count(*), md5(string_agg(row({list})::text, '|' ORDER BY x.{key}::text)) FROM {t} x WHERE {filter}")
    };
    let a = c.query_one(&q(old, "true"), &[]).unwrap();
    let b = c.query_one(&q(new, filter), &[]).unwrap();
    let (na, ha): (i64, String) = (a.get(0), a.get(1));
    let (nb, hb): (i64, String) = (b.get(0), b.get(1));
    assert!(na > 0, "{old} is empty: the legacy database should have rows in every table");
    assert_eq!(na, nb, "{old} has {na} rows, {new} {nb}");
    assert_eq!(ha, hb, "{old} and {new} differ in the columns {cols:?}");
}

/// The lines only one of two fingerprints has (empty when they are equal).
fn differences(a: &[String], b: &[String]) -> Vec<String> {
    let only_a = a.iter().filter(|x| !b.contains(x)).map(|x| format!("- {x}"));
    let only_b = b.iter().filter(|x| !a.contains(x)).map(|x| format!("+ {x}"));
    only_a.chain(only_b).collect()
}

fn count(c: &mut Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn dry_run_reports_and_changes_nothing() {
    let db = LegacyDb::build("migrate_dry_run", CHAT);
    let mut c = db.client();
    let before = fingerprint(&mut c);

    // the default is a dry run
    let out = db.migrate(&[]);
    assert!(out.ok, "dry run failed:\n{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("DRY RUN"), "{}", out.stdout);
    assert!(out.stdout.contains("Rolled back (dry run)"), "{}", out.stdout);
    // what it would do, with the anomalies of tests/legacy/README.md counted
    assert_eq!(out.rows("found", "public.messages"), Some(count(&mut c, "SELECT count(*) FROM public.messages")));
    assert_eq!(out.rows("copied", "public.messages"), Some(count(&mut c, "SELECT count(*) FROM public.messages")));
    assert_eq!(out.rows("derived", "sessions.duration_seconds"), Some(1), "A4");
    assert_eq!(out.rows("derived", "messages.session_id"), Some(5), "A3");
    assert_eq!(out.rows("created", "profiles"), Some(1), "A5: the auth user without a profile who owns patterns");
    // 10 sessions (A1, A2, A3) and 5 profiles (A6, A7)
    assert_eq!(out.rows("repaired", "counters (profiles, sessions, conversations)"), Some(15));
    assert_eq!(out.rows("created", "behavior_insights"), Some(2), "B1");
    assert_eq!(out.rows("repaired", "behavior_insights"), Some(3), "B2");
    assert!(out.has("ACTION NEEDED", "view public.active_sessions"), "{}", out.stdout);
    assert!(out.has("switched trigger", "notes_updated_at on public.notes"), "{}", out.stdout);
    assert!(out.has("not carried over", "profiles.avatar_url"), "{}", out.stdout);
    assert!(out.has("dropped function", "legacy_plpgsql.update_updated_at_column()"), "{}", out.stdout);

    drop(c);
    let mut c = db.client();
    let after = fingerprint(&mut c);
    assert!(differences(&before, &after).is_empty(), "the dry run changed the database: {:?}", differences(&before, &after));
    // and the old rules are still the ones that run
    let err = c
        .batch_execute("UPDATE public.messages SET content = 'changed' WHERE id = (SELECT id FROM public.messages ORDER BY id LIMIT 1)")
        .unwrap_err();
    assert_eq!(sqlstate(&err), "P0001");
}

#[test]
fn chat_and_behavior_database_moves_without_losing_a_row() {
    let db = LegacyDb::build("migrate_chat", CHAT);
    // a hostile search_path and look-alike objects do not reach the script
    let mut c = db.client();
    c.batch_execute(
        "CREATE SCHEMA evil;
         CREATE FUNCTION evil.quote_ident(text) RETURNS text LANGUAGE sql AS 'SELECT ''evil''';
         CREATE TABLE evil.sessions (id uuid, user_id uuid, is_completed bool);
         CREATE TABLE evil._m_settings (src text, tgt text, leg text, dry_run bool);",
    )
    .unwrap();
    // an application table of its own that references the old profiles
    c.batch_execute(
        "CREATE TABLE public.user_notes (id serial PRIMARY KEY, user_id uuid NOT NULL REFERENCES public.profiles (id) ON DELETE CASCADE, body text);
         INSERT INTO public.user_notes (user_id, body) SELECT id, 'note' FROM public.profiles ORDER BY id LIMIT 3;",
    )
    .unwrap();
    let messages_before = count(&mut c, "SELECT count(*) FROM public.messages");
    let out = db.migrate_env(&["dry_run=off"], &[("PGOPTIONS", "-c search_path=evil,public,pg_catalog")]);
    assert!(out.ok, "migration failed:\n{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("APPLIED"), "{}", out.stdout);
    drop(c);
    let mut c = db.client();
    c.batch_execute("DROP SCHEMA evil CASCADE").unwrap();

    // every old row, column by column: in the legacy schema untouched, and in the new table
    let leg = "legacy_plpgsql";
    // (plus the profile A5's user got)
    same_rows_where(&mut c, &format!("{leg}.profiles"), "public.profiles", &format!("x.id IN (SELECT id FROM {leg}.profiles)"),
                    "id", &["total_completed_sessions", "weekly_completed_sessions", "week_reset_date"]);
    same_rows(&mut c, &format!("{leg}.scenarios"), "public.scenarios", "id", &[]);
    same_rows(&mut c, &format!("{leg}.sessions"), "public.sessions", "id",
              &["duration_seconds", "message_count_main", "message_count_helper"]);
    same_rows(&mut c, &format!("{leg}.messages"), "public.messages", "id", &[]);
    same_rows(&mut c, &format!("{leg}.logs"), "public.logs", "id", &[]);
    same_rows(&mut c, &format!("{leg}.behavior_events"), "public.behavior_events", "id", &[]);
    same_rows(&mut c, &format!("{leg}.behavior_patterns"), "public.behavior_patterns", "id", &["trigger_embedding"]);
    assert_eq!(count(&mut c, "SELECT count(*) FROM public.messages"), messages_before);
    assert_eq!(count(&mut c, &format!("SELECT count(*) FROM {leg}.messages")), messages_before);

    // embeddings: the same numbers as real[], the norm kept; all-zero ones none here
    assert_eq!(
        count(&mut c, &format!(
            "SELECT count(*) FROM {leg}.behavior_patterns o JOIN public.behavior_patterns n USING (id)
              WHERE n.trigger_embedding IS DISTINCT FROM o.trigger_embedding::real[]")),
        0
    );
    assert_eq!(count(&mut c, "SELECT count(*) FROM public.behavior_patterns WHERE (trigger_embedding IS NULL) <> (trigger_embedding_norm IS NULL)"), 0);
    assert_eq!(count(&mut c, "SELECT count(*) FROM public.behavior_patterns WHERE trigger_embedding IS NULL"), 5);
    let hit: i64 = count(&mut c,
        "SELECT count(*) FROM public.find_similar_patterns((SELECT trigger_embedding FROM public.behavior_patterns
                                                          WHERE trigger_embedding IS NOT NULL ORDER BY id LIMIT 1), 0.99, 5)");
    assert!(hit >= 1, "the migrated embeddings are searchable");

    // repairs: counters equal their recount, summaries count every event
    assert_eq!(count(&mut c, "SELECT count(*) FROM public.verify_counts()"), 0);
    let drift = pg_assistant_integration::behavior_drift(&mut c);
    assert!(drift.is_empty(), "behavior summaries differ from a recount: {drift:?}");
    assert_eq!(count(&mut c, "SELECT count(*) FROM public.sessions WHERE is_completed AND duration_seconds IS NULL"), 0);
    // A3's messages stay (history), the session counts include them
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM public.messages m JOIN public.sessions s ON s.id = m.session_id
                        WHERE s.is_completed AND m.sent_at > s.completed_at"),
        5
    );
    // A5: the user without a profile got one, and owns their patterns
    assert_eq!(count(&mut c, "SELECT count(*) FROM auth.users u WHERE NOT EXISTS (SELECT 1 FROM public.profiles p WHERE p.id = u.id)"), 0);

    // the old triggers and functions are gone; the application's tables use set_updated_at()
    assert_eq!(count(&mut c, &format!(
        "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgrelid::regclass::text LIKE '{leg}.%'")), 0);
    assert_eq!(count(&mut c, "SELECT count(*) FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
                               WHERE l.lanname = 'plpgsql' AND p.pronamespace::regnamespace::text IN ('public', 'legacy_plpgsql')"), 0);
    assert_eq!(count(&mut c, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.notes'::regclass
                               AND tgfoid = 'public.set_updated_at()'::regprocedure"), 1);
    let stamped: bool = c
        .query_one("UPDATE public.notes SET body = body || '!' WHERE id = (SELECT min(id) FROM public.notes)
                    RETURNING updated_at = now()", &[])
        .unwrap()
        .get(0);
    assert!(stamped, "notes.updated_at follows updates after the switch");
    // the legacy copies are not readable by the API roles
    let granted: bool = c
        .query_one("SELECT has_table_privilege('authenticated', 'legacy_plpgsql.messages', 'SELECT')
                        OR has_schema_privilege('anon', 'legacy_plpgsql', 'USAGE')", &[])
        .unwrap()
        .get(0);
    assert!(!granted);

    // the application's foreign key now references the new profiles (A5's profile exists only there)
    assert!(out.has("re-pointed", "foreign key user_notes_user_id_fkey of public.user_notes"), "{}", out.stdout);
    c.batch_execute("INSERT INTO public.user_notes (user_id, body)
                     SELECT id, 'new' FROM public.profiles WHERE id NOT IN (SELECT id FROM legacy_plpgsql.profiles)")
        .unwrap();
    let err = c.batch_execute("INSERT INTO public.user_notes (user_id, body) VALUES (gen_random_uuid(), 'x')").unwrap_err();
    assert_eq!(sqlstate(&err), "23503");

    // the extension's rules are the ones that run now
    let completed: String = c
        .query_one("SELECT id::text FROM public.sessions WHERE is_completed ORDER BY id LIMIT 1", &[])
        .unwrap()
        .get(0);
    let err = c
        .batch_execute(&format!(
            "INSERT INTO public.messages (session_id, role, chat_type, content) VALUES ('{completed}', 'user', 'main', 'late')"
        ))
        .unwrap_err();
    assert_eq!(sqlstate(&err), "P0001");
    let err = c.batch_execute("UPDATE public.messages SET content = 'x' WHERE id = (SELECT id FROM public.messages ORDER BY id LIMIT 1)").unwrap_err();
    assert_eq!(sqlstate(&err), "P0001");
    let open: String = c
        .query_one("SELECT id::text FROM public.sessions WHERE NOT is_completed ORDER BY id LIMIT 1", &[])
        .unwrap()
        .get(0);
    c.batch_execute(&format!(
        "INSERT INTO public.messages (session_id, role, chat_type, content) VALUES ('{open}', 'user', 'helper', 'after')"
    ))
    .unwrap();
    c.batch_execute("INSERT INTO public.behavior_events (customer_id, session_id, event_type) VALUES ('cust_new', 'bs_new', 'login')")
        .unwrap();
    assert_eq!(count(&mut c, "SELECT count(*) FROM public.verify_counts()"), 0);
    assert!(pg_assistant_integration::behavior_drift(&mut c).is_empty());
    // a new auth user gets a profile through the extension's trigger (the old one is gone)
    c.batch_execute("INSERT INTO auth.users (id, email) VALUES ('0000000f-0000-4000-8000-000000000001', 'new@example.com')")
        .unwrap();
    assert_eq!(count(&mut c, "SELECT count(*) FROM public.profiles WHERE id = '0000000f-0000-4000-8000-000000000001'"), 1);
    // identity continues after the copied logs
    c.batch_execute("INSERT INTO public.logs (level, event) VALUES ('info', 'after migration')").unwrap();
    assert_eq!(count(&mut c, &format!("SELECT count(*) FROM public.logs WHERE id <= (SELECT max(id) FROM {leg}.logs) AND event = 'after migration'")), 0);
}

#[test]
fn platform_database_moves_without_losing_a_row() {
    let db = LegacyDb::build("migrate_platform", PLATFORM);
    let out = db.migrate(&["dry_run=off"]);
    assert!(out.ok, "migration failed:\n{}\n{}", out.stdout, out.stderr);
    // the anomalies of tests/legacy/README.md, counted: P1 + P2 (7 counts; P2's last_message_at
    // with them), P3 (2 more last_message_at), P4 (3 durations)
    assert_eq!(out.rows("repaired", "counters (profiles, sessions, conversations)"), Some(7), "{}", out.stdout);
    assert_eq!(out.rows("repaired", "conversations.last_message_at"), Some(2), "{}", out.stdout);
    assert_eq!(out.rows("derived", "user_sessions.duration_seconds"), Some(3), "{}", out.stdout);
    assert!(out.has("ACTION NEEDED", "view public.open_conversations"), "{}", out.stdout);
    assert!(out.has("not carried over", "users.last_login_at"), "{}", out.stdout);
    let mut c = db.client();
    let leg = "legacy_plpgsql";
    same_rows(&mut c, &format!("{leg}.tenants"), "public.tenants", "id", &[]);
    same_rows(&mut c, &format!("{leg}.conversations"), "public.conversations", "id", &["message_count", "last_message_at"]);
    same_rows(&mut c, &format!("{leg}.messages"), "public.conversation_messages", "id", &["tenant_id"]);
    same_rows(&mut c, &format!("{leg}.feedback"), "public.feedback", "id", &["tenant_id"]);
    same_rows(&mut c, &format!("{leg}.usage_metrics"), "public.usage_metrics", "tenant_id::text || x.user_id::text || x.date", &[]);
    same_rows(&mut c, &format!("{leg}.user_sessions"), "public.user_sessions", "id", &["duration_seconds"]);
    same_rows(&mut c, &format!("{leg}.behavior_events"), "public.interaction_events", "id", &[]);
    same_rows(&mut c, &format!("{leg}.conversion_funnels"), "public.conversion_funnels", "id", &[]);
    same_rows(&mut c, &format!("{leg}.optimization_history"), "public.optimization_history", "id", &[]);
    same_rows(&mut c, &format!("{leg}.a_b_tests"), "public.a_b_tests", "id", &[]);
    same_rows(&mut c, &format!("{leg}.variant_assignments"), "public.variant_assignments", "id", &[]);
    // 001's users became profiles, name -> display_name
    assert_eq!(
        count(&mut c, &format!(
            "SELECT count(*) FROM {leg}.users u JOIN public.profiles p USING (id)
              WHERE p.email = u.email::citext AND p.display_name IS NOT DISTINCT FROM u.name AND p.tenant_id = u.tenant_id")),
        count(&mut c, &format!("SELECT count(*) FROM {leg}.users"))
    );

    // repairs do not move updated_at (conversations are listed by it)
    assert_eq!(
        count(&mut c, &format!(
            "SELECT count(*) FROM {leg}.conversations o JOIN public.conversations n USING (id) WHERE n.updated_at <> o.updated_at")),
        0
    );
    // conversations' counters equal their recount; tenants follow the conversation
    assert_eq!(count(&mut c, "SELECT count(*) FROM public.verify_counts()"), 0);
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM public.conversations c
                        WHERE c.last_message_at IS DISTINCT FROM (SELECT max(created_at) FROM public.conversation_messages m
                                                                  WHERE m.conversation_id = c.id)
                          AND EXISTS (SELECT 1 FROM public.conversation_messages m WHERE m.conversation_id = c.id)"),
        0
    );
    assert_eq!(count(&mut c, "SELECT count(*) FROM public.conversation_messages m JOIN public.conversations c
                               ON c.id = m.conversation_id WHERE m.tenant_id <> c.tenant_id"), 0);
    assert_eq!(count(&mut c, "SELECT count(*) FROM public.user_sessions WHERE exit_page IS NOT NULL AND duration_seconds IS NULL"), 0);
    // usage totals: the generated column equals what 001 stored
    assert_eq!(
        count(&mut c, &format!(
            "SELECT count(*) FROM {leg}.usage_metrics o JOIN public.usage_metrics n USING (tenant_id, user_id, date)
              WHERE n.total_tokens <> o.input_tokens + o.output_tokens OR n.estimated_cost <> o.estimated_cost")),
        0
    );
    // the materialized views hold the migrated rows
    assert!(count(&mut c, "SELECT count(*) FROM public.monthly_usage_summary") > 0);
    assert!(count(&mut c, "SELECT count(*) FROM public.message_feedback_summary") > 0);

    // the rules hold afterwards
    let conv: String = c.query_one("SELECT id::text FROM public.conversations ORDER BY id LIMIT 1", &[]).unwrap().get(0);
    let before = count(&mut c, &format!("SELECT message_count::bigint FROM public.conversations WHERE id = '{conv}'"));
    c.batch_execute(&format!("INSERT INTO public.conversation_messages (conversation_id, role, content) VALUES ('{conv}', 'user', 'hi')"))
        .unwrap();
    assert_eq!(count(&mut c, &format!("SELECT message_count::bigint FROM public.conversations WHERE id = '{conv}'")), before + 1);
    let err = c
        .batch_execute("UPDATE public.optimization_history SET status = 'rolled_back', rollback_reason = NULL
                         WHERE id = (SELECT id FROM public.optimization_history WHERE status <> 'rolled_back' ORDER BY id LIMIT 1)")
        .unwrap_err();
    assert_eq!(sqlstate(&err), "P0001");
    assert_eq!(count(&mut c, "SELECT count(*) FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
                               WHERE l.lanname = 'plpgsql' AND p.pronamespace::regnamespace::text IN ('public', 'legacy_plpgsql')"), 0);
}

#[test]
fn a_failed_check_changes_nothing() {
    let db = LegacyDb::build("migrate_refused", CHAT);
    let mut c = db.client();
    // a message whose session is gone (written with the foreign keys skipped)
    c.batch_execute(
        "SET session_replication_role = replica;
         INSERT INTO public.messages (id, session_id, user_id, role, chat_type, content)
         VALUES ('0000000e-0000-4000-8000-000000000001', '0000000e-0000-4000-8000-000000000002',
                 (SELECT id FROM public.profiles ORDER BY id LIMIT 1), 'user', 'main', 'orphan');
         RESET session_replication_role;",
    )
    .unwrap();
    let before = fingerprint(&mut c);
    let out = db.migrate(&["dry_run=off"]);
    assert!(!out.ok, "the migration should stop:\n{}", out.stdout);
    assert!(out.stderr.contains("migration_stopped"), "{}", out.stderr);
    assert!(out.stdout.contains("the migration stops"), "{}", out.stdout);
    assert!(out.stdout.contains("1 rows of public.messages reference a missing row of public.sessions"), "{}", out.stdout);
    drop(c);
    let mut c = db.client();
    let after = fingerprint(&mut c);
    assert!(differences(&before, &after).is_empty(), "a stopped migration changed the database: {:?}", differences(&before, &after));

    // once migrated, a second run refuses before doing anything
    c.batch_execute("SET session_replication_role = replica;
                     DELETE FROM public.messages WHERE id = '0000000e-0000-4000-8000-000000000001'").unwrap();
    let out = db.migrate(&["dry_run=off"]);
    assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
    let out = db.migrate(&["dry_run=off"]);
    assert!(!out.ok);
    assert!(out.stdout.contains("pg_assistant is already installed"), "{}", out.stdout);
}

/// A role that may create objects in the source schema plants a table shaped like one of the
/// documents', with a column of its own type whose cast runs its own function: the migration
/// (run by a superuser) refuses before anything runs, in the dry run too.
#[test]
fn a_cast_written_by_an_ordinary_role_stops_the_migration() {
    const ROLE: &str = "pga_mig_mallory";
    ensure_login_role(ROLE);
    let db = LegacyDb::build("migrate_cast_attack", CHAT);
    let mut c = db.client();
    c.batch_execute(&format!(
        "GRANT CREATE ON SCHEMA public TO {ROLE};
         CREATE TABLE public.cast_ran (by name);
         GRANT INSERT ON public.cast_ran TO {ROLE};
         SET ROLE {ROLE};
         CREATE TYPE public.mood AS ENUM ('1', '-1');
         CREATE FUNCTION public.mood_text(public.mood) RETURNS text LANGUAGE plpgsql AS $f$
           BEGIN INSERT INTO public.cast_ran VALUES (current_user); RETURN $1::text; END $f$;
         CREATE CAST (public.mood AS text) WITH FUNCTION public.mood_text(public.mood);
         CREATE TABLE public.feedback (id uuid PRIMARY KEY, message_id uuid, user_id uuid, rating public.mood);
         INSERT INTO public.feedback VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), '1');
         RESET ROLE;"
    ))
    .unwrap();
    for dry in ["dry_run=on", "dry_run=off"] {
        let out = db.migrate(&[dry]);
        assert!(!out.ok, "{dry}: the migration should stop:\n{}", out.stdout);
        assert!(out.stdout.contains("the cast from public.mood to text calls public.mood_text(public.mood)"), "{dry}: {}", out.stdout);
        assert_eq!(count(&mut c, "SELECT count(*) FROM public.cast_ran"), 0, "{dry}: the cast function ran");
    }
    assert_eq!(count(&mut c, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_assistant'"), 0);
}
