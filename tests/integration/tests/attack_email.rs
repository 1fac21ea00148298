//! Attack class 6: blocking someone's sign-up by taking their e-mail address.
//!
//! `profiles.email` is unique. A user who could put someone else's address on their own
//! profile (through `create_profile` before the victim signs up, or by updating their own row)
//! would make the victim's sign-up fail on the unique index, for good.
//!
//! What must happen instead: `email` is written only by the creation path (`create_profile`),
//! the Supabase auth hook and BYPASSRLS callers; an ordinary UPDATE changing it is refused
//! (`42501`, naming column "email"). `create_profile` by an ordinary caller works only for
//! their own `sub`, and when the JWT carries an `email` claim only with that address
//! (case-insensitively; else `42501`). When the identity provider vouches for the address (the
//! auth hook, or a matching `email` claim), the rightful owner takes it over: the squatting
//! profile's address becomes `<squatter id>@email-taken-over.invalid`, a `warn` log row
//! `email_taken_over` records it, and the owner's sign-up succeeds with their address.

use pg_assistant_integration::postgres::types::ToSql;
use pg_assistant_integration::postgres::{Client, Error};
use pg_assistant_integration::{
    as_user, assert_server_alive, ensure_login_role, message, sqlstate, with_claims, TestDb,
};
use serde_json::{json, Value};
use uuid::Uuid;

const ROLE: &str = "pga_atk_mail_app";

/// Supabase's auth.users, present before CREATE EXTENSION so the sign-up hook is installed.
const AUTH_USERS: &str = "CREATE SCHEMA auth;
     CREATE TABLE auth.users (id uuid PRIMARY KEY, email varchar(255), raw_user_meta_data jsonb);";

fn database(test: &str, with_auth_users: bool) -> TestDb {
    ensure_login_role(ROLE);
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

/// The squatter (no email claim to check) takes the victim's address first.
fn squat(c: &mut Client, squatter: Uuid, address: &str) {
    let mut tx = with_claims(c, no_email(squatter));
    let got: String = tx
        .query_one("SELECT email::text FROM create_profile($1, $2)", &[&squatter, &address])
        .unwrap()
        .get(0);
    assert_eq!(got, address);
    tx.commit().unwrap();
}

/// The original attack, then the victim signs up through Supabase auth: the sign-up succeeds
/// and the squatter is left with a placeholder they cannot change back.
#[test]
fn squatter_loses_the_address_when_the_owner_signs_up() {
    let db = database("atk_mail_signup", true);
    let mut c = db.connect_as(ROLE);
    let (squatter, victim) = (Uuid::new_v4(), Uuid::new_v4());
    squat(&mut c, squatter, "victim@example.com");

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
    assert_eq!(email_of(&db, squatter), Some(placeholder(squatter)));
    assert_eq!(email_of(&db, victim).as_deref(), Some("victim@example.com"));
}

/// Squatting on a case variant of the address changes nothing: citext makes it the same one.
#[test]
fn squatting_a_case_variant_is_taken_over_too() {
    let db = database("atk_mail_case_variant", true);
    let mut c = db.connect_as(ROLE);
    let (squatter, victim) = (Uuid::new_v4(), Uuid::new_v4());
    squat(&mut c, squatter, "VICTIM@Example.COM");
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
    squat(&mut c, squatter, "victim@example.com");

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
