#!/usr/bin/env bash
# make package: for every supported major (or those given), a Debian package in Debian's layout
# and a plain tarball for other distributions, in target/package/.
#   postgresql-NN-pg-assistant_<version>-1_<arch>.deb   /usr/lib/postgresql/NN/lib, /usr/share/postgresql/NN/extension
#   pg_assistant-<version>-pgNN-linux-<arch>.tar.gz      lib/, extension/, INSTALL
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
source scripts/lib.sh

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
out=target/package
mkdir -p "$out"
majors=("$@")
((${#majors[@]})) || mapfile -t majors < <(python3 scripts/pg.py majors)

for major in "${majors[@]}"; do
    num=${major#pg}
    pg_config=$(pga_pg_config "$major")
    built_against=$("$pg_config" --version | sed -n 's/^PostgreSQL \([0-9]*\.[0-9]*\).*/\1/p')
    stage="$out/stage-$major"
    rm -rf "$stage"
    echo "==> $major: cargo pgrx package (PostgreSQL $built_against)" >&2
    cargo pgrx package --pg-config "$pg_config" --out-dir "$stage" >"$out/$major.log" 2>&1 \
        || { tail -30 "$out/$major.log" >&2; exit 1; }
    lib=$(find "$stage" -name pg_assistant.so | head -1)
    extdir=$(dirname "$(find "$stage" -name pg_assistant.control | head -1)")
    # The newest glibc symbol version the library needs, as dpkg-shlibdeps would put it.
    glibc=$(objdump -T "$lib" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)

    # Debian's layout, whatever prefix the pg_config we built with has.
    name="postgresql-$num-pg-assistant"
    root="$out/deb-$major"
    rm -rf "$root"
    install -D -m 0644 "$lib" "$root/usr/lib/postgresql/$num/lib/pg_assistant.so"
    install -d "$root/usr/share/postgresql/$num/extension" "$root/usr/share/doc/$name"
    install -m 0644 "$extdir"/pg_assistant* "$root/usr/share/postgresql/$num/extension/"
    install -m 0644 README.md "$root/usr/share/doc/$name/README.md"
    install -m 0644 migrate/pg_assistant_migrate.sql docs/migrating.md "$root/usr/share/doc/$name/"
    printf 'pg_assistant %s\nLicense: MIT\n' "$version" >"$root/usr/share/doc/$name/copyright"
    install -d "$root/DEBIAN"
    cat >"$root/DEBIAN/control" <<CONTROL
Package: $name
Version: $version-1
Architecture: $arch
Maintainer: pg_assistant developers <pg-assistant@localhost>
Depends: postgresql-$num, libc6 (>= $glibc)
Section: database
Priority: optional
Installed-Size: $(du -sk "$root/usr" | cut -f1)
Description: AI-assistant database for PostgreSQL $num, rules enforced natively
 CREATE EXTENSION pg_assistant creates the tables, row-level security and native
 (Rust) rules of an AI-assistant product: counters, weekly limits, immutability,
 retention jobs. Requires the citext extension (part of postgresql-$num).
CONTROL
    deb="$out/${name}_${version}-1_${arch}.deb"
    dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null

    # The same files for any distribution.
    tarroot="$out/tar-$major/pg_assistant-$version-pg$num"
    rm -rf "$out/tar-$major"
    install -D -m 0644 "$lib" "$tarroot/lib/pg_assistant.so"
    install -d "$tarroot/extension"
    install -m 0644 "$extdir"/pg_assistant* "$tarroot/extension/"
    install -m 0644 migrate/pg_assistant_migrate.sql docs/migrating.md "$tarroot/"
    cat >"$tarroot/INSTALL" <<INSTALL
pg_assistant $version for PostgreSQL $num (built against $built_against), $arch.

As root, with the pg_config of your PostgreSQL $num first in PATH:

    cp lib/pg_assistant.so "\$(pg_config --pkglibdir)/"
    cp extension/* "\$(pg_config --sharedir)/extension/"

then, as a superuser in your database:

    CREATE EXTENSION pg_assistant CASCADE;   -- CASCADE installs citext (PostgreSQL contrib)

To remove: DROP EXTENSION pg_assistant (refused while its tables hold rows unless
SET pg_assistant.allow_drop_with_data = on), then delete the copied files.
INSTALL
    tarball="$out/pg_assistant-$version-pg$num-linux-$arch.tar.gz"
    tar -C "$out/tar-$major" --owner=0 --group=0 -czf "$tarball" "pg_assistant-$version-pg$num"
    printf '%-52s %8s\n%-52s %8s\n' "$(basename "$deb")" "$(du -h "$deb" | cut -f1)" \
        "$(basename "$tarball")" "$(du -h "$tarball" | cut -f1)"
done
