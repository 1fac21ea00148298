-- Reference: the PL/pgSQL updated_at helper of source 000 (update_updated_at_column).
-- Benchmarks only; never installed by the extension.
CREATE OR REPLACE FUNCTION bench_plpgsql.update_updated_at_column()
RETURNS TRIGGER AS $$
BEGIN
  NEW.updated_at = NOW();
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
