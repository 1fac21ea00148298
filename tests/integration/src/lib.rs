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
        let name = format!("it_{test}");
        let mut admin = connect("postgres", "postgres");
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).ok();
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).unwrap();
        admin.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0")).unwrap();
        let db = TestDb { name };
        db.superuser().batch_execute("CREATE EXTENSION pg_assistant CASCADE").unwrap();
        db
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

/// The SQLSTATE of a failed statement.
pub fn sqlstate(err: &postgres::Error) -> String {
    err.code().map(|c| c.code().to_owned()).unwrap_or_else(|| format!("no sqlstate: {err}"))
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
