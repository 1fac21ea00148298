//! `#[pg_test]` unit cases, run inside a server by `cargo pgrx test`. Each runs in its own
//! transaction, which is rolled back.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn one<T: pgrx::datum::FromDatum + pgrx::datum::IntoDatum>(sql: &str) -> Option<T> {
        Spi::get_one::<T>(sql).expect("query failed")
    }

    fn text(sql: &str) -> Option<String> {
        one::<String>(sql)
    }

    // ---- native counter writes ---------------------------------------------------------------

    /// common::parent writes the parent tables without their CHECK constraints, trusting that
    /// every one of them is the extension's own and kept true by the counters: this list is
    /// exactly the catalog's.
    #[pg_test]
    fn parent_tables_check_constraints_are_exactly_the_known_ones() {
        let names: Vec<String> = Spi::connect(|c| {
            c.select(
                "SELECT conname::text FROM pg_constraint
                  WHERE contype = 'c' AND conrelid IN ('sessions'::regclass, 'profiles'::regclass, 'conversations'::regclass)
                  ORDER BY 1",
                None,
                &[],
            )
            .unwrap()
            .map(|r| r.get::<String>(1).unwrap().unwrap())
            .collect()
        });
        let mut known: Vec<String> = crate::common::parent::OWN_CHECKS.iter().map(|s| s.to_string()).collect();
        known.sort();
        assert_eq!(names, known);
    }

    // ---- week arithmetic -------------------------------------------------------------------

    #[pg_test]
    fn next_week_start_sunday_last_second_is_next_day() {
        assert_eq!(
            text("SELECT (next_week_start('2026-11-22 23:59:59+00')  AT TIME ZONE 'UTC')::text").as_deref(),
            Some("2026-11-23 00:00:00")
        );
    }

    #[pg_test]
    fn next_week_start_monday_midnight_is_strictly_after() {
        assert_eq!(
            text("SELECT (next_week_start('2026-11-23 00:00:00+00') AT TIME ZONE 'UTC')::text").as_deref(),
            Some("2026-11-30 00:00:00")
        );
    }

    #[pg_test]
    fn next_week_start_is_always_a_monday_in_the_following_week() {
        let bad = one::<i64>(
            "SELECT count(*) FROM generate_series('1999-12-20'::timestamptz, '2031-01-10', '7 hours 13 minutes') t
              WHERE extract(isodow FROM next_week_start(t) AT TIME ZONE 'UTC') <> 1
                 OR next_week_start(t) <= t
                 OR next_week_start(t) > t + interval '7 days'
                 OR (next_week_start(t) AT TIME ZONE 'UTC')::time <> '00:00'",
        );
        assert_eq!(bad, Some(0));
    }

    #[pg_test]
    fn next_week_start_keeps_infinity_and_null() {
        assert_eq!(text("SELECT next_week_start('infinity')::text").as_deref(), Some("infinity"));
        assert_eq!(text("SELECT next_week_start(NULL)::text"), None);
    }

    // ---- identity --------------------------------------------------------------------------

    #[pg_test]
    fn current_user_id_reads_sub_from_claims_json() {
        Spi::run(r#"SELECT set_config('request.jwt.claims', '{"sub":"7b0e1f3a-6a55-4b7e-9d0c-2f4b1c3d5e6f","role":"authenticated"}', true)"#).unwrap();
        assert_eq!(text("SELECT current_user_id()::text").as_deref(), Some("7b0e1f3a-6a55-4b7e-9d0c-2f4b1c3d5e6f"));
        assert_eq!(text("SELECT current_app_role()").as_deref(), Some("authenticated"));
    }

    #[pg_test]
    fn current_user_id_falls_back_to_claim_sub_setting() {
        Spi::run("SELECT set_config('request.jwt.claim.sub', 'A1B2C3D4-0000-4000-8000-000000000001', true)").unwrap();
        Spi::run("SELECT set_config('request.jwt.claim.role', 'service_role', true)").unwrap();
        assert_eq!(text("SELECT current_user_id()::text").as_deref(), Some("a1b2c3d4-0000-4000-8000-000000000001"));
        assert_eq!(text("SELECT current_app_role()").as_deref(), Some("service_role"));
    }

    #[pg_test]
    fn current_user_id_is_null_when_unset() {
        assert_eq!(text("SELECT current_user_id()::text"), None);
        assert_eq!(text("SELECT current_app_role()"), None);
    }

    #[pg_test]
    fn current_user_id_is_null_for_malformed_claims() {
        for claims in [
            "not json",
            r#"{"sub": 42}"#,
            r#"{"sub": "not-a-uuid"}"#,
            r#"{"sub": "7b0e1f3a-6a55-4b7e-9d0c-2f4b1c3d5e6"}"#,
            r#"{"sub": "7b0e1f3a6a55-4b7e-9d0c-2f4b-1c3d5e6f"}"#,
            r#"["7b0e1f3a-6a55-4b7e-9d0c-2f4b1c3d5e6f"]"#,
            "",
        ] {
            Spi::run_with_args("SELECT set_config('request.jwt.claims', $1, true)", &[claims.into()]).unwrap();
            assert_eq!(text("SELECT current_user_id()::text"), None, "claims {claims:?}");
        }
    }

    #[pg_test]
    fn claims_json_wins_over_claim_sub_setting() {
        Spi::run("SELECT set_config('request.jwt.claim.sub', 'a1b2c3d4-0000-4000-8000-000000000001', true)").unwrap();
        Spi::run(r#"SELECT set_config('request.jwt.claims', '{"sub":"a1b2c3d4-0000-4000-8000-000000000002"}', true)"#).unwrap();
        assert_eq!(text("SELECT current_user_id()::text").as_deref(), Some("a1b2c3d4-0000-4000-8000-000000000002"));
    }

    // ---- set_updated_at --------------------------------------------------------------------

    #[pg_test]
    fn set_updated_at_sets_timestamptz_to_transaction_time() {
        Spi::run(
            "CREATE TABLE t (id int PRIMARY KEY, v text, updated_at timestamptz DEFAULT '2000-01-01');
             CREATE TRIGGER t_upd BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION set_updated_at();
             INSERT INTO t VALUES (1, 'a'); UPDATE t SET v = 'b'",
        )
        .unwrap();
        assert_eq!(one::<bool>("SELECT updated_at = now() FROM t"), Some(true));
    }

    #[pg_test]
    fn set_updated_at_sets_timestamp_without_time_zone() {
        Spi::run(
            "CREATE TABLE t (id int, modified timestamp DEFAULT '2000-01-01');
             CREATE TRIGGER t_upd BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION set_updated_at('modified');
             INSERT INTO t VALUES (1); UPDATE t SET id = 2",
        )
        .unwrap();
        assert_eq!(one::<bool>("SELECT modified = now()::timestamp FROM t"), Some(true));
    }

    #[pg_test]
    fn set_updated_at_overrides_an_explicit_value() {
        Spi::run(
            "CREATE TABLE t (id int, updated_at timestamptz);
             CREATE TRIGGER t_upd BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION set_updated_at();
             INSERT INTO t VALUES (1, NULL); UPDATE t SET updated_at = '1990-01-01'",
        )
        .unwrap();
        assert_eq!(one::<bool>("SELECT updated_at = now() FROM t"), Some(true));
    }

    #[pg_test]
    fn set_updated_at_survives_dropped_and_readded_columns() {
        Spi::run(
            "CREATE TABLE t (a int, updated_at timestamptz, b int);
             CREATE TRIGGER t_upd BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION set_updated_at();
             INSERT INTO t VALUES (1, NULL, 2); UPDATE t SET a = 3;
             ALTER TABLE t DROP COLUMN updated_at; ALTER TABLE t ADD COLUMN updated_at timestamptz;
             UPDATE t SET a = 4",
        )
        .unwrap();
        assert_eq!(one::<bool>("SELECT updated_at = now() AND a = 4 AND b = 2 FROM t"), Some(true));
    }

    #[pg_test(error = "trigger \"t_upd\" on table \"t\": set_updated_at() must be fired BEFORE UPDATE FOR EACH ROW")]
    fn set_updated_at_rejects_after_trigger() {
        Spi::run(
            "CREATE TABLE t (id int, updated_at timestamptz);
             CREATE TRIGGER t_upd AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION set_updated_at();
             INSERT INTO t VALUES (1); UPDATE t SET id = 2",
        )
        .unwrap();
    }

    #[pg_test(error = "trigger \"t_upd\" on table \"t\": column \"changed_at\" does not exist")]
    fn set_updated_at_rejects_missing_column() {
        Spi::run(
            "CREATE TABLE t (id int, updated_at timestamptz);
             CREATE TRIGGER t_upd BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION set_updated_at('changed_at');
             INSERT INTO t VALUES (1); UPDATE t SET id = 2",
        )
        .unwrap();
    }

    #[pg_test(error = "trigger \"t_upd\" on table \"t\": column \"updated_at\" must be of type timestamptz or timestamp")]
    fn set_updated_at_rejects_wrong_type() {
        Spi::run(
            "CREATE TABLE t (id int, updated_at date);
             CREATE TRIGGER t_upd BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION set_updated_at();
             INSERT INTO t VALUES (1); UPDATE t SET id = 2",
        )
        .unwrap();
    }

    #[pg_test(error = "function set_updated_at() was not called by trigger manager")]
    fn set_updated_at_rejects_direct_call() {
        Spi::run("SELECT set_updated_at()").unwrap();
    }

    // ---- forbid_update ---------------------------------------------------------------------

    #[pg_test(error = "rows of table \"ledger\" are immutable")]
    fn forbid_update_rejects_updates() {
        Spi::run(
            "CREATE TABLE ledger (id int PRIMARY KEY, amount int);
             CREATE TRIGGER ledger_immutable BEFORE UPDATE ON ledger FOR EACH ROW EXECUTE FUNCTION forbid_update();
             INSERT INTO ledger VALUES (1, 10); UPDATE ledger SET amount = 11",
        )
        .unwrap();
    }

    #[pg_test(error = "entries are final")]
    fn forbid_update_uses_custom_message() {
        Spi::run(
            "CREATE TABLE ledger (id int PRIMARY KEY, amount int);
             CREATE TRIGGER ledger_immutable BEFORE UPDATE ON ledger FOR EACH ROW EXECUTE FUNCTION forbid_update('entries are final');
             INSERT INTO ledger VALUES (1, 10); UPDATE ledger SET amount = 11",
        )
        .unwrap();
    }

    #[pg_test]
    fn forbid_update_allows_insert_and_delete() {
        Spi::run(
            "CREATE TABLE ledger (id int PRIMARY KEY, amount int);
             CREATE TRIGGER ledger_immutable BEFORE UPDATE ON ledger FOR EACH ROW EXECUTE FUNCTION forbid_update();
             INSERT INTO ledger VALUES (1, 10), (2, 20); DELETE FROM ledger WHERE id = 1",
        )
        .unwrap();
        assert_eq!(one::<i64>("SELECT count(*) FROM ledger"), Some(1));
    }

    // ---- chat: counters are written once per parent row per statement ----------------------

    fn chat_fixture(profiles: i32, sessions_per_profile: i32) {
        Spi::run(&format!(
            "INSERT INTO scenarios (id, title) VALUES ('t', 'T');
             INSERT INTO profiles (id, email)
             SELECT ('10000000-0000-4000-8000-' || lpad(p::text, 12, '0'))::uuid, 'p' || p || '@example.com'
               FROM generate_series(1, {profiles}) p;
             INSERT INTO sessions (id, user_id, scenario_id, started_at)
             SELECT ('00000000-0000-4000-8000-' || lpad(((p - 1) * {sessions_per_profile} + s)::text, 12, '0'))::uuid,
                    ('10000000-0000-4000-8000-' || lpad(p::text, 12, '0'))::uuid, 't', now() - interval '1 minute'
               FROM generate_series(1, {profiles}) p, generate_series(1, {sessions_per_profile}) s"
        ))
        .unwrap();
    }

    fn updates_of(table: &str) -> i64 {
        one::<i64>(&format!("SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = '{table}'")).unwrap_or(0)
    }

    #[pg_test]
    fn message_batch_updates_each_session_once() {
        chat_fixture(10, 1);
        let before = updates_of("sessions");
        Spi::run(
            "INSERT INTO messages (session_id, role, chat_type, content)
             SELECT ('00000000-0000-4000-8000-' || lpad((i % 10 + 1)::text, 12, '0'))::uuid, 'user',
                    CASE WHEN i % 2 = 0 THEN 'main' ELSE 'helper' END::chat_type, 'm' || i
               FROM generate_series(1, 10000) i",
        )
        .unwrap();
        assert_eq!(updates_of("sessions") - before, 10, "one update per session for the whole statement");
        assert_eq!(one::<i64>("SELECT sum(message_count_main + message_count_helper) FROM sessions"), Some(10000));
        assert_eq!(one::<i64>("SELECT count(*) FROM messages WHERE user_id IS NULL"), Some(0));
        assert_eq!(one::<i64>("SELECT count(*) FROM verify_counts()"), Some(0));
    }

    #[pg_test]
    fn completing_many_sessions_updates_each_profile_once() {
        chat_fixture(10, 20);
        let before = updates_of("profiles");
        Spi::run("UPDATE sessions SET is_completed = true").unwrap();
        assert_eq!(updates_of("profiles") - before, 10, "one update per profile for the whole statement");
        assert_eq!(one::<i64>("SELECT sum(total_completed_sessions) FROM profiles"), Some(200));
        assert_eq!(one::<i64>("SELECT count(*) FROM profiles WHERE weekly_completed_sessions <> 20"), Some(0));
        assert_eq!(one::<i64>("SELECT count(*) FROM sessions WHERE completed_at IS NULL OR duration_seconds < 60"), Some(0));
    }

    #[pg_test]
    fn updates_that_change_no_completion_leave_profiles_alone() {
        chat_fixture(5, 4);
        Spi::run("UPDATE sessions SET is_completed = true WHERE id IN (SELECT id FROM sessions ORDER BY id LIMIT 10)").unwrap();
        let before = updates_of("profiles");
        Spi::run("UPDATE sessions SET scenario_id = scenario_id").unwrap();
        Spi::run("UPDATE sessions SET is_completed = true WHERE is_completed").unwrap();
        assert_eq!(updates_of("profiles") - before, 0);
    }

    #[pg_test]
    fn deleting_messages_in_one_statement_decrements_once_per_session() {
        chat_fixture(3, 1);
        Spi::run(
            "INSERT INTO messages (session_id, role, chat_type, content)
             SELECT ('00000000-0000-4000-8000-' || lpad((i % 3 + 1)::text, 12, '0'))::uuid, 'user', 'main', 'm' || i
               FROM generate_series(1, 300) i",
        )
        .unwrap();
        let before = updates_of("sessions");
        Spi::run("DELETE FROM messages WHERE content LIKE 'm1%'").unwrap();
        assert_eq!(updates_of("sessions") - before, 3);
        assert_eq!(one::<i64>("SELECT count(*) FROM verify_counts()"), Some(0));
    }

    #[pg_test]
    fn email_validation() {
        for ok in ["a@b.co", "first.last+tag@example.co.uk", "UPPER@EXAMPLE.COM"] {
            assert!(crate::identity::valid_email(ok), "{ok}");
        }
        for bad in ["", "plain", "@example.com", "a@", "a@b", "a@@b.com", "a b@c.com", "a@.b.com", "a@b.com.", "a@b..com", "a\u{0}@b.com"] {
            assert!(!crate::identity::valid_email(bad), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(!crate::identity::valid_email(&long));
    }

    // ---- owner context and its guards -------------------------------------------------------

    #[pg_test]
    fn own_tables_are_exactly_the_extensions_member_tables() {
        let declared: Vec<String> = crate::common::schema::OWN_TABLES.iter().map(|t| t.to_string_lossy().into_owned()).collect();
        let mut declared_sorted = declared.clone();
        declared_sorted.sort();
        let members = text(
            "SELECT string_agg(c.relname::text, ',' ORDER BY c.relname)
               FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
              WHERE d.refclassid = 'pg_extension'::regclass
                AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_assistant')
                AND d.classid = 'pg_class'::regclass AND d.deptype = 'e' AND c.relkind IN ('r', 'p')",
        );
        assert_eq!(members, Some(declared_sorted.join(",")));
    }

    #[pg_test]
    fn schema_and_owner_come_from_the_catalog_whatever_the_search_path() {
        // A look-alike `=` for oids that says yes to everything, ahead of pg_catalog.
        Spi::run(
            "CREATE SCHEMA lookalike;
             CREATE FUNCTION lookalike.yes(oid, oid) RETURNS bool LANGUAGE sql AS 'SELECT true';
             CREATE OPERATOR lookalike.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = lookalike.yes);
             SET LOCAL search_path = lookalike, pg_catalog, public;",
        )
        .unwrap();
        let expected = one::<pg_sys::Oid>("SELECT extnamespace FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'pg_assistant'");
        assert_eq!(Some(crate::common::schema::namespace()), expected);
        let owner = one::<pg_sys::Oid>("SELECT extowner FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'pg_assistant'");
        assert_eq!(Some(crate::common::schema::owner()), owner);
    }

    #[pg_test(error = "permission denied for function reset_weekly_limits")]
    fn jobs_refuse_roles_without_bypassrls_whatever_their_grants() {
        Spi::run(
            "CREATE ROLE pga_unit_plain NOLOGIN;
             GRANT EXECUTE ON FUNCTION reset_weekly_limits(int) TO pga_unit_plain;
             SET LOCAL ROLE pga_unit_plain;",
        )
        .unwrap();
        Spi::run("SELECT reset_weekly_limits()").unwrap();
    }

    #[pg_test]
    fn jobs_run_for_roles_with_bypassrls() {
        Spi::run(
            "CREATE ROLE pga_unit_service NOLOGIN BYPASSRLS;
             GRANT USAGE ON SCHEMA public TO pga_unit_service;
             GRANT EXECUTE ON FUNCTION reset_weekly_limits(int) TO pga_unit_service;
             SET LOCAL ROLE pga_unit_service;",
        )
        .unwrap();
        assert_eq!(one::<i32>("SELECT reset_weekly_limits()"), Some(0));
    }

    #[pg_test(error = "permission denied for function _harden_privileges")]
    fn privilege_hardening_is_for_superusers() {
        Spi::run(
            "CREATE ROLE pga_unit_service2 NOLOGIN BYPASSRLS;
             GRANT EXECUTE ON FUNCTION _harden_privileges() TO pga_unit_service2;
             SET LOCAL ROLE pga_unit_service2;",
        )
        .unwrap();
        Spi::run("SELECT _harden_privileges()").unwrap();
    }

    #[pg_test]
    fn hardening_revokes_trigger_truncate_references_and_sequences_and_is_idempotent() {
        Spi::run(
            "CREATE ROLE pga_unit_grantee NOLOGIN;
             GRANT ALL ON ALL TABLES IN SCHEMA public TO pga_unit_grantee;",
        )
        .unwrap();
        // The GRANT guard already took them back ...
        assert_eq!(one::<bool>("SELECT has_table_privilege('pga_unit_grantee', 'profiles', 'TRIGGER')"), Some(false));
        assert_eq!(one::<bool>("SELECT has_table_privilege('pga_unit_grantee', 'profiles', 'UPDATE')"), Some(true));
        // ... and with the guard off, the hardening function does.
        Spi::run(
            "ALTER EVENT TRIGGER pg_assistant_guard_ddl DISABLE;
             GRANT TRIGGER, TRUNCATE, REFERENCES ON messages TO pga_unit_grantee;
             GRANT ALL ON SEQUENCE logs_id_seq TO pga_unit_grantee;
             ALTER EVENT TRIGGER pg_assistant_guard_ddl ENABLE;",
        )
        .unwrap();
        assert_eq!(one::<bool>("SELECT has_table_privilege('pga_unit_grantee', 'messages', 'TRUNCATE')"), Some(true));
        assert!(one::<i32>("SELECT _harden_privileges()").unwrap_or(0) >= 2);
        for privilege in ["TRIGGER", "TRUNCATE", "REFERENCES"] {
            assert_eq!(
                one::<bool>(&format!("SELECT has_table_privilege('pga_unit_grantee', 'messages', '{privilege}')")),
                Some(false),
                "{privilege}"
            );
        }
        assert_eq!(one::<bool>("SELECT has_table_privilege('pga_unit_grantee', 'messages', 'INSERT')"), Some(true));
        assert_eq!(one::<bool>("SELECT has_sequence_privilege('pga_unit_grantee', 'logs_id_seq', 'UPDATE')"), Some(false));
        assert_eq!(one::<i32>("SELECT _harden_privileges()"), Some(0));
    }

    #[pg_test(error = "pg_assistant will not act as the extension owner: table public.profiles has trigger \"audit\" that it does not trust")]
    fn owner_context_refuses_a_table_with_a_non_superusers_trigger() {
        chat_fixture(1, 1);
        Spi::run(
            "CREATE ROLE pga_unit_author NOLOGIN;
             GRANT CREATE ON SCHEMA public TO pga_unit_author;
             SET LOCAL ROLE pga_unit_author;
             CREATE FUNCTION public.audit() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
             RESET ROLE;
             ALTER EVENT TRIGGER pg_assistant_guard_ddl DISABLE;
             CREATE TRIGGER audit BEFORE UPDATE ON profiles FOR EACH ROW EXECUTE FUNCTION public.audit();
             ALTER EVENT TRIGGER pg_assistant_guard_ddl ENABLE;",
        )
        .unwrap();
        Spi::run("UPDATE sessions SET is_completed = true").unwrap();
    }

    #[pg_test]
    fn owner_context_accepts_a_superusers_trigger() {
        chat_fixture(1, 1);
        Spi::run(
            // Trusted only with its search_path pinned: a cascade would otherwise run it as the
            // owner under the caller's search_path.
            "CREATE TABLE public.audit_log (at timestamptz);
             CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql SET search_path = ''
                 AS 'BEGIN INSERT INTO public.audit_log VALUES (pg_catalog.now()); RETURN NEW; END';
             CREATE TRIGGER audit BEFORE UPDATE ON profiles FOR EACH ROW EXECUTE FUNCTION audit();
             UPDATE sessions SET is_completed = true;",
        )
        .unwrap();
        assert_eq!(one::<i64>("SELECT count(*) FROM public.audit_log"), Some(1));
        assert_eq!(one::<i32>("SELECT total_completed_sessions FROM profiles"), Some(1));
    }

    #[pg_test(error = "pg_assistant will not act as the extension owner: table public.messages has trigger \"watch\" that it does not trust")]
    fn ddl_guard_refuses_a_trigger_with_a_when_condition() {
        Spi::run(
            "CREATE ROLE pga_unit_author2 NOLOGIN;
             GRANT CREATE ON SCHEMA public TO pga_unit_author2;
             SET LOCAL ROLE pga_unit_author2;
             CREATE FUNCTION public.peek(uuid) RETURNS bool LANGUAGE sql AS 'SELECT true';
             RESET ROLE;
             CREATE TRIGGER watch BEFORE DELETE ON messages FOR EACH ROW WHEN (public.peek(OLD.id))
                 EXECUTE FUNCTION forbid_update();",
        )
        .unwrap();
    }

    #[pg_test]
    fn an_insert_is_never_a_restore_even_with_row_security_off() {
        chat_fixture(1, 1);
        Spi::run("SET LOCAL row_security = off").unwrap();
        let session = "00000000-0000-4000-8000-000000000001";
        Spi::run(&format!("INSERT INTO messages (session_id, role, chat_type, content) VALUES ('{session}', 'user', 'main', 'x')")).unwrap();
        assert_eq!(one::<i32>("SELECT message_count_main FROM sessions"), Some(1));
    }

    #[pg_test(error = "pg_assistant will not act as the extension owner: table public.messages has trigger \"audit\" that it does not trust")]
    fn ddl_guard_refuses_a_superusers_trigger_without_a_pinned_search_path() {
        Spi::run(
            "CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN OLD; END';
             CREATE TRIGGER audit BEFORE DELETE ON messages FOR EACH ROW EXECUTE FUNCTION audit();",
        )
        .unwrap();
    }

    #[pg_test]
    fn an_error_caught_inside_the_owner_context_leaves_it_sound() {
        chat_fixture(1, 2);
        // A trusted trigger that catches an error: its subtransaction aborts inside the owner context.
        Spi::run(
            "CREATE FUNCTION public.shrug() RETURNS trigger LANGUAGE plpgsql SET search_path = ''
                 AS 'BEGIN BEGIN PERFORM 1/0; EXCEPTION WHEN others THEN NULL; END; RETURN NEW; END';
             CREATE TRIGGER shrug AFTER UPDATE ON profiles FOR EACH ROW EXECUTE FUNCTION public.shrug();
             UPDATE sessions SET is_completed = true WHERE id = '00000000-0000-4000-8000-000000000001';
             UPDATE sessions SET is_completed = true WHERE id = '00000000-0000-4000-8000-000000000002';",
        )
        .unwrap();
        assert_eq!(one::<i32>("SELECT total_completed_sessions FROM profiles"), Some(2));
    }

    #[pg_test]
    fn a_profile_id_rename_keeps_its_counts() {
        chat_fixture(1, 2);
        Spi::run(
            "UPDATE sessions SET is_completed = true;
             UPDATE profiles SET id = '20000000-0000-4000-8000-000000000001';",
        )
        .unwrap();
        assert_eq!(one::<i32>("SELECT total_completed_sessions FROM profiles"), Some(2));
        assert_eq!(one::<i64>("SELECT count(*) FROM verify_counts()"), Some(0));
    }

    // ---- behavior ------------------------------------------------------------------------------

    #[pg_test]
    fn event_batch_writes_each_summary_row_once() {
        let (insights, sessions) = (updates_of("behavior_insights"), updates_of("behavior_sessions"));
        Spi::run(
            "INSERT INTO behavior_events (customer_id, session_id, event_type, business_impact, tool_name, event_timestamp)
             SELECT 'c' || (i % 10), 's' || (i % 100), 't' || (i % 4), CASE WHEN i % 3 = 0 THEN 'high' ELSE 'low' END,
                    'tool' || (i % 5), now() - (i % 50) * interval '1 minute'
               FROM generate_series(1, 10000) i",
        )
        .unwrap();
        // Fresh rows are inserted, never updated, by one statement.
        assert_eq!(updates_of("behavior_insights") - insights, 0);
        assert_eq!(updates_of("behavior_sessions") - sessions, 0);
        assert_eq!(one::<i64>("SELECT sum(total_events)::bigint FROM behavior_insights"), Some(10000));
        assert_eq!(one::<i64>("SELECT sum(session_count)::bigint FROM behavior_insights"), Some(100));
        // A second batch into the same rows updates each once.
        Spi::run(
            "INSERT INTO behavior_events (customer_id, session_id, event_type)
             SELECT 'c' || (i % 10), 's' || (i % 100), 'late' FROM generate_series(1, 5000) i",
        )
        .unwrap();
        assert_eq!(updates_of("behavior_insights") - insights, 10);
        assert_eq!(updates_of("behavior_sessions") - sessions, 100);
        assert_eq!(one::<i64>("SELECT (events_by_type->>'late')::bigint FROM behavior_insights WHERE customer_id = 'c1'"), Some(500));
        assert_eq!(one::<i32>("SELECT backfill_behavior_insights()"), Some(0));
    }

    #[pg_test]
    fn session_tools_are_distinct_and_sorted_across_statements() {
        Spi::run(
            "INSERT INTO behavior_events (customer_id, session_id, event_type, tool_name) VALUES ('c', 's', 'e', 'Write');
             INSERT INTO behavior_events (customer_id, session_id, event_type, tool_name)
             VALUES ('c', 's', 'e', 'Bash'), ('c', 's', 'e', 'Write'), ('c', 's', 'e', NULL), ('c', 's', 'e', 'Edit');
             INSERT INTO behavior_events (customer_id, session_id, event_type, tool_name) VALUES ('c', 's', 'e', 'Bash');",
        )
        .unwrap();
        assert_eq!(text("SELECT tools_used::text FROM behavior_sessions").as_deref(), Some("{Bash,Edit,Write}"));
        assert_eq!(one::<i32>("SELECT event_count FROM behavior_sessions"), Some(6));
    }

    #[pg_test(error = "column \"business_impact\" of a behavior event cannot change")]
    fn summarised_event_columns_cannot_change() {
        Spi::run(
            "INSERT INTO behavior_events (customer_id, session_id, event_type) VALUES ('c', 's', 'e');
             UPDATE behavior_events SET business_impact = 'critical';",
        )
        .unwrap();
    }

    #[pg_test]
    fn simd_and_portable_kernels_agree_with_a_double_precision_reference() {
        use crate::behavior::kernel;
        // Lengths around every loop boundary (32-wide, 8-wide, scalar tail) and a 1,536 embedding.
        for n in [1usize, 7, 8, 9, 31, 32, 33, 63, 100, 1536, 16000] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 53 % 89) as f32 - 44.0) / 13.0).collect();
            let exact: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let scale: f64 = a.iter().zip(&b).map(|(x, y)| (*x as f64 * *y as f64).abs()).sum::<f64>().max(1.0);
            let (portable, simd) = kernel::both(&a, &b);
            assert!(((portable as f64 - exact) / scale).abs() < 1e-5, "portable n={n}: {portable} vs {exact}");
            if let Some(simd) = simd {
                assert!(((simd as f64 - exact) / scale).abs() < 1e-5, "simd n={n}: {simd} vs {exact}");
            }
            assert_eq!(kernel::dot(&a, &b), simd.unwrap_or(portable), "dot() runs the selected kernel");
        }
    }

    #[pg_test]
    fn kernel_reads_unaligned_slices() {
        use crate::behavior::kernel;
        let data: Vec<f32> = (0..1000).map(|i| (i % 13) as f32).collect();
        let (a, b) = (&data[1..514], &data[3..516]);
        let exact: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let (portable, simd) = kernel::both(a, b);
        assert_eq!(portable as f64, exact);
        assert_eq!(simd.unwrap_or(portable) as f64, exact);
    }

    #[pg_test]
    fn cosine_similarity_of_a_1536_vector_with_itself_is_one() {
        let v = one::<f64>(
            "WITH v AS (SELECT array_agg(sin(i)::real) AS e FROM generate_series(1, 1536) i)
             SELECT cosine_similarity(e, e) FROM v",
        );
        assert!((v.unwrap() - 1.0).abs() < 1e-6);
    }

    #[pg_test]
    fn context_and_actions_shapes() {
        use crate::behavior::patterns::{check_actions, check_context};
        use serde_json::json;
        assert!(check_context(&json!({})).is_ok());
        assert!(check_context(&json!({"directory": "/a", "files_touched": [], "anything": [1]})).is_ok());
        assert_eq!(check_context(&json!(null)).unwrap_err(), "context must be a JSON object, not null");
        assert_eq!(check_context(&json!({"files_touched": ["a", {}]})).unwrap_err(), "context.files_touched[1] must be a string, not an object");
        assert!(check_actions(&json!([])).is_ok());
        assert!(check_actions(&json!([{"tool": "Read", "duration_ms": 0}, {"tool": "Edit", "duration_ms": 1.5}])).is_ok());
        assert_eq!(check_actions(&json!([{"tool": "a"}, {"tool": "b"}, {"tool": "c", "duration_ms": -1}])).unwrap_err(),
                   "actions[2].duration_ms must be a number >= 0, not -1");
        assert_eq!(check_actions(&json!([{"tool": null}])).unwrap_err(), "actions[0].tool must be a string, not null");
    }

    #[pg_test]
    fn similar_patterns_keep_the_best_k_by_similarity_then_id() {
        Spi::run(
            "INSERT INTO profiles (id, email) VALUES ('10000000-0000-4000-8000-000000000001', 'k@example.com');
             INSERT INTO behavior_patterns (user_id, trigger, trigger_embedding, final_outcome)
             SELECT '10000000-0000-4000-8000-000000000001', 'p' || i, ARRAY[1, i::real / 500, 0], 'success'
               FROM generate_series(0, 999) i;",
        )
        .unwrap();
        // The best five are the five smallest angles, in order; the full sort agrees.
        let native = text("SELECT string_agg(trigger, ',' ORDER BY similarity DESC, id) FROM find_similar_patterns('{1,0,0}', -1, 5)");
        assert_eq!(native.as_deref(), Some("p0,p1,p2,p3,p4"));
        let sorted = text(
            "SELECT string_agg(trigger, ',') FROM (SELECT trigger FROM behavior_patterns
               ORDER BY cosine_similarity(trigger_embedding, '{1,0,0}') DESC, id LIMIT 5) t",
        );
        assert_eq!(native, sorted);
        assert_eq!(one::<i64>("SELECT count(*) FROM find_similar_patterns('{1,0,0}', 0.9, 1000)"),
                   one::<i64>("SELECT count(*) FROM behavior_patterns WHERE cosine_similarity(trigger_embedding, '{1,0,0}') >= 0.9"));
    }

    // ---- conversations -------------------------------------------------------------------------

    #[pg_test]
    fn conversation_message_batch_updates_each_conversation_once() {
        Spi::run(
            "INSERT INTO tenants (id, name, slug) VALUES ('a0000000-0000-4000-8000-000000000001', 'A', 'a');
             INSERT INTO profiles (id, email, tenant_id) VALUES ('10000000-0000-4000-8000-000000000001', 'c@example.com', 'a0000000-0000-4000-8000-000000000001');
             INSERT INTO conversations (id, tenant_id, user_id)
             SELECT ('c0000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'a0000000-0000-4000-8000-000000000001',
                    '10000000-0000-4000-8000-000000000001'
               FROM generate_series(1, 10) i;",
        )
        .unwrap();
        let before = updates_of("conversations");
        Spi::run(
            "INSERT INTO conversation_messages (conversation_id, role, content)
             SELECT ('c0000000-0000-4000-8000-' || lpad((i % 10 + 1)::text, 12, '0'))::uuid, 'user', 'm' || i
               FROM generate_series(1, 10000) i",
        )
        .unwrap();
        assert_eq!(updates_of("conversations") - before, 10, "one update per conversation for the whole statement");
        assert_eq!(one::<i64>("SELECT sum(message_count)::bigint FROM conversations"), Some(10000));
        assert_eq!(one::<i64>("SELECT count(*) FROM conversation_messages WHERE tenant_id IS NULL"), Some(0));
        Spi::run("DELETE FROM conversation_messages WHERE content LIKE 'm1%'").unwrap();
        assert_eq!(updates_of("conversations") - before, 20, "and one per conversation for the delete");
        assert_eq!(one::<i64>("SELECT count(*) FROM verify_counts()"), Some(0));
    }

    #[pg_test(error = "rollback_reason is required")]
    fn rolling_back_an_optimization_needs_a_reason() {
        Spi::run(
            "INSERT INTO optimization_history (proposal_id, status, friction_point, change_description, proposed_changes)
             VALUES ('p', 'implemented', 'f', 'd', '{}');
             UPDATE optimization_history SET status = 'rolled_back', rollback_reason = E'\\t ';",
        )
        .unwrap();
    }
}
