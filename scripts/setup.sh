#!/usr/bin/env bash
# Install everything pg_assistant needs to build, test and demo; idempotent and quick when done.
#   OS packages, cargo-pgrx 0.18.1, every PostgreSQL major in pgrx.toml, `cargo pgrx init`.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# --- OS packages -----------------------------------------------------------------------------
packages=(clang libclang-dev sudo binutils postgresql-15 postgresql-server-dev-15 postgresql-contrib)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    say "installing OS packages: ${missing[*]}"
    [[ $(id -u) == 0 ]] || { echo "setup.sh: need root to install ${missing[*]}" >&2; exit 1; }
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian package starts a cluster of its own on 5432; our servers use other ports.
id postgres >/dev/null 2>&1 || useradd --system --create-home --shell /bin/bash postgres

# --- cargo-pgrx --------------------------------------------------------------------------------
if ! cargo pgrx --version 2>/dev/null | grep -q '0\.18\.1'; then
    say "installing cargo-pgrx 0.18.1 (about 4 minutes)"
    cargo install cargo-pgrx --version 0.18.1 --locked --quiet
fi

# --- PostgreSQL majors -------------------------------------------------------------------------
init_args=()
for major in $(python3 scripts/pg.py majors); do
    pg_config=$(python3 scripts/pg.py pg-config "$major")
    init_args+=("--$major" "$pg_config")
done

# `cargo pgrx init` only when its config does not already name exactly these pg_configs.
config="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
want=$(printf '%s\n' "${init_args[@]}" | paste -sd' ')
if [[ ! -f "$config" ]] || [[ "$(cat "$config.pga-args" 2>/dev/null)" != "$want" ]]; then
    say "cargo pgrx init ${init_args[*]}"
    cargo pgrx init "${init_args[@]}" >/dev/null
    echo "$want" > "$config.pga-args"
fi

cache=$(python3 scripts/pg.py cache)
mkdir -p "$cache/run"
chmod 755 "$cache" "$cache/run"
chown postgres: "$cache/run"
say "set-up complete (PostgreSQL cache: $cache)"
