#!/bin/sh
# Container entry point: `pelosync ARGS...`, `pelosync serve` when no arguments are given.
#
# `serve` applies pending migrations before it listens (PostgreSQL: under an advisory lock, so
# replicas starting together take turns). PELOSYNC_MIGRATE=false opts out (`serve --no-migrate`):
# the schema is then only checked, and an outdated one refuses to start. Use it when one place
# migrates for everyone: the Kubernetes migration Job, the compose `migrate` service.
#
# `exec` hands PID 1 to pelosync, so SIGTERM reaches it directly and it drains in-flight work.
set -eu

if [ "$#" -eq 0 ]; then
  set -- serve
fi

if [ "$1" = "serve" ]; then
  migrate="$(printf '%s' "${PELOSYNC_MIGRATE:-true}" | tr '[:upper:]' '[:lower:]')"
  case "$migrate" in
    true | 1 | yes | on) ;;
    false | 0 | no | off) set -- "$@" --no-migrate ;;
    *)
      echo "pelosync-entrypoint: error: PELOSYNC_MIGRATE must be true or false, not '${PELOSYNC_MIGRATE}'" >&2
      exit 2
      ;;
  esac
fi

exec pelosync "$@"
