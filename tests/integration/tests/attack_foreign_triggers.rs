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
//!   is neither the extension's nor owned by a superuser, or that has a WHEN condition;
//! * should such a trigger exist anyway, every owner-context statement refuses (`42501`,
//!   "pg_assistant will not act as the extension owner ...") and changes nothing;
//! * a trigger whose function a superuser owns (a DBA's audit trigger) is trusted.

use pg_assistant_integration::postgres::Client;
use pg_assistant_integration::{as_user, assert_server_alive, connect, ensure_ordinary_role, is_superuser, message, sqlstate, TestDb};
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

/// A DBA's audit trigger, its function owned by a superuser, is trusted: it may be created with
/// the guard on and runs (as the owner) when the extension updates the profile. A WHEN
/// condition is refused even for a superuser's trigger.
#[test]
fn superuser_owned_audit_trigger_is_trusted() {
    const ROLE: &str = "pga_atk_ft_audited";
    attacker(ROLE);
    let db = TestDb::new("atk_ft_audit");
    let v = own_rows(&db, ROLE, 1);
    let mut su = db.superuser();
    su.batch_execute(
        "CREATE TABLE public.profile_audit (profile_id uuid, changed_by name, total int);
         CREATE FUNCTION public.audit_profile() RETURNS trigger LANGUAGE plpgsql AS $f$
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
         CREATE FUNCTION public.audit_profile() RETURNS trigger LANGUAGE plpgsql AS $f$
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

    // The DBA hands the function over; its new owner rewrites it.
    su.batch_execute(&format!("ALTER FUNCTION public.audit_profile() OWNER TO {ROLE}")).unwrap();
    warm.batch_execute(&format!(
        "CREATE OR REPLACE FUNCTION public.audit_profile() RETURNS trigger LANGUAGE plpgsql AS $f$
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
             CREATE FUNCTION public.audit_profile() RETURNS trigger LANGUAGE plpgsql AS $f$
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

    // Demoted; still the function's owner, with CREATE on its schema.
    su.batch_execute(&format!("GRANT CREATE ON SCHEMA public TO {DBA}")).unwrap();
    connect("postgres", "postgres").batch_execute(&format!("ALTER ROLE {DBA} NOSUPERUSER")).unwrap();
    db.connect_as(DBA)
        .batch_execute(&format!(
            "CREATE OR REPLACE FUNCTION public.audit_profile() RETURNS trigger LANGUAGE plpgsql AS $f$
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
