//! behavior_patterns ownership through a real LOGIN role without superuser or BYPASSRLS that
//! holds every privilege Supabase's default privileges grant, the user named by the JWT `sub`
//! claim per transaction (profiles created by the superuser with `create_profile`):
//! - a user sees and writes only their own patterns and cannot hand one to someone else;
//! - `find_similar_patterns` (and the internal `_similar_patterns`) give a user only their own
//!   patterns, nothing for another user's id or without claims; a service caller (superuser or
//!   BYPASSRLS) sees everyone's, or one user's with `p_user_id`;
//! - `increment_pattern_use_count` only for the owner or a service caller, and the refusal is
//!   the same whether the pattern is someone else's or does not exist;
//! - a hostile `search_path` (look-alike operators, functions and tables placed first, in a
//!   schema of the attacker's and in `pg_temp`) changes nothing, on a fresh connection where
//!   the extension's plans are prepared under it.

use pg_assistant_integration::postgres::{Client, Error, Transaction};
use pg_assistant_integration::{
    assert_server_alive, behavior_drift, connect, detail_and_hint, ensure_bypassrls_role, ensure_ordinary_role, is_superuser,
    message, sqlstate, with_claims, TestDb,
};
use serde_json::json;
use uuid::Uuid;

const APP: &str = "pga_it_bpat_app";
const SERVICE: &str = "pga_it_bpat_svc";

struct Fixture {
    db: TestDb,
    alice: Uuid,
    bob: Uuid,
    /// Alice's patterns: name -> id.
    a: Vec<(&'static str, Uuid)>,
    b: Vec<(&'static str, Uuid)>,
}

impl Fixture {
    fn a(&self, name: &str) -> Uuid {
        self.a.iter().find(|p| p.0 == name).unwrap().1
    }
    fn b(&self, name: &str) -> Uuid {
        self.b.iter().find(|p| p.0 == name).unwrap().1
    }
}

const QUERY: [f32; 4] = [1.0, 0.0, 0.0, 0.0];

/// Alice's and Bob's patterns; embeddings of 4 dimensions unless noted.
fn alice_patterns() -> Vec<(&'static str, Option<Vec<f32>>)> {
    vec![
        ("a-same", Some(vec![1.0, 0.0, 0.0, 0.0])),
        ("a-diagonal", Some(vec![1.0, 1.0, 0.0, 0.0])),
        ("a-orthogonal", Some(vec![0.0, 1.0, 0.0, 0.0])),
        ("a-opposite", Some(vec![-1.0, 0.0, 0.0, 0.0])),
        ("a-three-dims", Some(vec![1.0, 0.0, 0.0])),
        ("a-no-embedding", None),
    ]
}

fn bob_patterns() -> Vec<(&'static str, Option<Vec<f32>>)> {
    vec![
        ("b-same", Some(vec![1.0, 0.0, 0.0, 0.0])),
        ("b-diagonal", Some(vec![2.0, 2.0, 0.0, 0.0])),
        ("b-close", Some(vec![1.0, 0.1, 0.0, 0.0])),
    ]
}

fn embedding_of(name: &str) -> Option<Vec<f32>> {
    alice_patterns().into_iter().chain(bob_patterns()).find(|p| p.0 == name).unwrap().1
}

/// Cosine similarity as the test computes it (f64 throughout).
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

fn user_claims(user: Uuid) -> serde_json::Value {
    json!({ "sub": user.to_string(), "role": "authenticated" })
}

fn as_user<'a>(c: &'a mut Client, user: Uuid) -> Transaction<'a> {
    with_claims(c, user_claims(user))
}

/// Each user inserts their own patterns through the app role.
fn fixture(test: &str) -> Fixture {
    ensure_bypassrls_role(SERVICE);
    ensure_ordinary_role(APP);
    let db = TestDb::supabase_like(test, &[APP, SERVICE]);
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let mut su = db.superuser();
    su.execute("SELECT create_profile($1, 'alice@example.com')", &[&alice]).unwrap();
    su.execute("SELECT create_profile($1, 'bob@example.com')", &[&bob]).unwrap();
    let mut c = db.connect_as(APP);
    let mut insert = |user: Uuid, patterns: Vec<(&'static str, Option<Vec<f32>>)>| -> Vec<(&'static str, Uuid)> {
        let mut tx = as_user(&mut c, user);
        let ids = patterns
            .into_iter()
            .map(|(name, embedding)| {
                let id: Uuid = tx
                    .query_one(
                        "INSERT INTO public.behavior_patterns (user_id, trigger, trigger_embedding, context, actions, final_outcome)
                         VALUES ($1, $2, $3, '{\"directory\": \"/src\"}', '[{\"tool\": \"grep\"}]', 'success') RETURNING id",
                        &[&user, &name, &embedding],
                    )
                    .unwrap()
                    .get(0);
                (name, id)
            })
            .collect();
        tx.commit().unwrap();
        ids
    };
    let a = insert(alice, alice_patterns());
    let b = insert(bob, bob_patterns());
    Fixture { db, alice, bob, a, b }
}

/// `(trigger, similarity)` rows of a search, best first.
fn search(
    tx: &mut Transaction<'_>,
    threshold: f64,
    count: i32,
    user: Option<Uuid>,
) -> Vec<(String, f64)> {
    tx.query(
        "SELECT trigger, similarity FROM public.find_similar_patterns($1::real[], $2, $3, $4)",
        &[&QUERY.to_vec(), &threshold, &count, &user],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

fn names(rows: &[(String, f64)]) -> Vec<&str> {
    rows.iter().map(|r| r.0.as_str()).collect()
}

/// The expected search result over `patterns`: similarity >= threshold, best first, ties by id.
fn expected(f: &Fixture, patterns: &[&'static str], threshold: f64, count: usize) -> Vec<&'static str> {
    let mut rows: Vec<(f64, Uuid, &'static str)> = patterns
        .iter()
        .filter_map(|name| {
            let e = embedding_of(name)?;
            if e.len() != QUERY.len() {
                return None;
            }
            let id = f.a.iter().chain(&f.b).find(|p| p.0 == *name).unwrap().1;
            Some((cosine(&QUERY, &e), id, *name))
        })
        .filter(|r| r.0 >= threshold - 1e-9)
        .collect();
    rows.sort_by(|x, y| y.0.partial_cmp(&x.0).unwrap().then(x.1.cmp(&y.1)));
    rows.into_iter().take(count).map(|r| r.2).collect()
}

fn assert_similarities(rows: &[(String, f64)]) {
    for (name, similarity) in rows {
        let want = cosine(&QUERY, &embedding_of(name).unwrap());
        assert!((similarity - want).abs() < 1e-6, "{name}: similarity {similarity}, expected {want}");
    }
}

const ALICE_ALL: [&str; 6] = ["a-same", "a-diagonal", "a-orthogonal", "a-opposite", "a-three-dims", "a-no-embedding"];
const BOB_ALL: [&str; 3] = ["b-same", "b-diagonal", "b-close"];

/// Reading and writing: each user has their own patterns and nobody else's.
#[test]
fn users_see_and_write_only_their_own_patterns() {
    let f = fixture("bpat_own");
    let mut c = f.db.connect_as(APP);
    for (me, mine, theirs, other) in [(f.alice, &f.a, &f.b, f.bob), (f.bob, &f.b, &f.a, f.alice)] {
        let mut tx = as_user(&mut c, me);
        let mut seen: Vec<Uuid> = tx.query("SELECT id FROM public.behavior_patterns", &[]).unwrap().iter().map(|r| r.get(0)).collect();
        let mut want: Vec<Uuid> = mine.iter().map(|p| p.1).collect();
        seen.sort();
        want.sort();
        assert_eq!(seen, want);
        for (_, id) in theirs {
            let n: i64 = tx.query_one("SELECT count(*) FROM public.behavior_patterns WHERE id = $1", &[id]).unwrap().get(0);
            assert_eq!(n, 0);
            assert_eq!(tx.execute("UPDATE public.behavior_patterns SET confidence = 0, trigger = 'hacked' WHERE id = $1", &[id]).unwrap(), 0);
            assert_eq!(tx.execute("DELETE FROM public.behavior_patterns WHERE id = $1", &[id]).unwrap(), 0);
        }
        tx.commit().unwrap();
        // A pattern in someone else's name is refused.
        let mut tx = as_user(&mut c, me);
        let err = tx
            .execute(
                "INSERT INTO public.behavior_patterns (user_id, trigger, final_outcome) VALUES ($1, 'planted', 'success')",
                &[&other],
            )
            .unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{err:?}");
        tx.rollback().unwrap();
    }
    // Their own rows they may edit and delete.
    let mut tx = as_user(&mut c, f.alice);
    assert_eq!(
        tx.execute("UPDATE public.behavior_patterns SET confidence = 0.95, actions = '[{\"tool\": \"sed\"}]' WHERE id = $1", &[&f.a("a-same")])
            .unwrap(),
        1
    );
    assert_eq!(tx.execute("DELETE FROM public.behavior_patterns WHERE id = $1", &[&f.a("a-opposite")]).unwrap(), 1);
    tx.commit().unwrap();
    // Without claims: nothing visible, nothing writable.
    let mut tx = c.transaction().unwrap();
    let n: i64 = tx.query_one("SELECT count(*) FROM public.behavior_patterns", &[]).unwrap().get(0);
    assert_eq!(n, 0);
    let err = tx
        .execute("INSERT INTO public.behavior_patterns (user_id, trigger, final_outcome) VALUES ($1, 'x', 'success')", &[&f.alice])
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    tx.rollback().unwrap();
    // Everything is as it was.
    let mut su = f.db.superuser();
    let row = su
        .query_one(
            "SELECT count(*) FILTER (WHERE trigger = 'hacked' OR confidence = 0 OR trigger = 'planted'), count(*) FROM behavior_patterns",
            &[],
        )
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (0, (ALICE_ALL.len() + BOB_ALL.len() - 1) as i64));
    let edited: f64 = su.query_one("SELECT confidence FROM behavior_patterns WHERE id = $1", &[&f.a("a-same")]).unwrap().get(0);
    assert_eq!(edited, 0.95);
}

/// A user cannot move their pattern to another user, in place or by insert.
#[test]
fn a_user_cannot_move_a_pattern_to_someone_else() {
    let f = fixture("bpat_move");
    let mut c = f.db.connect_as(APP);
    let pattern = f.a("a-same");
    for sql in [
        "UPDATE public.behavior_patterns SET user_id = $2 WHERE id = $1",
        "UPDATE public.behavior_patterns SET user_id = $2, trigger = trigger || '!' WHERE id = $1",
        "INSERT INTO public.behavior_patterns (id, user_id, trigger, final_outcome) VALUES ($1, $2, 'copy', 'success')
             ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id",
    ] {
        let mut tx = as_user(&mut c, f.alice);
        let err = tx.execute(sql, &[&pattern, &f.bob]).err().unwrap_or_else(|| panic!("{sql} succeeded"));
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err:?}");
        tx.rollback().unwrap();
    }
    let owner: Uuid = f.db.superuser().query_one("SELECT user_id FROM behavior_patterns WHERE id = $1", &[&pattern]).unwrap().get(0);
    assert_eq!(owner, f.alice);
    // Bob cannot pull it over either.
    let mut tx = as_user(&mut c, f.bob);
    assert_eq!(tx.execute("UPDATE public.behavior_patterns SET user_id = $2 WHERE id = $1", &[&pattern, &f.bob]).unwrap(), 0);
    tx.commit().unwrap();
    let owner: Uuid = f.db.superuser().query_one("SELECT user_id FROM behavior_patterns WHERE id = $1", &[&pattern]).unwrap().get(0);
    assert_eq!(owner, f.alice);
}

/// `find_similar_patterns` for users: their own patterns only, best first with ties by id;
/// nothing for someone else's id, nothing without an identity. Calling the internal
/// `_similar_patterns` directly gives no more.
#[test]
fn users_search_only_their_own_patterns() {
    let f = fixture("bpat_search_users");
    let mut c = f.db.connect_as(APP);
    for (me, mine, other) in [(f.alice, &ALICE_ALL[..], f.bob), (f.bob, &BOB_ALL[..], f.alice)] {
        let mut tx = as_user(&mut c, me);
        for (threshold, count) in [(-1.0, 1000), (0.0, 1000), (0.7, 5), (0.7071, 5), (0.99, 5), (1.0, 5), (-1.0, 1), (-1.0, 2)] {
            let rows = search(&mut tx, threshold, count, None);
            assert_eq!(names(&rows), expected(&f, mine, threshold, count as usize), "{threshold} {count}");
            assert_similarities(&rows);
            let rows = search(&mut tx, threshold, count, Some(me));
            assert_eq!(names(&rows), expected(&f, mine, threshold, count as usize), "own id {threshold} {count}");
            assert!(search(&mut tx, threshold, count, Some(other)).is_empty(), "someone else's patterns");
        }
        assert!(search(&mut tx, -1.0, 1000, Some(Uuid::new_v4())).is_empty());
        // The defaults: threshold 0.7, five rows.
        let rows: Vec<String> = tx
            .query("SELECT trigger FROM public.find_similar_patterns($1::real[])", &[&QUERY.to_vec()])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(rows, expected(&f, mine, 0.7, 5));
        // Named arguments, as PostgREST's RPC calls send them.
        let rows: Vec<String> = tx
            .query(
                "SELECT trigger FROM public.find_similar_patterns(match_count => 2, query_embedding => $1::real[],
                                                                  p_user_id => $2, match_threshold => 0.5)",
                &[&QUERY.to_vec(), &me],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(rows, expected(&f, mine, 0.5, 2));
        // The internal function, called directly.
        let ids = |tx: &mut Transaction<'_>, user: Option<Uuid>| -> Vec<Uuid> {
            tx.query("SELECT id FROM public._similar_patterns($1::real[], -1, 1000, $2)", &[&QUERY.to_vec(), &user])
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect()
        };
        assert!(ids(&mut tx, Some(other)).is_empty());
        let own = ids(&mut tx, None);
        assert_eq!(own.len(), expected(&f, mine, -1.0, 1000).len());
        for id in &own {
            assert!(f.a.iter().chain(&f.b).any(|p| p.1 == *id && mine.contains(&p.0)), "{id} is not the caller's");
        }
        tx.commit().unwrap();
    }
    // No identity: no claims, anon, a sub that is no uuid, a service_role claim (only a claim).
    for claims in [
        None,
        Some(json!({ "role": "anon" })),
        Some(json!({ "sub": "not-a-uuid", "role": "authenticated" })),
        Some(json!({ "role": "service_role" })),
    ] {
        let mut tx = match &claims {
            Some(claims) => with_claims(&mut c, claims.clone()),
            None => c.transaction().unwrap(),
        };
        assert!(search(&mut tx, -1.0, 1000, None).is_empty(), "{claims:?}");
        assert!(search(&mut tx, -1.0, 1000, Some(f.alice)).is_empty(), "{claims:?}");
        let n: i64 = tx
            .query_one("SELECT count(*) FROM public._similar_patterns($1::real[], -1, 1000, $2)", &[&QUERY.to_vec(), &f.bob])
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{claims:?}");
        tx.commit().unwrap();
    }
}

/// Service callers: the superuser and a BYPASSRLS LOGIN role see everyone's patterns with a
/// NULL `p_user_id` and exactly one user's with it; ties (equal similarity) come by id.
#[test]
fn service_callers_search_everyones_patterns() {
    let f = fixture("bpat_search_service");
    let every: Vec<&str> = ALICE_ALL.iter().chain(BOB_ALL.iter()).copied().collect();
    let mut su = f.db.superuser();
    let mut svc = f.db.connect_as(SERVICE);
    for (who, client) in [("superuser", &mut su), ("bypassrls service", &mut svc)] {
        let mut tx = client.transaction().unwrap();
        let rows = search(&mut tx, -1.0, 1000, None);
        assert_eq!(names(&rows), expected(&f, &every, -1.0, 1000), "{who}");
        assert_eq!(rows.len(), 7, "{who}: {rows:?}");
        assert_similarities(&rows);
        // a-same and b-same tie at 1, a-diagonal and b-diagonal at 1/sqrt(2): by id.
        assert_eq!(rows[0].1, rows[1].1, "{who}");
        let rows = search(&mut tx, -1.0, 1000, Some(f.bob));
        assert_eq!(names(&rows), expected(&f, &BOB_ALL, -1.0, 1000), "{who}");
        let rows = search(&mut tx, 0.7, 3, Some(f.alice));
        assert_eq!(names(&rows), expected(&f, &ALICE_ALL, 0.7, 3), "{who}");
        let rows = search(&mut tx, 0.5, 3, None);
        assert_eq!(names(&rows), expected(&f, &every, 0.5, 3), "{who}");
        assert!(search(&mut tx, -1.0, 1000, Some(Uuid::new_v4())).is_empty(), "{who}");
        // Even with a user's claims, a service caller is a service caller.
        tx.execute("SELECT pg_catalog.set_config('request.jwt.claims', $1, true)", &[&user_claims(f.alice).to_string()]).unwrap();
        assert_eq!(search(&mut tx, -1.0, 1000, Some(f.bob)).len(), 3, "{who}");
        tx.commit().unwrap();
    }
    // The rows carry the pattern's columns.
    let row = su
        .query_one(
            "SELECT id, context, actions, final_outcome, confidence, use_count FROM find_similar_patterns($1::real[], 0.99, 1, $2)",
            &[&QUERY.to_vec(), &f.bob],
        )
        .unwrap();
    assert_eq!(row.get::<_, Uuid>(0), f.b("b-same"));
    assert_eq!(row.get::<_, serde_json::Value>(1), json!({ "directory": "/src" }));
    assert_eq!(row.get::<_, serde_json::Value>(2), json!([{ "tool": "grep" }]));
    assert_eq!((row.get::<_, String>(3), row.get::<_, f64>(4), row.get::<_, i32>(5)), ("success".to_owned(), 0.7, 1));
}

fn error_parts(err: &Error) -> (String, String, String) {
    (sqlstate(err), message(err), detail_and_hint(err))
}

fn use_count(db: &TestDb, id: Uuid) -> (i32, bool) {
    let r = db
        .superuser()
        .query_one("SELECT use_count, last_used_at IS NOT NULL FROM behavior_patterns WHERE id = $1", &[&id])
        .unwrap();
    (r.get(0), r.get(1))
}

/// `increment_pattern_use_count`: the owner gets the new count; anyone else `42501`, exactly
/// as for an id that does not exist, with nothing of the pattern or its owner in the error; a
/// service caller may bump any and gets NULL for a missing id.
#[test]
fn use_count_only_for_the_owner_or_a_service() {
    let f = fixture("bpat_use_count");
    let mut c = f.db.connect_as(APP);
    let (mine, bobs, missing) = (f.a("a-same"), f.b("b-same"), Uuid::new_v4());
    let bump = |c: &mut Client, claims: Option<serde_json::Value>, id: Uuid| -> Result<Option<i32>, Error> {
        let mut tx = match claims {
            Some(claims) => with_claims(c, claims),
            None => c.transaction().unwrap(),
        };
        let r = tx.query_one("SELECT public.increment_pattern_use_count(pattern_id => $1)", &[&id]).map(|r| r.get(0));
        match r {
            Ok(v) => {
                tx.commit().unwrap();
                Ok(v)
            }
            Err(e) => {
                tx.rollback().ok();
                Err(e)
            }
        }
    };
    // Alice on her own pattern: the new count, twice.
    assert_eq!(bump(&mut c, Some(user_claims(f.alice)), mine).unwrap(), Some(2));
    assert_eq!(bump(&mut c, Some(user_claims(f.alice)), mine).unwrap(), Some(3));
    assert_eq!(use_count(&f.db, mine), (3, true));
    // Alice on Bob's pattern, on a missing id, and without claims: one and the same refusal.
    let mut seen = Vec::new();
    for (claims, id) in [
        (Some(user_claims(f.alice)), bobs),
        (Some(user_claims(f.alice)), missing),
        (Some(user_claims(f.bob)), mine),
        (Some(json!({ "role": "service_role" })), bobs),
        (Some(json!({ "role": "anon" })), bobs),
        (None, bobs),
        (None, missing),
    ] {
        let err = bump(&mut c, claims.clone(), id).err().unwrap_or_else(|| panic!("{claims:?} bumped {id}"));
        assert_eq!(sqlstate(&err), "42501", "{claims:?}: {err:?}");
        let everything = format!("{err:?} {err}");
        for secret in [f.bob.to_string(), f.alice.to_string(), bobs.to_string(), mine.to_string(), missing.to_string()] {
            assert!(!everything.contains(&secret), "{claims:?}: the error shows {secret}: {everything}");
        }
        seen.push(error_parts(&err));
    }
    assert!(seen.iter().all(|e| *e == seen[0]), "refusals differ: {seen:?}");
    assert_eq!(use_count(&f.db, bobs), (1, false));
    assert_eq!(use_count(&f.db, mine), (3, true));
    // NULL: 22004.
    let mut tx = as_user(&mut c, f.alice);
    let err = tx.query_one("SELECT public.increment_pattern_use_count(NULL)", &[]).unwrap_err();
    assert_eq!(sqlstate(&err), "22004", "{err:?}");
    tx.rollback().unwrap();
    // Service callers: any pattern, NULL for a missing one.
    let mut su = f.db.superuser();
    let mut svc = f.db.connect_as(SERVICE);
    assert_eq!(bump(&mut su, None, bobs).unwrap(), Some(2));
    assert_eq!(bump(&mut svc, None, bobs).unwrap(), Some(3));
    assert_eq!(bump(&mut svc, Some(user_claims(f.alice)), bobs).unwrap(), Some(4));
    assert_eq!(bump(&mut su, None, mine).unwrap(), Some(4));
    assert_eq!(bump(&mut su, None, missing).unwrap(), None);
    assert_eq!(bump(&mut svc, None, missing).unwrap(), None);
    assert_eq!(use_count(&f.db, bobs), (4, true));
    // Nothing else moved.
    let others: i64 = su
        .query_one("SELECT count(*) FROM behavior_patterns WHERE id <> ALL($1) AND (use_count <> 1 OR last_used_at IS NOT NULL)", &[&vec![mine, bobs]])
        .unwrap()
        .get(0);
    assert_eq!(others, 0);
    assert_server_alive();
}

/// The attacker's look-alikes, in schema `evil` (created once): an `=` on uuid and on text that
/// is always true, `now()`, and `current_user_id()` / `current_app_role()` naming the victim and
/// a privileged role. Each records the role it ran as in `evil.calls` and tries to make the
/// attacker a superuser: it must never run as a superuser.
fn plant_schema(c: &mut Client, victim: Uuid) {
    c.batch_execute(&format!(
        "CREATE SCHEMA evil;
         CREATE TABLE evil.calls (what text, role text, is_super bool);
         GRANT USAGE ON SCHEMA evil TO PUBLIC;
         GRANT ALL ON evil.calls TO PUBLIC;
         CREATE FUNCTION evil.note(what text) RETURNS bool LANGUAGE plpgsql AS $f$
           BEGIN
             INSERT INTO evil.calls VALUES (what, current_user,
                    (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user));
             BEGIN
               EXECUTE 'ALTER ROLE {APP} SUPERUSER BYPASSRLS';
             EXCEPTION WHEN OTHERS THEN NULL;
             END;
             RETURN true;
           END $f$;
         CREATE FUNCTION evil.uuid_eq(a uuid, b uuid) RETURNS bool LANGUAGE sql AS $f$ SELECT evil.note('uuid =') $f$;
         CREATE OPERATOR evil.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = evil.uuid_eq);
         CREATE FUNCTION evil.text_eq(a text, b text) RETURNS bool LANGUAGE sql AS $f$ SELECT evil.note('text =') $f$;
         CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.text_eq);
         CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql
             AS $f$ SELECT CASE WHEN evil.note('now') THEN '2000-01-01'::timestamptz END $f$;
         CREATE FUNCTION evil.current_user_id() RETURNS uuid LANGUAGE sql
             AS $f$ SELECT CASE WHEN evil.note('current_user_id') THEN '{victim}'::uuid END $f$;
         CREATE FUNCTION evil.current_app_role() RETURNS text LANGUAGE sql
             AS $f$ SELECT CASE WHEN evil.note('current_app_role') THEN 'service_role' END $f$;
         CREATE FUNCTION evil.trap() RETURNS trigger LANGUAGE plpgsql
             AS $f$ BEGIN PERFORM evil.note('trigger ' || TG_TABLE_NAME); RETURN NULL; END $f$;"
    ))
    .unwrap();
}

/// Per connection: tables named like the extension's in `pg_temp` (a fake pattern of the
/// victim's with a forged norm, triggers that call the trap), and the hostile search_path.
fn plant_session(c: &mut Client, victim: Uuid) {
    let mut sql = format!(
        "CREATE TEMP TABLE behavior_patterns (id uuid, user_id uuid, trigger text, trigger_embedding real[],
                                              trigger_embedding_norm float8, use_count int, last_used_at timestamptz);
         INSERT INTO pg_temp.behavior_patterns SELECT gen_random_uuid(), '{victim}', 'fake', '{{1,0,0,0}}', 1e-9, 1, NULL;"
    );
    for table in ["behavior_insights", "behavior_sessions", "behavior_events", "logs", "profiles"] {
        sql.push_str(&format!("CREATE TEMP TABLE {table} (LIKE public.{table});"));
    }
    for table in ["behavior_patterns", "behavior_insights", "behavior_sessions", "behavior_events", "logs", "profiles"] {
        sql.push_str(&format!(
            "CREATE TRIGGER trap AFTER INSERT OR UPDATE OR DELETE ON pg_temp.{table} FOR EACH STATEMENT EXECUTE FUNCTION evil.trap();"
        ));
    }
    sql.push_str("SET search_path = evil, pg_temp, public, pg_catalog;");
    c.batch_execute(&sql).unwrap();
}

/// A hostile search_path on fresh connections (so the extension's plans of the backend are
/// prepared under it): searches, use counts, pattern writes and event summaries behave exactly
/// as without it, and none of the look-alikes ever runs as a superuser.
#[test]
fn hostile_search_path_changes_nothing() {
    let f = fixture("bpat_search_path");
    let mut su = f.db.superuser();
    su.batch_execute(&format!("GRANT CREATE ON DATABASE {} TO {APP}", f.db.name)).unwrap();

    // Alice, on a fresh connection whose first use of the extension is under the hostile path.
    let mut c = f.db.connect_as(APP);
    plant_schema(&mut c, f.bob);
    plant_session(&mut c, f.bob);
    // The traps are armed: unqualified names in this session resolve to the look-alikes.
    let armed = c
        .query_one(
            "SELECT extract(year FROM now())::int, 'a'::text = 'b'::text, gen_random_uuid() = gen_random_uuid(),
                    (SELECT trigger FROM behavior_patterns), current_user_id(), current_app_role()",
            &[],
        )
        .unwrap();
    assert!((1999..=2000).contains(&armed.get::<_, i32>(0)), "now() is not the look-alike");
    assert!(armed.get::<_, bool>(1) && armed.get::<_, bool>(2));
    assert_eq!(armed.get::<_, String>(3), "fake");
    assert_eq!((armed.get::<_, Uuid>(4), armed.get::<_, String>(5)), (f.bob, "service_role".to_owned()));
    let mut tx = as_user(&mut c, f.alice);
    let rows: Vec<(Uuid, f64)> = tx
        .query("SELECT id, similarity FROM public.find_similar_patterns($1::real[], -1, 1000, NULL)", &[&QUERY.to_vec()])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let want: Vec<Uuid> = expected(&f, &ALICE_ALL, -1.0, 1000).iter().map(|n| f.a(n)).collect();
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), want);
    let n: i64 = tx
        .query_one("SELECT count(*) FROM public.find_similar_patterns($1::real[], -1, 1000, $2)", &[&QUERY.to_vec(), &f.bob])
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    tx.commit().unwrap();
    // Bumping her own pattern bumps only that one; Bob's is refused.
    let mut tx = as_user(&mut c, f.alice);
    let count: Option<i32> = tx.query_one("SELECT public.increment_pattern_use_count($1)", &[&f.a("a-diagonal")]).unwrap().get(0);
    assert_eq!(count, Some(2));
    tx.commit().unwrap();
    let mut tx = as_user(&mut c, f.alice);
    let err = tx.query_one("SELECT public.increment_pattern_use_count($1)", &[&f.b("b-same")]).unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err:?}");
    tx.rollback().unwrap();
    // Writing a pattern: validated and normed as always, the forged norm ignored.
    let mut tx = as_user(&mut c, f.alice);
    let norm: f64 = tx
        .query_one(
            "INSERT INTO public.behavior_patterns (user_id, trigger, trigger_embedding, trigger_embedding_norm, final_outcome)
             VALUES ($1, 'hostile', '{3,4}', 1e-9, 'success') RETURNING trigger_embedding_norm",
            &[&f.alice],
        )
        .unwrap()
        .get(0);
    assert_eq!(norm, 5.0);
    let err = tx
        .execute(
            "INSERT INTO public.behavior_patterns (user_id, trigger, trigger_embedding, final_outcome) VALUES ($1, 'bad', '{0,0}', 'success')",
            &[&f.alice],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "22023", "{err:?}");
    tx.rollback().unwrap();
    let mut tx = as_user(&mut c, f.alice);
    let err = tx
        .execute("INSERT INTO public.behavior_patterns (user_id, trigger, final_outcome) VALUES ($1, 'planted', 'success')", &[&f.bob])
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err:?}");
    tx.rollback().unwrap();
    drop(c);

    // The same as a beacon on another fresh connection: summaries exact, another customer's
    // session still refused (an always-true text `=` would let it through).
    let mut su = f.db.superuser();
    su.batch_execute(
        "INSERT INTO behavior_events (customer_id, session_id, event_type) VALUES ('owner', 'owned-session', 'view')",
    )
    .unwrap();
    let mut c = f.db.connect_as(APP);
    plant_session(&mut c, f.bob);
    let beacon = json!({ "role": "beacon_ingest" });
    let mut tx = with_claims(&mut c, beacon.clone());
    tx.execute(
        "INSERT INTO public.behavior_events (customer_id, session_id, event_type, business_impact, tool_name)
         VALUES ('hostile', 'h-1', 'click', 'high', 'x')",
        &[],
    )
    .unwrap();
    tx.execute(
        "INSERT INTO public.behavior_events (customer_id, session_id, event_type, tool_name)
         SELECT 'hostile', 'h-' || (g % 3), 'view', 't' || (g % 2) FROM generate_series(1, 30) g",
        &[],
    )
    .unwrap();
    tx.commit().unwrap();
    for sql in [
        "INSERT INTO public.behavior_events (customer_id, session_id, event_type) VALUES ('hostile', 'owned-session', 'view')",
        "INSERT INTO public.behavior_events (customer_id, session_id, event_type)
              SELECT 'hostile', s, 'view' FROM unnest(ARRAY['h-1', 'owned-session']) s",
    ] {
        let mut tx = with_claims(&mut c, beacon.clone());
        let err = tx.execute(sql, &[]).unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err:?}");
        tx.rollback().unwrap();
    }
    // The jobs stay closed, whatever current_app_role() the path offers.
    for job in ["public.backfill_behavior_insights()", "public.refresh_activity_recency()", "public.cleanup_expired_behavior_events(NULL::int)"] {
        let mut tx = with_claims(&mut c, json!({ "role": "service_role" }));
        let err = tx.execute(&format!("SELECT {job}"), &[]).unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{job}: {err:?}");
        tx.rollback().unwrap();
    }
    let row = su
        .query_one(
            "SELECT total_events, high_impact_events, session_count, events_by_type FROM behavior_insights WHERE customer_id = 'hostile'",
            &[],
        )
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1), row.get::<_, i32>(2)), (31, 1, 3));
    assert_eq!(row.get::<_, serde_json::Value>(3), json!({ "click": 1, "view": 30 }));
    let drift = behavior_drift(&mut su);
    assert!(drift.is_empty(), "{drift:?}");
    let changed: i32 = su.query_one("SELECT backfill_behavior_insights()", &[]).unwrap().get(0);
    assert_eq!(changed, 0);

    // Nothing else moved: Alice's other patterns, Bob's patterns.
    assert_eq!(use_count(&f.db, f.a("a-same")), (1, false));
    assert_eq!(use_count(&f.db, f.b("b-same")), (1, false));
    assert_eq!(use_count(&f.db, f.a("a-diagonal")), (2, true));
    let planted: i64 = su
        .query_one("SELECT count(*) FROM behavior_patterns WHERE trigger IN ('planted', 'fake', 'hostile', 'bad')", &[])
        .unwrap()
        .get(0);
    assert_eq!(planted, 0);
    // No look-alike ever ran as a superuser (or with the owner's rights), and the attacker is
    // still an ordinary role.
    let privileged: Vec<(String, String)> = su
        .query("SELECT what, role FROM evil.calls WHERE is_super OR role <> $1", &[&APP])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(privileged.is_empty(), "look-alikes ran as: {privileged:?}");
    assert!(!is_superuser(APP));
    let bypass: bool = connect("postgres", "postgres")
        .query_one("SELECT rolbypassrls FROM pg_roles WHERE rolname = $1", &[&APP])
        .unwrap()
        .get(0);
    assert!(!bypass);
    assert_server_alive();
}

/// The kept norm cannot be forged (a tiny norm would inflate every similarity of the pattern):
/// whatever a user writes into `trigger_embedding_norm`, the rule writes the real one.
#[test]
fn the_kept_norm_cannot_be_forged() {
    let f = fixture("bpat_norm");
    let mut c = f.db.connect_as(APP);
    let mut tx = as_user(&mut c, f.alice);
    for sql in [
        "UPDATE public.behavior_patterns SET trigger_embedding_norm = 1e-9 WHERE id = $1",
        "UPDATE public.behavior_patterns SET trigger_embedding_norm = NULL WHERE id = $1",
        "UPDATE public.behavior_patterns SET trigger_embedding_norm = 'NaN', confidence = 0.9 WHERE id = $1",
    ] {
        assert_eq!(tx.execute(sql, &[&f.a("a-diagonal")]).unwrap(), 1, "{sql}");
        let norm: f64 = tx
            .query_one("SELECT trigger_embedding_norm FROM public.behavior_patterns WHERE id = $1", &[&f.a("a-diagonal")])
            .unwrap()
            .get(0);
        assert!((norm - 2f64.sqrt()).abs() < 1e-9, "{sql}: norm {norm}");
    }
    let rows = search(&mut tx, -1.0, 1000, None);
    assert_eq!(names(&rows), expected(&f, &ALICE_ALL, -1.0, 1000));
    assert_similarities(&rows);
    // A pattern without an embedding keeps no norm.
    let norm: Option<f64> = tx
        .query_one(
            "UPDATE public.behavior_patterns SET trigger_embedding_norm = 3 WHERE id = $1 RETURNING trigger_embedding_norm",
            &[&f.a("a-no-embedding")],
        )
        .unwrap()
        .get(0);
    assert_eq!(norm, None);
    tx.commit().unwrap();
}

/// Many patterns with the same similarity: the best `match_count` are the smallest ids, in
/// order, through the user's index scan and the service's sequential scan alike.
#[test]
fn ties_are_broken_by_id_at_the_cut() {
    let f = fixture("bpat_ties");
    let mut c = f.db.connect_as(APP);
    let mut tx = as_user(&mut c, f.alice);
    tx.execute(
        "INSERT INTO public.behavior_patterns (user_id, trigger, trigger_embedding, final_outcome)
         SELECT $1, 'tie', ARRAY[g, 0, 0, 0]::real[], 'success' FROM generate_series(1, 60) g",
        &[&f.alice],
    )
    .unwrap();
    tx.commit().unwrap();
    let mut su = f.db.superuser();
    let mut ties: Vec<Uuid> = su
        .query("SELECT id FROM behavior_patterns WHERE trigger IN ('tie', 'a-same', 'b-same')", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    ties.sort();
    let mut alice_ties: Vec<Uuid> = su
        .query("SELECT id FROM behavior_patterns WHERE trigger IN ('tie', 'a-same')", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    alice_ties.sort();
    let query = "SELECT id FROM public.find_similar_patterns($1::real[], 0.999, $2, $3)";
    let ids = |c: &mut Client, count: i32, user: Option<Uuid>| -> Vec<Uuid> {
        c.query(query, &[&QUERY.to_vec(), &count, &user]).unwrap().iter().map(|r| r.get(0)).collect()
    };
    for count in [1, 7, 25, 61, 62, 100] {
        let want: Vec<Uuid> = ties.iter().take(count as usize).copied().collect();
        assert_eq!(ids(&mut su, count, None), want, "service, all users, {count}");
        let want: Vec<Uuid> = alice_ties.iter().take(count as usize).copied().collect();
        assert_eq!(ids(&mut su, count, Some(f.alice)), want, "service, Alice, {count}");
        let mut tx = as_user(&mut c, f.alice);
        let got: Vec<Uuid> = tx.query(query, &[&QUERY.to_vec(), &count, &None::<Uuid>]).unwrap().iter().map(|r| r.get(0)).collect();
        assert_eq!(got, want, "Alice, {count}");
        tx.commit().unwrap();
    }
}

/// Concurrent bumps of one pattern by its owner from several connections all count.
#[test]
fn concurrent_use_count_bumps_all_count() {
    let f = fixture("bpat_bumps");
    let pattern = f.a("a-same");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let mut c = if i == 3 { f.db.superuser() } else { f.db.connect_as(APP) };
            let (alice, barrier) = (f.alice, barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let mut last = 0;
                for _ in 0..50 {
                    let mut tx = as_user(&mut c, alice);
                    let n: Option<i32> = tx.query_one("SELECT public.increment_pattern_use_count($1)", &[&pattern]).unwrap().get(0);
                    tx.commit().unwrap();
                    let n = n.unwrap();
                    assert!(n > last, "counts go up for each caller");
                    last = n;
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(use_count(&f.db, pattern), (201, true));
}
