#!/usr/bin/env bash
# Install pelosync into a virtual environment exactly as the container image does. The
# Dockerfile runs this, and so does CI (deploy/smoke.sh, into a fresh venv), so the image's
# install steps are tested on machines without a container engine.
#
#   deploy/install.sh [--deps-only] VENV_DIR
#
# 1. Creates VENV_DIR with $PYTHON (default python3; must be CPython 3.11, what the lock pins),
#    or reuses it if it already holds a Python.
# 2. Installs requirements.lock: every package pinned, hash-checked, wheels only, no resolver.
# 3. Builds pelosync's wheel with the hash-locked build backend (deploy/build-requirements.lock)
#    in a throwaway venv, and installs it into VENV_DIR without dependencies.
# 4. `pip check` (a dependency missing from the lock fails here, with its name) and a smoke run.
#
# --deps-only stops after step 2, so an image build caches the dependency layer until the lock
# changes. Running the script again on the same venv is safe: step 2 is then a no-op.
set -euo pipefail

usage() { echo "usage: $0 [--deps-only] VENV_DIR" >&2; exit 2; }

deps_only=false
if [ "${1:-}" = "--deps-only" ]; then deps_only=true; shift; fi
[ "$#" -eq 1 ] || usage
case "$1" in -*) usage ;; esac

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$1"
python="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

say() { printf 'install.sh: %s\n' "$*" >&2; }

if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv with $python"
  "$python" -m venv "$venv"
fi
# The lock is resolved for 3.11 (markers, wheels); another version could install a set of
# packages nobody tested, so refuse it plainly.
if ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  say "error: $venv has Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())'); requirements.lock is for 3.11 (set PYTHON=python3.11)"
  exit 2
fi

# Hash-checked, pinned, binary-only: what is installed is byte for byte what was locked.
locked_install() { # PYTHON_OF_VENV LOCK_FILE
  "$1" -m pip install --quiet --require-hashes --no-deps --only-binary=:all: -r "$2"
}

say "installing requirements.lock into $venv"
locked_install "$venv/bin/python" "$root/requirements.lock"
if [ "$deps_only" = true ]; then
  exit 0
fi

build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
say "building the pelosync wheel"
"$python" -m venv "$build/venv"
locked_install "$build/venv/bin/python" "$root/deploy/build-requirements.lock"
"$build/venv/bin/python" -m pip wheel --quiet --no-deps --no-build-isolation \
  --wheel-dir "$build/dist" "$root"

say "installing the wheel"
"$venv/bin/python" -m pip install --quiet --no-deps --force-reinstall "$build/dist"/pelosync-*.whl
"$venv/bin/python" -m pip check
say "installed pelosync $("$venv/bin/pelosync" version) into $venv"
