-- Reference: source 004's behavior_patterns on pgvector and its find_similar_patterns(), as
-- that migration writes them. Benchmarks only; never installed by the extension (which has no
-- dependency on pgvector). Needs the `vector` extension; lives in schema bench_pgvector.
--
-- Left out of 004's table: the foreign key to auth.users (there is no auth schema here), row-level
-- security (the benchmark calls as a superuser, who bypasses it), and every index but the user_id
-- one: they cost writes, not these reads. So is 004's ivfflat index: the comparison is with
-- pgvector's exact scan, which returns the same rows as the native search (an approximate index
-- may not).

CREATE TABLE IF NOT EXISTS bench_pgvector.behavior_patterns (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL,
  trigger TEXT NOT NULL,
  trigger_embedding VECTOR(1536),  -- OpenAI text-embedding-3-small dimension
  context JSONB NOT NULL DEFAULT '{}'::jsonb,
  actions JSONB NOT NULL DEFAULT '[]'::jsonb,
  final_outcome TEXT NOT NULL CHECK (final_outcome IN ('success', 'partial', 'failed')),
  confidence FLOAT NOT NULL DEFAULT 0.7 CHECK (confidence >= 0 AND confidence <= 1),
  use_count INT NOT NULL DEFAULT 1 CHECK (use_count >= 0),
  last_used_at TIMESTAMPTZ,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS behavior_patterns_user_id_idx ON bench_pgvector.behavior_patterns(user_id);

-- Find similar patterns using vector similarity
CREATE OR REPLACE FUNCTION bench_pgvector.find_similar_patterns(
  query_embedding VECTOR(1536),
  match_threshold FLOAT DEFAULT 0.7,
  match_count INT DEFAULT 5,
  p_user_id UUID DEFAULT NULL
)
RETURNS TABLE (
  id UUID,
  trigger TEXT,
  context JSONB,
  actions JSONB,
  final_outcome TEXT,
  confidence FLOAT,
  use_count INT,
  similarity FLOAT
) AS $$
BEGIN
  RETURN QUERY
  SELECT
    bp.id,
    bp.trigger,
    bp.context,
    bp.actions,
    bp.final_outcome,
    bp.confidence,
    bp.use_count,
    1 - (bp.trigger_embedding <=> query_embedding) AS similarity
  FROM bench_pgvector.behavior_patterns bp
  WHERE
    (p_user_id IS NULL OR bp.user_id = p_user_id)
    AND bp.trigger_embedding IS NOT NULL
    AND 1 - (bp.trigger_embedding <=> query_embedding) >= match_threshold
  ORDER BY bp.trigger_embedding <=> query_embedding
  LIMIT match_count;
END;
$$ LANGUAGE plpgsql SECURITY DEFINER;

-- The same table with the embedding kept in the row (STORAGE PLAIN, as pgvector's FAQ suggests
-- for scans) instead of TOASTed: pgvector's best case for an exact scan, and the layout the
-- extension's own table has (STORAGE MAIN).
CREATE TABLE IF NOT EXISTS bench_pgvector.behavior_patterns_plain (LIKE bench_pgvector.behavior_patterns INCLUDING ALL);
ALTER TABLE bench_pgvector.behavior_patterns_plain ALTER COLUMN trigger_embedding SET STORAGE PLAIN;
