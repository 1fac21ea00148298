#!/usr/bin/env bash
# The whole test suite on every supported major (or the majors given as arguments):
#   1. #[pg_test] unit tests       (cargo pgrx test, server run as postgres)
#   2. pg_regress golden files     (tests/pg_regress, the `cargo pgrx regress` layout)
#   3. client integration tests    (tests/integration: several connections, real roles, the
#                                   migration from the PL/pgSQL schema with pgvector)
#   4. the package install test    (pg15 only: the .deb on Debian's own postgresql-15, as root)
# Ends with one line per major: "pgNN: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
source scripts/lib.sh

majors=("$@")
((${#majors[@]})) || mapfile -t majors < <(python3 scripts/pg.py majors)
logs="target/test-logs"
mkdir -p "$logs"

# Sum "test result: ... N passed; M failed" lines of a cargo test log.
cargo_counts() { awk '/test result:/ { for (i=1;i<=NF;i++) { if ($(i+1) ~ /^passed/) p+=$i; if ($(i+1) ~ /^failed/) f+=$i } } END { print p+0, f+0 }' "$1"; }
# Count pg_regress results, in the pre-16 ("test x ... ok") and TAP ("ok 1 - x") formats.
regress_counts() { awk '/^(ok|not ok) [0-9]+ |\.\.\. (ok|FAILED)|^test .*\.\.\. / { if ($0 ~ /^not ok|FAILED|failed \(ignored\)/) f++; else p++ } END { print p+0, f+0 }' "$1"; }

declare -A summary
failed_any=0
for major in "${majors[@]}"; do
    num=${major#pg}
    pg_config=$(pga_pg_config "$major")
    bin=$("$pg_config" --bindir)
    out="$logs/$major"; mkdir -p "$out"
    passed=0 failed=0
    tally() { # tally TIER RC "P F"
        local tier=$1 rc=$2 p f; read -r p f <<<"$3"
        if [[ $rc != 0 && $f == 0 ]]; then f=1; fi # a build or harness failure counts as a failure
        passed=$((passed + p)); failed=$((failed + f))
        printf '  %-12s %4d passed, %d failed%s\n' "$tier" "$p" "$f" "$([[ $rc != 0 ]] && echo "   (see $out/$tier.log)")"
    }
    echo "== $major ($("$pg_config" --version))"

    # 1. unit tests
    pgdata="$PGA_CACHE/run/$major-pgtest"
    cargo pgrx test "$major" --runas postgres --pgdata "$pgdata" >"$out/unit.log" 2>&1; rc=$?
    tally unit $rc "$(cargo_counts "$out/unit.log")"

    # 2 and 3 run against a server of our own with the regular (non-test) build installed.
    cargo pgrx install --pg-config "$pg_config" >"$out/install.log" 2>&1; rc=$?
    # The frozen install scripts of released versions, for the release tests (releases.rs); one
    # frozen for the version being built goes in as "<version>-frozen", beside the fresh one.
    extdir="$("$pg_config" --sharedir)/extension"
    version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
    for frozen in sql/releases/pg_assistant--*.sql; do
        v=${frozen##*--}; v=${v%.sql}
        if [[ $v == "$version" ]]; then cp "$frozen" "$extdir/pg_assistant--$v-frozen.sql"; else cp "$frozen" "$extdir/"; fi
    done
    data="$PGA_CACHE/run/$major-it"; port=$((5500 + num))
    if [[ $rc == 0 ]] && pga_server_start "$major" "$port" "$data" fsync=off synchronous_commit=off max_connections=200 >>"$out/install.log" 2>&1; then
        results="$PGA_CACHE/run/$major-regress"; rm -rf "$results"; mkdir -p "$results"
        tests=$(cd tests/pg_regress/sql && ls *.sql | sed 's/\.sql$//' | grep -vx setup | sort)
        "$("$pg_config" --pkglibdir)/pgxs/src/test/regress/pg_regress" \
            --bindir="$bin" --host=127.0.0.1 --port="$port" --user=postgres --dbname=pga_regress \
            --inputdir=tests/pg_regress --outputdir="$results" setup $tests >"$out/regress.log" 2>&1; rc=$?
        [[ -f "$results/regression.diffs" ]] && cp "$results/regression.diffs" "$out/regression.diffs"
        tally regress $rc "$(regress_counts "$out/regress.log")"

        # pgvector, for the old databases the migration test builds (004's VECTOR column)
        bash bench/pgvector.sh "$pg_config" >>"$out/install.log" 2>&1
        PGA_TEST_HOST=127.0.0.1 PGA_TEST_PORT=$port PGA_TEST_BINDIR=$bin PGA_TEST_MAJOR=$num \
            cargo test --no-fail-fast --manifest-path tests/integration/Cargo.toml -- --test-threads=4 >"$out/integration.log" 2>&1; rc=$?
        tally integration $rc "$(cargo_counts "$out/integration.log")"
        pga_server_stop "$major" "$data"
    else
        tally install 1 "0 1"
    fi

    # 4. the .deb on Debian's own PostgreSQL (bookworm ships 15 only)
    if [[ $major == pg15 ]]; then
        bash scripts/test_package.sh >"$out/package.log" 2>&1; rc=$?
        tally package $rc "$(awk '/^package: / { print $2, $4 }' "$out/package.log")"
    fi
    summary[$major]="$major: $passed passed, $failed failed"
    ((failed)) && failed_any=1
done

echo
for major in "${majors[@]}"; do echo "${summary[$major]}"; done
exit $failed_any
