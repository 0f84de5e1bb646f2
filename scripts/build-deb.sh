#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (`cargo install --locked cargo-deb`):
# target/debian/meterhook_<version>-1_<arch>.deb, from the release binary, the systemd units of
# deploy/ with the packaged paths, and the default configuration in deploy/debian/.
#   scripts/build-deb.sh [--no-build]   (--no-build: package the release binary already built)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}

if ! command -v cargo-deb >/dev/null; then
  echo "build-deb: cargo-deb not found; install it with: cargo install --locked cargo-deb" >&2
  exit 1
fi
if [ "${1:-}" != --no-build ]; then
  cargo build --release --locked -p meterhook
fi
test -x "$target/release/meterhook" || {
  echo "build-deb: no $target/release/meterhook; run without --no-build" >&2
  exit 1
}

# The units are deploy/'s own (one copy to keep true), pointed at the packaged binary and
# configuration. cargo-deb reads assets under target/release/ from the real target folder.
units="$target/release/deb-units"
mkdir -p "$units"
for unit in deploy/meterhook.service deploy/meterhook-prune.service deploy/meterhook-prune.timer; do
  sed 's|/usr/local/bin/meterhook|/usr/bin/meterhook --config /etc/meterhook/meterhook.toml|' \
    "$unit" >"$units/$(basename "$unit")"
done
grep -q '^ExecStart=/usr/bin/meterhook --config /etc/meterhook/meterhook.toml serve$' \
  "$units/meterhook.service"

# The release profile already strips symbols.
cargo deb -p meterhook --no-build --no-strip
