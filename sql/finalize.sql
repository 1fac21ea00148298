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

REVOKE EXECUTE ON FUNCTION @extschema@._harden_privileges() FROM PUBLIC;
SELECT @extschema@._harden_privileges();
