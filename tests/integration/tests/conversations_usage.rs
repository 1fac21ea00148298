//! `increment_usage_metrics(p_tenant_id, p_user_id, p_date, p_input_tokens, p_output_tokens,
//! p_cost)` (DESIGN.md 3.4): one atomic upsert, exact under concurrent callers; bad arguments
//! 22023 / 22004; an ordinary caller records only their own usage in their own tenant, a service
//! anyone's.
//!
//! The tests of this file run one at a time and each waits for the server first: a server crash
//! in one of them must show as that test's failure, not as every other test's.

use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use pg_assistant_integration::postgres::{Client, NoTls};
use pg_assistant_integration::{assert_server_alive, ensure_bypassrls_role, host, port, sqlstate, with_claims, TestDb};
use serde_json::json;
use uuid::Uuid;

const ROLE: &str = "pga_it_conv_use_app";
const SERVICE: &str = "pga_it_conv_use_svc";
const DAY: &str = "2031-03-14";

static SERIAL: Mutex<()> = Mutex::new(());

/// Waits (up to 30 s) until the server accepts connections again, for instance after a crash.
fn wait_for_server() {
    let deadline = Instant::now() + Duration::from_secs(30);
    let conn = format!("host={} port={} user=postgres dbname=postgres", host(), port());
    loop {
        if let Ok(mut c) = Client::connect(&conn, NoTls) {
            if c.query_one("SELECT 1", &[]).is_ok() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "server did not come back");
        thread::sleep(Duration::from_millis(200));
    }
}

/// Serialises the tests of this file and, even when one panics, waits for the server afterwards.
struct Serial(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

impl Serial {
    fn start() -> Self {
        let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        wait_for_server();
        Serial(guard)
    }
}

impl Drop for Serial {
    fn drop(&mut self) {
        wait_for_server();
    }
}

struct Fixture {
    db: TestDb,
    tenant_a: Uuid,
    tenant_b: Uuid,
    alice: Uuid,
    amy: Uuid,
    bob: Uuid,
}

fn fixture(test: &str) -> Fixture {
    let db = TestDb::supabase_like(test, &[ROLE]);
    let mut su = db.superuser();
    let mut tenant =
        |slug: &str| -> Uuid { su.query_one("INSERT INTO tenants (name, slug) VALUES ($1, $1) RETURNING id", &[&slug]).unwrap().get(0) };
    let (tenant_a, tenant_b) = (tenant("use-a"), tenant("use-b"));
    let mut member = |t: Uuid, email: &str| -> Uuid {
        let id = Uuid::new_v4();
        su.execute("SELECT create_profile($1, $2)", &[&id, &email]).unwrap();
        su.execute("UPDATE profiles SET tenant_id = $2 WHERE id = $1", &[&id, &t]).unwrap();
        id
    };
    let alice = member(tenant_a, "alice@use-a.example.com");
    let amy = member(tenant_a, "amy@use-a.example.com");
    let bob = member(tenant_b, "bob@use-b.example.com");
    Fixture { db, tenant_a, tenant_b, alice, amy, bob }
}

const CALL: &str = "SELECT message_count, input_tokens, output_tokens, total_tokens, estimated_cost::text
                      FROM increment_usage_metrics($1, $2, $3::text::date, $4, $5, $6::text::numeric)";

fn cost(micros: i64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// (message_count, input, output, total, cost) of the one usage row, read by the superuser.
fn usage(db: &TestDb, tenant: Uuid, user: Uuid) -> Option<(i32, i64, i64, i64, String)> {
    db.superuser()
        .query_opt(
            "SELECT message_count, input_tokens, output_tokens, total_tokens, estimated_cost::text FROM usage_metrics
              WHERE tenant_id = $1 AND user_id = $2 AND date = $3::text::date",
            &[&tenant, &user, &DAY],
        )
        .unwrap()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
}

/// One application connection records a user's usage message after message (as a pooled
/// connection does all day).
#[test]
fn one_connection_records_usage_many_times() {
    let _serial = Serial::start();
    let f = fixture("conv_use_one_connection");
    let mut c = f.db.connect_as(ROLE);
    c.execute(
        "SELECT set_config('request.jwt.claims', $1, false)",
        &[&json!({ "sub": f.alice.to_string(), "role": "authenticated" }).to_string()],
    )
    .unwrap();
    let call = c.prepare(CALL).unwrap();
    for n in 1..=10i32 {
        let row = c
            .query_one(&call, &[&f.tenant_a, &f.alice, &DAY, &(n * 10), &n, &"0.001500"])
            .unwrap_or_else(|e| panic!("call {n} of increment_usage_metrics on one connection: {e}"));
        assert_eq!(row.get::<_, i32>(0), n);
        assert_eq!(row.get::<_, i64>(3), row.get::<_, i64>(1) + row.get::<_, i64>(2));
    }
    assert_server_alive();
    let got = usage(&f.db, f.tenant_a, f.alice).unwrap();
    assert_eq!(got, (10, 550, 55, 605, "0.015000".to_string()));
}

/// 8 clients, each its own connection, 1,000 calls each on the same day row: the totals are
/// exact, and every returned row has total_tokens = input + output.
#[test]
fn eight_clients_1000_calls_each_are_exact() {
    let _serial = Serial::start();
    let f = fixture("conv_use_eight_clients");
    let barrier = Arc::new(Barrier::new(8));
    let started = Instant::now();
    let handles: Vec<_> = (0..8i64)
        .map(|client| {
            let mut c = f.db.connect_as(ROLE);
            // Half the clients are the user's own app, half a service recording for them.
            let claims = if client % 2 == 0 {
                json!({ "sub": f.alice.to_string(), "role": "authenticated" })
            } else {
                json!({ "sub": Uuid::new_v4().to_string(), "role": "service_role" })
            };
            let (tenant, user) = (f.tenant_a, f.alice);
            let barrier = barrier.clone();
            thread::spawn(move || -> Result<(i64, i64, i64), String> {
                c.execute("SELECT set_config('request.jwt.claims', $1, false)", &[&claims.to_string()]).unwrap();
                let call = c.prepare(CALL).unwrap();
                barrier.wait();
                let (mut input, mut output, mut micros) = (0i64, 0i64, 0i64);
                for i in 0..1000i64 {
                    let k = client * 1000 + i;
                    let (inp, out, m) = ((k * 37) % 4096, (k * 91) % 2048, k % 997 + 1);
                    let row = c
                        .query_one(&call, &[&tenant, &user, &DAY, &(inp as i32), &(out as i32), &cost(m)])
                        .map_err(|e| format!("client {client}, call {i}: {e:?}"))?;
                    let (n, ti, to, tt): (i32, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
                    if tt != ti + to || !(1..=8000).contains(&n) {
                        return Err(format!("client {client}, call {i}: returned count {n}, tokens {ti} + {to} = {tt}"));
                    }
                    input += inp;
                    output += out;
                    micros += m;
                }
                Ok((input, output, micros))
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(errors.is_empty(), "{} clients failed: {:?}", errors.len(), errors);
    let (input, output, micros) = results.iter().map(|r| *r.as_ref().unwrap()).fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
    eprintln!("8,000 increment_usage_metrics calls from 8 clients took {:?}", started.elapsed());
    assert_server_alive();
    let got = usage(&f.db, f.tenant_a, f.alice).expect("the day's row");
    assert_eq!(got, (8000, input, output, input + output, cost(micros)));
    let rows: i64 = f.db.superuser().query_one("SELECT count(*) FROM usage_metrics", &[]).unwrap().get(0);
    assert_eq!(rows, 1);
}

#[test]
fn bad_arguments_are_refused() {
    let _serial = Serial::start();
    let f = fixture("conv_use_arguments");
    let mut su = f.db.superuser();
    let (t, u) = (Some(f.tenant_a), Some(f.alice));
    let day = Some(DAY);
    type Args<'a> = (Option<Uuid>, Option<Uuid>, Option<&'a str>, Option<i32>, Option<i32>, Option<&'a str>);
    let cases: Vec<(&str, Args, &str)> = vec![
        ("negative input tokens", (t, u, day, Some(-1), Some(1), Some("0.1")), "22023"),
        ("negative output tokens", (t, u, day, Some(1), Some(-5), Some("0.1")), "22023"),
        ("negative cost", (t, u, day, Some(1), Some(1), Some("-0.000001")), "22023"),
        ("NaN cost", (t, u, day, Some(1), Some(1), Some("NaN")), "22023"),
        ("infinite date", (t, u, Some("infinity"), Some(1), Some(1), Some("0.1")), "22023"),
        ("NULL tenant", (None, u, day, Some(1), Some(1), Some("0.1")), "22004"),
        ("NULL user", (t, None, day, Some(1), Some(1), Some("0.1")), "22004"),
        ("NULL date", (t, u, None, Some(1), Some(1), Some("0.1")), "22004"),
        ("NULL input tokens", (t, u, day, None, Some(1), Some("0.1")), "22004"),
        ("NULL output tokens", (t, u, day, Some(1), None, Some("0.1")), "22004"),
        ("NULL cost", (t, u, day, Some(1), Some(1), None), "22004"),
    ];
    for (what, a, code) in cases {
        let err = su.query_one(CALL, &[&a.0, &a.1, &a.2, &a.3, &a.4, &a.5]).err().unwrap_or_else(|| panic!("{what} accepted"));
        assert_eq!(sqlstate(&err), code, "{what}: {err:?}");
        assert_server_alive();
    }
    assert_eq!(usage(&f.db, f.tenant_a, f.alice), None, "nothing recorded by refused calls");
    // Zero is fine.
    let mut fresh = f.db.superuser();
    let row = fresh.query_one(CALL, &[&f.tenant_a, &f.alice, &DAY, &0i32, &0i32, &"0"]).unwrap();
    assert_eq!((row.get::<_, i32>(0), row.get::<_, i64>(3)), (1, 0));
}

/// An ordinary caller (EXECUTE granted, as on Supabase) records only their own usage, in their
/// own tenant; the JWT roles admin and service_role and BYPASSRLS roles record anyone's.
#[test]
fn ordinary_callers_record_only_their_own_usage() {
    let _serial = Serial::start();
    let f = fixture("conv_use_who");
    ensure_bypassrls_role(SERVICE);
    let mut su = f.db.superuser();
    su.batch_execute(&format!("GRANT USAGE ON SCHEMA public TO {SERVICE}; GRANT SELECT ON usage_metrics TO {SERVICE};")).unwrap();
    let granted: bool = su
        .query_one("SELECT has_function_privilege($1, 'increment_usage_metrics(uuid, uuid, date, int, int, numeric)', 'EXECUTE')", &[&ROLE])
        .unwrap()
        .get(0);
    assert!(granted, "the application role holds EXECUTE (Supabase-style default privileges)");

    // One successful call per connection (see one_connection_records_usage_many_times).
    let attempt = |claims: serde_json::Value, tenant: Uuid, user: Uuid| {
        let mut c = f.db.connect_as(ROLE);
        let mut tx = with_claims(&mut c, claims);
        let result = tx.query_one(CALL, &[&tenant, &user, &DAY, &100i32, &50i32, &"0.5"]).map(|r| r.get::<_, i32>(0));
        match &result {
            Ok(_) => tx.commit().unwrap(),
            Err(_) => tx.rollback().unwrap(),
        }
        assert_server_alive();
        result
    };
    let alice = json!({ "sub": f.alice.to_string(), "role": "authenticated" });
    assert_eq!(attempt(alice.clone(), f.tenant_a, f.alice).unwrap(), 1);
    for (what, claims, tenant, user) in [
        ("for a colleague", alice.clone(), f.tenant_a, f.amy),
        ("into another tenant", alice.clone(), f.tenant_b, f.alice),
        ("for another tenant's user", alice.clone(), f.tenant_b, f.bob),
        ("for someone in her tenant's name", alice.clone(), f.tenant_a, f.bob),
        ("without claims", json!({}), f.tenant_a, f.alice),
        ("as anon", json!({ "role": "anon" }), f.tenant_a, f.alice),
        ("as a user without a profile", json!({ "sub": Uuid::new_v4().to_string(), "role": "authenticated" }), f.tenant_a, f.alice),
    ] {
        let err = attempt(claims, tenant, user).err().unwrap_or_else(|| panic!("{what}: recorded"));
        assert_eq!(sqlstate(&err), "42501", "{what}: {err:?}");
        let text = format!("{err:?}");
        for other in [f.tenant_b, f.bob, f.amy] {
            if other != user && other != tenant {
                assert!(!text.contains(&other.to_string()), "{what}: error shows {other}: {text}");
            }
        }
    }
    // Explicit grants change nothing.
    su.batch_execute(&format!("GRANT EXECUTE ON FUNCTION increment_usage_metrics(uuid, uuid, date, int, int, numeric) TO {ROLE}")).unwrap();
    let err = attempt(alice.clone(), f.tenant_b, f.bob).unwrap_err();
    assert_eq!(sqlstate(&err), "42501");

    // Services record anyone's.
    for role in ["service_role", "admin"] {
        let n = attempt(json!({ "sub": Uuid::new_v4().to_string(), "role": role }), f.tenant_b, f.bob).unwrap();
        assert!(n >= 1, "{role}");
    }
    let mut svc = f.db.connect_as(SERVICE);
    let n: i32 = svc.query_one(CALL, &[&f.tenant_a, &f.amy, &DAY, &1i32, &2i32, &"0.25"]).unwrap().get(0);
    assert_eq!(n, 1);

    assert_eq!(usage(&f.db, f.tenant_a, f.alice), Some((1, 100, 50, 150, "0.500000".into())));
    assert_eq!(usage(&f.db, f.tenant_a, f.amy), Some((1, 1, 2, 3, "0.250000".into())));
    assert_eq!(usage(&f.db, f.tenant_b, f.bob), Some((2, 200, 100, 300, "1.000000".into())));
    let rows: i64 = su.query_one("SELECT count(*) FROM usage_metrics", &[]).unwrap().get(0);
    assert_eq!(rows, 3, "refused calls recorded nothing");

    // And users read their own tenant's usage only.
    let mut c = f.db.connect_as(ROLE);
    let mut tx = with_claims(&mut c, alice);
    let seen: Vec<Uuid> = tx.query("SELECT DISTINCT tenant_id FROM usage_metrics", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(seen, vec![f.tenant_a]);
}
