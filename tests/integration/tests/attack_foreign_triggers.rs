//! Attack class 2: running code as the extension owner through a trigger.
//!
//! The extension's own statements (counters, session lookups, profile creation) run as the
//! extension owner, and so do foreign-key cascades into its tables. Any trigger on one of its
//! tables fires inside those statements with the owner's privileges: an attacker who can attach
//! one (`TRIGGER` privilege, handed out by Supabase-style default privileges or by
//! `GRANT ALL ON ALL TABLES`) runs `ALTER ROLE <attacker> SUPERUSER` the next time they
//! complete their own session or delete it.
//!
//! What must happen instead:
//! * `CREATE EXTENSION` leaves no ordinary role TRIGGER, TRUNCATE or REFERENCES on any of its
//!   tables, nor any privilege on its sequences, whatever default privileges granted, and any
//!   later GRANT is followed by the same revocations (event trigger `pg_assistant_guard_ddl`);
//! * the same event trigger refuses (`42501`) a new trigger on an extension table whose function
//!   is neither the extension's nor owned by a superuser, or that has a WHEN condition, even
//!   when a superuser creates it;
//! * should such a trigger exist anyway, every owner-context statement refuses (`42501`,
//!   "pg_assistant will not act as the extension owner ...") and changes nothing;
//! * a trigger whose function a superuser owns (a DBA's audit trigger) is trusted only when that
//!   function pins its `search_path` in its own settings to `''` / `pg_catalog` / `pg_temp`: a
//!   foreign-key cascade (a user deleting their own session) fires the child table's triggers as
//!   the table owner under the *caller's* `search_path`, so an unpinned `now()` in a superuser's
//!   audit function would run the caller's `app.now()` as a superuser;
//! * the owner context's depth follows subtransactions: an error a trusted trigger catches
//!   inside the owner context (`EXCEPTION WHEN others`) leaves the extension's statements working.

use pg_assistant_integration::postgres::Client;
use pg_assistant_integration::{
    as_user, assert_server_alive, connect, ensure_ordinary_role, is_superuser, message, sqlstate, with_claims, TestDb,
};
use serde_json::json;
use uuid::Uuid;

const TABLES: [&str; 6] = ["tenants", "profiles", "scenarios", "sessions", "messages", "logs"];
const FORBIDDEN: [&str; 3] = ["TRIGGER", "TRUNCATE", "REFERENCES"];
const OWNER_REFUSAL: &str = "pg_assistant will not act as the extension owner";

/// A login role without SUPERUSER or BYPASSRLS; reset in case an earlier run's attack succeeded.
fn attacker(role: &str) {
    ensure_ordinary_role(role);
}

fn has_table_privilege(c: &mut Client, role: &str, table: &str, privilege: &str) -> bool {
    c.query_one("SELECT has_table_privilege($1, $2, $3)", &[&role, &format!("public.{table}"), &privilege]).unwrap().get(0)
}

fn has_sequence_privilege(c: &mut Client, role: &str, privilege: &str) -> bool {
    c.query_one("SELECT has_sequence_privilege($1, 'public.logs_id_seq', $2)", &[&role, &privilege]).unwrap().get(0)
}

fn assert_no_forbidden_privileges(c: &mut Client, role: &str) {
    for table in TABLES {
        for privilege in FORBIDDEN {
            assert!(!has_table_privilege(c, role, table, privilege), "{role} holds {privilege} on {table}");
        }
    }
    for privilege in ["USAGE", "SELECT", "UPDATE"] {
        assert!(!has_sequence_privilege(c, role, privilege), "{role} holds {privilege} on logs_id_seq");
    }
}

/// A trigger function that makes `role` superuser when it runs as anyone else (the owner).
fn escalating_body(role: &str) -> String {
    format!(
        "$f$ BEGIN
             IF current_user <> '{role}' THEN ALTER ROLE {role} SUPERUSER; END IF;
             IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
             RETURN NEW;
         END $f$"
    )
}

/// Non-internal triggers on the extension's tables, other than the extension's own.
fn foreign_triggers(su: &mut Client) -> Vec<String> {
    su.query(
        "SELECT t.tgname::text FROM pg_trigger t
          WHERE t.tgrelid = ANY (ARRAY['public.tenants', 'public.profiles', 'public.scenarios', 'public.sessions',
                                       'public.messages', 'public.logs']::regclass[])
            AND NOT t.tgisinternal
            AND NOT EXISTS (SELECT FROM pg_depend d
                             WHERE d.classid = 'pg_proc'::regclass AND d.objid = t.tgfoid
                               AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e')
          ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Takes SUPERUSER away from `0` when dropped, also when an assertion failed after an attack
/// succeeded: the cluster is shared.
struct NoSuperuserAfter(&'static str);

impl Drop for NoSuperuserAfter {
    fn drop(&mut self) {
        let _ = connect("postgres", "postgres").batch_execute(&format!("ALTER ROLE {} NOSUPERUSER", self.0));
    }
}

struct Victim {
    user: Uuid,
    sessions: Vec<Uuid>,
}

/// The attacker's own profile and `n` open sessions (with a message each), set up by the
/// superuser; the attacker role gets ordinary table privileges.
fn own_rows(db: &TestDb, role: &str, n: usize) -> Victim {
    let mut su = db.superuser();
    su.batch_execute(&format!(
        "GRANT USAGE ON SCHEMA public TO {role};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
         INSERT INTO scenarios (id, title) VALUES ('market', 'Marketplace');"
    ))
    .unwrap();
    let user = Uuid::new_v4();
    su.execute("SELECT create_profile($1, 'own@example.com')", &[&user]).unwrap();
    let sessions = (0..n)
        .map(|_| {
            let s: Uuid = su
                .query_one("INSERT INTO sessions (user_id, scenario_id) VALUES ($1, 'market') RETURNING id", &[&user])
                .unwrap()
                .get(0);
            su.execute("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'hi')", &[&s])
                .unwrap();
            s
        })
        .collect();
    Victim { user, sessions }
}

fn complete(c: &mut Client, user: Uuid, session: Uuid) -> Result<u64, pg_assistant_integration::postgres::Error> {
    let mut tx = as_user(c, user);
    let n = tx.execute("UPDATE sessions SET is_completed = true WHERE id = $1", &[&session])?;
    tx.commit()?;
    Ok(n)
}

fn completed_count(su: &mut Client, user: Uuid) -> i32 {
    su.query_one("SELECT total_completed_sessions FROM profiles WHERE id = $1", &[&user]).unwrap().get(0)
}

fn is_completed(su: &mut Client, session: Uuid) -> bool {
    su.query_one("SELECT is_completed FROM sessions WHERE id = $1", &[&session]).unwrap().get(0)
}

#[test]
fn default_privileges_leave_no_trigger_truncate_references_or_sequence_rights() {
    const ANON: &str = "pga_atk_ft_anon";
    const AUTH: &str = "pga_atk_ft_auth";
    const MALLORY: &str = "pga_atk_ft_mallory";
    for role in [ANON, AUTH, MALLORY] {
        attacker(role);
    }
    let db = TestDb::supabase_like("atk_ft_defaults", &[ANON, AUTH, MALLORY]);
    let mut su = db.superuser();
    for role in [ANON, AUTH, MALLORY] {
        // The default privileges were in force (ALL): the data privileges stay ...
        assert!(has_table_privilege(&mut su, role, "profiles", "UPDATE"), "default privileges did not apply to {role}");
        // ... the dangerous ones are gone.
        assert_no_forbidden_privileges(&mut su, role);
    }

    // What the attacker would do with them.
    let mut c = db.connect_as(MALLORY);
    c.batch_execute(&format!("CREATE FUNCTION pg_temp.evil() RETURNS trigger LANGUAGE plpgsql AS {}", escalating_body(MALLORY)))
        .unwrap();
    for sql in [
        "CREATE TRIGGER evil BEFORE UPDATE ON public.profiles FOR EACH ROW EXECUTE FUNCTION pg_temp.evil()",
        "TRUNCATE public.messages",
        "CREATE TABLE public.pin (profile_id uuid REFERENCES public.profiles (id) ON DELETE RESTRICT)",
        "SELECT setval('public.logs_id_seq', 1)",
        "SELECT nextval('public.logs_id_seq')",
    ] {
        let err = c.batch_execute(sql).unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err}");
        assert_server_alive();
    }
    assert!(foreign_triggers(&mut su).is_empty());
    assert!(!is_superuser(MALLORY));
}

#[test]
fn grants_after_install_are_followed_by_the_same_revocations() {
    const ROLE: &str = "pga_atk_ft_grantee";
    attacker(ROLE);
    let db = TestDb::new("atk_ft_grant_all");
    let mut su = db.superuser();
    // What Supabase's documentation tells people to run, and worse.
    su.batch_execute(&format!(
        "GRANT USAGE ON SCHEMA public TO {ROLE};
         GRANT ALL ON ALL TABLES IN SCHEMA public TO {ROLE};
         GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {ROLE};
         GRANT TRIGGER, TRUNCATE, REFERENCES ON public.profiles, public.messages TO PUBLIC;"
    ))
    .unwrap();
    assert_no_forbidden_privileges(&mut su, ROLE);
    assert_no_forbidden_privileges(&mut su, "public");
    for table in TABLES {
        for privilege in ["SELECT", "INSERT", "UPDATE", "DELETE"] {
            assert!(has_table_privilege(&mut su, ROLE, table, privilege), "{ROLE} lost {privilege} on {table}");
        }
    }
    // Nobody but the owner appears in the ACLs with those privileges.
    let left: i64 = su
        .query_one(
            "SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a
              WHERE c.relnamespace = 'public'::regnamespace AND c.relname IN ('tenants', 'profiles', 'scenarios', 'sessions', 'messages', 'logs', 'logs_id_seq')
                AND a.grantee <> c.relowner
                AND (c.relkind = 'S' OR a.privilege_type IN ('TRIGGER', 'TRUNCATE', 'REFERENCES'))",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0);

    let mut c = db.connect_as(ROLE);
    c.batch_execute(&format!("CREATE FUNCTION pg_temp.evil() RETURNS trigger LANGUAGE plpgsql AS {}", escalating_body(ROLE)))
        .unwrap();
    let err = c
        .batch_execute("CREATE TRIGGER evil BEFORE UPDATE ON public.profiles FOR EACH ROW EXECUTE FUNCTION pg_temp.evil()")
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err}");
    assert_server_alive();
    assert!(foreign_triggers(&mut su).is_empty());
    assert!(!is_superuser(ROLE));
}

/// With TRIGGER privilege slipped past the GRANT guard, the CREATE TRIGGER guard still refuses
/// the attacker's triggers, on the completion path and on the cascade path alike.
#[test]
fn ddl_guard_refuses_untrusted_triggers_even_with_trigger_privilege() {
    const ROLE: &str = "pga_atk_ft_trigger";
    attacker(ROLE);
    let db = TestDb::new("atk_ft_guard");
    let v = own_rows(&db, ROLE, 2);
    let mut su = db.superuser();
    su.batch_execute(&format!(
        "ALTER EVENT TRIGGER pg_assistant_guard_ddl DISABLE;
         GRANT TRIGGER ON public.profiles, public.messages TO {ROLE};
         ALTER EVENT TRIGGER pg_assistant_guard_ddl ENABLE;"
    ))
    .unwrap();
    assert!(has_table_privilege(&mut su, ROLE, "profiles", "TRIGGER"), "setup: the privilege should have stuck");

    let mut c = db.connect_as(ROLE);
    c.batch_execute(&format!(
        "CREATE FUNCTION pg_temp.f() RETURNS trigger LANGUAGE plpgsql AS {body};
         CREATE FUNCTION pg_temp.g(uuid) RETURNS boolean LANGUAGE plpgsql AS $g$
         BEGIN
             IF current_user <> '{ROLE}' THEN ALTER ROLE {ROLE} SUPERUSER; END IF;
             RETURN false;
         END $g$;",
        body = escalating_body(ROLE)
    ))
    .unwrap();
    for (name, sql) in [
        // Fires when the extension updates the profile's counters as the owner.
        ("pwn_update", "CREATE TRIGGER pwn_update BEFORE UPDATE ON public.profiles FOR EACH ROW EXECUTE FUNCTION pg_temp.f()"),
        // The extension's own function, but a WHEN condition that calls the attacker's.
        (
            "pwn_when",
            "CREATE TRIGGER pwn_when BEFORE UPDATE ON public.profiles FOR EACH ROW
                 WHEN (pg_temp.g(NEW.id)) EXECUTE FUNCTION set_updated_at()",
        ),
        // Fires inside the ON DELETE CASCADE from sessions, which runs as the table owner.
        ("pwn_cascade", "CREATE TRIGGER pwn_cascade BEFORE DELETE ON public.messages FOR EACH ROW EXECUTE FUNCTION pg_temp.f()"),
    ] {
        let err = c.batch_execute(sql).unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err}");
        assert!(message(&err).contains(&format!("has trigger \"{name}\"")), "{sql}: refused by something else: {err}");
        assert_server_alive();
    }
    assert!(foreign_triggers(&mut su).is_empty(), "a refused trigger was kept");

    // What would have fired them: completing one's own session, deleting another.
    assert_eq!(complete(&mut c, v.user, v.sessions[0]).unwrap(), 1);
    let mut tx = as_user(&mut c, v.user);
    assert_eq!(tx.execute("DELETE FROM sessions WHERE id = $1", &[&v.sessions[1]]).unwrap(), 1);
    tx.commit().unwrap();
    assert!(!is_superuser(ROLE));
    assert_eq!(completed_count(&mut su, v.user), 1);
    let left: i64 = su.query_one("SELECT count(*) FROM messages WHERE session_id = $1", &[&v.sessions[1]]).unwrap().get(0);
    assert_eq!(left, 0);
}

/// The second line: a non-superuser's function attached anyway (by a superuser, guard off).
/// Every owner-context statement refuses, in a backend that had already verified the tables
/// and in a fresh one; dropping the trigger lets the same statements through.
#[test]
fn owner_context_refuses_while_a_non_superuser_function_is_attached() {
    const ROLE: &str = "pga_atk_ft_attached";
    attacker(ROLE);
    let db = TestDb::new("atk_ft_attached");
    let v = own_rows(&db, ROLE, 2);
    let mut su = db.superuser();
    su.batch_execute(&format!("GRANT CREATE ON SCHEMA public TO {ROLE}")).unwrap();

    // A backend that has already acted as the owner with the tables clean.
    let mut warm = db.connect_as(ROLE);
    assert_eq!(complete(&mut warm, v.user, v.sessions[0]).unwrap(), 1);
    assert_eq!(completed_count(&mut su, v.user), 1);

    su.batch_execute(&format!(
        "ALTER EVENT TRIGGER pg_assistant_guard_ddl DISABLE;
         SET ROLE {ROLE};
         CREATE FUNCTION public.evil() RETURNS trigger LANGUAGE plpgsql AS {body};
         RESET ROLE;
         CREATE TRIGGER evil BEFORE UPDATE ON public.profiles FOR EACH ROW EXECUTE FUNCTION public.evil();
         ALTER EVENT TRIGGER pg_assistant_guard_ddl ENABLE;",
        body = escalating_body(ROLE)
    ))
    .unwrap();
    assert_eq!(foreign_triggers(&mut su), vec!["evil".to_owned()]);

    let mut fresh = db.connect_as(ROLE);
    for (which, c) in [("warm", &mut warm), ("fresh", &mut fresh)] {
        // Completing one's own session: the profile counters are updated as the owner.
        let err = complete(c, v.user, v.sessions[1]).unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{which}: {err}");
        assert!(message(&err).starts_with(OWNER_REFUSAL), "{which}: {err}");
        assert_server_alive();
        // A message: the session lookup runs as the owner.
        let mut tx = as_user(c, v.user);
        let err = tx
            .execute("INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'x')", &[&v.sessions[1]])
            .unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{which}: {err}");
        assert!(message(&err).starts_with(OWNER_REFUSAL), "{which}: {err}");
        tx.rollback().unwrap();
        assert_server_alive();
        assert!(!is_superuser(ROLE), "{which}: {ROLE} became superuser");
    }
    assert!(!is_completed(&mut su, v.sessions[1]), "the refused completion was kept");
    assert_eq!(completed_count(&mut su, v.user), 1);
    let messages: i64 = su.query_one("SELECT count(*) FROM messages WHERE session_id = $1", &[&v.sessions[1]]).unwrap().get(0);
    assert_eq!(messages, 1);

    su.batch_execute("DROP TRIGGER evil ON public.profiles").unwrap();
    assert_eq!(complete(&mut warm, v.user, v.sessions[1]).unwrap(), 1);
    assert!(is_completed(&mut su, v.sessions[1]));
    assert_eq!(completed_count(&mut su, v.user), 2);
    assert!(!is_superuser(ROLE));
}

/// A DBA's audit trigger, its function owned by a superuser and pinned to `search_path = ''`,
/// is trusted: it may be created with the guard on and runs (as the owner) when the extension
/// updates the profile. A WHEN condition is refused even for a superuser's trigger.
#[test]
fn superuser_owned_audit_trigger_is_trusted() {
    const ROLE: &str = "pga_atk_ft_audited";
    attacker(ROLE);
    let db = TestDb::new("atk_ft_audit");
    let v = own_rows(&db, ROLE, 1);
    let mut su = db.superuser();
    su.batch_execute(
        "CREATE TABLE public.profile_audit (profile_id uuid, changed_by name, total int);
         CREATE FUNCTION public.audit_profile() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $f$
         BEGIN
             INSERT INTO public.profile_audit VALUES (NEW.id, current_user, NEW.total_completed_sessions);
             RETURN NULL;
         END $f$;
         CREATE TRIGGER audit_profile AFTER UPDATE ON public.profiles FOR EACH ROW EXECUTE FUNCTION public.audit_profile();",
    )
    .unwrap();
    let err = su
        .batch_execute(
            "CREATE TRIGGER audit_profile_when AFTER UPDATE ON public.profiles FOR EACH ROW
                 WHEN (OLD.total_completed_sessions IS DISTINCT FROM NEW.total_completed_sessions)
                 EXECUTE FUNCTION public.audit_profile()",
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err}");
    assert_server_alive();
    assert_eq!(foreign_triggers(&mut su), vec!["audit_profile".to_owned()]);

    let mut c = db.connect_as(ROLE);
    assert_eq!(complete(&mut c, v.user, v.sessions[0]).unwrap(), 1);
    assert_eq!(completed_count(&mut su, v.user), 1);
    let audit = su.query("SELECT profile_id, changed_by::text, total FROM public.profile_audit", &[]).unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].get::<_, Uuid>(0), audit[0].get::<_, String>(1), audit[0].get::<_, i32>(2)),
        (v.user, "postgres".to_owned(), 1)
    );
}

/// A trusted trigger stays trusted only while its function is a superuser's: once a superuser
/// hands the audit function over to an ordinary role, that role may rewrite it, and the next
/// owner-context statement must refuse, also in a backend that had verified the tables before
/// (connection pools keep backends for hours).
#[test]
fn a_trusted_trigger_function_handed_to_an_ordinary_role_is_no_longer_trusted() {
    const ROLE: &str = "pga_atk_ft_handover";
    attacker(ROLE);
    let _cleanup = NoSuperuserAfter(ROLE);
    let db = TestDb::new("atk_ft_handover");
    let v = own_rows(&db, ROLE, 2);
    let mut su = db.superuser();
    su.batch_execute(&format!(
        "GRANT CREATE ON SCHEMA public TO {ROLE};
         CREATE TABLE public.profile_audit (profile_id uuid, changed_by name);
         GRANT INSERT ON public.profile_audit TO {ROLE};
         CREATE FUNCTION public.audit_profile() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $f$
         BEGIN
             INSERT INTO public.profile_audit VALUES (NEW.id, current_user);
             RETURN NULL;
         END $f$;
         CREATE TRIGGER audit_profile AFTER UPDATE ON public.profiles FOR EACH ROW EXECUTE FUNCTION public.audit_profile();"
    ))
    .unwrap();

    // A pooled backend completes a session while the trigger is trusted.
    let mut warm = db.connect_as(ROLE);
    assert_eq!(complete(&mut warm, v.user, v.sessions[0]).unwrap(), 1);
    assert_eq!(completed_count(&mut su, v.user), 1);

    // The DBA hands the function over; its new owner rewrites it, keeping the pinned
    // search_path (so only the owner makes the difference).
    su.batch_execute(&format!("ALTER FUNCTION public.audit_profile() OWNER TO {ROLE}")).unwrap();
    warm.batch_execute(&format!(
        "CREATE OR REPLACE FUNCTION public.audit_profile() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $f$
         BEGIN
             IF current_user <> '{ROLE}' THEN ALTER ROLE {ROLE} SUPERUSER; END IF;
             RETURN NULL;
         END $f$;"
    ))
    .unwrap();

    let mut fresh = db.connect_as(ROLE);
    for (which, c) in [("fresh", &mut fresh), ("warm", &mut warm)] {
        let result = complete(c, v.user, v.sessions[1]);
        assert!(!is_superuser(ROLE), "{which}: {ROLE} became superuser through the handed-over trigger function");
        let err = result.expect_err(&format!("{which}: the completion ran as the owner with an untrusted trigger"));
        assert_eq!(sqlstate(&err), "42501", "{which}: {err}");
        assert!(message(&err).starts_with(OWNER_REFUSAL), "{which}: {err}");
        assert_server_alive();
    }
    assert!(!is_completed(&mut su, v.sessions[1]));
    assert_eq!(completed_count(&mut su, v.user), 1);
}

/// The same through the owner's role: a DBA, superuser when they attached their audit trigger,
/// is demoted; they still own the function, rewrite it, and wait for a pooled backend of the
/// application to act as the owner.
#[test]
fn a_trusted_trigger_function_whose_owner_is_demoted_is_no_longer_trusted() {
    const APP: &str = "pga_atk_ft_pooled";
    const DBA: &str = "pga_atk_ft_dba";
    attacker(APP);
    attacker(DBA);
    let _cleanup = NoSuperuserAfter(DBA);
    let db = TestDb::new("atk_ft_demoted");
    let v = own_rows(&db, APP, 2);
    let mut su = db.superuser();
    connect("postgres", "postgres").batch_execute(&format!("ALTER ROLE {DBA} SUPERUSER")).unwrap();
    db.connect_as(DBA)
        .batch_execute(
            "CREATE TABLE public.profile_audit (profile_id uuid, changed_by name);
             CREATE FUNCTION public.audit_profile() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $f$
             BEGIN
                 INSERT INTO public.profile_audit VALUES (NEW.id, current_user);
                 RETURN NULL;
             END $f$;
             CREATE TRIGGER audit_profile AFTER UPDATE ON public.profiles FOR EACH ROW EXECUTE FUNCTION public.audit_profile();",
        )
        .unwrap();

    let mut warm = db.connect_as(APP);
    assert_eq!(complete(&mut warm, v.user, v.sessions[0]).unwrap(), 1);
    assert_eq!(completed_count(&mut su, v.user), 1);

    // Demoted; still the function's owner, with CREATE on its schema (the rewrite below keeps
    // the pinned search_path: only the owner's demotion makes the difference).
    su.batch_execute(&format!("GRANT CREATE ON SCHEMA public TO {DBA}")).unwrap();
    connect("postgres", "postgres").batch_execute(&format!("ALTER ROLE {DBA} NOSUPERUSER")).unwrap();
    db.connect_as(DBA)
        .batch_execute(&format!(
            "CREATE OR REPLACE FUNCTION public.audit_profile() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $f$
             BEGIN
                 IF current_user <> '{DBA}' THEN ALTER ROLE {DBA} SUPERUSER; END IF;
                 RETURN NULL;
             END $f$;"
        ))
        .unwrap();

    let mut fresh = db.connect_as(APP);
    for (which, c) in [("fresh", &mut fresh), ("warm", &mut warm)] {
        let result = complete(c, v.user, v.sessions[1]);
        assert!(!is_superuser(DBA), "{which}: {DBA} became superuser again through their trigger function");
        let err = result.expect_err(&format!("{which}: the completion ran as the owner with an untrusted trigger"));
        assert_eq!(sqlstate(&err), "42501", "{which}: {err}");
        assert!(message(&err).starts_with(OWNER_REFUSAL), "{which}: {err}");
        assert_server_alive();
    }
    assert!(!is_completed(&mut su, v.sessions[1]));
    assert_eq!(completed_count(&mut su, v.user), 1);
}

// ---- superuser audit triggers must pin their search_path -------------------------------------

const AUDIT_TRIGGER: &str = "CREATE TRIGGER audit_message_delete BEFORE DELETE ON public.messages
     FOR EACH ROW EXECUTE FUNCTION public.audit_message_delete()";

/// The red team's audit function: a superuser's, writing an audit row with an unqualified
/// `now()` and no pinned search_path.
const UNPINNED_AUDIT_FUNCTION: &str = "CREATE TABLE public.message_audit (message_id uuid, deleted_at timestamptz);
     CREATE FUNCTION public.audit_message_delete() RETURNS trigger LANGUAGE plpgsql AS $f$
     BEGIN
         INSERT INTO public.message_audit VALUES (OLD.id, now());
         RETURN OLD;
     END $f$;";

/// The attacker owns schema `app` and defines `app.now()`, which makes them superuser (and
/// advances the non-transactional sequence `app.ran_as_superuser`, so that even a rolled-back
/// run leaves a trace) whenever a superuser calls it. Checked armed: a superuser's unqualified
/// `now()` under the attacker's search_path runs it (rolled back, sequence reset).
fn look_alike_now(db: &TestDb, role: &str) {
    let mut su = db.superuser();
    su.batch_execute(&format!("CREATE SCHEMA app AUTHORIZATION {role}")).unwrap();
    db.connect_as(role)
        .batch_execute(&format!(
            "CREATE SEQUENCE app.ran_as_superuser;
             GRANT USAGE ON SEQUENCE app.ran_as_superuser TO PUBLIC;
             CREATE FUNCTION app.now() RETURNS timestamptz LANGUAGE plpgsql AS $f$
             BEGIN
                 IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
                     PERFORM pg_catalog.nextval('app.ran_as_superuser');
                     ALTER ROLE {role} SUPERUSER;
                 END IF;
                 RETURN pg_catalog.now();
             END $f$;"
        ))
        .unwrap();
    let mut tx = su.transaction().unwrap();
    tx.batch_execute("SET LOCAL search_path = app, pg_catalog, public; SELECT now();").unwrap();
    let rolsuper: bool = tx.query_one("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = $1", &[&role]).unwrap().get(0);
    assert!(rolsuper, "the look-alike now() should make {role} superuser when a superuser calls it");
    tx.rollback().unwrap();
    su.batch_execute("SELECT setval('app.ran_as_superuser', 1, false)").unwrap();
    assert!(!look_alike_ran(&mut su));
}

/// Whether `app.now()` ever ran as a superuser (also in a transaction that was rolled back).
fn look_alike_ran(su: &mut Client) -> bool {
    su.query_one("SELECT is_called FROM app.ran_as_superuser", &[]).unwrap().get(0)
}

fn message_ids(su: &mut Client, session: Uuid) -> Vec<Uuid> {
    su.query("SELECT id FROM public.messages WHERE session_id = $1 ORDER BY id", &[&session])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The red team's attack: a DBA's audit trigger on `messages`, its function a superuser's but
/// with an unpinned `now()`. A user deleting their own session cascades into `messages` as the
/// table owner under the user's search_path, where `app.now()` comes first.
///
/// Now: the guard refuses that trigger (`42501`), also for a superuser, and also when the
/// function's search_path is pinned to a schema others can write; pinned to `''` it is
/// accepted, and the cascade writes the audit row while the look-alike never runs.
#[test]
fn unpinned_superuser_audit_trigger_is_refused_and_a_pinned_one_ignores_look_alikes() {
    const ROLE: &str = "pga_atk_ft_lookalike";
    attacker(ROLE);
    let _cleanup = NoSuperuserAfter(ROLE);
    let db = TestDb::new("atk_ft_unpinned");
    let v = own_rows(&db, ROLE, 2);
    look_alike_now(&db, ROLE);
    let mut su = db.superuser();
    su.batch_execute(UNPINNED_AUDIT_FUNCTION).unwrap();

    for (how, pin) in [
        ("unpinned", ""),
        ("pinned to public", "ALTER FUNCTION public.audit_message_delete() SET search_path = pg_catalog, public;"),
        ("pinned to app", "ALTER FUNCTION public.audit_message_delete() SET search_path = app;"),
    ] {
        su.batch_execute(pin).unwrap();
        let err = su.batch_execute(AUDIT_TRIGGER).expect_err(&format!("{how}: a superuser's untrusted trigger was accepted"));
        assert_eq!(sqlstate(&err), "42501", "{how}: {err}");
        assert!(
            message(&err).contains("has trigger \"audit_message_delete\" that it does not trust"),
            "{how}: refused by something else: {err}"
        );
        assert_server_alive();
        assert!(foreign_triggers(&mut su).is_empty(), "{how}: the refused trigger was kept");
    }

    // Pinned the way the refusal's hint says, and with the call qualified: trusted.
    su.batch_execute(&format!(
        "CREATE OR REPLACE FUNCTION public.audit_message_delete() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $f$
         BEGIN
             INSERT INTO public.message_audit VALUES (OLD.id, pg_catalog.now());
             RETURN OLD;
         END $f$;
         {AUDIT_TRIGGER};"
    ))
    .unwrap();
    assert_eq!(foreign_triggers(&mut su), vec!["audit_message_delete".to_owned()]);

    // The attack: the look-alike first in the search_path, then delete one's own session.
    let doomed = message_ids(&mut su, v.sessions[0]);
    assert_eq!(doomed.len(), 1);
    let mut c = db.connect_as(ROLE);
    c.batch_execute("SET search_path = app, pg_catalog, public").unwrap();
    let mut tx = as_user(&mut c, v.user);
    assert_eq!(tx.execute("DELETE FROM public.sessions WHERE id = $1", &[&v.sessions[0]]).unwrap(), 1);
    tx.commit().unwrap();
    assert!(!is_superuser(ROLE), "{ROLE} became superuser through the audit trigger");
    assert!(!look_alike_ran(&mut su), "app.now() ran as a superuser");
    let audited: Vec<Uuid> =
        su.query("SELECT message_id FROM public.message_audit ORDER BY 1", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(audited, doomed, "the cascade should have written the audit row");
    assert!(message_ids(&mut su, v.sessions[0]).is_empty());

    // The trusted trigger does not stop the owner context.
    assert_eq!(complete(&mut c, v.user, v.sessions[1]).unwrap(), 1);
    assert_eq!(completed_count(&mut su, v.user), 1);
    assert!(!is_superuser(ROLE));
    assert!(!look_alike_ran(&mut su));
}

/// The second line: the same unpinned superuser trigger attached while the guard was off. The
/// attacker's completion of their own session (an owner-context statement) is refused, and so
/// is the deletion whose cascade reaches it (the message count runs as the owner).
#[test]
fn unpinned_superuser_trigger_attached_with_the_guard_off_stops_the_owner_context() {
    const ROLE: &str = "pga_atk_ft_unguarded";
    attacker(ROLE);
    let _cleanup = NoSuperuserAfter(ROLE);
    let db = TestDb::new("atk_ft_unpinned_off");
    let v = own_rows(&db, ROLE, 2);
    look_alike_now(&db, ROLE);
    let mut su = db.superuser();
    su.batch_execute(&format!(
        "{UNPINNED_AUDIT_FUNCTION}
         ALTER EVENT TRIGGER pg_assistant_guard_ddl DISABLE;
         {AUDIT_TRIGGER};
         ALTER EVENT TRIGGER pg_assistant_guard_ddl ENABLE;"
    ))
    .unwrap();
    assert_eq!(foreign_triggers(&mut su), vec!["audit_message_delete".to_owned()]);

    let mut c = db.connect_as(ROLE);
    c.batch_execute("SET search_path = app, pg_catalog, public").unwrap();
    let err = complete(&mut c, v.user, v.sessions[1]).expect_err("the completion ran as the owner with an untrusted trigger");
    assert_eq!(sqlstate(&err), "42501", "{err}");
    assert!(message(&err).starts_with(OWNER_REFUSAL), "{err}");
    assert!(message(&err).contains("\"audit_message_delete\""), "{err}");
    assert_server_alive();
    assert!(!is_superuser(ROLE));
    assert!(!look_alike_ran(&mut su), "app.now() ran as a superuser");
    assert!(!is_completed(&mut su, v.sessions[1]));
    assert_eq!(completed_count(&mut su, v.user), 0);

    // The cascade path: the foreign key's cascade itself is PostgreSQL's, but the message count
    // that follows it is the owner's, and refuses; nothing of the deletion is kept. (The BEFORE
    // trigger has run inside the cascade by then, which is why the guard must stay on.)
    let mut tx = as_user(&mut c, v.user);
    let err = tx
        .execute("DELETE FROM public.sessions WHERE id = $1", &[&v.sessions[0]])
        .expect_err("the deletion ran as the owner with an untrusted trigger");
    assert_eq!(sqlstate(&err), "42501", "{err}");
    assert!(message(&err).starts_with(OWNER_REFUSAL), "{err}");
    tx.rollback().unwrap();
    assert_server_alive();
    assert!(!is_superuser(ROLE), "{ROLE} is superuser after the refused deletion");
    assert_eq!(message_ids(&mut su, v.sessions[0]).len(), 1);
    let audited: i64 = su.query_one("SELECT count(*) FROM public.message_audit", &[]).unwrap().get(0);
    assert_eq!(audited, 0);
}

// ---- the owner context's depth follows subtransactions ---------------------------------------

/// A trusted trigger (a superuser's function, search_path pinned with ALTER FUNCTION) on `table`,
/// AFTER UPDATE FOR EACH ROW, that raises and catches an error (a subtransaction aborted inside
/// the owner context) and records each run in `public.swallowed`.
fn swallowing_trigger(su: &mut Client, table: &str, role: &str) {
    su.batch_execute(&format!(
        "CREATE TABLE public.swallowed (table_name name, ran_as name);
         GRANT INSERT ON public.swallowed TO {role};
         CREATE FUNCTION public.swallow_errors() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN
             BEGIN
                 PERFORM 1 / 0;
             EXCEPTION WHEN others THEN
                 INSERT INTO public.swallowed VALUES (TG_TABLE_NAME, current_user);
             END;
             RETURN NULL;
         END $f$;
         ALTER FUNCTION public.swallow_errors() SET search_path = pg_catalog, pg_temp;
         CREATE TRIGGER swallow_errors AFTER UPDATE ON public.{table} FOR EACH ROW EXECUTE FUNCTION public.swallow_errors();"
    ))
    .unwrap();
    assert_eq!(foreign_triggers(su), vec!["swallow_errors".to_owned()]);
}

fn swallowed(su: &mut Client) -> i64 {
    su.query_one("SELECT count(*) FROM public.swallowed", &[]).unwrap().get(0)
}

/// Runs of the trigger inside the owner context (as the extension's owner).
fn swallowed_as_owner(su: &mut Client) -> i64 {
    su.query_one(
        "SELECT count(*) FROM public.swallowed
          WHERE ran_as = (SELECT extowner::regrole::name FROM pg_extension WHERE extname = 'pg_assistant')",
        &[],
    )
    .unwrap()
    .get(0)
}

/// Fails the test with the statement and SQLSTATE (an XX000 here is the bug this guards against).
fn ok<T>(what: &str, r: Result<T, pg_assistant_integration::postgres::Error>) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {} {e}", sqlstate(&e)))
}

/// An error caught by a trusted trigger on `profiles` inside the owner context: the verified
/// takeover (several statements as the owner, the first one updating the old holder's profile)
/// and two new sessions in one transaction (each bumping the profile as the owner) still work.
/// So does a failure inside the owner context rolled back to a savepoint.
#[test]
fn an_error_caught_in_a_trusted_trigger_on_profiles_keeps_the_owner_context_sound() {
    const ROLE: &str = "pga_atk_ft_swallow_p";
    attacker(ROLE);
    let db = TestDb::new("atk_ft_subxact_profiles");
    let mut su = db.superuser();
    su.batch_execute(&format!(
        "GRANT USAGE ON SCHEMA public TO {ROLE};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE};
         INSERT INTO scenarios (id, title) VALUES ('market', 'Marketplace');"
    ))
    .unwrap();
    swallowing_trigger(&mut su, "profiles", ROLE);
    let (stale, other, user) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    su.execute("SELECT create_profile($1, 'victim@example.com')", &[&stale]).unwrap();
    su.execute("SELECT create_profile($1, 'other@example.com')", &[&other]).unwrap();
    let email_of = |su: &mut Client, id: Uuid| -> String {
        su.query_one("SELECT email::text FROM profiles WHERE id = $1", &[&id]).unwrap().get(0)
    };

    let mut c = db.connect_as(ROLE);
    let mut tx = with_claims(&mut c, json!({ "sub": user.to_string(), "email": "victim@example.com", "role": "authenticated" }));
    let row = ok("takeover", tx.query_one("SELECT id, email::text FROM create_profile($1, 'victim@example.com')", &[&user]));
    assert_eq!((row.get::<_, Uuid>(0), row.get::<_, String>(1)), (user, "victim@example.com".to_owned()));
    ok("commit", tx.commit());
    assert_eq!(email_of(&mut su, stale), format!("{stale}@email-taken-over.invalid"));
    let logged: i64 =
        su.query_one("SELECT count(*) FROM logs WHERE event = 'email_taken_over' AND user_id = $1", &[&stale]).unwrap().get(0);
    assert_eq!(logged, 1);
    let after_takeover = swallowed(&mut su);
    assert!(after_takeover >= 1, "the trigger did not run during the takeover");

    let mut tx = as_user(&mut c, user);
    for n in 1..=2 {
        ok(&format!("session {n}"), tx.execute("INSERT INTO sessions (user_id, scenario_id) VALUES ($1, 'market')", &[&user]));
    }
    ok("commit", tx.commit());
    let started: i32 =
        su.query_one("SELECT weekly_started_sessions FROM profiles WHERE id = $1", &[&user]).unwrap().get(0);
    assert_eq!(started, 2);
    assert_eq!(swallowed(&mut su), after_takeover + 2, "the trigger should have run once per new session");
    assert_eq!(swallowed_as_owner(&mut su), swallowed(&mut su), "the trigger should have run inside the owner context");

    // A failure inside the owner context (the profile exists: 23505 after the takeover of
    // other@), rolled back to a savepoint; the transaction goes on acting as the owner.
    let mut tx = with_claims(&mut c, json!({ "sub": user.to_string(), "email": "other@example.com", "role": "authenticated" }));
    let mut sp = tx.transaction().unwrap();
    let err = sp.query_one("SELECT id FROM create_profile($1, 'other@example.com')", &[&user]).unwrap_err();
    assert_eq!(sqlstate(&err), "23505", "{err}");
    sp.rollback().unwrap();
    assert_server_alive();
    ok("session after the savepoint", tx.execute("INSERT INTO sessions (user_id, scenario_id) VALUES ($1, 'market')", &[&user]));
    ok("commit", tx.commit());
    assert_eq!(email_of(&mut su, other), "other@example.com");
    assert_eq!(email_of(&mut su, user), "victim@example.com");
    let started: i32 =
        su.query_one("SELECT weekly_started_sessions FROM profiles WHERE id = $1", &[&user]).unwrap().get(0);
    assert_eq!(started, 3);
    let drift: i64 = su.query_one("SELECT count(*) FROM verify_counts()", &[]).unwrap().get(0);
    assert_eq!(drift, 0);
}

/// The same with the trigger on `sessions`: the message counts update sessions as the owner
/// (one-row and set-based paths), completions update the profile; all in one transaction.
#[test]
fn an_error_caught_in_a_trusted_trigger_on_sessions_keeps_the_owner_context_sound() {
    const ROLE: &str = "pga_atk_ft_swallow_s";
    attacker(ROLE);
    let db = TestDb::new("atk_ft_subxact_sessions");
    let v = own_rows(&db, ROLE, 3);
    let mut su = db.superuser();
    swallowing_trigger(&mut su, "sessions", ROLE);
    let (s0, s1, s2) = (v.sessions[0], v.sessions[1], v.sessions[2]);
    let insert = "INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'hi')";

    let mut c = db.connect_as(ROLE);
    let mut tx = as_user(&mut c, v.user);
    ok("message into s0", tx.execute(insert, &[&s0]));
    ok("complete s1", tx.execute("UPDATE sessions SET is_completed = true WHERE id = $1", &[&s1]));
    ok(
        "two messages into s0",
        tx.execute(
            "INSERT INTO messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'a'), ($1, 'user', 'main', 'b')",
            &[&s0],
        ),
    );
    ok("message into s2", tx.execute(insert, &[&s2]));
    ok("complete s0 and s2", tx.execute("UPDATE sessions SET is_completed = true WHERE id IN ($1, $2)", &[&s0, &s2]));
    ok("commit", tx.commit());

    let row = su
        .query_one(
            "SELECT total_completed_sessions, weekly_completed_sessions FROM profiles WHERE id = $1",
            &[&v.user],
        )
        .unwrap();
    assert_eq!((row.get::<_, i32>(0), row.get::<_, i32>(1)), (3, 3));
    let counts: Vec<i32> = [s0, s1, s2]
        .iter()
        .map(|s| su.query_one("SELECT message_count_main FROM sessions WHERE id = $1", &[s]).unwrap().get(0))
        .collect();
    assert_eq!(counts, vec![4, 1, 2]);
    assert!(swallowed(&mut su) >= 6, "the trigger should have run for every session update: {}", swallowed(&mut su));
    assert!(swallowed_as_owner(&mut su) >= 3, "the message counts should have fired it inside the owner context");
    let drift: i64 = su.query_one("SELECT count(*) FROM verify_counts()", &[]).unwrap().get(0);
    assert_eq!(drift, 0);
}
