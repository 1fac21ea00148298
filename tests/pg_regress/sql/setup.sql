-- Run first (also by `cargo pgrx regress`): the extension and what it requires.
CREATE EXTENSION IF NOT EXISTS pg_assistant CASCADE;
SELECT extname, extrelocatable FROM pg_extension WHERE extname IN ('citext', 'pg_assistant') ORDER BY 1;
