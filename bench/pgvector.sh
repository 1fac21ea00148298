#!/usr/bin/env bash
# pgvector for the similarity benchmark and the migration test's old databases only (it is never a
# dependency of pg_assistant):
#   bash bench/pgvector.sh PG_CONFIG
# Builds Debian trixie's source package of pgvector (0.8.0) for the PostgreSQL of PG_CONFIG and
# installs it there. Idempotent, and instant when that PostgreSQL already has pgvector.
# 0.8.0 predates PostgreSQL 18: for 18 the build makes the two changes pgvector 0.8.1 made for it
# (vacuum_delay_point's new argument, TupleDescAttr instead of tupdesc->attrs); the benchmark
# uses only pgvector's type and distance functions, which these do not touch.
#
# The machine's apt configuration is left alone: a private sources list (one deb-src line for
# trixie main, on the mirror of the machine's own Debian list), private package lists and caches,
# all under $PGA_CACHE/pgvector.
set -euo pipefail
pg_config=${1:?usage: bench/pgvector.sh PG_CONFIG}
cd "$(dirname "$0")/.."
source scripts/lib.sh

if [[ -f $("$pg_config" --sharedir)/extension/vector.control && -f $("$pg_config" --pkglibdir)/vector.so ]]; then
    exit 0
fi

version=$("$pg_config" --version | sed -E 's/^PostgreSQL ([0-9.]+).*/\1/')
dir=$PGA_CACHE/pgvector
mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/src"
log=$dir/apt.log

# The machine's Debian mirror: the first URI of a bookworm (not security) entry, deb822 or
# one-line format; deb.debian.org if there is none.
mirror=$(python3 - <<'EOF'
import glob, re
found = []
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in open(path).read().split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if m:
                fields[m.group(1).lower()] = m.group(2).split()
        if "bookworm" in fields.get("suites", []) and "security" not in " ".join(fields.get("uris", [])):
            found += fields.get("uris", [])
for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        words = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
        if len(words) >= 3 and words[0] in ("deb", "deb-src") and words[2] == "bookworm":
            found.append(words[1])
print(found[0] if found else "http://deb.debian.org/debian")
EOF
)
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" >"$dir/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache" -o APT::Sandbox::User=root)

dsc=$(ls "$dir"/src/pgvector_*.dsc 2>/dev/null | tail -1 || true)
if [[ -z $dsc ]]; then
    echo "==> pgvector: Debian trixie source package from $mirror (benchmark only)" >&2
    { apt-get -q "${apt_opts[@]}" update && (cd "$dir/src" && apt-get -q "${apt_opts[@]}" source --download-only pgvector); } \
        >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    dsc=$(ls "$dir"/src/pgvector_*.dsc | tail -1)
fi
tree=$dir/src/pgvector
if [[ ! -f $tree/vector.control ]]; then
    rm -rf "$tree"
    if command -v dpkg-source >/dev/null; then
        dpkg-source -x "$dsc" "$tree" >>"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    else  # upstream's tarball; Debian's only patch drops -march=native, as OPTFLAGS="" below does
        mkdir "$tree" && tar -xzf "$dir"/src/pgvector_*.orig.tar.gz -C "$tree" --strip-components=1
    fi
fi

# One build tree per PostgreSQL (the majors' headers differ). OPTFLAGS="" as Debian builds it:
# no -march=native, so the library is the one a Debian user gets.
build=$PGA_CACHE/pgvector/build-$version
rm -rf "$build"
cp -r "$tree" "$build"
if ((${version%%.*} >= 18)); then
    sed -i 's/vacuum_delay_point()/vacuum_delay_point(false)/' "$build"/src/*.c
    sed -i 's/buildstate->tupdesc->attrs\[0\]\.atttypid/TupleDescAttr(buildstate->tupdesc, 0)->atttypid/' "$build"/src/ivfbuild.c
fi
echo "==> pgvector: building $(sed -n "s/^default_version = '\(.*\)'/\1/p" "$tree/vector.control") for PostgreSQL $version" >&2
{ make -C "$build" -s -j"$(nproc)" PG_CONFIG="$pg_config" OPTFLAGS="" \
    && make -C "$build" -s PG_CONFIG="$pg_config" OPTFLAGS="" install; } >"$build/build.log" 2>&1 \
    || { tail -30 "$build/build.log" >&2; exit 1; }
