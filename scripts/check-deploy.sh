#!/usr/bin/env bash
# Checks the deployment files with the tools that understand them: the systemd unit with
# `systemd-analyze verify`, the Prometheus rules with `promtool check rules` (Debian's
# `prometheus` package). A missing tool is reported and skipped unless REQUIRE_DEPLOY_TOOLS=1;
# the unit is also parsed by a test (crates/server/tests/api/deploy.rs) that always runs.
set -euo pipefail
cd "$(dirname "$0")/.."

status=0
missing() {
  if [ "${REQUIRE_DEPLOY_TOOLS:-0}" = 1 ]; then
    echo "check-deploy: $1 not found (REQUIRE_DEPLOY_TOOLS=1)" >&2
    status=1
  else
    echo "check-deploy: $1 not found; skipped"
  fi
}

if command -v systemd-analyze >/dev/null; then
  # verify wants the ExecStart binary to exist: point a copy of the unit at a stand-in.
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  printf '#!/bin/sh\n' >"$tmp/meterhook" && chmod +x "$tmp/meterhook"
  sed "s|^ExecStart=/usr/local/bin/meterhook|ExecStart=$tmp/meterhook|" deploy/meterhook.service \
    >"$tmp/meterhook.service"
  out=$(systemd-analyze verify "$tmp/meterhook.service" 2>&1 || true)
  # Only complaints about this unit count (the host's own units may have theirs).
  if grep -F "meterhook.service" <<<"$out"; then
    echo "check-deploy: systemd-analyze verify found problems in deploy/meterhook.service" >&2
    status=1
  else
    echo "check-deploy: deploy/meterhook.service ok (systemd-analyze verify)"
  fi
else
  missing systemd-analyze
fi

if command -v promtool >/dev/null; then
  promtool check rules deploy/alerts.yml || status=1
else
  missing promtool
fi
exit "$status"
