-- set_updated_at() and forbid_update() on the user's own tables.
CREATE SCHEMA gt;
SET search_path = gt, public;

CREATE TABLE gt.notes (id int PRIMARY KEY, body text, updated_at timestamptz NOT NULL DEFAULT '2000-01-01 00:00+00');
CREATE TRIGGER notes_updated_at BEFORE UPDATE ON gt.notes FOR EACH ROW EXECUTE FUNCTION set_updated_at();
INSERT INTO gt.notes VALUES (1, 'a'), (2, 'b');
-- INSERT leaves the column alone.
SELECT id, updated_at = '2000-01-01 00:00+00' AS untouched FROM gt.notes ORDER BY id;
BEGIN;
UPDATE gt.notes SET body = body || '!' WHERE id = 1;
SELECT id, updated_at = now() AS stamped FROM gt.notes ORDER BY id;
COMMIT;

-- A custom column name, timestamp without time zone.
CREATE TABLE gt.events (id int, touched timestamp);
CREATE TRIGGER events_touched BEFORE UPDATE ON gt.events FOR EACH ROW EXECUTE FUNCTION set_updated_at('touched');
INSERT INTO gt.events VALUES (1, NULL);
BEGIN;
UPDATE gt.events SET id = 2;
SELECT touched = localtimestamp AS stamped FROM gt.events;
COMMIT;

-- Misuse: every case is a clear error naming trigger, table and column, never XX000.
\set VERBOSITY default
CREATE TABLE gt.bad (id int, updated_at timestamptz, born date);
CREATE TRIGGER bad_after AFTER UPDATE ON gt.bad FOR EACH ROW EXECUTE FUNCTION set_updated_at();
INSERT INTO gt.bad VALUES (1);
UPDATE gt.bad SET id = 2;
DROP TRIGGER bad_after ON gt.bad;
CREATE TRIGGER bad_stmt BEFORE UPDATE ON gt.bad FOR EACH STATEMENT EXECUTE FUNCTION set_updated_at();
UPDATE gt.bad SET id = 2;
DROP TRIGGER bad_stmt ON gt.bad;
CREATE TRIGGER bad_insert BEFORE INSERT ON gt.bad FOR EACH ROW EXECUTE FUNCTION set_updated_at();
INSERT INTO gt.bad VALUES (3);
DROP TRIGGER bad_insert ON gt.bad;
CREATE TRIGGER bad_delete BEFORE DELETE ON gt.bad FOR EACH ROW EXECUTE FUNCTION set_updated_at();
DELETE FROM gt.bad;
DROP TRIGGER bad_delete ON gt.bad;
CREATE TRIGGER bad_missing BEFORE UPDATE ON gt.bad FOR EACH ROW EXECUTE FUNCTION set_updated_at('modified_at');
UPDATE gt.bad SET id = 2;
DROP TRIGGER bad_missing ON gt.bad;
CREATE TRIGGER bad_type BEFORE UPDATE ON gt.bad FOR EACH ROW EXECUTE FUNCTION set_updated_at('born');
UPDATE gt.bad SET id = 2;
DROP TRIGGER bad_type ON gt.bad;
SELECT set_updated_at();
\set VERBOSITY sqlstate
CREATE TRIGGER bad_after AFTER UPDATE ON gt.bad FOR EACH ROW EXECUTE FUNCTION set_updated_at();
UPDATE gt.bad SET id = 2;
DROP TRIGGER bad_after ON gt.bad;
CREATE TRIGGER bad_missing BEFORE UPDATE ON gt.bad FOR EACH ROW EXECUTE FUNCTION set_updated_at('modified_at');
UPDATE gt.bad SET id = 2;
DROP TRIGGER bad_missing ON gt.bad;
CREATE TRIGGER bad_type BEFORE UPDATE ON gt.bad FOR EACH ROW EXECUTE FUNCTION set_updated_at('born');
UPDATE gt.bad SET id = 2;
DROP TRIGGER bad_type ON gt.bad;
-- The table is intact after every error.
SELECT * FROM gt.bad;

-- forbid_update(): default and custom messages; INSERT and DELETE still work.
\set VERBOSITY default
CREATE TABLE gt.ledger (id int PRIMARY KEY, amount int);
CREATE TRIGGER ledger_immutable BEFORE UPDATE ON gt.ledger FOR EACH ROW EXECUTE FUNCTION forbid_update();
INSERT INTO gt.ledger VALUES (1, 10), (2, 20);
UPDATE gt.ledger SET amount = 11 WHERE id = 1;
DELETE FROM gt.ledger WHERE id = 2;
CREATE TABLE gt.audit (at timestamptz, what text);
CREATE TRIGGER audit_final BEFORE UPDATE ON gt.audit FOR EACH ROW EXECUTE FUNCTION forbid_update('audit entries are final');
INSERT INTO gt.audit VALUES ('2026-01-01', 'x');
UPDATE gt.audit SET what = 'y';
CREATE TRIGGER ledger_after AFTER UPDATE ON gt.ledger FOR EACH ROW EXECUTE FUNCTION forbid_update();
DROP TRIGGER ledger_immutable ON gt.ledger;
UPDATE gt.ledger SET amount = 12;
\set VERBOSITY sqlstate
UPDATE gt.ledger SET amount = 12;
DROP TRIGGER ledger_after ON gt.ledger;
SELECT * FROM gt.ledger ORDER BY id;

RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA gt CASCADE;
