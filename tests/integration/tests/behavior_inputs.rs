//! Bad inputs to the behavior functions and tables, sent by a client: each gets its SQLSTATE
//! (`22004` for a NULL argument, `22023` for a bad value, PostgreSQL's own codes for
//! declarative constraints), never `XX000` or a crash, and the server answers afterwards. The
//! pattern writes go through a real LOGIN role without superuser, as the pattern's owner.

use pg_assistant_integration::postgres::types::ToSql;
use pg_assistant_integration::postgres::Client;
use pg_assistant_integration::{assert_server_alive, ensure_ordinary_role, message, sqlstate, with_claims, TestDb};
use serde_json::json;
use uuid::Uuid;

const APP: &str = "pga_it_binp_app";

/// Bad `real[]` embeddings, as SQL literals, with what makes each bad.
const BAD_EMBEDDINGS: [(&str, &str); 12] = [
    ("'{NaN,1,2}'::real[]", "NaN element"),
    ("'{1,Infinity}'::real[]", "infinite element"),
    ("'{-Infinity,0}'::real[]", "negative infinite element"),
    ("'{0,0,0,0}'::real[]", "all zeros"),
    ("'{-0,0}'::real[]", "negative zero only"),
    ("'{{1,2},{3,4}}'::real[]", "two-dimensional"),
    ("'{{{1}}}'::real[]", "three-dimensional"),
    ("'{}'::real[]", "empty"),
    ("array_fill(1::real, ARRAY[16001])", "16,001 elements"),
    ("array_fill(0.5::real, ARRAY[100000])", "100,000 elements"),
    ("'{1,NULL,3}'::real[]", "NULL element"),
    ("ARRAY[NULL]::real[]", "only a NULL element"),
];

fn expect(c: &mut Client, sql: &str, params: &[&(dyn ToSql + Sync)], code: &str) -> String {
    let err = c.query(sql, params).err().unwrap_or_else(|| panic!("{sql} succeeded"));
    assert_eq!(sqlstate(&err), code, "{sql}: {err:?}");
    assert_server_alive();
    message(&err)
}

/// `find_similar_patterns` with a NULL or bad query embedding, threshold or count.
#[test]
fn find_similar_patterns_rejects_bad_arguments() {
    let db = TestDb::new("binp_search");
    let mut c = db.superuser();
    let m = expect(&mut c, "SELECT * FROM find_similar_patterns(NULL::real[])", &[], "22004");
    assert!(m.contains("query_embedding"), "{m}");
    expect(&mut c, "SELECT * FROM find_similar_patterns(NULL)", &[], "22004");
    for (literal, what) in BAD_EMBEDDINGS {
        let m = expect(&mut c, &format!("SELECT * FROM find_similar_patterns({literal})"), &[], "22023");
        assert!(m.contains("query_embedding"), "{what}: {m}");
    }
    for threshold in ["-1.0000001", "1.0000001", "2", "-5", "'NaN'", "'Infinity'", "'-Infinity'"] {
        let m = expect(&mut c, &format!("SELECT * FROM find_similar_patterns('{{1,2}}', {threshold}::float8)"), &[], "22023");
        assert!(m.contains("match_threshold"), "{threshold}: {m}");
    }
    expect(&mut c, "SELECT * FROM find_similar_patterns('{1,2}', NULL)", &[], "22004");
    for count in [0, 1001, -1, i32::MIN, i32::MAX] {
        let m = expect(&mut c, "SELECT * FROM find_similar_patterns('{1,2}', 0.5, $1)", &[&count], "22023");
        assert!(m.contains("match_count"), "{count}: {m}");
    }
    expect(&mut c, "SELECT * FROM find_similar_patterns('{1,2}', 0.5, NULL)", &[], "22004");
    // The same through the internal function.
    expect(&mut c, "SELECT * FROM _similar_patterns('{1,NaN}', 0.5, 5, NULL)", &[], "22023");
    expect(&mut c, "SELECT * FROM _similar_patterns('{1,2}', 0.5, 0, NULL)", &[], "22023");
    // The limits themselves are fine.
    for (literal, threshold, count) in [
        ("'{1,2}'", -1.0, 1),
        ("'{1,2}'", 1.0, 1000),
        ("array_fill(0.25::real, ARRAY[16000])", 0.0, 5),
        ("'[0:2]={1,2,3}'::real[]", 0.5, 5),
        ("'{1e-20,1e-20}'::real[]", 0.5, 5),
    ] {
        c.query(&format!("SELECT * FROM find_similar_patterns({literal}, $1, $2)"), &[&threshold, &count])
            .unwrap_or_else(|e| panic!("{literal} {threshold} {count}: {e:?}"));
    }
}

/// `cosine_similarity`: the right value, NULL in NULL out (strict), `22023` for a dimension
/// mismatch and for every bad vector.
#[test]
fn cosine_similarity_values_and_errors() {
    let db = TestDb::new("binp_cosine");
    let mut c = db.superuser();
    for (a, b, want) in [
        ("'{1,0}'", "'{0,1}'", 0.0),
        ("'{1,2,3}'", "'{1,2,3}'", 1.0),
        ("'{1,2,3}'", "'{-1,-2,-3}'", -1.0),
        ("'{3,4}'", "'{4,3}'", 24.0 / 25.0),
        ("'[5:6]={3,4}'", "'{4,3}'", 24.0 / 25.0),
    ] {
        let got: f64 = c.query_one(&format!("SELECT cosine_similarity({a}::real[], {b}::real[])"), &[]).unwrap().get(0);
        assert!((got - want).abs() < 1e-6, "{a} {b}: {got} != {want}");
    }
    let null: Option<f64> = c.query_one("SELECT cosine_similarity(NULL, '{1}')", &[]).unwrap().get(0);
    assert_eq!(null, None);
    for (a, b) in [("'{1,2}'", "'{1,2,3}'"), ("'{1}'", "array_fill(1::real, ARRAY[16000])"), ("'{1,2,3}'", "'{1}'")] {
        let m = expect(&mut c, &format!("SELECT cosine_similarity({a}::real[], {b}::real[])"), &[], "22023");
        assert!(m.contains("same dimension"), "{m}");
    }
    for (literal, what) in BAD_EMBEDDINGS {
        let m = expect(&mut c, &format!("SELECT cosine_similarity({literal}, '{{1,2}}')"), &[], "22023");
        assert!(m.starts_with("vector a "), "{what}: {m}");
        let m = expect(&mut c, &format!("SELECT cosine_similarity('{{1,2}}', {literal})"), &[], "22023");
        assert!(m.starts_with("vector b "), "{what}: {m}");
    }
    // Many rows at once (a query plan calling it per row) and the server is fine.
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM generate_series(1, 2000) g
              WHERE cosine_similarity(ARRAY[g, 1, 2]::real[], ARRAY[1, g, 2]::real[]) BETWEEN -1 AND 1",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 2000);
}

struct Owner {
    db: TestDb,
    user: Uuid,
    pattern: Uuid,
}

fn owner(test: &str) -> Owner {
    ensure_ordinary_role(APP);
    let db = TestDb::supabase_like(test, &[APP]);
    let user = Uuid::new_v4();
    db.superuser().execute("SELECT create_profile($1, 'owner@example.com')", &[&user]).unwrap();
    let mut c = db.connect_as(APP);
    let mut tx = with_claims(&mut c, json!({ "sub": user.to_string(), "role": "authenticated" }));
    let pattern: Uuid = tx
        .query_one(
            "INSERT INTO public.behavior_patterns (user_id, trigger, trigger_embedding, final_outcome)
             VALUES ($1, 'good', '{1,2,3}', 'success') RETURNING id",
            &[&user],
        )
        .unwrap()
        .get(0);
    tx.commit().unwrap();
    Owner { db, user, pattern }
}

/// Runs `sql` as the pattern's owner and returns the error's SQLSTATE and message.
fn refused_as_owner(o: &Owner, c: &mut Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> (String, String) {
    let mut tx = with_claims(c, json!({ "sub": o.user.to_string(), "role": "authenticated" }));
    let err = tx.query(sql, params).err().unwrap_or_else(|| panic!("{sql} {params:?} succeeded"));
    tx.rollback().unwrap();
    assert_server_alive();
    (sqlstate(&err), message(&err))
}

/// A pattern with a bad embedding is refused on insert and on update, `22023` naming the column.
#[test]
fn patterns_with_bad_embeddings_are_refused() {
    let o = owner("binp_pattern_embeddings");
    let mut c = o.db.connect_as(APP);
    for (literal, what) in BAD_EMBEDDINGS {
        for sql in [
            format!("INSERT INTO public.behavior_patterns (user_id, trigger, trigger_embedding, final_outcome) VALUES ($1, 'x', {literal}, 'success')"),
            format!("UPDATE public.behavior_patterns SET trigger_embedding = {literal} WHERE user_id = $1"),
        ] {
            let (code, m) = refused_as_owner(&o, &mut c, &sql, &[&o.user]);
            assert_eq!(code, "22023", "{what}: {sql}: {m}");
            assert!(m.contains("trigger_embedding"), "{what}: {m}");
        }
    }
    // The limits are fine: 16,000 elements (kept out of line), NULL (no embedding), one element.
    let mut tx = with_claims(&mut c, json!({ "sub": o.user.to_string(), "role": "authenticated" }));
    for literal in ["array_fill(0.5::real, ARRAY[16000])", "NULL", "'{-2}'", "'[3:4]={1,1}'"] {
        tx.execute(
            &format!("INSERT INTO public.behavior_patterns (user_id, trigger, trigger_embedding, final_outcome) VALUES ($1, 'edge', {literal}, 'partial')"),
            &[&o.user],
        )
        .unwrap_or_else(|e| panic!("{literal}: {e:?}"));
    }
    tx.commit().unwrap();
    let mut su = o.db.superuser();
    let good: Vec<f32> = su.query_one("SELECT trigger_embedding FROM behavior_patterns WHERE id = $1", &[&o.pattern]).unwrap().get(0);
    assert_eq!(good, vec![1.0, 2.0, 3.0]);
    // The 16,000-dimension pattern is found by a 16,000-dimension query, at similarity 1.
    let row = su
        .query_one("SELECT trigger, similarity FROM find_similar_patterns(array_fill(2::real, ARRAY[16000]), 0.99, 5, NULL)", &[])
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "edge");
    assert!((row.get::<_, f64>(1) - 1.0).abs() < 1e-6);
}

/// Malformed `context` and `actions`: `22023`, the message naming the JSON path.
#[test]
fn patterns_with_malformed_json_are_refused_naming_the_path() {
    let o = owner("binp_pattern_json");
    let mut c = o.db.connect_as(APP);
    let contexts = [
        ("[]", "context"),
        ("\"a string\"", "context"),
        ("null", "context"),
        ("42", "context"),
        ("{\"directory\": 1}", "context.directory"),
        ("{\"project_type\": [\"rust\"]}", "context.project_type"),
        ("{\"branch\": null}", "context.branch"),
        ("{\"files_touched\": \"a.rs\"}", "context.files_touched"),
        ("{\"files_touched\": {\"a\": 1}}", "context.files_touched"),
        ("{\"files_touched\": [\"a.rs\", 2]}", "context.files_touched[1]"),
        ("{\"files_touched\": [\"a.rs\", \"b.rs\", null]}", "context.files_touched[2]"),
    ];
    let actions = [
        ("{}", "actions"),
        ("\"grep\"", "actions"),
        ("null", "actions"),
        ("[1]", "actions[0]"),
        ("[{\"tool\": \"a\"}, [\"tool\"]]", "actions[1]"),
        ("[{}]", "actions[0].tool"),
        ("[{\"tool\": 5}]", "actions[0].tool"),
        ("[{\"tool\": null}]", "actions[0].tool"),
        ("[{\"tool\": \"a\"}, {\"tool\": \"b\", \"parameters\": []}]", "actions[1].parameters"),
        ("[{\"tool\": \"a\", \"parameters\": \"x=1\"}]", "actions[0].parameters"),
        ("[{\"tool\": \"a\", \"outcome\": true}]", "actions[0].outcome"),
        ("[{\"tool\": \"a\", \"timestamp\": 1700000000}]", "actions[0].timestamp"),
        ("[{\"tool\": \"a\"}, {\"tool\": \"b\"}, {\"tool\": \"c\", \"duration_ms\": -1}]", "actions[2].duration_ms"),
        ("[{\"tool\": \"a\"}, {\"tool\": \"b\"}, {\"tool\": \"c\", \"duration_ms\": \"5\"}]", "actions[2].duration_ms"),
        ("[{\"tool\": \"a\", \"duration_ms\": null}]", "actions[0].duration_ms"),
        ("[{\"tool\": \"a\", \"duration_ms\": -0.5}]", "actions[0].duration_ms"),
    ];
    for (column, cases) in [("context", &contexts[..]), ("actions", &actions[..])] {
        for (value, path) in cases {
            for sql in [
                format!("INSERT INTO public.behavior_patterns (user_id, trigger, {column}, final_outcome) VALUES ($1, 'x', $2::text::jsonb, 'success')"),
                format!("UPDATE public.behavior_patterns SET {column} = $2::text::jsonb WHERE user_id = $1"),
            ] {
                let (code, m) = refused_as_owner(&o, &mut c, &sql, &[&o.user, value]);
                assert_eq!(code, "22023", "{column} {value}: {m}");
                let named = m.contains(&format!("{path} ")) || m.ends_with(path.to_owned());
                assert!(named, "{column} {value}: the message should name {path}: {m}");
            }
        }
    }
    // Well-formed shapes with extra keys, and the edge values, are accepted.
    let mut tx = with_claims(&mut c, json!({ "sub": o.user.to_string(), "role": "authenticated" }));
    for (context, actions) in [
        (json!({}), json!([])),
        (
            json!({ "directory": "/src", "project_type": "rust", "branch": "main", "files_touched": [], "extra": [1, {}] }),
            json!([{ "tool": "grep", "parameters": {}, "outcome": "ok", "timestamp": "2026-01-01T00:00:00Z", "duration_ms": 0, "more": null },
                   { "tool": "", "duration_ms": 1.5 }, { "tool": "sed", "duration_ms": 1e12 }]),
        ),
        (json!({ "files_touched": ["a", "b"] }), json!([{ "tool": "x" }])),
    ] {
        tx.execute(
            "INSERT INTO public.behavior_patterns (user_id, trigger, context, actions, final_outcome) VALUES ($1, 'ok', $2, $3, 'failed')",
            &[&o.user, &context, &actions],
        )
        .unwrap_or_else(|e| panic!("{context} {actions}: {e:?}"));
    }
    tx.commit().unwrap();
    // Declarative constraints keep PostgreSQL's own codes.
    for (sql, code) in [
        ("INSERT INTO public.behavior_patterns (user_id, trigger, final_outcome) VALUES ($1, 'x', 'meh')", "23514"),
        ("INSERT INTO public.behavior_patterns (user_id, trigger, final_outcome, confidence) VALUES ($1, 'x', 'success', 1.5)", "23514"),
        ("INSERT INTO public.behavior_patterns (user_id, trigger, final_outcome, use_count) VALUES ($1, 'x', 'success', -1)", "23514"),
        ("INSERT INTO public.behavior_patterns (user_id, trigger, final_outcome) VALUES ($1, NULL, 'success')", "23502"),
        ("INSERT INTO public.behavior_patterns (user_id, trigger, final_outcome, context) VALUES ($1, 'x', 'success', NULL)", "23502"),
    ] {
        let (got, m) = refused_as_owner(&o, &mut c, sql, &[&o.user]);
        assert_eq!(got, code, "{sql}: {m}");
    }
    let n: i64 = o.db.superuser().query_one("SELECT count(*) FROM behavior_patterns WHERE trigger = 'x'", &[]).unwrap().get(0);
    assert_eq!(n, 0);
}

/// Bad events: PostgreSQL's own codes for the declared checks, nothing summarised.
#[test]
fn bad_events_keep_postgres_codes_and_leave_no_summary() {
    let db = TestDb::new("binp_events");
    let mut c = db.superuser();
    for (sql, code) in [
        ("INSERT INTO behavior_events (customer_id, session_id, event_type, business_impact) VALUES ('c', 's', 't', 'huge')", "23514"),
        ("INSERT INTO behavior_events (customer_id, session_id, event_type, duration_ms) VALUES ('c', 's', 't', -1)", "23514"),
        ("INSERT INTO behavior_events (customer_id, session_id, event_type) VALUES (NULL, 's', 't')", "23502"),
        ("INSERT INTO behavior_events (customer_id, session_id, event_type) VALUES ('c', NULL, 't')", "23502"),
        ("INSERT INTO behavior_events (customer_id, session_id, event_type) VALUES ('c', 's', NULL)", "23502"),
        ("INSERT INTO behavior_events (customer_id, session_id, event_type, event_timestamp) VALUES ('c', 's', 't', 'infinity')", "23514"),
        (
            "INSERT INTO behavior_events (customer_id, session_id, event_type, event_timestamp)
             SELECT 'c', 's', 't', CASE WHEN g = 50 THEN '-infinity'::timestamptz ELSE now() END FROM generate_series(1, 100) g",
            "23514",
        ),
    ] {
        let err = c.execute(sql, &[]).unwrap_err();
        assert_eq!(sqlstate(&err), code, "{sql}: {err:?}");
        assert_server_alive();
    }
    let row = c
        .query_one("SELECT (SELECT count(*) FROM behavior_events), (SELECT count(*) FROM behavior_insights), (SELECT count(*) FROM behavior_sessions)", &[])
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1), row.get::<_, i64>(2)), (0, 0, 0));
}

/// A tiny vector is not all zeros: DESIGN.md 3.3 allows it (finite elements, not all zeros),
/// and its cosine similarity is well defined, as is a huge one's. Their squared norms under- and
/// overflow single precision, which must turn neither into an error nor into a wrong answer.
#[test]
fn tiny_nonzero_vectors_are_valid_embeddings() {
    let o = owner("binp_tiny");
    let mut su = o.db.superuser();
    for (a, b, want) in [
        ("'{1e-30,1e-30}'", "'{1,1}'", 1.0),
        ("'{1e-38,0}'", "'{1,0}'", 1.0),
        ("'{0,-1e-25}'", "'{0,3}'", -1.0),
        ("'{3e38,3e38}'", "'{1,1}'", 1.0),
        ("'{1,1}'", "'{3e38,3e38}'", 1.0),
        ("'{3e38,-3e38,3e38}'", "'{3e38,-3e38,3e38}'", 1.0),
        ("'{1e-30,0}'", "'{0,3e38}'", 0.0),
    ] {
        let got = su.query_one(&format!("SELECT cosine_similarity({a}::real[], {b}::real[])"), &[]);
        match got {
            Ok(row) => {
                let got: f64 = row.get(0);
                assert!((got - want).abs() < 1e-6, "cosine_similarity({a}, {b}) = {got}, expected {want}");
            }
            Err(e) => panic!("cosine_similarity({a}, {b}) failed: {} {}", sqlstate(&e), message(&e)),
        }
    }
    let mut c = o.db.connect_as(APP);
    let mut tx = with_claims(&mut c, json!({ "sub": o.user.to_string(), "role": "authenticated" }));
    let inserted = tx.execute(
        "INSERT INTO public.behavior_patterns (user_id, trigger, trigger_embedding, final_outcome)
         VALUES ($1, 'tiny', '{1e-30,2e-30,3e-30}', 'success')",
        &[&o.user],
    );
    if let Err(e) = &inserted {
        panic!("a pattern with a tiny embedding was refused: {} {}", sqlstate(e), message(e));
    }
    let mut found: Vec<String> = tx
        .query("SELECT trigger FROM public.find_similar_patterns('{1,2,3}', 0.99, 5)", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    found.sort();
    assert_eq!(found, vec!["good".to_owned(), "tiny".to_owned()], "both point the same way as the query");
    tx.rollback().unwrap();
}
