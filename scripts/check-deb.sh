#!/usr/bin/env bash
# Installs the Debian package on this machine (as root), checks it, and removes it again:
# `meterhook --version`, `systemd-analyze verify` on the installed units, the user, the modes of
# the configuration, then `migrate` and `doctor` run as the service user with the packaged
# configuration and environment file, as systemd would run them. CI runs it on its own machine.
#   scripts/check-deb.sh target/debian/meterhook_<version>-1_<arch>.deb
set -euo pipefail
cd "$(dirname "$0")/.."
deb=${1:?usage: scripts/check-deb.sh PACKAGE.deb}
[ "$(id -u)" = 0 ] || { echo "check-deb: run as root (it installs a package)" >&2; exit 1; }
if dpkg -s meterhook >/dev/null 2>&1 || getent passwd meterhook >/dev/null || [ -e /var/lib/meterhook ]; then
  echo "check-deb: meterhook is already installed or has left state here; not touching it" >&2
  exit 1
fi

cleanup() {
  dpkg --purge meterhook >/dev/null 2>&1 || true
  # The package keeps the state and the user on purge (deleting data is the operator's call);
  # this machine only tried it.
  rm -rf /var/lib/meterhook /etc/meterhook
  userdel meterhook >/dev/null 2>&1 || true
  getent group meterhook >/dev/null && groupdel meterhook >/dev/null 2>&1 || true
}
trap cleanup EXIT

dpkg -i "$deb"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
out=$(/usr/bin/meterhook --version)
[ "$out" = "meterhook $version" ] || { echo "check-deb: --version says '$out', want 'meterhook $version'" >&2; exit 1; }
echo "check-deb: $out"

units=(/lib/systemd/system/meterhook.service /lib/systemd/system/meterhook-prune.service /lib/systemd/system/meterhook-prune.timer)
out=$(systemd-analyze verify "${units[@]}" 2>&1 || true)
# Only complaints about these units count (the host's own units may have theirs).
if grep -E "meterhook(-prune)?\.(service|timer)" <<<"$out"; then
  echo "check-deb: systemd-analyze verify found problems in the installed units" >&2
  exit 1
fi
grep -q '^ExecStart=/usr/bin/meterhook --config /etc/meterhook/meterhook.toml serve$' /lib/systemd/system/meterhook.service
echo "check-deb: installed units ok (systemd-analyze verify)"

getent passwd meterhook | grep -q ':/var/lib/meterhook:/usr/sbin/nologin$'
[ "$(stat -c '%U:%G %a' /etc/meterhook/meterhook.env)" = "root:root 600" ]
[ "$(stat -c '%U:%G %a' /etc/meterhook/meterhook.toml)" = "root:meterhook 640" ]
[ "$(stat -c '%U:%G %a' /var/lib/meterhook)" = "meterhook:meterhook 700" ]
echo "check-deb: user meterhook, /etc/meterhook (env file root-only), /var/lib/meterhook ok"

# A token for this try only, in the packaged environment file (the purge removes it).
printf 'SMARTCAR_MANAGEMENT_TOKEN=check-deb-%s\n' "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" \
  >>/etc/meterhook/meterhook.env
as_service() {
  # As systemd runs the units: a clean environment plus the environment file read as root, then
  # the service's user, in its working directory, with the packaged configuration.
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin bash -c \
    'set -a; . /etc/meterhook/meterhook.env; set +a; cd /var/lib/meterhook &&
     exec runuser -u meterhook -- /usr/bin/meterhook --config /etc/meterhook/meterhook.toml "$@"' \
    as_service "$@"
}
as_service migrate
as_service doctor
[ "$(stat -c '%U %a' /var/lib/meterhook/meterhook.db)" = "meterhook 600" ]
echo "check-deb: migrate and doctor ran as meterhook with the packaged configuration"

dpkg --purge meterhook
! dpkg -s meterhook >/dev/null 2>&1
[ ! -e /usr/bin/meterhook ] && [ ! -e /lib/systemd/system/meterhook.service ]
echo "check-deb: removed"
