//! conversations (DESIGN.md 3.4): tenant isolation through a real non-superuser LOGIN role that
//! got everything Supabase's default privileges grant, with the user in the JWT claims of each
//! transaction, as PostgREST runs it.
//!
//! Two tenants: A (alice, amy) and B (bob). Each tenant has a conversation with messages,
//! feedback and a day of usage. A caller reads and writes only their own tenant; a write into the
//! other tenant is refused with PostgreSQL's own RLS error (42501), which carries nothing of that
//! tenant; rows never move between tenants; the JWT roles admin and service_role act for every
//! tenant.

use pg_assistant_integration::postgres::{Client, Error, Transaction};
use pg_assistant_integration::{assert_server_alive, detail_and_hint, message, sqlstate, with_claims, TestDb};
use serde_json::json;
use uuid::Uuid;

const ROLE: &str = "pga_it_conv_rls_app";

struct Fixture {
    db: TestDb,
    tenant_a: Uuid,
    tenant_b: Uuid,
    alice: Uuid,
    amy: Uuid,
    bob: Uuid,
    /// A profile without a tenant.
    carol: Uuid,
    alice_conv: Uuid,
    alice_conv2: Uuid,
    bob_conv: Uuid,
    alice_msg: Uuid,
    bob_msg: Uuid,
    bob_feedback: Uuid,
}

fn tenant(su: &mut Client, slug: &str) -> Uuid {
    su.query_one("INSERT INTO tenants (name, slug) VALUES ($1, $1) RETURNING id", &[&slug]).unwrap().get(0)
}

fn member(su: &mut Client, tenant: Option<Uuid>, email: &str) -> Uuid {
    let id = Uuid::new_v4();
    su.execute("SELECT create_profile($1, $2)", &[&id, &email]).unwrap();
    su.execute("UPDATE profiles SET tenant_id = $2 WHERE id = $1", &[&id, &tenant]).unwrap();
    id
}

fn conversation(su: &mut Client, tenant: Uuid, user: Uuid, title: &str) -> Uuid {
    su.query_one("INSERT INTO conversations (tenant_id, user_id, title) VALUES ($1, $2, $3) RETURNING id", &[&tenant, &user, &title])
        .unwrap()
        .get(0)
}

fn msg(su: &mut Client, conv: Uuid, user: Uuid, content: &str) -> Uuid {
    su.query_one(
        "INSERT INTO conversation_messages (conversation_id, user_id, role, content, input_tokens, output_tokens)
         VALUES ($1, $2, 'user', $3, 10, 20) RETURNING id",
        &[&conv, &user, &content],
    )
    .unwrap()
    .get(0)
}

fn fixture(test: &str) -> Fixture {
    let db = TestDb::supabase_like(test, &[ROLE]);
    let mut su = db.superuser();
    let (tenant_a, tenant_b) = (tenant(&mut su, "tenant-a"), tenant(&mut su, "tenant-b"));
    let alice = member(&mut su, Some(tenant_a), "alice@a.example.com");
    let amy = member(&mut su, Some(tenant_a), "amy@a.example.com");
    let bob = member(&mut su, Some(tenant_b), "bob@b.example.com");
    let carol = member(&mut su, None, "carol@nowhere.example.com");
    let alice_conv = conversation(&mut su, tenant_a, alice, "alice's chat");
    let alice_conv2 = conversation(&mut su, tenant_a, alice, "alice's other chat");
    let bob_conv = conversation(&mut su, tenant_b, bob, "bob's chat");
    let alice_msg = msg(&mut su, alice_conv, alice, "hello from A");
    msg(&mut su, alice_conv, alice, "second in A");
    let bob_msg = msg(&mut su, bob_conv, bob, "hello from B");
    su.execute("INSERT INTO feedback (message_id, user_id, rating) VALUES ($1, $2, 1)", &[&alice_msg, &amy]).unwrap();
    let bob_feedback: Uuid = su
        .query_one("INSERT INTO feedback (message_id, user_id, rating) VALUES ($1, $2, -1) RETURNING id", &[&bob_msg, &bob])
        .unwrap()
        .get(0);
    // Usage rows written directly (as a service would): increment_usage_metrics has its own tests
    // (conversations_usage.rs).
    for (t, u) in [(tenant_a, alice), (tenant_a, amy), (tenant_b, bob)] {
        su.execute(
            "INSERT INTO usage_metrics (tenant_id, user_id, date, message_count, input_tokens, output_tokens, estimated_cost)
             VALUES ($1, $2, current_date, 1, 100, 50, 0.25), ($1, $2, current_date - 3, 1, 7, 3, 0.01)",
            &[&t, &u],
        )
        .unwrap();
    }
    Fixture { db, tenant_a, tenant_b, alice, amy, bob, carol, alice_conv, alice_conv2, bob_conv, alice_msg, bob_msg, bob_feedback }
}

fn claims(user: Uuid, role: &str) -> serde_json::Value {
    json!({ "sub": user.to_string(), "role": role })
}

fn uuids(tx: &mut Transaction<'_>, sql: &str) -> Vec<Uuid> {
    let mut v: Vec<Uuid> = tx.query(sql, &[]).unwrap().iter().map(|r| r.get(0)).collect();
    v.sort();
    v
}

fn count(tx: &mut Transaction<'_>, sql: &str) -> i64 {
    tx.query_one(sql, &[]).unwrap().get(0)
}

/// Runs `sql` in its own transaction with `claims`; the error (rolled back) or the row count
/// (committed).
fn run(
    c: &mut Client,
    claims: serde_json::Value,
    sql: &str,
    params: &[&(dyn pg_assistant_integration::postgres::types::ToSql + Sync)],
) -> Result<u64, Error> {
    let mut tx = with_claims(c, claims);
    match tx.execute(sql, params) {
        Ok(n) => {
            tx.commit().unwrap();
            Ok(n)
        }
        Err(e) => {
            tx.rollback().ok();
            Err(e)
        }
    }
}

fn must_fail(
    c: &mut Client,
    claims: serde_json::Value,
    sql: &str,
    params: &[&(dyn pg_assistant_integration::postgres::types::ToSql + Sync)],
) -> Error {
    let err = run(c, claims, sql, params).err().unwrap_or_else(|| panic!("succeeded but must not: {sql}"));
    assert_server_alive();
    err
}

/// PostgreSQL's own RLS error for `table`, with nothing of tenant B in any field.
fn assert_bare_rls_error(err: &Error, table: &str, f: &Fixture, what: &str) {
    assert_eq!(sqlstate(err), "42501", "{what}: {err:?}");
    assert_eq!(message(err), format!("new row violates row-level security policy for table \"{table}\""), "{what}: {err:?}");
    assert_eq!(detail_and_hint(err), "", "{what}: {err:?}");
    assert_nothing_of_b(err, f, what);
}

fn assert_nothing_of_b(err: &Error, f: &Fixture, what: &str) {
    let everything = format!("{err:?} {err}");
    for (name, secret) in [
        ("tenant B", f.tenant_b),
        ("bob", f.bob),
        ("bob's conversation", f.bob_conv),
        ("bob's message", f.bob_msg),
        ("bob's feedback", f.bob_feedback),
    ] {
        assert!(!everything.contains(&secret.to_string()), "{what}: error shows {name} ({secret}): {everything}");
    }
    assert!(!everything.contains("tenant-b"), "{what}: error shows tenant B's slug: {everything}");
}

#[test]
fn reads_show_only_the_callers_tenant() {
    let f = fixture("conv_rls_reads");
    let mut c = f.db.connect_as(ROLE);
    for (me, tenant, convs, other) in [
        (f.alice, f.tenant_a, vec![f.alice_conv, f.alice_conv2], f.tenant_b),
        (f.amy, f.tenant_a, vec![f.alice_conv, f.alice_conv2], f.tenant_b),
        (f.bob, f.tenant_b, vec![f.bob_conv], f.tenant_a),
    ] {
        let mut tx = with_claims(&mut c, claims(me, "authenticated"));
        let mut want = convs.clone();
        want.sort();
        assert_eq!(uuids(&mut tx, "SELECT id FROM conversations"), want, "conversations seen by {me}");
        for table in ["conversations", "conversation_messages", "feedback", "usage_metrics", "current_day_usage"] {
            let tenants: Vec<Uuid> =
                tx.query(&format!("SELECT DISTINCT tenant_id FROM {table}"), &[]).unwrap().iter().map(|r| r.get(0)).collect();
            assert_eq!(tenants, vec![tenant], "{table} as {me}");
            let leaked: i64 = tx.query_one(&format!("SELECT count(*) FROM {table} WHERE tenant_id = $1"), &[&other]).unwrap().get(0);
            assert_eq!(leaked, 0, "{table} shows the other tenant's rows to {me}");
        }
        let messages = count(&mut tx, "SELECT count(*) FROM conversation_messages");
        assert_eq!(messages, if tenant == f.tenant_a { 2 } else { 1 });
        assert_eq!(count(&mut tx, "SELECT count(*) FROM feedback"), 1);
        // Both of the tenant's users, two days each; today only in current_day_usage.
        assert_eq!(count(&mut tx, "SELECT count(*) FROM usage_metrics"), if tenant == f.tenant_a { 4 } else { 2 });
        assert_eq!(count(&mut tx, "SELECT count(*) FROM current_day_usage"), if tenant == f.tenant_a { 2 } else { 1 });
        // Joining through the other tenant's ids finds nothing either.
        let through: i64 = tx
            .query_one(
                "SELECT count(*) FROM conversation_messages m JOIN conversations c ON c.id = m.conversation_id
                  WHERE c.id = $1 OR m.id = $2",
                &[
                    &if tenant == f.tenant_a { f.bob_conv } else { f.alice_conv },
                    &if tenant == f.tenant_a { f.bob_msg } else { f.alice_msg },
                ],
            )
            .unwrap()
            .get(0);
        assert_eq!(through, 0);
        tx.commit().unwrap();
    }

    // Without claims, without a tenant, or with a subject that is not a uuid: nothing at all.
    for claims in [
        json!({}),
        json!({ "role": "anon" }),
        json!({ "sub": f.carol.to_string(), "role": "authenticated" }),
        json!({ "sub": Uuid::new_v4().to_string(), "role": "authenticated" }),
        json!({ "sub": "not-a-uuid", "role": "authenticated" }),
    ] {
        let mut tx = with_claims(&mut c, claims.clone());
        for table in ["conversations", "conversation_messages", "feedback", "usage_metrics", "current_day_usage"] {
            assert_eq!(count(&mut tx, &format!("SELECT count(*) FROM {table}")), 0, "{table} with claims {claims}");
        }
        tx.commit().unwrap();
    }
    let mut c = f.db.connect_as(ROLE);
    let mut tx = c.transaction().unwrap();
    assert_eq!(count(&mut tx, "SELECT count(*) FROM conversations"), 0);
    assert_eq!(count(&mut tx, "SELECT count(*) FROM current_day_usage"), 0);
}

#[test]
fn writes_into_the_other_tenant_are_refused_and_reveal_nothing() {
    let f = fixture("conv_rls_writes");
    let mut c = f.db.connect_as(ROLE);
    let alice = claims(f.alice, "authenticated");

    // A message into bob's conversation: with or without a tenant_id, with his or hers.
    let sql = "INSERT INTO conversation_messages (conversation_id, role, content) VALUES ($1, 'user', 'intrusion')";
    let err = must_fail(&mut c, alice.clone(), sql, &[&f.bob_conv]);
    assert_bare_rls_error(&err, "conversation_messages", &f, sql);
    let sql = "INSERT INTO conversation_messages (conversation_id, tenant_id, role, content) VALUES ($1, $2, 'user', 'intrusion')";
    for t in [f.tenant_a, f.tenant_b] {
        let err = must_fail(&mut c, alice.clone(), sql, &[&f.bob_conv, &t]);
        assert_bare_rls_error(&err, "conversation_messages", &f, &format!("{sql} tenant {t}"));
    }
    let sql = "INSERT INTO conversation_messages (conversation_id, user_id, role, content) VALUES ($1, $2, 'assistant', 'intrusion')";
    let err = must_fail(&mut c, alice.clone(), sql, &[&f.bob_conv, &f.alice]);
    assert_bare_rls_error(&err, "conversation_messages", &f, sql);
    // In her own tenant, a message in a colleague's name: refused too.
    let err = must_fail(&mut c, alice.clone(), sql, &[&f.alice_conv, &f.amy]);
    assert_eq!(sqlstate(&err), "42501", "{err:?}");
    // A batch that mixes her conversation with his is refused whole.
    let sql = "INSERT INTO conversation_messages (conversation_id, role, content)
               SELECT unnest(ARRAY[$1::uuid, $2::uuid, $1::uuid]), 'user', 'batch'";
    let err = must_fail(&mut c, alice.clone(), sql, &[&f.alice_conv, &f.bob_conv]);
    assert_bare_rls_error(&err, "conversation_messages", &f, sql);

    // Feedback on bob's message, however it is spelled.
    for sql in [
        "INSERT INTO feedback (message_id, user_id, rating) VALUES ($1, $2, 1)",
        "INSERT INTO feedback (message_id, user_id, rating, tenant_id) VALUES ($1, $2, 1, (SELECT tenant_id FROM profiles LIMIT 1))",
    ] {
        let err = must_fail(&mut c, alice.clone(), sql, &[&f.bob_msg, &f.alice]);
        assert_bare_rls_error(&err, "feedback", &f, sql);
    }
    let sql = "INSERT INTO feedback (message_id, user_id, rating, tenant_id) VALUES ($1, $2, 1, $3)";
    let err = must_fail(&mut c, alice.clone(), sql, &[&f.bob_msg, &f.alice, &f.tenant_b]);
    assert_bare_rls_error(&err, "feedback", &f, sql);

    // A conversation in tenant B, or for bob: refused by the insert policy.
    let sql = "INSERT INTO conversations (tenant_id, user_id, title) VALUES ($1, $2, 'planted')";
    for (t, u) in [(f.tenant_b, f.alice), (f.tenant_b, f.bob), (f.tenant_a, f.bob), (f.tenant_a, f.amy)] {
        let err = run(&mut c, alice.clone(), sql, &[&t, &u]).unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "tenant {t} user {u}: {err}");
    }

    // Updates and deletes of tenant B's rows touch nothing.
    for (sql, id) in [
        ("UPDATE conversations SET title = 'hacked' WHERE id = $1", f.bob_conv),
        ("UPDATE conversations SET is_archived = true WHERE id = $1", f.bob_conv),
        ("DELETE FROM conversations WHERE id = $1", f.bob_conv),
        ("UPDATE conversation_messages SET content = 'hacked' WHERE id = $1", f.bob_msg),
        ("DELETE FROM conversation_messages WHERE id = $1", f.bob_msg),
        ("UPDATE feedback SET rating = 1 WHERE id = $1", f.bob_feedback),
        ("DELETE FROM feedback WHERE id = $1", f.bob_feedback),
    ] {
        assert_eq!(run(&mut c, alice.clone(), sql, &[&id]).unwrap(), 0, "{sql}");
    }
    // Usage is recorded by increment_usage_metrics only: no direct writes at all.
    let err = run(
        &mut c,
        alice.clone(),
        "INSERT INTO usage_metrics (tenant_id, user_id, date, message_count) VALUES ($1, $2, current_date + 1, 1000)",
        &[&f.tenant_a, &f.alice],
    )
    .unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    assert_eq!(run(&mut c, alice.clone(), "UPDATE usage_metrics SET input_tokens = 0, estimated_cost = 0", &[]).unwrap(), 0);
    assert_eq!(run(&mut c, alice.clone(), "DELETE FROM usage_metrics", &[]).unwrap(), 0);

    // Tenant B is as it was.
    let mut su = f.db.superuser();
    let row = su
        .query_one(
            "SELECT c.title, c.is_archived, c.message_count, (SELECT count(*) FROM conversation_messages WHERE tenant_id = $2),
                    (SELECT string_agg(content, ',') FROM conversation_messages WHERE tenant_id = $2),
                    (SELECT rating FROM feedback WHERE id = $3)
               FROM conversations c WHERE c.id = $1",
            &[&f.bob_conv, &f.tenant_b, &f.bob_feedback],
        )
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("bob's chat"));
    assert!(!row.get::<_, bool>(1));
    assert_eq!(row.get::<_, i32>(2), 1);
    assert_eq!(row.get::<_, i64>(3), 1);
    assert_eq!(row.get::<_, String>(4), "hello from B");
    assert_eq!(row.get::<_, i16>(5), -1);
    let usage: i64 = su.query_one("SELECT sum(input_tokens)::bigint FROM usage_metrics", &[]).unwrap().get(0);
    assert_eq!(usage, 3 * 107);
    // Tenant A did not get the refused batch either.
    let a_count: i32 = su.query_one("SELECT message_count FROM conversations WHERE id = $1", &[&f.alice_conv]).unwrap().get(0);
    assert_eq!(a_count, 2);

    // A conversation that does not exist at all: the foreign key's error.
    let err = run(
        &mut c,
        alice.clone(),
        "INSERT INTO conversation_messages (conversation_id, role, content) VALUES ($1, 'user', 'x')",
        &[&Uuid::new_v4()],
    )
    .unwrap_err();
    assert_eq!(sqlstate(&err), "23503", "{err}");
}

#[test]
fn rows_never_move_between_tenants_and_counters_are_not_the_users() {
    let f = fixture("conv_rls_moves");
    let mut c = f.db.connect_as(ROLE);
    let alice = claims(f.alice, "authenticated");
    let admin = claims(Uuid::new_v4(), "admin");
    let service = claims(Uuid::new_v4(), "service_role");

    // conversations.tenant_id never changes: P0001 for the user, the JWT admin, the service ...
    for who in [alice.clone(), admin.clone(), service.clone()] {
        let err = must_fail(&mut c, who.clone(), "UPDATE conversations SET tenant_id = $1 WHERE id = $2", &[&f.tenant_b, &f.alice_conv]);
        assert_eq!(sqlstate(&err), "P0001", "{who}: {err:?}");
        assert!(message(&err).contains("tenant_id"), "{who}: {err:?}");
        assert_nothing_of_b(&err, &f, "move conversation");
    }
    // ... and the superuser.
    let mut su = f.db.superuser();
    let err = su.execute("UPDATE conversations SET tenant_id = $1 WHERE id = $2", &[&f.tenant_b, &f.alice_conv]).unwrap_err();
    assert_eq!(sqlstate(&err), "P0001", "{err:?}");

    // A message keeps its conversation and its tenant.
    for (sql, target) in [
        ("UPDATE conversation_messages SET conversation_id = $1 WHERE id = $2", f.alice_conv2),
        ("UPDATE conversation_messages SET conversation_id = $1 WHERE id = $2", f.bob_conv),
        ("UPDATE conversation_messages SET tenant_id = $1 WHERE id = $2", f.tenant_b),
    ] {
        for who in [alice.clone(), admin.clone()] {
            let err = must_fail(&mut c, who.clone(), sql, &[&target, &f.alice_msg]);
            assert_eq!(sqlstate(&err), "P0001", "{sql} as {who}: {err:?}");
            assert_nothing_of_b(&err, &f, sql);
        }
        let err = su.execute(sql, &[&target, &f.alice_msg]).unwrap_err();
        assert_eq!(sqlstate(&err), "P0001", "{sql} as superuser: {err:?}");
    }

    // Counters and the owner are not the user's to write.
    for sql in [
        "UPDATE conversations SET message_count = 99 WHERE id = $1",
        "UPDATE conversations SET message_count = 0 WHERE id = $1",
        "UPDATE conversations SET last_message_at = now() + interval '1 day' WHERE id = $1",
        "UPDATE conversations SET last_message_at = NULL WHERE id = $1",
        "UPDATE conversations SET user_id = (SELECT id FROM profiles WHERE email = 'amy@a.example.com') WHERE id = $1",
    ] {
        let err = must_fail(&mut c, alice.clone(), sql, &[&f.alice_conv]);
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err:?}");
    }
    for sql in [
        "INSERT INTO conversations (tenant_id, user_id, message_count) VALUES ($1, $2, 5)",
        "INSERT INTO conversations (tenant_id, user_id, last_message_at) VALUES ($1, $2, now())",
    ] {
        let err = must_fail(&mut c, alice.clone(), sql, &[&f.tenant_a, &f.alice]);
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err:?}");
    }

    // What the user may do with her own conversation: rename, archive, delete it.
    let mut tx = with_claims(&mut c, alice.clone());
    let before: i64 =
        tx.query_one("SELECT extract(epoch FROM updated_at)::bigint FROM conversations WHERE id = $1", &[&f.alice_conv2]).unwrap().get(0);
    assert_eq!(tx.execute("UPDATE conversations SET title = 'renamed', is_archived = true WHERE id = $1", &[&f.alice_conv2]).unwrap(), 1);
    let bumped: bool = tx.query_one("SELECT updated_at = now() FROM conversations WHERE id = $1", &[&f.alice_conv2]).unwrap().get(0);
    assert!(bumped, "updated_at follows an update (was {before})");
    let id: Uuid = tx
        .query_one("INSERT INTO conversations (tenant_id, user_id, title) VALUES ($1, $2, 'new') RETURNING id", &[&f.tenant_a, &f.alice])
        .unwrap()
        .get(0);
    tx.execute("INSERT INTO conversation_messages (conversation_id, role, content) VALUES ($1, 'user', 'bye')", &[&id]).unwrap();
    assert_eq!(tx.execute("DELETE FROM conversations WHERE id = $1", &[&id]).unwrap(), 1);
    tx.commit().unwrap();

    // Nothing moved.
    let row = su
        .query_one(
            "SELECT (SELECT tenant_id FROM conversations WHERE id = $1), (SELECT conversation_id FROM conversation_messages WHERE id = $2),
                    (SELECT tenant_id FROM conversation_messages WHERE id = $2), (SELECT message_count FROM conversations WHERE id = $1),
                    (SELECT user_id FROM conversations WHERE id = $1)",
            &[&f.alice_conv, &f.alice_msg],
        )
        .unwrap();
    assert_eq!(row.get::<_, Uuid>(0), f.tenant_a);
    assert_eq!(row.get::<_, Uuid>(1), f.alice_conv);
    assert_eq!(row.get::<_, Uuid>(2), f.tenant_a);
    assert_eq!(row.get::<_, i32>(3), 2);
    assert_eq!(row.get::<_, Uuid>(4), f.alice);
    let drift: i64 = su.query_one("SELECT count(*) FROM verify_counts()", &[]).unwrap().get(0);
    assert_eq!(drift, 0);
}

#[test]
fn feedback_only_on_own_tenant_messages_and_only_as_oneself() {
    let f = fixture("conv_rls_feedback");
    let mut c = f.db.connect_as(ROLE);
    let alice = claims(f.alice, "authenticated");
    let amy = claims(f.amy, "authenticated");

    // Alice rates a message of her tenant; the tenant comes from the message.
    let mut tx = with_claims(&mut c, alice.clone());
    let (id, tenant): (Uuid, Uuid) = {
        let r = tx
            .query_one(
                "INSERT INTO feedback (message_id, user_id, rating, comment) VALUES ($1, $2, -1, 'meh') RETURNING id, tenant_id",
                &[&f.alice_msg, &f.alice],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(tenant, f.tenant_a);
    tx.commit().unwrap();

    // Only as herself.
    let err =
        must_fail(&mut c, alice.clone(), "INSERT INTO feedback (message_id, user_id, rating) VALUES ($1, $2, 1)", &[&f.alice_msg, &f.bob]);
    assert_eq!(sqlstate(&err), "42501", "{err:?}");
    let err = must_fail(
        &mut c,
        alice.clone(),
        "INSERT INTO feedback (message_id, user_id, rating) VALUES ($1, $2, 1)",
        &[&f.alice_conv2, &f.alice],
    );
    assert_eq!(sqlstate(&err), "23503", "feedback on a message that does not exist: {err:?}");
    // amy rated this message already as herself (fixture); a second rating by her is a duplicate.
    let err =
        must_fail(&mut c, amy.clone(), "INSERT INTO feedback (message_id, user_id, rating) VALUES ($1, $2, 1)", &[&f.alice_msg, &f.amy]);
    assert_eq!(sqlstate(&err), "23505", "{err:?}");
    // In alice's name, by amy: refused.
    let err =
        must_fail(&mut c, amy.clone(), "INSERT INTO feedback (message_id, user_id, rating) VALUES ($1, $2, 1)", &[&f.alice_msg, &f.alice]);
    assert!(["42501", "23505"].contains(&sqlstate(&err).as_str()), "{err:?}");
    let err = must_fail(
        &mut c,
        alice.clone(),
        "INSERT INTO feedback (message_id, user_id, rating) VALUES ($1, $2, 0)",
        &[&f.alice_msg, &f.alice],
    );
    assert!(["23514", "23505"].contains(&sqlstate(&err).as_str()), "{err:?}");

    // A tenant_id other than the message's.
    let err = must_fail(
        &mut c,
        alice.clone(),
        "INSERT INTO conversation_messages (conversation_id, tenant_id, role, content) VALUES ($1, $2, 'user', 'x')",
        &[&f.alice_conv, &f.tenant_b],
    );
    assert_eq!(sqlstate(&err), "P0001", "{err:?}");
    assert_eq!(message(&err), "message tenant_id does not match its conversation");
    let err = must_fail(
        &mut c,
        claims(f.amy, "authenticated"),
        "INSERT INTO feedback (message_id, user_id, rating, tenant_id) VALUES ($1, $2, 1, $3)",
        &[&f.bob_msg, &f.amy, &f.tenant_a],
    );
    assert_bare_rls_error(&err, "feedback", &f, "feedback on tenant B's message claiming tenant A");

    // Amy neither edits nor deletes alice's feedback; alice does, but cannot move it to tenant B.
    assert_eq!(run(&mut c, amy.clone(), "UPDATE feedback SET rating = 1 WHERE id = $1", &[&id]).unwrap(), 0);
    assert_eq!(run(&mut c, amy.clone(), "DELETE FROM feedback WHERE id = $1", &[&id]).unwrap(), 0);
    let err = must_fail(&mut c, alice.clone(), "UPDATE feedback SET message_id = $1 WHERE id = $2", &[&f.bob_msg, &id]);
    assert_bare_rls_error(&err, "feedback", &f, "moving feedback to tenant B's message");
    let err = must_fail(&mut c, alice.clone(), "UPDATE feedback SET user_id = $1 WHERE id = $2", &[&f.amy, &id]);
    assert_eq!(sqlstate(&err), "42501", "{err:?}");
    let err = must_fail(&mut c, alice.clone(), "UPDATE feedback SET tenant_id = $1 WHERE id = $2", &[&f.tenant_b, &id]);
    assert!(["42501", "P0001"].contains(&sqlstate(&err).as_str()), "{err:?}");
    // (Tenant B's id is hers to quote back: she supplied it. Nothing else of B's.)
    let everything = format!("{err:?}");
    for secret in [f.bob, f.bob_conv, f.bob_msg, f.bob_feedback] {
        assert!(!everything.contains(&secret.to_string()), "feedback tenant change shows {secret}: {everything}");
    }
    assert_eq!(run(&mut c, alice.clone(), "UPDATE feedback SET rating = 1, comment = 'better' WHERE id = $1", &[&id]).unwrap(), 1);

    let mut su = f.db.superuser();
    let row = su.query_one("SELECT rating, comment, tenant_id, user_id, message_id FROM feedback WHERE id = $1", &[&id]).unwrap();
    assert_eq!(row.get::<_, i16>(0), 1);
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("better"));
    assert_eq!(row.get::<_, Uuid>(2), f.tenant_a);
    assert_eq!(row.get::<_, Uuid>(3), f.alice);
    assert_eq!(row.get::<_, Uuid>(4), f.alice_msg);
    let b: i64 = su.query_one("SELECT count(*) FROM feedback WHERE tenant_id = $1", &[&f.tenant_b]).unwrap().get(0);
    assert_eq!(b, 1);
    assert_eq!(run(&mut c, alice.clone(), "DELETE FROM feedback WHERE id = $1", &[&id]).unwrap(), 1);
}

#[test]
fn admin_and_service_role_see_and_write_every_tenant() {
    let f = fixture("conv_rls_admin");
    let mut c = f.db.connect_as(ROLE);
    for role in ["admin", "service_role"] {
        let who = claims(Uuid::new_v4(), role);
        // Everything there is, as the superuser counts it.
        let mut su = f.db.superuser();
        let mut expected = Vec::new();
        for table in ["conversations", "conversation_messages", "feedback", "usage_metrics", "current_day_usage"] {
            let (n, tenants): (i64, i64) = {
                let r = su.query_one(&format!("SELECT count(*), count(DISTINCT tenant_id) FROM {table}"), &[]).unwrap();
                (r.get(0), r.get(1))
            };
            assert!(n > 0 && tenants == 2, "{table}: fixture has rows of both tenants");
            expected.push((table, n));
        }
        let mut tx = with_claims(&mut c, who.clone());
        let mut all = vec![f.alice_conv, f.alice_conv2, f.bob_conv];
        all.sort();
        assert_eq!(uuids(&mut tx, "SELECT id FROM conversations"), all, "{role}");
        for (table, n) in expected {
            assert_eq!(count(&mut tx, &format!("SELECT count(*) FROM {table}")), n, "{table} as {role}");
        }

        // Writes into either tenant; the message's tenant is its conversation's.
        for (conv, tenant) in [(f.bob_conv, f.tenant_b), (f.alice_conv, f.tenant_a)] {
            let r = tx
                .query_one(
                    "INSERT INTO conversation_messages (conversation_id, role, content, model) VALUES ($1, 'assistant', $2, 'gpt') RETURNING id, tenant_id",
                    &[&conv, &format!("from {role}")],
                )
                .unwrap();
            assert_eq!(r.get::<_, Uuid>(1), tenant, "{role}");
            let mid: Uuid = r.get(0);
            let ft: Uuid = tx
                .query_one("INSERT INTO feedback (message_id, user_id, rating) VALUES ($1, $2, 1) RETURNING tenant_id", &[&mid, &f.amy])
                .unwrap()
                .get(0);
            assert_eq!(ft, tenant);
        }
        let conv: Uuid = tx
            .query_one(
                "INSERT INTO conversations (tenant_id, user_id, title) VALUES ($1, $2, $3) RETURNING id",
                &[&f.tenant_b, &f.bob, &role],
            )
            .unwrap()
            .get(0);
        assert_eq!(tx.execute("UPDATE conversations SET title = 'by ' || $2 WHERE id = $1", &[&f.bob_conv, &role]).unwrap(), 1);
        assert_eq!(tx.execute("DELETE FROM conversations WHERE id = $1", &[&conv]).unwrap(), 1);
        tx.commit().unwrap();
    }
    let mut su = f.db.superuser();
    let row = su
        .query_one(
            "SELECT (SELECT message_count FROM conversations WHERE id = $1), (SELECT title FROM conversations WHERE id = $1),
                    (SELECT count(*) FROM feedback WHERE tenant_id = $2)",
            &[&f.bob_conv, &f.tenant_b],
        )
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 3);
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("by service_role"));
    assert_eq!(row.get::<_, i64>(2), 3);
    let drift: i64 = su.query_one("SELECT count(*) FROM verify_counts()", &[]).unwrap().get(0);
    assert_eq!(drift, 0);
}
