#!/usr/bin/env bash
# Regenerate the lock files after a dependency change in pyproject.toml (CI's lock test fails
# until you do). Both are pinned with hashes for CPython 3.11 on linux x86_64, the image's
# platform; pins already in a file are kept unless you pass --upgrade (or --upgrade-package P).
#
#   requirements.lock               [project].dependencies only: what the service runs on
#   deploy/build-requirements.lock  [build-system].requires (hatchling): builds pelosync's wheel
#
# Needs uv: the one in the development venv (.venv/bin/uv) or on PATH, or UV=/path/to/uv.
set -euo pipefail
cd "$(dirname "$0")/.."

uv="${UV:-}"
if [ -z "$uv" ]; then
  if [ -x .venv/bin/uv ]; then uv=.venv/bin/uv; else uv=uv; fi
fi

common=(
  --generate-hashes
  --python-version 3.11
  --python-platform x86_64-unknown-linux-gnu
  --custom-compile-command deploy/lock.sh
  --quiet
  "$@"
)

"$uv" pip compile pyproject.toml "${common[@]}" -o requirements.lock
python3 -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
  | "$uv" pip compile - "${common[@]}" -o deploy/build-requirements.lock
echo "wrote requirements.lock and deploy/build-requirements.lock"
