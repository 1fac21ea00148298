//! Attack class 6: blocking someone's sign-up by taking their e-mail address.
//!
//! `profiles.email` is unique. A user who could put someone else's address on their own
//! profile (through `create_profile` before the victim signs up, or by updating their own row)
//! would make the victim's sign-up fail on the unique index, for good.
//!
//! What must happen instead: `email` is written only by the creation path (`create_profile`),
//! the Supabase auth hook and BYPASSRLS callers; an ordinary UPDATE changing it is refused
//! (`42501`, naming column "email"). `create_profile` by an ordinary caller works only for
//! their own `sub` and only with the address of their JWT's `email` claim (case-insensitively):
//! without the claim it is refused (`42501`, "permission denied to create a profile without a
//! verified address", the same for a taken and a free address, so the unique index is no
//! oracle), with another address too. Services (superuser, BYPASSRLS) create any profile with
//! any address (`23505` on a duplicate). When the identity provider vouches for the address (the
//! auth hook, or a matching `email` claim), the rightful owner takes it over from whatever
//! profile holds it (a stale or mistaken one a service created): that profile's address becomes
//! `<holder id>@email-taken-over.invalid`, a `warn` log row `email_taken_over` records it, and
//! the owner's sign-up succeeds with their address.

use pg_assistant_integration::postgres::types::ToSql;
use pg_assistant_integration::postgres::{Client, Error};
use pg_assistant_integration::{
    as_user, assert_server_alive, connect, detail_and_hint, ensure_ordinary_role, message, sqlstate, with_claims, TestDb,
};
use serde_json::{json, Value};
use uuid::Uuid;

const ROLE: &str = "pga_atk_mail_app";

/// Supabase's auth.users, present before CREATE EXTENSION so the sign-up hook is installed.
const AUTH_USERS: &str = "CREATE SCHEMA auth;
     CREATE TABLE auth.users (id uuid PRIMARY KEY, email varchar(255), raw_user_meta_data jsonb);";

fn database(test: &str, with_auth_users: bool) -> TestDb {
    ensure_ordinary_role(ROLE);
    let db = TestDb::new_after(test, if with_auth_users { AUTH_USERS } else { "" });
    db.superuser()
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA public TO {ROLE};
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE};"
        ))
        .unwrap();
    if with_auth_users {
        let hooked: i64 = db
            .superuser()
            .query_one("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'auth.users'::regclass AND NOT tgisinternal", &[])
            .unwrap()
            .get(0);
        assert_eq!(hooked, 1, "the auth.users hook should be installed");
    }
    db
}

/// Runs `sql` in its own transaction carrying `claims`; commits on success.
fn attempt(c: &mut Client, claims: Value, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, Error> {
    let mut tx = with_claims(c, claims);
    match tx.execute(sql, params) {
        Ok(n) => {
            tx.commit()?;
            Ok(n)
        }
        Err(e) => {
            tx.rollback().ok();
            Err(e)
        }
    }
}

fn refused(c: &mut Client, claims: Value, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Error {
    let err = attempt(c, claims, sql, params).err().unwrap_or_else(|| panic!("attack succeeded: {sql}"));
    assert_server_alive();
    err
}

/// Claims of an ordinary signed-in user whose token carries no `email` claim.
fn no_email(user: Uuid) -> Value {
    json!({ "sub": user.to_string(), "role": "authenticated" })
}

fn email_of(db: &TestDb, user: Uuid) -> Option<String> {
    db.superuser()
        .query_opt("SELECT email::text FROM profiles WHERE id = $1", &[&user])
        .unwrap()
        .map(|r| r.get(0))
}

fn placeholder(user: Uuid) -> String {
    format!("{user}@email-taken-over.invalid")
}

/// The takeover log rows: (user_id, level, taken_by).
fn takeover_logs(db: &TestDb) -> Vec<(Option<Uuid>, String, Option<String>)> {
    db.superuser()
        .query("SELECT user_id, level, metadata->>'taken_by' FROM logs WHERE event = 'email_taken_over' ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// An ordinary caller can no longer squat (see
/// `create_profile_without_an_email_claim_is_refused_alike_for_taken_and_free_addresses`): the
/// profile holding the victim's address is one a service created (a stale account, a mistyped
/// address, a service acting for the squatter), whose owner then uses an ordinary connection.
fn stale_holder(db: &TestDb, holder: Uuid, address: &str) {
    let got: String = db
        .superuser()
        .query_one("SELECT email::text FROM create_profile($1, $2)", &[&holder, &address])
        .unwrap()
        .get(0);
    assert_eq!(got, address);
}

/// The victim signs up through Supabase auth while another profile holds their address: the
/// sign-up succeeds and the holder is left with a placeholder they cannot change back.
#[test]
fn squatter_loses_the_address_when_the_owner_signs_up() {
    let db = database("atk_mail_signup", true);
    let mut c = db.connect_as(ROLE);
    let (squatter, victim) = (Uuid::new_v4(), Uuid::new_v4());
    stale_holder(&db, squatter, "victim@example.com");

    db.superuser()
        .execute("INSERT INTO auth.users (id, email) VALUES ($1, 'victim@example.com')", &[&victim])
        .unwrap();
    assert_eq!(email_of(&db, victim).as_deref(), Some("victim@example.com"));
    assert_eq!(email_of(&db, squatter), Some(placeholder(squatter)));
    assert_eq!(takeover_logs(&db), vec![(Some(squatter), "warn".to_owned(), Some(victim.to_string()))]);

    // The squatter cannot take it back, in any spelling, nor pass it to a fresh profile.
    for address in ["victim@example.com", "VICTIM@example.com"] {
        let err = refused(&mut c, no_email(squatter), "UPDATE profiles SET email = $1 WHERE id = $2", &[&address, &squatter]);
        assert_eq!(sqlstate(&err), "42501", "{address}: {err:?}");
        assert!(message(&err).contains("\"email\""), "{address}: {err:?}");
    }
    // Nor pass it to a fresh profile of theirs (no email claim, or their own placeholder).
    let fresh = Uuid::new_v4();
    for claims in [no_email(fresh), json!({ "sub": fresh.to_string(), "email": placeholder(squatter), "role": "authenticated" })] {
        let err = refused(&mut c, claims.clone(), "SELECT create_profile($1, 'victim@example.com')", &[&fresh]);
        assert_eq!(sqlstate(&err), "42501", "{claims}: {err:?}");
    }
    assert_eq!(email_of(&db, fresh), None);
    assert_eq!(email_of(&db, squatter), Some(placeholder(squatter)));
    assert_eq!(email_of(&db, victim).as_deref(), Some("victim@example.com"));
}

/// Squatting on a case variant of the address changes nothing: citext makes it the same one.
#[test]
fn squatting_a_case_variant_is_taken_over_too() {
    let db = database("atk_mail_case_variant", true);
    let (squatter, victim) = (Uuid::new_v4(), Uuid::new_v4());
    stale_holder(&db, squatter, "VICTIM@Example.COM");
    db.superuser()
        .execute("INSERT INTO auth.users (id, email) VALUES ($1, 'victim@example.com')", &[&victim])
        .unwrap();
    assert_eq!(email_of(&db, victim).as_deref(), Some("victim@example.com"));
    assert_eq!(email_of(&db, squatter), Some(placeholder(squatter)));
    assert_eq!(takeover_logs(&db), vec![(Some(squatter), "warn".to_owned(), Some(victim.to_string()))]);
}

/// Without the auth hook: the victim calls create_profile with a verified `email` claim that
/// differs in case from the address, and takes it over the same way.
#[test]
fn owner_with_a_matching_email_claim_takes_the_address_over() {
    let db = database("atk_mail_claim_takeover", false);
    let mut c = db.connect_as(ROLE);
    let (squatter, victim) = (Uuid::new_v4(), Uuid::new_v4());
    stale_holder(&db, squatter, "victim@example.com");

    let claims = json!({ "sub": victim.to_string(), "email": "Victim@Example.com", "role": "authenticated" });
    let mut tx = with_claims(&mut c, claims);
    let row = tx
        .query_one("SELECT id, email::text FROM create_profile($1, 'victim@example.com')", &[&victim])
        .unwrap();
    assert_eq!((row.get::<_, Uuid>(0), row.get::<_, String>(1)), (victim, "victim@example.com".to_owned()));
    tx.commit().unwrap();

    assert_eq!(email_of(&db, victim).as_deref(), Some("victim@example.com"));
    assert_eq!(email_of(&db, squatter), Some(placeholder(squatter)));
    assert_eq!(takeover_logs(&db), vec![(Some(squatter), "warn".to_owned(), Some(victim.to_string()))]);
    // Still no way back for the squatter.
    let err = refused(
        &mut c,
        no_email(squatter),
        "UPDATE profiles SET email = 'victim@example.com' WHERE id = $1",
        &[&squatter],
    );
    assert_eq!(sqlstate(&err), "42501", "{err:?}");
    assert!(message(&err).contains("\"email\""), "{err:?}");
}

/// An attacker whose token carries their own address cannot create a profile with another
/// one, nor anybody's profile but their own.
#[test]
fn create_profile_is_bound_to_the_callers_sub_and_email_claim() {
    let db = database("atk_mail_claim_mismatch", false);
    let mut c = db.connect_as(ROLE);
    let (attacker, victim) = (Uuid::new_v4(), Uuid::new_v4());
    let claims = json!({ "sub": attacker.to_string(), "email": "mallory@example.com", "role": "authenticated" });
    for address in ["victim@example.com", "mallory@example.org", "mallory+x@example.com"] {
        let err = refused(&mut c, claims.clone(), "SELECT create_profile($1, $2)", &[&attacker, &address]);
        assert_eq!(sqlstate(&err), "42501", "{address}: {err:?}");
        assert_eq!(message(&err), "permission denied to create a profile with another address", "{address}");
    }
    assert_eq!(email_of(&db, attacker), None);
    // Someone else's profile, with or without an email claim.
    for claims in [claims.clone(), no_email(attacker)] {
        let err = refused(&mut c, claims, "SELECT create_profile($1, 'victim@example.com')", &[&victim]);
        assert_eq!(sqlstate(&err), "42501", "{err:?}");
    }
    assert_eq!(email_of(&db, victim), None);
    assert!(takeover_logs(&db).is_empty());
    // With their own address it works.
    let mut tx = with_claims(&mut c, claims);
    tx.execute("SELECT create_profile($1, 'Mallory@Example.com')", &[&attacker]).unwrap();
    tx.commit().unwrap();
    assert_eq!(email_of(&db, attacker).as_deref(), Some("Mallory@Example.com"));
}

/// An ordinary UPDATE of `email` is refused, even to a fresh address, and whatever the claims.
#[test]
fn email_is_not_writable_by_an_ordinary_update() {
    let db = database("atk_mail_update", false);
    let mut su = db.superuser();
    let (user, victim) = (Uuid::new_v4(), Uuid::new_v4());
    su.execute("SELECT create_profile($1, 'user@example.com')", &[&user]).unwrap();
    su.execute("SELECT create_profile($1, 'victim@example.com')", &[&victim]).unwrap();
    let mut c = db.connect_as(ROLE);
    for (claims, address) in [
        (no_email(user), "victim@example.com"),
        (no_email(user), "fresh@example.com"),
        (json!({ "sub": user.to_string(), "email": "fresh@example.com", "role": "authenticated" }), "fresh@example.com"),
        (json!({ "sub": user.to_string(), "role": "service_role" }), "fresh@example.com"),
    ] {
        let err = refused(&mut c, claims.clone(), "UPDATE profiles SET email = $1", &[&address]);
        assert_eq!(sqlstate(&err), "42501", "{claims} {address}: {err:?}");
        assert!(message(&err).contains("\"email\""), "{claims} {address}: {err:?}");
    }
    // Other columns stay the user's own.
    let mut tx = as_user(&mut c, user);
    assert_eq!(tx.execute("UPDATE profiles SET display_name = 'Me'", &[]).unwrap(), 1);
    tx.commit().unwrap();
    assert_eq!(email_of(&db, user).as_deref(), Some("user@example.com"));
    assert_eq!(email_of(&db, victim).as_deref(), Some("victim@example.com"));
}

/// A sign-up whose address nobody holds takes nothing over and logs nothing.
#[test]
fn signup_with_a_free_address_writes_no_takeover_log() {
    let db = database("atk_mail_free_signup", true);
    let mut su = db.superuser();
    let (other, newcomer) = (Uuid::new_v4(), Uuid::new_v4());
    su.execute("SELECT create_profile($1, 'other@example.com')", &[&other]).unwrap();
    su.execute("INSERT INTO auth.users (id, email) VALUES ($1, 'newcomer@example.com')", &[&newcomer]).unwrap();
    assert_eq!(email_of(&db, newcomer).as_deref(), Some("newcomer@example.com"));
    assert_eq!(email_of(&db, other).as_deref(), Some("other@example.com"));
    assert!(takeover_logs(&db).is_empty());
    let logs: i64 = su.query_one("SELECT count(*) FROM logs", &[]).unwrap().get(0);
    assert_eq!(logs, 0);
}

/// The squat itself, as the red team mounted it: an ordinary caller whose token carries no
/// `email` claim creates their profile with someone else's address. Refused, with one and the
/// same error whether the address is taken or free (no 23505 to probe accounts with), through
/// the wrapper and through `_create_profile`; nothing is written.
#[test]
fn create_profile_without_an_email_claim_is_refused_alike_for_taken_and_free_addresses() {
    let db = database("atk_mail_no_claim", false);
    let holder = Uuid::new_v4();
    stale_holder(&db, holder, "taken@example.com");
    let mut c = db.connect_as(ROLE);
    let squatter = Uuid::new_v4();
    let mut seen = Vec::new();
    for sql in ["SELECT create_profile($1, $2)", "SELECT _create_profile($1, $2, NULL)"] {
        for address in ["taken@example.com", "TAKEN@example.com", "free@example.com"] {
            let err = refused(&mut c, no_email(squatter), sql, &[&squatter, &address]);
            assert_eq!(sqlstate(&err), "42501", "{sql} {address}: {err:?}");
            assert_eq!(message(&err), "permission denied to create a profile without a verified address", "{sql} {address}");
            seen.push((sqlstate(&err), message(&err), detail_and_hint(&err)));
        }
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "the refusals differ: {seen:?}");
    assert!(!seen[0].2.contains("taken@"), "the refusal names the address: {}", seen[0].2);
    assert_eq!(email_of(&db, squatter), None);
    assert_eq!(email_of(&db, holder).as_deref(), Some("taken@example.com"));
    assert!(takeover_logs(&db).is_empty());
    let logs: i64 = db.superuser().query_one("SELECT count(*) FROM logs", &[]).unwrap().get(0);
    assert_eq!(logs, 0);
}

/// Services create any profile with any address, as before: a superuser and a BYPASSRLS login
/// role, with or without claims; a duplicate address is their 23505, and takes nothing over.
#[test]
fn services_create_any_profile_with_any_address() {
    const SERVICE: &str = "pga_atk_mail_service";
    connect("postgres", "postgres")
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {SERVICE} LOGIN NOSUPERUSER BYPASSRLS;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;"
        ))
        .unwrap();
    let bypass: bool = connect("postgres", "postgres")
        .query_one("SELECT rolbypassrls AND NOT rolsuper FROM pg_roles WHERE rolname = $1", &[&SERVICE])
        .unwrap()
        .get(0);
    if !bypass {
        connect("postgres", "postgres").batch_execute(&format!("ALTER ROLE {SERVICE} NOSUPERUSER BYPASSRLS")).unwrap();
    }
    let db = database("atk_mail_services", false);
    db.superuser()
        .batch_execute(&format!("GRANT USAGE ON SCHEMA public TO {SERVICE}; GRANT SELECT ON public.profiles TO {SERVICE};"))
        .unwrap();
    let (a, b, c, d) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let mut su = db.superuser();
    su.execute("SELECT create_profile($1, 'a@example.com')", &[&a]).unwrap();
    let mut svc = db.connect_as(SERVICE);
    svc.execute("SELECT create_profile($1, 'b@example.com')", &[&b]).unwrap();
    // Claims do not bind a service: someone else's sub, another email claim.
    let claims = json!({ "sub": a.to_string(), "email": "a@example.com", "role": "service_role" });
    attempt(&mut svc, claims, "SELECT create_profile($1, 'c@example.com')", &[&c]).unwrap();
    for (who, client) in [("superuser", &mut su), ("service", &mut svc)] {
        for address in ["a@example.com", "B@EXAMPLE.com"] {
            let err = client.execute("SELECT create_profile($1, $2)", &[&d, &address]).unwrap_err();
            assert_eq!(sqlstate(&err), "23505", "{who} {address}: {err:?}");
            assert_server_alive();
        }
    }
    assert_eq!(email_of(&db, a).as_deref(), Some("a@example.com"));
    assert_eq!(email_of(&db, b).as_deref(), Some("b@example.com"));
    assert_eq!(email_of(&db, c).as_deref(), Some("c@example.com"));
    assert_eq!(email_of(&db, d), None);
    assert!(takeover_logs(&db).is_empty());
}

/// A verified user whose profile exists already must not lose their own address when the
/// creation path runs again for them: "taking the address over" is from *another* profile.
/// Either the call fails (the profile exists) or it changes nothing. Two ways in: a retried
/// `create_profile` with the matching claim, and the auth hook for a user whose profile a
/// service created first (same id, same address).
#[test]
fn a_verified_retry_does_not_take_the_address_from_oneself() {
    let db = database("atk_mail_retry", true);
    let mut c = db.connect_as(ROLE);
    let (user, signed_up) = (Uuid::new_v4(), Uuid::new_v4());
    let claims = json!({ "sub": user.to_string(), "email": "me@example.com", "role": "authenticated" });
    attempt(&mut c, claims.clone(), "SELECT create_profile($1, 'me@example.com')", &[&user]).unwrap();
    assert_eq!(email_of(&db, user).as_deref(), Some("me@example.com"));
    let retried = attempt(&mut c, claims, "SELECT create_profile($1, 'me@example.com')", &[&user])
        .map_err(|e| format!("{} {}", sqlstate(&e), message(&e)));
    assert_server_alive();

    stale_holder(&db, signed_up, "early@example.com");
    let hooked = db
        .superuser()
        .execute("INSERT INTO auth.users (id, email) VALUES ($1, 'early@example.com')", &[&signed_up])
        .map_err(|e| format!("{} {}", sqlstate(&e), message(&e)));
    assert_server_alive();

    let outcome = [
        (format!("create_profile retried ({retried:?})"), email_of(&db, user), "me@example.com"),
        (format!("auth hook after a service ({hooked:?})"), email_of(&db, signed_up), "early@example.com"),
    ];
    let lost: Vec<String> = outcome
        .iter()
        .filter(|(_, got, want)| got.as_deref() != Some(*want))
        .map(|(how, got, want)| format!("{how}: {want} became {got:?}"))
        .collect();
    assert!(lost.is_empty(), "the caller's own address was taken over: {lost:#?}");
}
