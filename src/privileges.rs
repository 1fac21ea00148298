//! What ordinary roles may never hold on the extension's objects, whatever default privileges
//! (Supabase's `ALTER DEFAULT PRIVILEGES ... GRANT ALL ... TO anon, authenticated`) granted
//! when `CREATE EXTENSION` created them:
//!
//! * TRIGGER on a table: the extension's own statements, and foreign-key cascades, run as the
//!   owner, and so would any trigger attached there;
//! * TRUNCATE (skips every rule and the counters) and REFERENCES, on the table or on any column
//!   (a foreign key of theirs could block or cascade into the extension's deletes, retention
//!   jobs included);
//! * any privilege on a sequence (`setval` would make later inserts collide);
//! * any privilege on a materialized view, for roles without BYPASSRLS: a materialized view
//!   cannot carry row-level security, and the extension's hold every tenant's aggregates;
//! * EXECUTE on the extension's internal functions (rule triggers, install helpers). The jobs
//!   keep their grants: they check their caller natively.
//!
//! `_harden_privileges()` revokes all of these from every grantee but the owner. The install
//! script runs it last, and so must every upgrade script (`SELECT @extschema@._harden_privileges();`).

use pgrx::prelude::*;

use crate::common::error::{PgaError, INSUFFICIENT_PRIVILEGE};
use crate::common::{owner, schema};

/// One REVOKE per (object, grantee), built from the catalog; `$1` is the extension's OID.
const REVOKES: &str = "
    WITH members AS (
        SELECT d.classid, d.objid FROM pg_catalog.pg_depend d
         WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND d.refobjid OPERATOR(pg_catalog.=) $1 AND d.deptype OPERATOR(pg_catalog.=) 'e'),
    relations AS (
        SELECT m.objid FROM members m WHERE m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
        UNION   -- identity and serial sequences belong to their table
        SELECT d.objid FROM pg_catalog.pg_depend d JOIN members m ON d.refobjid OPERATOR(pg_catalog.=) m.objid
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.deptype OPERATOR(pg_catalog.=) ANY ('{a,i}'::pg_catalog.\"char\"[]))
    SELECT pg_catalog.format('REVOKE %s ON %s %s FROM %s',
                             pg_catalog.string_agg(a.privilege_type, ', '),
                             CASE WHEN c.relkind OPERATOR(pg_catalog.=) 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
                             c.oid::pg_catalog.regclass,
                             CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                                  ELSE pg_catalog.quote_ident(r.rolname) END)
      FROM relations x
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) x.objid
     CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
      LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) a.grantee
     WHERE a.grantee OPERATOR(pg_catalog.<>) c.relowner
       AND (c.relkind OPERATOR(pg_catalog.=) 'S'
            OR (c.relkind OPERATOR(pg_catalog.=) 'm'
                AND (a.grantee OPERATOR(pg_catalog.=) 0 OR NOT (r.rolbypassrls OR r.rolsuper)))
            OR (c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,v,m,f}'::pg_catalog.\"char\"[])
                AND a.privilege_type OPERATOR(pg_catalog.=) ANY ('{TRIGGER,TRUNCATE,REFERENCES}'::pg_catalog.text[])))
     GROUP BY c.oid, c.relkind, a.grantee, r.rolname
    UNION ALL   -- column-level REFERENCES (GRANT REFERENCES (id) ON sessions TO ...)
    SELECT pg_catalog.format('REVOKE REFERENCES (%I) ON TABLE %s FROM %s', att.attname, c.oid::pg_catalog.regclass,
                             CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                                  ELSE pg_catalog.quote_ident(r.rolname) END)
      FROM relations x
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) x.objid
      JOIN pg_catalog.pg_attribute att ON att.attrelid OPERATOR(pg_catalog.=) c.oid
     CROSS JOIN LATERAL pg_catalog.aclexplode(att.attacl) a
      LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) a.grantee
     WHERE att.attnum OPERATOR(pg_catalog.>) 0
       AND a.grantee OPERATOR(pg_catalog.<>) c.relowner
       AND a.privilege_type OPERATOR(pg_catalog.=) 'REFERENCES'
    UNION ALL
    SELECT pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM %s', p.oid::pg_catalog.regprocedure,
                             CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                                  ELSE pg_catalog.quote_ident(r.rolname) END)
      FROM members m
      JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) m.objid
     CROSS JOIN LATERAL pg_catalog.aclexplode(p.proacl) a
      LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) a.grantee
     WHERE m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
       AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
       AND ((p.prorettype OPERATOR(pg_catalog.=) ANY ('{trigger,event_trigger}'::pg_catalog.regtype[])
             AND p.proname OPERATOR(pg_catalog.<>) ALL ('{set_updated_at,forbid_update}'::pg_catalog.name[]))
            OR p.proname OPERATOR(pg_catalog.=) ANY ('{_install_auth_hook,_harden_privileges}'::pg_catalog.name[]))";

/// Revokes what ordinary roles may never hold (see the module documentation); returns the
/// number of REVOKE statements run. Superusers only; run by the install and upgrade scripts.
#[pg_extern(volatile, parallel_unsafe, name = "_harden_privileges")]
fn harden_privileges() -> i32 {
    // SAFETY: a catalog lookup for the current user id.
    if !unsafe { pg_sys::superuser() } {
        PgaError::new(INSUFFICIENT_PRIVILEGE, "permission denied for function _harden_privileges")
            .detail("Only superusers run it (the install and upgrade scripts do).")
            .raise();
    }
    revoke_forbidden()
}

/// Run as the owner, so each REVOKE removes the owner's grant whoever asked.
fn revoke_forbidden() -> i32 {
    let extension = schema::extension_oid();
    owner::as_owner(|| {
        Spi::connect_mut(|client| {
            let revokes: Vec<String> = client
                .select(REVOKES, None, &[extension.into()])
                .map(|rows| rows.filter_map(|r| r.get::<String>(1).ok().flatten()).collect())
                .unwrap_or_else(|e| panic!("pg_assistant: cannot list privileges: {e}"));
            for revoke in &revokes {
                client.update(revoke, None, &[]).unwrap_or_else(|e| panic!("pg_assistant: {revoke}: {e}"));
            }
            revokes.len() as i32
        })
    })
}

// ---- the DDL guard: an event trigger at the end of CREATE TRIGGER and GRANT -------------------

crate::common::trigger::native_event_trigger!(pga_guard_ddl, pg_finfo_pga_guard_ddl, "_guard_ddl", guard_ddl);

/// `ddl_command_end` for `CREATE TRIGGER` and `GRANT` anywhere in the database:
/// * a new trigger on one of the extension's tables that it does not trust (see
///   `common::trusted`) is refused with `42501`, which rolls the CREATE TRIGGER back. Foreign-key
///   cascades run as the table owner outside any check of ours, so such a trigger must not exist;
/// * after a GRANT (for example `GRANT ALL ON ALL TABLES IN SCHEMA public TO authenticated`),
///   what ordinary roles may never hold is revoked again.
fn guard_ddl(tag: pg_sys::CommandTag::Type, _parsetree: *mut pg_sys::Node) {
    if tag == pg_sys::CommandTag::CMDTAG_CREATE_TRIGGER {
        crate::common::trusted::require_trusted_triggers_now();
    } else if tag == pg_sys::CommandTag::CMDTAG_GRANT {
        revoke_forbidden();
    }
}
