#!/usr/bin/env bash
# Fails when a crate gains a dependency its layer must not have (docs/ARCHITECTURE.md: dependencies only
# point down), or when a library crate reads the environment. Lemmy keeps its layers the same way.
set -euo pipefail
cd "$(dirname "$0")/.."

status=0
# forbid CRATE PATTERN...: no crate matching a pattern in CRATE's normal dependency tree.
forbid() {
  local crate=$1; shift
  local tree
  tree=$(cargo tree -p "$crate" -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u)
  for pattern in "$@"; do
    local hits
    hits=$(grep -E "^(${pattern})$" <<<"$tree" || true)
    if [ -n "$hits" ]; then
      echo "layer check: $crate must not depend on $(tr '\n' ' ' <<<"$hits")(pattern '$pattern')" >&2
      status=1
    fi
  done
}

# domain: pure rules, no I/O.
forbid meterhook-domain 'diesel.*' 'actix.*' 'tokio' 'ring' 'serde_json' 'r2d2' 'libsqlite3-sys' 'pq-sys' 'meterhook-smartcar' 'meterhook-store' 'meterhook'
# smartcar: the wire format; no persistence, no HTTP server.
forbid meterhook-smartcar 'diesel.*' 'actix.*' 'tokio' 'r2d2' 'libsqlite3-sys' 'pq-sys' 'meterhook-store' 'meterhook'
# store: persistence; no HTTP, no configuration sources, no wire format.
forbid meterhook-store 'actix.*' 'tokio' 'hyper' 'ureq' 'config' 'dotenvy' 'clap' 'env_logger' 'meterhook-smartcar' 'meterhook'

# ingest: the delivery pipeline; no HTTP framework, no configuration sources, no CLI.
forbid meterhook-ingest 'actix.*' 'hyper' 'axum' 'ureq' 'config' 'dotenvy' 'clap' 'env_logger' 'meterhook'

# A service that only wants SQLite builds the store and the pipeline without libpq.
sqlite_only=$(cargo tree -p meterhook-ingest --no-default-features --features sqlite -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u)
if grep -qE '^(pq-sys|pq-src)$' <<<"$sqlite_only"; then
  echo "layer check: meterhook-ingest with only the sqlite feature must not depend on libpq (pq-sys)" >&2
  status=1
fi

# Only the server reads configuration or the environment (the store's test support excepted).
if grep -rnE 'std::env::var|env::var\(|dotenvy|env!\("(DATABASE|SMARTCAR|METERHOOK)' \
    crates/domain/src crates/smartcar/src crates/store/src crates/ingest/src | grep -v 'crates/store/src/testing.rs'; then
  echo "layer check: only crates/server may read the environment" >&2
  status=1
fi

if [ "$status" = 0 ]; then echo "layer check: ok"; fi
exit "$status"
