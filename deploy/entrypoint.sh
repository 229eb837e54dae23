#!/bin/sh
# Container entry point: run pelosync with whatever arguments the container was given.
set -eu
exec pelosync "$@"
