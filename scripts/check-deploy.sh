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
  # verify wants the ExecStart binary to exist: point copies of the units at a stand-in.
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  printf '#!/bin/sh\n' >"$tmp/meterhook" && chmod +x "$tmp/meterhook"
  units=()
  for unit in deploy/*.service deploy/*.timer; do
    sed "s|/usr/local/bin/meterhook|$tmp/meterhook|" "$unit" >"$tmp/$(basename "$unit")"
    units+=("$tmp/$(basename "$unit")")
  done
  out=$(systemd-analyze verify "${units[@]}" 2>&1 || true)
  # Only complaints about these units count (the host's own units may have theirs).
  if grep -E "meterhook(-prune)?\.(service|timer)" <<<"$out"; then
    echo "check-deploy: systemd-analyze verify found problems in deploy/" >&2
    status=1
  else
    echo "check-deploy: deploy/*.service, deploy/*.timer ok (systemd-analyze verify)"
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
