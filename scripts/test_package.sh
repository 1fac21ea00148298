#!/usr/bin/env bash
# The package install test, on Debian's own PostgreSQL 15: build the .deb, apt-get install it,
# create a cluster as postgres, CREATE EXTENSION and a smoke of every module, DROP EXTENSION,
# apt-get remove, and no file of the package left behind. Prints "package: N passed, M failed".
# Needs root (apt-get), as CI and scripts/setup.sh have.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
passed=0 failed=0
check() { # check DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@"; then passed=$((passed + 1)); echo "ok: $what"; else failed=$((failed + 1)); echo "FAILED: $what"; fi
}
finish() { echo "package: $passed passed, $failed failed"; exit $((failed > 0)); }

bin=/usr/lib/postgresql/15/bin
deb_version=$(dpkg-query -W -f='${Version}' postgresql-15 2>/dev/null)
[[ -x $bin/postgres && -n $deb_version ]] || { echo "Debian's postgresql-15 is not installed"; failed=1; finish; }
echo "Debian postgresql-15 $deb_version"

bash scripts/package.sh pg15 || { failed=1; finish; }
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
deb=target/package/postgresql-15-pg-assistant_${version}-1_amd64.deb   # not an older build's
files=$(dpkg-deb -c "$deb" | awk '{print substr($6, 2)}' | grep -v '/$')

check "the package installs with apt-get" \
    env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "./$deb"
check "its files are in Debian's paths (with the migration script in its doc dir)" \
    test -f /usr/lib/postgresql/15/lib/pg_assistant.so -a -f /usr/share/postgresql/15/extension/pg_assistant.control \
    -a -f /usr/share/doc/postgresql-15-pg-assistant/pg_assistant_migrate.sql

data="$PGA_CACHE/run/deb15"; port=5499
as_postgres "$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1
rm -rf "$data"; mkdir -p "$data"; chown postgres: "$data"; chmod 700 "$data"
check "a cluster is created and started as postgres" bash -c "
    sudo -H -u postgres $bin/initdb -D $data -A trust -E UTF8 --no-locale -U postgres >/dev/null &&
    sudo -H -u postgres $bin/pg_ctl -D $data -l $data/server.log -o '-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$data' -w start >/dev/null"
psql() { as_postgres "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"; }

check "CREATE EXTENSION pg_assistant CASCADE" psql -c "CREATE EXTENSION pg_assistant CASCADE"
smoke=$(psql -At <<'SQL'
SELECT count(*) FROM create_profile('e0000000-0000-4000-8000-000000000001', 'deb@example.com', 'Deb');
INSERT INTO tenants (name, slug) VALUES ('Acme', 'acme');
INSERT INTO scenarios (id, title) VALUES ('s', 'S');
INSERT INTO sessions (id, user_id, scenario_id) VALUES ('f0000000-0000-4000-8000-000000000001', 'e0000000-0000-4000-8000-000000000001', 's');
INSERT INTO messages (session_id, role, chat_type, content) VALUES ('f0000000-0000-4000-8000-000000000001', 'user', 'main', 'hello');
UPDATE sessions SET is_completed = true;
SELECT message_count_main || ',' || total_completed_sessions || ',' || (SELECT count(*) FROM verify_counts())
  FROM sessions JOIN profiles p ON p.id = user_id;
SELECT reset_weekly_limits() >= 0;
SQL
)
check "a smoke of identity and chat (counts 1,1, no drift, jobs run)" test "$(echo "$smoke" | tail -2 | paste -sd' ')" = "1,1,0 t"
smoke=$(psql -At <<'SQL'
INSERT INTO behavior_events (customer_id, session_id, event_type, business_impact) VALUES ('c', 's', 'click', 'high'), ('c', 's', 'view', 'low');
SELECT total_events || ',' || high_impact_events || ',' || session_count FROM behavior_insights;
INSERT INTO behavior_patterns (user_id, trigger, trigger_embedding, final_outcome)
VALUES ('e0000000-0000-4000-8000-000000000001', 'deb', '{1,0,0}', 'success');
SELECT trigger || ',' || similarity FROM find_similar_patterns('{1,0,0}', 0.5, 5);
UPDATE profiles SET tenant_id = (SELECT id FROM tenants);
INSERT INTO conversations (id, tenant_id, user_id) SELECT 'c0000000-0000-4000-8000-000000000001', id, 'e0000000-0000-4000-8000-000000000001' FROM tenants;
INSERT INTO conversation_messages (conversation_id, role, content) VALUES ('c0000000-0000-4000-8000-000000000001', 'user', 'hi');
SELECT message_count FROM conversations;
SELECT total_tokens FROM increment_usage_metrics((SELECT id FROM tenants), 'e0000000-0000-4000-8000-000000000001', current_date, 2, 3, 0);
INSERT INTO user_sessions (session_id, landing_page, exit_page) VALUES ('w', '/', '/bye');
SELECT duration_seconds FROM user_sessions;
SELECT 'refreshed' FROM (SELECT refresh_analytics_views()) r;
SQL
)
check "a smoke of behavior, conversations and web (2,1,1; deb,1; 1; 5; 0; refreshed)" \
    test "$(echo "$smoke" | paste -sd' ')" = "2,1,1 deb,1 1 5 0 refreshed"
check "DROP EXTENSION is refused while tables hold rows" bash -c "! sudo -H -u postgres $bin/psql -X -q -h 127.0.0.1 -p $port -U postgres -d postgres -c 'DROP EXTENSION pg_assistant' 2>/dev/null"
check "DROP EXTENSION with pg_assistant.allow_drop_with_data" \
    psql -c "SET pg_assistant.allow_drop_with_data = on" -c "DROP EXTENSION pg_assistant" -c "DROP EXTENSION citext"
as_postgres "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1
rm -rf "$data"

check "apt-get remove" env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q postgresql-15-pg-assistant
left=$(for f in $files; do [[ -e $f ]] && echo "$f"; done)
check "no file of the package is left behind" test -z "$left"
[[ -n $left ]] && echo "left behind: $left"
finish
