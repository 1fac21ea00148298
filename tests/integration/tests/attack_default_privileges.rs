//! `CREATE EXTENSION` under Supabase-like default privileges (the extra test).
//!
//! Supabase runs `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES, FUNCTIONS,
//! SEQUENCES TO anon, authenticated`, so every object the extension creates in `public` would
//! hand those roles TRIGGER (run code as the owner), TRUNCATE (skip every rule), REFERENCES (pin
//! or cascade into the extension's rows), every sequence privilege (`setval`), and EXECUTE on
//! the jobs and on the internal functions.
//!
//! What must happen instead, checked against the catalog rather than a hand-written list: no
//! role without SUPERUSER or BYPASSRLS keeps TRIGGER, TRUNCATE or REFERENCES on any table that
//! is a member of the extension, or any privilege on its sequences, or EXECUTE on its internal
//! functions. The jobs keep the EXECUTE the default privileges gave (that grant is not the gate):
//! each refuses such roles natively with `42501`, whatever JWT claims they carry, and changes
//! nothing; a `LOGIN BYPASSRLS` role runs all of them.
//!
//! REFERENCES granted on a single column (`GRANT REFERENCES (id) ON sessions`, or `GRANT ALL
//! (id)`) pins the extension's rows just as well as the table-level privilege: a foreign key of
//! the attacker's (`ON DELETE RESTRICT`) would block users' deletions and the retention job. It
//! is revoked the same way, by the GRANT guard at once, or by `_harden_privileges()` when the
//! guard was off.

use pg_assistant_integration::postgres::Client;
use pg_assistant_integration::{assert_server_alive, connect, ensure_ordinary_role, message, sqlstate, with_claims, TestDb};
use serde_json::json;
use uuid::Uuid;

const ANON: &str = "pga_atk_dp_anon";
const AUTH: &str = "pga_atk_dp_auth";
const SERVICE: &str = "pga_atk_dp_service";

/// The jobs: signature (for has_function_privilege), the call an attacker makes, and the name
/// in the refusal.
const JOBS: [(&str, &str, &str); 5] = [
    ("reset_weekly_limits(integer)", "SELECT reset_weekly_limits()", "reset_weekly_limits"),
    ("delete_expired_sessions(interval)", "SELECT delete_expired_sessions('0 seconds')", "delete_expired_sessions"),
    ("delete_old_logs(interval)", "SELECT delete_old_logs('0 seconds')", "delete_old_logs"),
    ("verify_counts()", "SELECT count(*) FROM verify_counts()", "verify_counts"),
    ("repair_counts()", "SELECT repair_counts()", "repair_counts"),
];

const INTERNAL_FUNCTIONS: [&str; 9] = [
    "_harden_privileges()",
    "_install_auth_hook()",
    "_guard_ddl()",
    "sessions_before_write()",
    "sessions_count_completions()",
    "messages_before_insert()",
    "messages_count()",
    "logs_before_insert()",
    "profiles_guard_protected_columns()",
];

/// The relations of kind `relkinds` (e.g. `'r', 'p'`) that are members of the extension
/// (pg_depend deptype 'e').
fn members(relkinds: &str) -> String {
    format!(
        "SELECT c.oid FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
          WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_extension'::regclass
            AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_assistant') AND d.deptype = 'e'
            AND c.relkind IN ({relkinds})"
    )
}

/// Roles that are neither superusers nor BYPASSRLS. The predefined `pg_*` roles are left out:
/// `pg_read_all_data` and `pg_write_all_data` hold SELECT / UPDATE on every sequence by
/// definition (no ACL entry, nothing a REVOKE could remove), and only a superuser hands them out.
const ORDINARY_ROLES: &str =
    "SELECT oid, rolname FROM pg_roles WHERE NOT rolsuper AND NOT rolbypassrls AND rolname !~ '^pg_'";

fn supabase_db(test: &str) -> TestDb {
    ensure_ordinary_role(ANON);
    ensure_ordinary_role(AUTH);
    TestDb::supabase_like(test, &[ANON, AUTH])
}

/// The rows of `sql`, each a forbidden privilege some role holds, as text.
fn violations(su: &mut Client, sql: &str) -> Vec<String> {
    su.query(sql, &[]).unwrap().iter().map(|r| r.get(0)).collect()
}

#[test]
fn no_ordinary_role_keeps_trigger_truncate_references_or_sequence_rights() {
    let db = supabase_db("atk_dp_tables");
    let mut su = db.superuser();

    // The enumeration is not empty: every table of every module (schema::OWN_TABLES), one
    // sequence, our two roles among the ordinary ones.
    let tables: i64 = su.query_one(&format!("SELECT count(*) FROM ({}) m", members("'r', 'p'")), &[]).unwrap().get(0);
    assert_eq!(tables, 20);
    let roles: Vec<String> = su
        .query(&format!("SELECT rolname::text FROM ({ORDINARY_ROLES}) r ORDER BY 1"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(roles.contains(&ANON.to_owned()) && roles.contains(&AUTH.to_owned()), "{roles:?}");
    // And the default privileges were in force: the data privileges are there.
    for role in [ANON, AUTH] {
        let select: bool = su.query_one("SELECT has_table_privilege($1, 'public.sessions', 'SELECT, INSERT, UPDATE, DELETE')", &[&role])
            .unwrap()
            .get(0);
        assert!(select, "default privileges did not apply to {role}");
    }

    let held = violations(
        &mut su,
        &format!(
            "SELECT format('%s %s on %s', r.rolname, p.privilege, m.oid::regclass)
               FROM ({tables}) m
              CROSS JOIN ({ORDINARY_ROLES}) r
              CROSS JOIN unnest(ARRAY['TRIGGER', 'TRUNCATE', 'REFERENCES']) p(privilege)
              WHERE has_table_privilege(r.oid, m.oid, p.privilege)",
            tables = members("'r', 'p'")
        ),
    );
    assert!(held.is_empty(), "ordinary roles hold: {held:?}");

    // logs_id_seq (the identity of logs) is the extension's only sequence.
    let sequences: i64 = su.query_one(&format!("SELECT count(*) FROM ({}) m", members("'S'")), &[]).unwrap().get(0);
    assert_eq!(sequences, 1);
    let held = violations(
        &mut su,
        &format!(
            "SELECT format('%s %s on %s', r.rolname, p.privilege, m.oid::regclass)
               FROM ({sequences}) m
              CROSS JOIN ({ORDINARY_ROLES}) r
              CROSS JOIN unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) p(privilege)
              WHERE has_sequence_privilege(r.oid, m.oid, p.privilege)",
            sequences = members("'S'")
        ),
    );
    assert!(held.is_empty(), "ordinary roles hold: {held:?}");
}

#[test]
fn jobs_refuse_ordinary_roles_whatever_their_grants_and_claims() {
    let db = supabase_db("atk_dp_jobs");
    let mut su = db.superuser();
    su.batch_execute("INSERT INTO scenarios (id, title) VALUES ('market', 'Marketplace')").unwrap();
    let user = Uuid::new_v4();
    su.execute("SELECT create_profile($1, 'jobs@example.com')", &[&user]).unwrap();
    for _ in 0..3 {
        let s: Uuid = su
            .query_one(
                "INSERT INTO sessions (user_id, scenario_id, started_at) VALUES ($1, 'market', now() - interval '1 day') RETURNING id",
                &[&user],
            )
            .unwrap()
            .get(0);
        su.execute("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'hi')", &[&s]).unwrap();
        su.execute("INSERT INTO logs (session_id, user_id, level, event, created_at) VALUES ($1, $2, 'info', 'seed', now() - interval '1 day')", &[&s, &user])
            .unwrap();
    }
    // A due weekly reset and a drifted counter: what reset_weekly_limits and repair_counts would change.
    su.execute(
        "UPDATE profiles SET weekly_started_sessions = 3, week_reset_date = now() - interval '1 day' WHERE id = $1",
        &[&user],
    )
    .unwrap();
    su.batch_execute("UPDATE sessions SET message_count_main = 99").unwrap();
    let state = |su: &mut Client| -> (i64, i64, i64, i32, i64) {
        let row = su
            .query_one(
                "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM messages), (SELECT count(*) FROM logs),
                        (SELECT weekly_started_sessions FROM profiles),
                        (SELECT sum(message_count_main) FROM sessions)",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
    };
    let before = state(&mut su);
    assert_eq!(before, (3, 3, 3, 3, 297));

    for role in [ANON, AUTH] {
        for (signature, _, _) in JOBS {
            let held: bool = su.query_one("SELECT has_function_privilege($1, $2, 'EXECUTE')", &[&role, &format!("public.{signature}")])
                .unwrap()
                .get(0);
            assert!(held, "{role} should hold EXECUTE on {signature} (default privileges): the grant is not the gate");
        }
        let mut c = db.connect_as(role);
        let claims = [
            None,
            Some(json!({ "role": "anon" })),
            Some(json!({ "sub": user.to_string(), "role": "authenticated" })),
            Some(json!({ "role": "service_role" })),
            Some(json!({ "sub": user.to_string(), "role": "service_role" })),
        ];
        for claim in &claims {
            for (_, sql, name) in JOBS {
                let mut tx = match claim {
                    Some(claims) => with_claims(&mut c, claims.clone()),
                    None => c.transaction().unwrap(),
                };
                let err = tx.query_one(sql, &[]).unwrap_err();
                assert_eq!(sqlstate(&err), "42501", "{role} {claim:?} {sql}: {err}");
                assert_eq!(message(&err), format!("permission denied for function {name}"), "{role} {claim:?} {sql}");
                tx.rollback().unwrap();
                assert_server_alive();
            }
        }
    }
    assert_eq!(state(&mut su), before, "a refused job changed something");
}

#[test]
fn a_bypassrls_login_role_runs_every_job() {
    let db = supabase_db("atk_dp_service");
    connect("postgres", "postgres")
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {SERVICE} LOGIN NOSUPERUSER BYPASSRLS;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
             ALTER ROLE {SERVICE} NOSUPERUSER BYPASSRLS;"
        ))
        .unwrap();
    let mut su = db.superuser();
    su.batch_execute(&format!(
        "GRANT EXECUTE ON FUNCTION reset_weekly_limits(integer), delete_expired_sessions(interval), delete_old_logs(interval),
                                   verify_counts(), repair_counts() TO {SERVICE};
         INSERT INTO scenarios (id, title) VALUES ('market', 'Marketplace');"
    ))
    .unwrap();
    let user = Uuid::new_v4();
    su.execute("SELECT create_profile($1, 'service@example.com')", &[&user]).unwrap();
    let s: Uuid = su
        .query_one(
            "INSERT INTO sessions (user_id, scenario_id, started_at) VALUES ($1, 'market', now() - interval '1 day') RETURNING id",
            &[&user],
        )
        .unwrap()
        .get(0);
    su.execute("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'hi')", &[&s]).unwrap();
    su.execute("UPDATE sessions SET message_count_main = 99 WHERE id = $1", &[&s]).unwrap();
    su.execute("UPDATE profiles SET week_reset_date = now() - interval '1 day' WHERE id = $1", &[&user]).unwrap();
    su.batch_execute("INSERT INTO logs (level, event, created_at) VALUES ('info', 'seed', now() - interval '1 day')").unwrap();

    let mut c = db.connect_as(SERVICE);
    let reset: i32 = c.query_one("SELECT reset_weekly_limits()", &[]).unwrap().get(0);
    assert_eq!(reset, 1);
    let drift: i64 = c.query_one("SELECT count(*) FROM verify_counts()", &[]).unwrap().get(0);
    assert_eq!(drift, 1);
    let repaired: i32 = c.query_one("SELECT repair_counts()", &[]).unwrap().get(0);
    assert_eq!(repaired, 1);
    let deleted: i32 = c.query_one("SELECT delete_expired_sessions('0 seconds')", &[]).unwrap().get(0);
    assert_eq!(deleted, 1);
    let deleted: i32 = c.query_one("SELECT delete_old_logs('0 seconds')", &[]).unwrap().get(0);
    assert!(deleted >= 1, "{deleted}");
    let row = su
        .query_one(
            "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM messages),
                    (SELECT count(*) FROM logs WHERE event = 'seed'),
                    (SELECT week_reset_date > now() FROM profiles WHERE id = $1)",
            &[&user],
        )
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1), row.get::<_, i64>(2), row.get::<_, bool>(3)), (0, 0, 0, true));
}

#[test]
fn internal_functions_are_executable_by_no_ordinary_role() {
    let db = supabase_db("atk_dp_internal");
    let mut su = db.superuser();
    let functions: Vec<String> = INTERNAL_FUNCTIONS.iter().map(|f| format!("public.{f}")).collect();
    let held = violations(
        &mut su,
        &format!(
            "SELECT format('%s EXECUTE on %s', r.rolname, f)
               FROM unnest(ARRAY['{}']::text[]) f CROSS JOIN ({ORDINARY_ROLES}) r
              WHERE has_function_privilege(r.oid, f::regprocedure, 'EXECUTE')",
            functions.join("', '")
        ),
    );
    assert!(held.is_empty(), "ordinary roles hold: {held:?}");
    // They are members of the extension (the list above is not stale).
    let members: i64 = su
        .query_one(
            &format!(
                "SELECT count(*) FROM unnest(ARRAY['{}']::text[]) f
                  WHERE EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = f::regprocedure
                                   AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e')",
                functions.join("', '")
            ),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(members, INTERNAL_FUNCTIONS.len() as i64);

    for role in [ANON, AUTH] {
        let mut c = db.connect_as(role);
        let err = c.query_one("SELECT _harden_privileges()", &[]).unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{role}: {err}");
        assert_server_alive();
    }
}

const PINNER: &str = "pga_atk_dp_pinner";
const PIN: &str = "CREATE TABLE app.pin (session_id uuid REFERENCES public.sessions (id))";

fn has_column_references(su: &mut Client, role: &str, table: &str) -> bool {
    su.query_one("SELECT has_column_privilege($1, $2, 'id', 'REFERENCES')", &[&role, &table]).unwrap().get(0)
}

/// The attacker's foreign key into the extension's table is refused for lack of REFERENCES.
fn assert_pin_refused(c: &mut Client, why: &str) {
    let err = c.batch_execute(PIN).expect_err(&format!("{why}: the attacker pinned public.sessions"));
    assert_eq!(sqlstate(&err), "42501", "{why}: {err}");
    assert_server_alive();
}

#[test]
fn column_level_references_is_revoked_like_table_level() {
    ensure_ordinary_role(PINNER);
    let db = TestDb::new("atk_dp_column_references");
    let mut su = db.superuser();
    su.batch_execute(&format!(
        "GRANT USAGE ON SCHEMA public TO {PINNER};
         CREATE SCHEMA app AUTHORIZATION {PINNER};"
    ))
    .unwrap();
    let mut c = db.connect_as(PINNER);
    assert_pin_refused(&mut c, "no grant");

    for grant in [
        format!("GRANT REFERENCES (id) ON public.sessions TO {PINNER}"),
        format!("GRANT ALL (id) ON public.sessions TO {PINNER}"),
        "GRANT REFERENCES (id) ON public.sessions TO PUBLIC".to_owned(),
    ] {
        su.batch_execute(&grant).unwrap();
        assert!(!has_column_references(&mut su, PINNER, "public.sessions"), "{grant}: the guard left REFERENCES (id)");
        assert_pin_refused(&mut c, &grant);
    }
    // The guard revoked REFERENCES only: the other column privileges of GRANT ALL (id) stay.
    let select: bool =
        su.query_one("SELECT has_column_privilege($1, 'public.sessions', 'id', 'SELECT')", &[&PINNER]).unwrap().get(0);
    assert!(select, "GRANT ALL (id) should have left SELECT (id)");
    let left: i64 = su
        .query_one(
            "SELECT count(*) FROM pg_attribute att, aclexplode(att.attacl) a
              WHERE att.attrelid = ANY (ARRAY['public.tenants', 'public.profiles', 'public.scenarios', 'public.sessions',
                                              'public.messages', 'public.logs']::regclass[])
                AND a.privilege_type = 'REFERENCES'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "column-level REFERENCES left in the ACLs");

    // With the guard off, the grant sticks (and the pin works) until _harden_privileges().
    su.batch_execute(&format!(
        "ALTER EVENT TRIGGER pg_assistant_guard_ddl DISABLE;
         GRANT REFERENCES (id) ON public.sessions, public.profiles TO {PINNER};
         ALTER EVENT TRIGGER pg_assistant_guard_ddl ENABLE;"
    ))
    .unwrap();
    assert!(has_column_references(&mut su, PINNER, "public.sessions"), "setup: the grant should have stuck");
    let mut tx = c.transaction().unwrap();
    tx.batch_execute(PIN).expect("setup: with REFERENCES (id) the attacker can pin the extension's rows");
    tx.rollback().unwrap();

    let revoked: i32 = su.query_one("SELECT _harden_privileges()", &[]).unwrap().get(0);
    assert!(revoked >= 2, "{revoked}");
    for table in ["public.sessions", "public.profiles"] {
        assert!(!has_column_references(&mut su, PINNER, table), "_harden_privileges left REFERENCES (id) on {table}");
    }
    assert_pin_refused(&mut c, "after _harden_privileges");
    let pins: i64 = su.query_one("SELECT count(*) FROM pg_class WHERE relname = 'pin'", &[]).unwrap().get(0);
    assert_eq!(pins, 0);
}
