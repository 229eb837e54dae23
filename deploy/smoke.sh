#!/usr/bin/env bash
# The container image's life, without a container engine (CI runs this; so can you):
#
# 1. deploy/install.sh into a fresh venv in a temporary directory (what the Dockerfile runs);
# 2. PELOSYNC_MIGRATE=false on an empty database must refuse to start (exit 2);
# 3. the entrypoint with no arguments (`serve`) from that venv, as the image runs it: production
#    mode, a generated key, a temporary data dir, a free port; /healthz then /readyz must answer
#    200 within 60 s (probed with deploy/healthcheck.py, the image's HEALTHCHECK);
# 4. SIGTERM must stop it with exit code 0 within 40 s, leaving a current schema behind.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
START_TIMEOUT_S=60
STOP_TIMEOUT_S=40

# Only what this script sets may configure the service (CI exports PELOSYNC_ENV=testing and a
# test database URL; a developer may have more).
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^PELOSYNC_' || true)

work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf 'smoke: %s\n' "$*"; }
fail() {
  printf 'smoke: FAILED: %s\n' "$*" >&2
  for log in "$work"/*.log; do
    [ -f "$log" ] && { printf -- '--- %s (last 40 lines)\n' "${log##*/}" >&2; tail -n 40 "$log" >&2; }
  done
  exit 1
}

say "install.sh into a fresh venv"
"$root/deploy/install.sh" "$work/venv"

export PATH="$work/venv/bin:$PATH"
PELOSYNC_SECRET_KEY="$(pelosync secrets generate-key)"
PELOSYNC_PORT="$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
export PELOSYNC_SECRET_KEY PELOSYNC_PORT PELOSYNC_ENV=production PELOSYNC_HOST=127.0.0.1 \
  PELOSYNC_LOG_FORMAT=json PELOSYNC_DATA_DIR="$work/data"
mkdir -p "$work/data" "$work/empty"
# Away from the checkout: no .env of the developer's, and only the installed wheel to import.
cd "$work"

say "PELOSYNC_MIGRATE=false on an empty database refuses to start"
rc=0
PELOSYNC_MIGRATE=false PELOSYNC_DATA_DIR="$work/empty" "$root/deploy/entrypoint.sh" serve \
  >"$work/refused.log" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "expected exit code 2 from serve --no-migrate on an empty database, got $rc"
grep -q "db upgrade" "$work/refused.log" || fail "the refusal does not say to run 'pelosync db upgrade'"

say "serve (via the entrypoint) on 127.0.0.1:$PELOSYNC_PORT"
"$root/deploy/entrypoint.sh" >"$work/serve.log" 2>&1 &
pid=$!

deadline=$((SECONDS + START_TIMEOUT_S))
for path in /healthz /readyz; do
  until python "$root/deploy/healthcheck.py" "$path" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || fail "serve exited before $path answered 200"
    [ "$SECONDS" -lt "$deadline" ] || fail "$path did not answer 200 within ${START_TIMEOUT_S} s"
    sleep 1
  done
  say "$path: 200 after $((SECONDS + START_TIMEOUT_S - deadline)) s"
done

say "SIGTERM"
kill -TERM "$pid"
deadline=$((SECONDS + STOP_TIMEOUT_S))
while kill -0 "$pid" 2>/dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || fail "serve still running ${STOP_TIMEOUT_S} s after SIGTERM"
  sleep 0.5
done
rc=0
wait "$pid" || rc=$?
pid=""
[ "$rc" -eq 0 ] || fail "serve exited with $rc after SIGTERM, expected 0"
say "stopped, exit code 0"

pelosync db check >"$work/check.log" 2>&1 || fail "the schema is not current after serve migrated"
say "OK: installed, served, ready, stopped cleanly, schema current"
