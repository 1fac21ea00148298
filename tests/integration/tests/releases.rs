//! Releases: a schema change never lands without a new version and its upgrade script.
//!
//! `sql/releases/pg_assistant--<version>.sql` holds the frozen install script of every released
//! version (scripts/test.sh places them beside the build under test; one for the version being
//! built goes in as `<version>-frozen`). The schema a fresh `CREATE EXTENSION` makes must equal,
//! object by object in the catalog:
//! * the frozen release of the same version, while the version is unchanged; or
//! * the last release brought up to date by `ALTER EXTENSION pg_assistant UPDATE`, once the
//!   version was bumped (which needs `sql/pg_assistant--<last>--<new>.sql`).
//! pgrx does not generate its script in a stable order, so the comparison is of the catalog.

use pg_assistant_integration::postgres::Client;
use pg_assistant_integration::TestDb;

/// The extension's objects as sorted text lines: tables and their columns, constraints,
/// indexes, triggers, policies, row-level security and privileges; functions with their
/// arguments, results, language, settings and privileges; types and enum labels; event
/// triggers; what pg_dump keeps. OIDs never appear, only names and definitions.
const SNAPSHOT: &str = r#"
WITH ext AS (SELECT oid, extnamespace FROM pg_extension WHERE extname = 'pg_assistant'),
members AS (SELECT d.classid, d.objid FROM pg_depend d, ext WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'),
rels AS (SELECT c.* FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid)
SELECT line FROM (
  SELECT format('relation %s kind=%s rls=%s force=%s acl=%s', relname, relkind, relrowsecurity, relforcerowsecurity, relacl) FROM rels
  UNION ALL
  SELECT format('column %s.%s %s notnull=%s default=%s identity=%s generated=%s', r.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                a.attnotnull, pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated)
    FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef ad ON ad.adrelid = r.oid AND ad.adnum = a.attnum
  UNION ALL
  SELECT format('constraint %s.%s %s', r.relname, co.conname, pg_get_constraintdef(co.oid)) FROM rels r JOIN pg_constraint co ON co.conrelid = r.oid
  UNION ALL
  SELECT format('index %s', pg_get_indexdef(i.indexrelid)) FROM rels r JOIN pg_index i ON i.indrelid = r.oid
  UNION ALL
  SELECT format('trigger %s', pg_get_triggerdef(t.oid)) FROM rels r JOIN pg_trigger t ON t.tgrelid = r.oid WHERE NOT t.tgisinternal
  UNION ALL
  SELECT format('policy %s.%s cmd=%s permissive=%s roles=%s using=%s check=%s', r.relname, p.polname, p.polcmd, p.polpermissive,
                (SELECT array_agg(rolname ORDER BY rolname) FROM pg_roles WHERE oid = ANY (p.polroles)),
                pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
    FROM rels r JOIN pg_policy p ON p.polrelid = r.oid
  UNION ALL
  SELECT format('function %s(%s) returns %s lang=%s volatility=%s strict=%s secdef=%s parallel=%s config=%s acl=%s src=%s bin=%s',
                p.proname, pg_get_function_identity_arguments(p.oid), pg_get_function_result(p.oid), l.lanname, p.provolatile,
                p.proisstrict, p.prosecdef, p.proparallel, p.proconfig, p.proacl, p.prosrc, p.probin)
    FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid JOIN pg_language l ON l.oid = p.prolang
  UNION ALL
  SELECT format('type %s kind=%s labels=%s', t.typname, t.typtype,
                (SELECT array_agg(enumlabel ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = t.oid))
    FROM pg_type t JOIN members m ON m.classid = 'pg_type'::regclass AND m.objid = t.oid
  UNION ALL
  SELECT format('event trigger %s on %s tags=%s function=%s enabled=%s', e.evtname, e.evtevent, e.evttags, e.evtfoid::regproc, e.evtenabled)
    FROM pg_event_trigger e JOIN members m ON m.classid = 'pg_event_trigger'::regclass AND m.objid = e.oid
  UNION ALL
  SELECT format('dumped %s where=%s', c::regclass, w)
    FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x(c, w) WHERE e.extname = 'pg_assistant'
) s(line) ORDER BY line"#;

fn snapshot(c: &mut Client) -> Vec<String> {
    c.query(SNAPSHOT, &[]).unwrap().iter().map(|r| r.get(0)).collect()
}

fn available(c: &mut Client) -> (String, Vec<String>) {
    let default: String =
        c.query_one("SELECT default_version FROM pg_available_extensions WHERE name = 'pg_assistant'", &[]).unwrap().get(0);
    let versions = c
        .query("SELECT version FROM pg_available_extension_versions WHERE name = 'pg_assistant' ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    (default, versions)
}

/// Lines in one snapshot and not the other, for the failure message.
fn difference(fresh: &[String], other: &[String]) -> String {
    let only = |a: &[String], b: &[String]| a.iter().filter(|l| !b.contains(l)).cloned().collect::<Vec<_>>().join("\n  ");
    format!("only in a fresh install:\n  {}\nonly in the release:\n  {}", only(fresh, other), only(other, fresh))
}

#[test]
fn a_fresh_install_equals_its_frozen_release_or_the_upgrade_from_the_last_one() {
    let fresh_db = TestDb::new("release_fresh");
    let mut fresh = fresh_db.superuser();
    let (current, versions) = available(&mut fresh);
    let frozen = format!("{current}-frozen");
    let expected = snapshot(&mut fresh);
    assert!(expected.len() > 100, "the snapshot sees the extension's objects: {} lines", expected.len());

    let release_db = TestDb::new_after("release_frozen", "");
    let mut release = release_db.superuser();
    release.batch_execute("DROP EXTENSION pg_assistant").unwrap();
    if versions.contains(&frozen) {
        // The version is unchanged: its frozen script must make exactly this schema.
        release.batch_execute(&format!("CREATE EXTENSION pg_assistant VERSION '{frozen}'")).unwrap();
    } else {
        // A new version: the last release, updated, must make exactly this schema.
        let last = versions
            .iter()
            .filter(|v| !v.ends_with("-frozen") && **v != current)
            .max_by(|a, b| version_key(a).cmp(&version_key(b)))
            .unwrap_or_else(|| panic!("version {current} is neither frozen nor preceded by a release in sql/releases/"));
        release.batch_execute(&format!("CREATE EXTENSION pg_assistant VERSION '{last}'")).unwrap();
        release.batch_execute("ALTER EXTENSION pg_assistant UPDATE").unwrap_or_else(|e| {
            panic!("no update from {last} to {current}: add sql/pg_assistant--{last}--{current}.sql ({e})")
        });
    }
    let got = snapshot(&mut release);
    assert!(
        got == expected,
        "the schema of version {current} differs from its release; bump the version and add its upgrade script \
         (CONTRIBUTING.md)\n{}",
        difference(&expected, &got)
    );
}

fn version_key(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}
