//! Harness for client-side tests: each test gets its own database with the extension created,
//! on the server `scripts/test.sh` started (PGA_TEST_HOST / PGA_TEST_PORT / PGA_TEST_BINDIR).

use postgres::{Client, NoTls};

pub use postgres;

pub fn host() -> String {
    std::env::var("PGA_TEST_HOST").unwrap_or_else(|_| "127.0.0.1".into())
}

pub fn port() -> u16 {
    std::env::var("PGA_TEST_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(5515)
}

/// Directory holding the server's client programs (pg_dump, pg_restore, psql).
pub fn bindir() -> std::path::PathBuf {
    std::env::var("PGA_TEST_BINDIR").expect("PGA_TEST_BINDIR: run through scripts/test.sh").into()
}

pub fn connect(dbname: &str, user: &str) -> Client {
    let conn = format!("host={} port={} user={user} dbname={dbname} application_name=pga_it", host(), port());
    Client::connect(&conn, NoTls).unwrap_or_else(|e| panic!("connect to {dbname} as {user}: {e}"))
}

/// A fresh database with `pg_assistant` installed, dropped when the value goes out of scope.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub fn new(test: &str) -> Self {
        Self::new_after(test, "")
    }

    /// A fresh database in which `before` runs (as superuser) before `CREATE EXTENSION`.
    pub fn new_after(test: &str, before: &str) -> Self {
        let name = format!("it_{test}");
        let mut admin = connect("postgres", "postgres");
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).ok();
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).unwrap();
        admin.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0")).unwrap();
        let db = TestDb { name };
        let mut su = db.superuser();
        su.batch_execute(before).unwrap();
        su.batch_execute("CREATE EXTENSION pg_assistant CASCADE").unwrap();
        db
    }

    /// A database set up the way Supabase sets one up: `ALTER DEFAULT PRIVILEGES ... GRANT ALL`
    /// on tables, functions and sequences in `public` to each of `roles` (login roles without
    /// superuser or BYPASSRLS, created if missing), in force before `CREATE EXTENSION`.
    pub fn supabase_like(test: &str, roles: &[&str]) -> Self {
        let mut before = String::new();
        for role in roles {
            ensure_login_role(role);
            before.push_str(&format!(
                "GRANT USAGE, CREATE ON SCHEMA public TO {role};
                 ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO {role};
                 ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO {role};
                 ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO {role};"
            ));
        }
        Self::new_after(test, &before)
    }

    pub fn superuser(&self) -> Client {
        connect(&self.name, "postgres")
    }

    pub fn connect_as(&self, role: &str) -> Client {
        connect(&self.name, role)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return; // keep the database for inspection
        }
        let mut admin = connect("postgres", "postgres");
        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// A login role without superuser or BYPASSRLS, created once per cluster.
pub fn ensure_login_role(role: &str) {
    let mut admin = connect("postgres", "postgres");
    let _ = admin.batch_execute(&format!(
        "DO $$ BEGIN CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    ));
}

/// [`ensure_login_role`], and take SUPERUSER and BYPASSRLS away again in case an earlier run's
/// attack succeeded. Only when needed: tests run in parallel, and two concurrent ALTER ROLEs of
/// one role fail with "tuple concurrently updated".
pub fn ensure_ordinary_role(role: &str) {
    ensure_login_role(role);
    let mut admin = connect("postgres", "postgres");
    let elevated: bool =
        admin.query_one("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = $1", &[&role]).unwrap().get(0);
    if elevated {
        admin.batch_execute(&format!("ALTER ROLE {role} NOSUPERUSER NOBYPASSRLS")).unwrap();
    }
}

/// A transaction carrying the JWT claims `claims` (a JSON object), as PostgREST sets them.
pub fn with_claims<'a>(client: &'a mut Client, claims: serde_json::Value) -> postgres::Transaction<'a> {
    let mut tx = client.transaction().unwrap();
    tx.execute("SELECT pg_catalog.set_config('request.jwt.claims', $1, true)", &[&claims.to_string()]).unwrap();
    tx
}

/// A transaction as user `user` with app role `authenticated`.
pub fn as_user<'a>(client: &'a mut Client, user: uuid::Uuid) -> postgres::Transaction<'a> {
    with_claims(client, serde_json::json!({ "sub": user.to_string(), "role": "authenticated" }))
}

/// Runs `sql` as `user` (claims of an `authenticated` user) in its own transaction; commits on
/// success, rolls back on error.
pub fn attempt(
    c: &mut Client,
    user: uuid::Uuid,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<u64, postgres::Error> {
    let mut tx = as_user(c, user);
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

/// [`attempt`] an attack that must fail; the server is still up afterwards.
pub fn refused(c: &mut Client, user: uuid::Uuid, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> postgres::Error {
    let err = attempt(c, user, sql, params).err().unwrap_or_else(|| panic!("attack succeeded: {sql}"));
    assert_server_alive();
    err
}

/// Whether `role` is a superuser right now (what an escalation attack would change).
pub fn is_superuser(role: &str) -> bool {
    let mut admin = connect("postgres", "postgres");
    admin.query_one("SELECT rolsuper FROM pg_roles WHERE rolname = $1", &[&role]).unwrap().get(0)
}

/// The SQLSTATE of a failed statement.
pub fn sqlstate(err: &postgres::Error) -> String {
    err.code().map(|c| c.code().to_owned()).unwrap_or_else(|| format!("no sqlstate: {err}"))
}

/// The DETAIL and HINT of a failed statement, joined (empty when it has neither).
pub fn detail_and_hint(err: &postgres::Error) -> String {
    err.as_db_error()
        .map(|e| format!("{} {}", e.detail().unwrap_or(""), e.hint().unwrap_or("")).trim().to_owned())
        .unwrap_or_default()
}

/// The primary message of a failed statement.
pub fn message(err: &postgres::Error) -> String {
    err.as_db_error().map(|e| e.message().to_owned()).unwrap_or_else(|| err.to_string())
}

/// The server still answers after an error case.
pub fn assert_server_alive() {
    let mut c = connect("postgres", "postgres");
    let one: i32 = c.query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
}

/// Every way `behavior_insights` and `behavior_sessions` differ from a recount of
/// `behavior_events` (read as `c`, which must see every row: a superuser or BYPASSRLS role),
/// one line per difference; empty when the summaries are exact. `last_session_id` must be the
/// session of an event at `last_session_timestamp` (the latest), `days_since_last_activity`
/// whole days from it to now.
pub fn behavior_drift(c: &mut Client) -> Vec<String> {
    const RECOUNT: &str = "
        WITH e AS (SELECT customer_id, session_id, event_type, tool_name, event_timestamp,
                          business_impact IN ('high', 'critical') AS high
                     FROM behavior_events),
             c AS (SELECT customer_id, count(*) AS n, count(*) FILTER (WHERE high) AS hi,
                          count(DISTINCT session_id)::int AS sessions,
                          min(event_timestamp) AS first_at, max(event_timestamp) AS last_at
                     FROM e GROUP BY customer_id),
             t AS (SELECT customer_id, jsonb_object_agg(event_type, n) AS by_type
                     FROM (SELECT customer_id, event_type, count(*) AS n FROM e GROUP BY 1, 2) x GROUP BY 1),
             want AS (SELECT c.*, t.by_type FROM c JOIN t USING (customer_id)),
             s AS (SELECT session_id, min(customer_id) AS customer_id, count(DISTINCT customer_id) AS customers,
                          min(event_timestamp) AS started_at, max(event_timestamp) AS ended_at,
                          count(*)::int AS n, (count(*) FILTER (WHERE high))::int AS hi,
                          coalesce(array_agg(DISTINCT tool_name ORDER BY tool_name) FILTER (WHERE tool_name IS NOT NULL),
                                   '{}') AS tools
                     FROM e GROUP BY session_id)
        SELECT 'insights ' || coalesce(w.customer_id, i.customer_id) || ': stored '
               || row(i.total_events, i.events_by_type, i.high_impact_events, i.session_count, i.first_event_at,
                      i.last_session_timestamp)::text
               || ' recount ' || row(w.n, w.by_type, w.hi, w.sessions, w.first_at, w.last_at)::text
          FROM want w FULL JOIN behavior_insights i USING (customer_id)
         WHERE row(i.total_events, i.events_by_type, i.high_impact_events, i.session_count, i.first_event_at,
                   i.last_session_timestamp)
               IS DISTINCT FROM row(w.n, w.by_type, w.hi, w.sessions, w.first_at, w.last_at)
        UNION ALL
        SELECT 'insights ' || i.customer_id || ': last_session_id ' || coalesce(i.last_session_id, 'NULL')
               || ' has no event at ' || coalesce(i.last_session_timestamp::text, 'NULL')
          FROM behavior_insights i
         WHERE NOT EXISTS (SELECT 1 FROM e WHERE e.customer_id = i.customer_id AND e.session_id = i.last_session_id
                                              AND e.event_timestamp = i.last_session_timestamp)
        UNION ALL
        SELECT 'insights ' || i.customer_id || ': days_since_last_activity ' || coalesce(i.days_since_last_activity::text, 'NULL')
          FROM behavior_insights i
         WHERE i.days_since_last_activity IS DISTINCT FROM
               greatest(0, floor(extract(epoch FROM now() - i.last_session_timestamp) / 86400))::int
        UNION ALL
        SELECT 'insights ' || i.customer_id || ': session_count ' || i.session_count || ' but '
               || (SELECT count(*) FROM behavior_sessions b WHERE b.customer_id = i.customer_id) || ' session rows'
          FROM behavior_insights i
         WHERE i.session_count <> (SELECT count(*) FROM behavior_sessions b WHERE b.customer_id = i.customer_id)
        UNION ALL
        SELECT 'session ' || coalesce(s.session_id, b.session_id) || ': stored '
               || row(b.customer_id, b.started_at, b.ended_at, b.event_count, b.high_impact_count, b.tools_used,
                      b.duration_seconds)::text
               || ' recount ' || row(s.customer_id, s.started_at, s.ended_at, s.n, s.hi, s.tools,
                                     floor(extract(epoch FROM s.ended_at - s.started_at))::int)::text
          FROM s FULL JOIN behavior_sessions b USING (session_id)
         WHERE row(b.customer_id, b.started_at, b.ended_at, b.event_count, b.high_impact_count, b.tools_used,
                   b.duration_seconds)
               IS DISTINCT FROM row(s.customer_id, s.started_at, s.ended_at, s.n, s.hi, s.tools,
                                    floor(extract(epoch FROM s.ended_at - s.started_at))::int)
        UNION ALL
        SELECT 'session ' || session_id || ': events of ' || customers || ' customers' FROM s WHERE customers > 1";
    c.query(RECOUNT, &[]).unwrap().iter().map(|r| r.get(0)).collect()
}

/// A login role with BYPASSRLS but not superuser (a service, like Supabase's `service_role`),
/// created once per cluster; its attributes are put back only when they differ.
pub fn ensure_bypassrls_role(role: &str) {
    let mut admin = connect("postgres", "postgres");
    let _ = admin.batch_execute(&format!(
        "DO $$ BEGIN CREATE ROLE {role} LOGIN NOSUPERUSER BYPASSRLS; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    ));
    let right: bool = admin
        .query_one("SELECT NOT rolsuper AND rolbypassrls AND rolcanlogin FROM pg_roles WHERE rolname = $1", &[&role])
        .unwrap()
        .get(0);
    if !right {
        admin.batch_execute(&format!("ALTER ROLE {role} LOGIN NOSUPERUSER BYPASSRLS")).unwrap();
    }
}
