-- behavior patterns: validation on write, cosine similarity, the search and its ownership.
SET client_min_messages = warning;
TRUNCATE behavior_patterns;
\set VERBOSITY sqlstate
\set ann '''a1000000-0000-4000-8000-000000000001'''
\set ben '''b1000000-0000-4000-8000-000000000002'''
SELECT count(*) AS profiles FROM (SELECT create_profile(:ann, 'ann.patterns@example.com')
                                  UNION ALL SELECT create_profile(:ben, 'ben.patterns@example.com')) p;

-- cosine_similarity
SELECT cosine_similarity('{1,2,3}', '{1,2,3}') AS same, cosine_similarity('{1,0}', '{0,1}') AS orthogonal,
       cosine_similarity('{1,0}', '{-1,0}') AS opposite, round(cosine_similarity('{1,1}', '{1,0}')::numeric, 6) AS diagonal;
SELECT cosine_similarity(NULL, '{1}') IS NULL AS strict;
SELECT similarity_kernel() IN ('avx2+fma', 'portable') AS kernel_known;
\set VERBOSITY default
SELECT cosine_similarity('{1,2}', '{1,2,3}');
\set VERBOSITY sqlstate
SELECT cosine_similarity('{0,0}', '{1,2}');
SELECT cosine_similarity('{{1,2},{3,4}}', '{1,2}');
SELECT cosine_similarity('{NaN,2}', '{1,2}');
SELECT cosine_similarity('{Infinity,2}', '{1,2}');
SELECT cosine_similarity('{-Infinity,2}', '{1,2}');
SELECT cosine_similarity('{}', '{1,2}');
SELECT cosine_similarity('{NULL,2}', '{1,2}');
SELECT cosine_similarity(array_fill(1::real, ARRAY[16001]), array_fill(1::real, ARRAY[16001]));
SELECT cosine_similarity(array_fill(1::real, ARRAY[16000]), array_fill(1::real, ARRAY[16000])) AS longest;
SELECT cosine_similarity('{3e38,3e38}', '{1,1}') AS huge, cosine_similarity('{1e-30,1e-30}', '{1,1}') AS tiny,
       cosine_similarity('{1e-40,0}', '{1,0}') AS subnormal;

-- Patterns: embedding checks and its norm kept.
INSERT INTO behavior_patterns (id, user_id, trigger, trigger_embedding, final_outcome, context, actions) VALUES
    ('e0000000-0000-4000-8000-000000000001', :ann, 'fix the build', '{1,0,0}', 'success',
     '{"directory": "/src", "project_type": "rust", "branch": "main", "files_touched": ["a.rs"], "extra": 1}',
     '[{"tool": "Read", "parameters": {"path": "a.rs"}, "outcome": "success", "timestamp": "2026-01-01T00:00:00Z", "duration_ms": 12}]'),
    ('e0000000-0000-4000-8000-000000000002', :ann, 'review', '{1,1,0}', 'partial', '{}', '[]'),
    ('e0000000-0000-4000-8000-000000000003', :ann, 'deploy', '{0,1,0}', 'failed', '{}', '[]'),
    ('e0000000-0000-4000-8000-000000000004', :ben, 'ben''s', '{1,0.1,0}', 'success', '{}', '[]'),
    ('e0000000-0000-4000-8000-000000000005', :ben, 'no embedding', NULL, 'success', '{}', '[]'),
    ('e0000000-0000-4000-8000-000000000006', :ben, 'other dimension', '{1,0}', 'success', '{}', '[]');
SELECT trigger, round(trigger_embedding_norm::numeric, 6) AS norm FROM behavior_patterns ORDER BY id;
UPDATE behavior_patterns SET trigger_embedding = '{3,4,0}', trigger_embedding_norm = 1 WHERE trigger = 'deploy';
SELECT trigger_embedding_norm FROM behavior_patterns WHERE trigger = 'deploy';
UPDATE behavior_patterns SET trigger_embedding = '{0,1,0}' WHERE trigger = 'deploy';
INSERT INTO behavior_patterns (user_id, trigger, trigger_embedding, final_outcome) VALUES (:ann, 'x', '{}', 'success');
INSERT INTO behavior_patterns (user_id, trigger, trigger_embedding, final_outcome) VALUES (:ann, 'x', '{0,0,0}', 'success');
INSERT INTO behavior_patterns (user_id, trigger, trigger_embedding, final_outcome) VALUES (:ann, 'x', '{1,NaN}', 'success');
INSERT INTO behavior_patterns (user_id, trigger, trigger_embedding, final_outcome) VALUES (:ann, 'x', '{1,NULL}', 'success');
INSERT INTO behavior_patterns (user_id, trigger, trigger_embedding, final_outcome) VALUES (:ann, 'x', '{{1},{2}}', 'success');
INSERT INTO behavior_patterns (user_id, trigger, trigger_embedding, final_outcome) VALUES (:ann, 'x', array_fill(1::real, ARRAY[16001]), 'success');
UPDATE behavior_patterns SET trigger_embedding = '{Infinity,0,0}' WHERE trigger = 'review';
INSERT INTO behavior_patterns (user_id, trigger, final_outcome, confidence) VALUES (:ann, 'x', 'success', 1.5);
INSERT INTO behavior_patterns (user_id, trigger, final_outcome) VALUES (:ann, 'x', 'great');

-- Patterns: JSON shapes, each refusal naming its path.
\set VERBOSITY default
INSERT INTO behavior_patterns (id, user_id, trigger, final_outcome, actions)
VALUES ('e0000000-0000-4000-8000-0000000000aa', :ann, 'x', 'success', '[{"tool": "Read"}, {"tool": "Edit"}, {"tool": "Bash", "duration_ms": -5}]');
\set VERBOSITY terse
INSERT INTO behavior_patterns (user_id, trigger, final_outcome, context) VALUES (:ann, 'x', 'success', '[]');
INSERT INTO behavior_patterns (user_id, trigger, final_outcome, context) VALUES (:ann, 'x', 'success', '"text"');
INSERT INTO behavior_patterns (user_id, trigger, final_outcome, context) VALUES (:ann, 'x', 'success', '{"directory": 1}');
INSERT INTO behavior_patterns (user_id, trigger, final_outcome, context) VALUES (:ann, 'x', 'success', '{"project_type": null}');
INSERT INTO behavior_patterns (user_id, trigger, final_outcome, context) VALUES (:ann, 'x', 'success', '{"branch": ["main"]}');
INSERT INTO behavior_patterns (user_id, trigger, final_outcome, context) VALUES (:ann, 'x', 'success', '{"files_touched": "a.rs"}');
INSERT INTO behavior_patterns (user_id, trigger, final_outcome, context) VALUES (:ann, 'x', 'success', '{"files_touched": ["a", 2]}');
INSERT INTO behavior_patterns (user_id, trigger, final_outcome, actions) VALUES (:ann, 'x', 'success', '{}');
INSERT INTO behavior_patterns (user_id, trigger, final_outcome, actions) VALUES (:ann, 'x', 'success', '["Read"]');
INSERT INTO behavior_patterns (user_id, trigger, final_outcome, actions) VALUES (:ann, 'x', 'success', '[{"parameters": {}}]');
INSERT INTO behavior_patterns (user_id, trigger, final_outcome, actions) VALUES (:ann, 'x', 'success', '[{"tool": 7}]');
INSERT INTO behavior_patterns (user_id, trigger, final_outcome, actions) VALUES (:ann, 'x', 'success', '[{"tool": "a", "parameters": []}]');
INSERT INTO behavior_patterns (user_id, trigger, final_outcome, actions) VALUES (:ann, 'x', 'success', '[{"tool": "a", "outcome": 1}]');
INSERT INTO behavior_patterns (user_id, trigger, final_outcome, actions) VALUES (:ann, 'x', 'success', '[{"tool": "a", "timestamp": false}]');
INSERT INTO behavior_patterns (user_id, trigger, final_outcome, actions) VALUES (:ann, 'x', 'success', '[{"tool": "a", "duration_ms": "5"}]');
UPDATE behavior_patterns SET actions = '[{"tool": "a"}, 3]' WHERE trigger = 'review';
\set VERBOSITY sqlstate
SELECT count(*) AS patterns FROM behavior_patterns;

-- The search, as a service caller (superuser): everyone's, or one user's.
SELECT trigger, round(similarity::numeric, 6) AS similarity FROM find_similar_patterns('{1,0.1,0}', 0.0, 5);
SELECT trigger, round(similarity::numeric, 6) AS similarity FROM find_similar_patterns('{1,0.1,0}', 0.0, 5, :ann);
SELECT trigger FROM find_similar_patterns('{1,0.1,0}');
SELECT trigger FROM find_similar_patterns('{1,0.1,0}', -1, 1);
SELECT trigger FROM find_similar_patterns('{1,0}', -1, 10);
-- Ties by id.
INSERT INTO behavior_patterns (id, user_id, trigger, trigger_embedding, final_outcome) VALUES
    ('f0000000-0000-4000-8000-000000000002', :ben, 'tie b', '{5,5,5}', 'success'),
    ('f0000000-0000-4000-8000-000000000001', :ben, 'tie a', '{2,2,2}', 'success');
SELECT trigger FROM find_similar_patterns('{1,1,1}', 0.99, 5);
-- Bad arguments.
SELECT * FROM find_similar_patterns(NULL);
SELECT * FROM find_similar_patterns('{1,0,0}', NULL);
SELECT * FROM find_similar_patterns('{1,0,0}', 0.5, NULL);
SELECT * FROM find_similar_patterns('{1,0,0}', 1.01);
SELECT * FROM find_similar_patterns('{1,0,0}', -1.01);
SELECT * FROM find_similar_patterns('{1,0,0}', 'NaN');
SELECT * FROM find_similar_patterns('{1,0,0}', 0.5, 0);
SELECT * FROM find_similar_patterns('{1,0,0}', 0.5, 1001);
SELECT * FROM find_similar_patterns('{0,0,0}');
SELECT * FROM find_similar_patterns('{NaN,0,0}');
SELECT * FROM find_similar_patterns('{}');
SELECT * FROM find_similar_patterns('{{1,0,0}}');
SELECT * FROM find_similar_patterns(array_fill(1::real, ARRAY[16001]));
SELECT count(*) AS max_count_ok FROM find_similar_patterns('{1,0,0}', -1, 1000);

-- use_count
SELECT increment_pattern_use_count('e0000000-0000-4000-8000-000000000001') AS use_count;
SELECT use_count, last_used_at IS NOT NULL AS used FROM behavior_patterns WHERE trigger = 'fix the build';
SELECT increment_pattern_use_count('e0000000-0000-4000-8000-0000000000ff') AS missing;
SELECT increment_pattern_use_count(NULL);

-- As Ann, an ordinary role: her own patterns only, whatever she asks for.
CREATE ROLE pga_regress_patterns;
GRANT USAGE ON SCHEMA public TO pga_regress_patterns;
GRANT SELECT, INSERT, UPDATE, DELETE ON behavior_patterns TO pga_regress_patterns;
\set as_ann 'SET LOCAL ROLE pga_regress_patterns; SET LOCAL request.jwt.claims = ''{"sub":"a1000000-0000-4000-8000-000000000001","role":"authenticated"}'';'
BEGIN; :as_ann
SELECT trigger FROM find_similar_patterns('{1,0.1,0}', -1, 10);
SELECT trigger FROM find_similar_patterns('{1,0.1,0}', -1, 10, 'a1000000-0000-4000-8000-000000000001');
SELECT count(*) AS bens FROM find_similar_patterns('{1,0.1,0}', -1, 10, 'b1000000-0000-4000-8000-000000000002');
SELECT count(*) AS visible FROM behavior_patterns;
SELECT increment_pattern_use_count('e0000000-0000-4000-8000-000000000002') AS own;
ROLLBACK;
\set VERBOSITY default
BEGIN; :as_ann
SELECT increment_pattern_use_count('e0000000-0000-4000-8000-000000000004');
ROLLBACK;
BEGIN; :as_ann
SELECT increment_pattern_use_count('e0000000-0000-4000-8000-0000000000ff');
ROLLBACK;
BEGIN; :as_ann
UPDATE behavior_patterns SET user_id = 'b1000000-0000-4000-8000-000000000002' WHERE trigger = 'review';
ROLLBACK;
BEGIN; :as_ann
INSERT INTO behavior_patterns (user_id, trigger, final_outcome) VALUES ('b1000000-0000-4000-8000-000000000002', 'planted', 'success');
ROLLBACK;
\set VERBOSITY sqlstate
-- Without an identity: nothing.
BEGIN; SET LOCAL ROLE pga_regress_patterns;
SELECT count(*) AS anonymous FROM find_similar_patterns('{1,0.1,0}', -1, 10);
ROLLBACK;
-- Without SELECT on the table: refused.
REVOKE SELECT ON behavior_patterns FROM pga_regress_patterns;
BEGIN; :as_ann
SELECT count(*) FROM find_similar_patterns('{1,0.1,0}', -1, 10);
ROLLBACK;
REVOKE ALL ON behavior_patterns FROM pga_regress_patterns;
REVOKE ALL ON SCHEMA public FROM pga_regress_patterns;
DROP ROLE pga_regress_patterns;

-- Deleting a profile takes its patterns.
DELETE FROM profiles WHERE id = :ben;
SELECT count(*) AS bens_patterns FROM behavior_patterns WHERE user_id = :ben;
DELETE FROM profiles WHERE id = :ann;
SELECT count(*) AS patterns_left FROM behavior_patterns;
