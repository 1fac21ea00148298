-- Last in the install script (and in every upgrade script): whatever default privileges
-- granted on the objects above, ordinary roles keep no TRIGGER, TRUNCATE or REFERENCES on the
-- tables, nothing on the sequences and no EXECUTE on the internal functions (src/privileges.rs).
-- The DDL guard keeps it so: untrusted triggers on the extension's tables are refused, and a
-- later GRANT is followed by the same revocations.
CREATE FUNCTION @extschema@._guard_ddl() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'pga_guard_ddl';
CREATE EVENT TRIGGER pg_assistant_guard_ddl ON ddl_command_end
    WHEN TAG IN ('CREATE TRIGGER', 'GRANT')
    EXECUTE FUNCTION @extschema@._guard_ddl();

-- Drop protection (DESIGN.md section 4, src/lifecycle.rs): no DROP EXTENSION, DROP SCHEMA or
-- DROP OWNED takes the application's rows with it unless pg_assistant.allow_drop_with_data is on.
CREATE FUNCTION @extschema@._guard_drop() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'pga_guard_drop';
CREATE EVENT TRIGGER pg_assistant_guard_drop ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA', 'DROP OWNED')
    EXECUTE FUNCTION @extschema@._guard_drop();

REVOKE EXECUTE ON FUNCTION @extschema@._harden_privileges() FROM PUBLIC;
SELECT @extschema@._harden_privileges();
