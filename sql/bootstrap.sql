-- Native trigger functions shared by every module and usable on the user's own tables.

CREATE FUNCTION @extschema@.set_updated_at() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'pga_set_updated_at';
COMMENT ON FUNCTION @extschema@.set_updated_at() IS
    'BEFORE UPDATE FOR EACH ROW: sets the column named by the trigger argument (default updated_at) to now()';

CREATE FUNCTION @extschema@.forbid_update() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'pga_forbid_update';
COMMENT ON FUNCTION @extschema@.forbid_update() IS
    'BEFORE UPDATE FOR EACH ROW: rejects every update (P0001); an optional trigger argument replaces the message';
